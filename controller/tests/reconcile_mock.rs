//! Reconcile scenarios against a mocked API server: kube's client over a `tower-test`
//! mock service. Each scenario names what happens and asserts the exact requests, in
//! order, with their bodies where they matter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use oras_controller::builders::{self, Observed};
use oras_controller::controller::{error_policy, reconcile};
use oras_controller::metrics::Metrics;
use oras_controller::{Context, OrasCache, Settings};
use serde_json::{Value, json};

const NS: &str = "workflows";
const UID: &str = "5f0c4bd4-0000-4000-8000-000000000001";
const STS: &str = "/apis/apps/v1/namespaces/workflows/statefulsets/oras";
const SVC: &str = "/api/v1/namespaces/workflows/services/oras";
const NP: &str = "/apis/networking.k8s.io/v1/namespaces/workflows/networkpolicies/oras";
const DEPLOY: &str = "/apis/apps/v1/namespaces/workflows/deployments/oras";
const PDB: &str = "/apis/policy/v1/namespaces/workflows/poddisruptionbudgets/oras";
const HTTP_SECRET: &str = "/api/v1/namespaces/workflows/secrets/oras-http-secret";
const SECRETS: &str = "/api/v1/namespaces/workflows/secrets";
const CREDENTIALS: &str = "/api/v1/namespaces/workflows/secrets/oras-credentials";
const HTPASSWD: &str = "/api/v1/namespaces/workflows/secrets/oras-htpasswd";
const STATUS: &str = "/apis/cache.converged-computing.github.io/v1alpha1/namespaces/workflows/orascaches/oras/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/workflows/events";
const APPLY: &str = "?&force=true&fieldManager=oras-controller";

/// One request the controller made.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    query: String,
    body: Value,
}

impl Call {
    /// `METHOD path?query`, the form the scenarios assert.
    fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// A mocked API server: answers each request with `respond` and records it.
struct ApiServer {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl ApiServer {
    fn start(mut respond: impl FnMut(&Call) -> (u16, Value) + Send + 'static) -> (Self, Client) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let call = Call {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or("").to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (status, answer) = respond(&call);
                recorded.lock().unwrap().push(call);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        (Self { calls }, Client::new(service, NS))
    }

    fn calls_matching(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == method && c.path == path)
            .cloned()
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(Call::line).collect()
    }

    fn call(&self, index: usize) -> Call {
        self.calls.lock().unwrap()[index].clone()
    }
}

fn context(client: Client) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        Settings::default(),
        Arc::new(Metrics::default()),
        None,
    ))
}

fn cache(spec: Value) -> OrasCache {
    let mut cache = OrasCache::new("oras", serde_json::from_value(spec).unwrap());
    cache.metadata.namespace = Some(NS.into());
    cache.metadata.uid = Some(UID.into());
    cache.metadata.generation = Some(1);
    cache.metadata.resource_version = Some("100".into());
    cache
}

/// The cache as the controller left it after a pass that saw `ready` registry pods.
fn reconciled(mut cache: OrasCache, ready: i32) -> OrasCache {
    let status = builders::status(
        &cache,
        &Observed::Deployed {
            ready_replicas: ready,
        },
        "cluster.local",
        "2026-01-01T00:00:00Z",
    );
    cache.status = Some(status);
    cache
}

fn owner(cache: &OrasCache) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    cache.controller_owner_ref(&()).unwrap()
}

/// The answer of a real API server to an apply: the applied object, with the status the
/// registry pod has (`ready` pods ready, or no status at all).
fn applied(call: &Call, ready: Option<i32>) -> Value {
    let mut object = call.body.clone();
    object["metadata"]["uid"] = json!("child-uid");
    object["metadata"]["resourceVersion"] = json!("200");
    if let Some(ready) = ready {
        object["status"] = json!({"replicas": 1, "readyReplicas": ready});
    }
    object
}

/// The answer to a status apply: the cache with the applied status.
fn cache_with_status(call: &Call) -> Value {
    json!({
        "apiVersion": "cache.converged-computing.github.io/v1alpha1",
        "kind": "OrasCache",
        "metadata": {"name": "oras", "namespace": NS, "uid": UID, "generation": 1},
        "spec": {},
        "status": call.body["status"],
    })
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// An API server where every apply succeeds, the StatefulSet or Deployment has `ready`
/// ready pods, and no object of an earlier spec is left.
fn healthy(ready: Option<i32>) -> impl FnMut(&Call) -> (u16, Value) + Send + 'static {
    move |call| match (call.method.as_str(), call.path.as_str()) {
        ("PATCH", STS) | ("PATCH", DEPLOY) => (200, applied(call, ready)),
        ("PATCH", SVC) | ("PATCH", NP) | ("PATCH", PDB) | ("POST", EVENTS) => {
            (200, applied(call, None))
        }
        ("GET", STS) | ("GET", DEPLOY) | ("GET", PDB) => not_found(),
        ("PATCH", STATUS) => (200, cache_with_status(call)),
        _ => panic!("unexpected request {}", call.line()),
    }
}

fn ready_condition(status_body: &Value) -> (&str, &str) {
    let condition = &status_body["status"]["conditions"][0];
    assert_eq!(condition["type"], "Ready");
    (
        condition["status"].as_str().unwrap(),
        condition["reason"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn first_create_applies_statefulset_and_service_then_status_then_event() {
    let (server, client) = ApiServer::start(healthy(None));
    let ctx = context(client);
    let cache = cache(json!({}));

    let action = reconcile(Arc::new(cache.clone()), ctx.clone())
        .await
        .unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
    // A new cache: nothing of an earlier spec (a Deployment, a budget) to remove.
    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("GET {DEPLOY}"),
            format!("GET {PDB}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    // The applied objects are exactly what the builders make.
    let sts = serde_json::to_value(builders::statefulset(&cache, owner(&cache))).unwrap();
    assert_eq!(server.call(0).body, sts);
    let svc = serde_json::to_value(builders::service(&cache, owner(&cache))).unwrap();
    assert_eq!(server.call(1).body, svc);
    let np = serde_json::to_value(builders::network_policy::network_policy(
        &cache,
        owner(&cache),
    ))
    .unwrap();
    assert_eq!(server.call(2).body, np);
    // The status: applied, not ready yet, with the endpoint.
    let status = server.call(5).body;
    assert_eq!(
        status["apiVersion"],
        "cache.converged-computing.github.io/v1alpha1"
    );
    assert_eq!(status["kind"], "OrasCache");
    assert_eq!(ready_condition(&status), ("False", "RegistryNotReady"));
    assert_eq!(
        status["status"]["endpoint"],
        "oras.workflows.svc.cluster.local:5000"
    );
    assert_eq!(status["status"]["observedGeneration"], 1);
    assert_eq!(status["status"]["readyReplicas"], 0);
    assert_eq!(status["status"]["replicas"], 1);
    let event = server.call(6).body;
    assert_eq!(event["reason"], "Created");
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "oras");
    assert_eq!(event["regarding"]["uid"], UID);
    assert_eq!(ctx.metrics.reconciles(), 1);
}

#[tokio::test]
async fn second_pass_is_a_no_op_three_applies_and_nothing_else() {
    let (server, client) = ApiServer::start(healthy(Some(0)));
    let ctx = context(client);
    let cache = reconciled(cache(json!({})), 0);

    let action = reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
        ]
    );
}

#[tokio::test]
async fn drift_is_corrected_by_a_forced_apply_of_the_whole_desired_statefulset() {
    // Someone scaled the registry to 3 and changed its image; the watch on owned
    // StatefulSets brings the cache back to reconcile.
    let (server, client) = ApiServer::start(healthy(Some(1)));
    let ctx = context(client);
    let cache = reconciled(cache(json!({})), 1);

    reconcile(Arc::new(cache.clone()), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
        ]
    );
    let body = server.call(0).body;
    assert_eq!(body["spec"]["replicas"], 1);
    assert_eq!(
        body["spec"]["template"]["spec"]["containers"][0]["image"],
        oras_controller::crd::DEFAULT_IMAGE
    );
    assert!(server.call(0).query.contains("force=true"));
}

#[tokio::test]
async fn a_spec_change_is_applied_and_reported_as_updated() {
    let (server, client) = ApiServer::start(healthy(Some(1)));
    let ctx = context(client);
    let mut cache = reconciled(cache(json!({})), 1);
    cache.spec.port = 6000;
    cache.metadata.generation = Some(2);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    // A new spec: whatever the earlier one made and this one does not want goes.
    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("GET {DEPLOY}"),
            format!("GET {PDB}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(
        server.call(1).body["spec"]["ports"][0]["port"],
        6000,
        "the Service follows the port"
    );
    assert_eq!(
        server.call(2).body["spec"]["ingress"][0]["ports"][0]["port"],
        6000,
        "the NetworkPolicy follows the port"
    );
    let status = server.call(5).body;
    assert_eq!(status["status"]["observedGeneration"], 2);
    assert_eq!(
        status["status"]["endpoint"],
        "oras.workflows.svc.cluster.local:6000"
    );
    assert_eq!(server.call(6).body["reason"], "Updated");
}

#[tokio::test]
async fn status_turns_ready_when_the_statefulset_has_a_ready_pod() {
    let (server, client) = ApiServer::start(healthy(Some(1)));
    let ctx = context(client);
    let cache = reconciled(cache(json!({})), 0);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
    let status = server.call(3).body;
    assert_eq!(ready_condition(&status), ("True", "RegistryReady"));
    assert_eq!(status["status"]["readyReplicas"], 1);
}

#[tokio::test]
async fn status_turns_not_ready_when_the_registry_pod_is_lost() {
    let (server, client) = ApiServer::start(healthy(Some(0)));
    let ctx = context(client);
    let cache = reconciled(cache(json!({})), 1);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
    let status = server.call(3).body;
    assert_eq!(ready_condition(&status), ("False", "RegistryNotReady"));
    assert_ne!(
        status["status"]["conditions"][0]["lastTransitionTime"],
        "2026-01-01T00:00:00Z"
    );
}

/// An existing child object of the cache (or of another owner).
fn child(kind: &str, api_version: &str, owner_uid: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": "oras", "namespace": NS, "uid": "child-uid",
            "ownerReferences": [{
                "apiVersion": "cache.converged-computing.github.io/v1alpha1",
                "kind": "OrasCache", "name": "oras", "uid": owner_uid, "controller": true
            }]
        }
    })
}

#[tokio::test]
async fn deploy_false_deletes_what_the_cache_owns_and_reports_external() {
    let (server, client) =
        ApiServer::start(|call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", STS) => (200, child("StatefulSet", "apps/v1", UID)),
            ("GET", DEPLOY) | ("GET", PDB) => not_found(),
            ("GET", SVC) => (200, child("Service", "v1", UID)),
            ("DELETE", STS) => (200, child("StatefulSet", "apps/v1", UID)),
            ("DELETE", SVC) => (200, child("Service", "v1", UID)),
            ("GET", NP) => (200, child("NetworkPolicy", "networking.k8s.io/v1", UID)),
            ("DELETE", NP) => (200, child("NetworkPolicy", "networking.k8s.io/v1", UID)),
            ("PATCH", STATUS) => (200, cache_with_status(call)),
            ("POST", EVENTS) => (200, call.body.clone()),
            _ => panic!("unexpected request {}", call.line()),
        });
    let ctx = context(client);
    let mut cache = reconciled(cache(json!({})), 1);
    cache.spec.deploy = false;
    cache.metadata.generation = Some(2);

    let action = reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(
        server.lines(),
        [
            format!("GET {STS}"),
            format!("DELETE {STS}"),
            format!("GET {DEPLOY}"),
            format!("GET {PDB}"),
            format!("GET {SVC}"),
            format!("DELETE {SVC}"),
            format!("GET {NP}"),
            format!("DELETE {NP}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(server.call(1).body["propagationPolicy"], "Background");
    let status = server.call(8).body;
    assert_eq!(ready_condition(&status), ("True", "External"));
    assert_eq!(status["status"].get("endpoint"), None);
    assert_eq!(status["status"].get("replicas"), None);
    let event = server.call(9).body;
    assert_eq!(event["reason"], "Removed");
    assert_eq!(
        event["note"],
        "deploy is false: deleted the registry StatefulSet, Service and NetworkPolicy"
    );
}

#[tokio::test]
async fn deploy_false_leaves_objects_it_does_not_own() {
    let (server, client) =
        ApiServer::start(|call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", STS) => (200, child("StatefulSet", "apps/v1", "someone-else")),
            ("GET", DEPLOY) => (200, child("Deployment", "apps/v1", "someone-else")),
            ("GET", PDB) | ("GET", SVC) | ("GET", NP) => not_found(),
            ("PATCH", STATUS) => (200, cache_with_status(call)),
            _ => panic!("unexpected request {}", call.line()),
        });
    let ctx = context(client);
    let cache = cache(json!({"deploy": false}));

    let action = reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(
        server.lines(),
        [
            format!("GET {STS}"),
            format!("GET {DEPLOY}"),
            format!("GET {PDB}"),
            format!("GET {SVC}"),
            format!("GET {NP}"),
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
}

#[tokio::test]
async fn an_api_error_is_reported_and_retried_with_growing_backoff() {
    let (server, client) =
        ApiServer::start(|call| match (call.method.as_str(), call.path.as_str()) {
            ("PATCH", STS) => (
                500,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "reason": "InternalError", "code": 500, "message": "etcd is away"}),
            ),
            ("POST", EVENTS) => (200, call.body.clone()),
            _ => panic!("unexpected request {}", call.line()),
        });
    let ctx = context(client);
    let cache = Arc::new(reconciled(cache(json!({})), 1));

    let error = reconcile(cache.clone(), ctx.clone()).await.unwrap_err();

    assert!(error.to_string().contains("etcd is away"), "{error}");
    assert_eq!(
        server.lines(),
        [format!("PATCH {STS}{APPLY}"), format!("POST {EVENTS}")]
    );
    let event = server.call(1).body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "ReconcileFailed");
    assert!(event["note"].as_str().unwrap().contains("etcd is away"));
    // The status is left alone: a failed request says nothing about the registry.
    assert_eq!(
        error_policy(cache.clone(), &error, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(cache.clone(), &error, ctx.clone()),
        Action::requeue(Duration::from_secs(10))
    );
    assert_eq!(
        error_policy(cache, &error, ctx.clone()),
        Action::requeue(Duration::from_secs(20))
    );
    assert!(ctx.metrics.render().contains(
        "oras_controller_reconcile_failures_total{error=\"apply\",cause=\"server_error\"} 1"
    ));
}

#[tokio::test]
async fn a_success_resets_the_backoff() {
    let mut fail = true;
    let mut healthy = healthy(Some(1));
    let (_server, client) = ApiServer::start(move |call| {
        if call.method == "PATCH" && call.path == STS && fail {
            fail = false;
            return (
                503,
                json!({"kind": "Status", "code": 503, "message": "busy"}),
            );
        }
        healthy(call)
    });
    let ctx = context(client);
    let cache = Arc::new(reconciled(cache(json!({})), 1));

    let error = reconcile(cache.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(
        error_policy(cache.clone(), &error, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    reconcile(cache.clone(), ctx.clone()).await.unwrap();
    assert_eq!(
        error_policy(cache, &error, ctx),
        Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn an_invalid_spec_is_reported_once_and_waits_for_a_change() {
    let (server, client) =
        ApiServer::start(|call| match (call.method.as_str(), call.path.as_str()) {
            ("PATCH", STATUS) => (200, cache_with_status(call)),
            ("POST", EVENTS) => (200, call.body.clone()),
            _ => panic!("unexpected request {}", call.line()),
        });
    let ctx = context(client);
    let mut cache = cache(json!({"storage": {"storageClassName": "fast"}}));

    let action = reconcile(Arc::new(cache.clone()), ctx.clone())
        .await
        .unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(
        server.lines(),
        [format!("PATCH {STATUS}{APPLY}"), format!("POST {EVENTS}")]
    );
    let status = server.call(0).body;
    assert_eq!(ready_condition(&status), ("False", "InvalidSpec"));
    assert!(
        status["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("spec.storage.storageClassName")
    );
    assert_eq!(server.call(1).body["type"], "Warning");
    assert_eq!(server.call(1).body["reason"], "InvalidSpec");

    // The same object again (its status now written): no request at all.
    cache.status = Some(serde_json::from_value(status["status"].clone()).unwrap());
    let action = reconcile(Arc::new(cache), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(server.lines().len(), 2);
}

#[tokio::test]
async fn a_statefulset_the_api_server_refuses_is_reported_in_the_status() {
    let (server, client) = ApiServer::start(|call| {
        match (call.method.as_str(), call.path.as_str()) {
            ("PATCH", STS) => (
                422,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "reason": "Invalid", "code": 422,
                       "message": "StatefulSet.apps \"oras\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"}),
            ),
            ("PATCH", STATUS) => (200, cache_with_status(call)),
            ("POST", EVENTS) => (200, call.body.clone()),
            _ => panic!("unexpected request {}", call.line()),
        }
    });
    let ctx = context(client);
    let mut cache = reconciled(cache(json!({})), 1);
    cache.spec.storage.size = Some(oras_controller::crd::Quantity("10Gi".into()));
    cache.metadata.generation = Some(2);

    let error = reconcile(Arc::new(cache.clone()), ctx.clone())
        .await
        .unwrap_err();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    let status = server.call(1).body;
    assert_eq!(ready_condition(&status), ("False", "ApplyFailed"));
    assert_eq!(
        error_policy(Arc::new(cache), &error, ctx),
        Action::requeue(Duration::from_secs(5))
    );
}

#[tokio::test]
async fn a_cache_without_a_uid_waits_for_a_change() {
    let (server, client) = ApiServer::start(|call| match call.method.as_str() {
        "POST" => (200, call.body.clone()),
        _ => panic!("unexpected request {}", call.line()),
    });
    let ctx = context(client);
    let mut cache = cache(json!({}));
    cache.metadata.uid = None;
    let cache = Arc::new(cache);

    let error = reconcile(cache.clone(), ctx.clone()).await.unwrap_err();

    assert!(error.to_string().contains("metadata.uid"));
    assert_eq!(error_policy(cache, &error, ctx), Action::await_change());
    assert_eq!(server.lines(), [format!("POST {EVENTS}")]);
}

#[tokio::test]
async fn network_policy_false_deletes_the_policy_the_cache_owns() {
    let mut healthy = healthy(Some(1));
    let (server, client) =
        ApiServer::start(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", NP) => (200, child("NetworkPolicy", "networking.k8s.io/v1", UID)),
                ("DELETE", NP) => (200, child("NetworkPolicy", "networking.k8s.io/v1", UID)),
                _ => healthy(call),
            },
        );
    let ctx = context(client);
    let mut cache = reconciled(cache(json!({})), 1);
    cache.spec.access.network_policy = false;

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("GET {NP}"),
            format!("DELETE {NP}"),
            format!("POST {EVENTS}"),
        ]
    );
    let event = server.call(4).body;
    assert_eq!(event["reason"], "Removed");
    assert_eq!(
        event["note"],
        "access.networkPolicy is false: deleted the NetworkPolicy"
    );
}

#[tokio::test]
async fn network_policy_false_leaves_a_policy_of_someone_else() {
    let mut healthy = healthy(Some(1));
    let (server, client) =
        ApiServer::start(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", NP) => (
                    200,
                    child("NetworkPolicy", "networking.k8s.io/v1", "someone-else"),
                ),
                _ => healthy(call),
            },
        );
    let ctx = context(client);
    let cache = reconciled(cache(json!({"access": {"networkPolicy": false}})), 1);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("GET {NP}"),
        ]
    );
}

/// The `<cache>-credentials` Secret as the API server returns it.
fn credentials_secret(push: &str, pull: &str) -> Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "oras-credentials", "namespace": NS, "uid": "secret-uid",
                     "resourceVersion": "150"},
        "type": "Opaque",
        "data": {"ORAS_USER": b64("oras"), "ORAS_PUSH_PASS": b64(push), "ORAS_PULL_PASS": b64(pull)}
    })
}

fn secret_text(secret: &Value, key: &str) -> String {
    use base64::Engine as _;
    let encoded = secret["data"][key].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

/// An API server for a cache with auth: `existing` is the credentials Secret it holds
/// (None: not found), shared so that a POST stores it.
fn with_credentials(
    existing: Arc<Mutex<Option<Value>>>,
) -> impl FnMut(&Call) -> (u16, Value) + Send + 'static {
    let mut healthy = healthy(Some(1));
    move |call| match (call.method.as_str(), call.path.as_str()) {
        ("GET", CREDENTIALS) => match existing.lock().unwrap().clone() {
            Some(secret) => (200, secret),
            None => not_found(),
        },
        ("POST", SECRETS) => {
            let mut stored = existing.lock().unwrap();
            if stored.is_some() {
                return (
                    409,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "AlreadyExists", "code": 409, "message": "exists"}),
                );
            }
            let created = applied(call, None);
            *stored = Some(created.clone());
            (201, created)
        }
        ("PATCH", HTPASSWD) => (200, applied(call, None)),
        _ => healthy(call),
    }
}

#[tokio::test]
async fn auth_creates_the_credentials_once_then_the_htpasswd_then_the_gated_registry() {
    let stored = Arc::new(Mutex::new(None));
    let (server, client) = ApiServer::start(with_credentials(stored.clone()));
    let ctx = context(client);
    let cache = reconciled(cache(json!({"auth": {"enabled": true}})), 1);

    reconcile(Arc::new(cache.clone()), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("GET {CREDENTIALS}"),
            format!("POST {SECRETS}"),
            format!("POST {EVENTS}"),
            format!("PATCH {HTPASSWD}{APPLY}"),
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
        ]
    );
    // The Secret: owned by the cache, the oras-env keys, random passwords.
    let secret = server.call(1).body;
    assert_eq!(secret["metadata"]["name"], "oras-credentials");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], UID);
    assert_eq!(secret_text(&secret, "ORAS_USER"), "oras");
    let push = secret_text(&secret, "ORAS_PUSH_PASS");
    let pull = secret_text(&secret, "ORAS_PULL_PASS");
    assert_eq!((push.len(), pull.len()), (32, 32));
    assert_ne!(push, pull);
    assert_eq!(server.call(2).body["reason"], "CredentialsCreated");
    // The htpasswd Secret: bcrypt of exactly those passwords, no password.
    let htpasswd_secret = server.call(3).body;
    assert_eq!(
        htpasswd_secret["metadata"]["ownerReferences"][0]["uid"],
        UID
    );
    let htpasswd = secret_text(&htpasswd_secret, "htpasswd");
    assert!(!htpasswd.contains(&push) && !htpasswd.contains(&pull));
    let credentials = oras_controller::builders::credentials::Credentials {
        user: "oras".into(),
        push_password: push.clone(),
        pull_password: pull.clone(),
    };
    assert_eq!(
        htpasswd,
        builders::credentials::htpasswd(&cache, &credentials).unwrap()
    );
    // The StatefulSet: the registry behind the gate, as the builders make it.
    let mut template = builders::pod_template(&cache);
    builders::auth::secure(
        &mut template,
        &cache,
        oras_controller::controller::DEFAULT_GATE_IMAGE,
        &htpasswd,
    );
    let sts = builders::statefulset_of(&cache, owner(&cache), template);
    assert_eq!(server.call(4).body, serde_json::to_value(sts).unwrap());
    let text = server.call(4).body.to_string();
    assert!(!text.contains(&push) && !text.contains(&pull));
}

#[tokio::test]
async fn auth_keeps_the_passwords_across_reconciles_and_never_writes_the_secret() {
    let stored = Arc::new(Mutex::new(Some(credentials_secret("push-pw", "pull-pw"))));
    let (server, client) = ApiServer::start(with_credentials(stored.clone()));
    let ctx = context(client);
    let cache = Arc::new(reconciled(cache(json!({"auth": {"enabled": true}})), 1));

    reconcile(cache.clone(), ctx.clone()).await.unwrap();
    reconcile(cache, ctx).await.unwrap();

    let pass = [
        format!("GET {CREDENTIALS}"),
        format!("PATCH {HTPASSWD}{APPLY}"),
        format!("PATCH {STS}{APPLY}"),
        format!("PATCH {SVC}{APPLY}"),
        format!("PATCH {NP}{APPLY}"),
    ];
    assert_eq!(server.lines(), [pass.clone(), pass].concat());
    // The same file both times (no new salt, nothing for the registry to reload).
    let first = secret_text(&server.call(1).body, "htpasswd");
    assert_eq!(first, secret_text(&server.call(6).body, "htpasswd"));
    let lines: Vec<&str> = first.lines().collect();
    assert!(bcrypt::verify("push-pw", lines[0].split_once(':').unwrap().1).unwrap());
    assert!(bcrypt::verify("pull-pw", lines[1].split_once(':').unwrap().1).unwrap());
    assert_eq!(
        stored.lock().unwrap().clone().unwrap(),
        credentials_secret("push-pw", "pull-pw"),
        "the Secret is never written"
    );
}

#[tokio::test]
async fn a_deleted_credentials_secret_is_made_again_with_new_passwords() {
    let stored = Arc::new(Mutex::new(Some(credentials_secret("push-pw", "pull-pw"))));
    let (server, client) = ApiServer::start(with_credentials(stored.clone()));
    let ctx = context(client);
    let cache = Arc::new(reconciled(cache(json!({"auth": {"enabled": true}})), 1));
    reconcile(cache.clone(), ctx.clone()).await.unwrap();
    let before = server.call(1).body;

    // Someone deletes the Secret; its watch event brings the cache back.
    *stored.lock().unwrap() = None;
    reconcile(cache, ctx).await.unwrap();

    let lines = server.lines();
    assert_eq!(lines[5], format!("GET {CREDENTIALS}"));
    assert_eq!(lines[6], format!("POST {SECRETS}"));
    let new = stored.lock().unwrap().clone().unwrap();
    assert_ne!(secret_text(&new, "ORAS_PUSH_PASS"), "push-pw");
    let after = server.call(8).body;
    assert_eq!(lines[8], format!("PATCH {HTPASSWD}{APPLY}"));
    assert_ne!(
        secret_text(&before, "htpasswd"),
        secret_text(&after, "htpasswd")
    );
    // The registry pod restarts to read the new file.
    let digest = |sts: &Value| {
        sts["spec"]["template"]["metadata"]["annotations"]
            ["cache.converged-computing.github.io/htpasswd-sha256"]
            .clone()
    };
    assert_ne!(digest(&server.call(2).body), digest(&server.call(9).body));
}

#[tokio::test]
async fn a_secret_made_in_the_meantime_is_used_not_overwritten() {
    let stored = Arc::new(Mutex::new(None));
    let mut inner = with_credentials(stored.clone());
    let mut first_get = true;
    let (server, client) = ApiServer::start(move |call| {
        if call.method == "GET" && call.path == CREDENTIALS && first_get {
            // Not there yet when asked; someone makes it before the POST.
            first_get = false;
            *stored.lock().unwrap() = Some(credentials_secret("theirs", "their-pull"));
            return not_found();
        }
        inner(call)
    });
    let ctx = context(client);
    let cache = reconciled(cache(json!({"auth": {"enabled": true}})), 1);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        &server.lines()[..4],
        [
            format!("GET {CREDENTIALS}"),
            format!("POST {SECRETS}"),
            format!("GET {CREDENTIALS}"),
            format!("PATCH {HTPASSWD}{APPLY}"),
        ]
    );
    let htpasswd = secret_text(&server.call(3).body, "htpasswd");
    let push_hash = htpasswd
        .lines()
        .next()
        .unwrap()
        .split_once(':')
        .unwrap()
        .1
        .to_string();
    assert!(bcrypt::verify("theirs", &push_hash).unwrap());
}

#[tokio::test]
async fn a_broken_credentials_secret_is_reported_and_nothing_is_applied() {
    let mut broken = credentials_secret("push-pw", "pull-pw");
    broken["data"]
        .as_object_mut()
        .unwrap()
        .remove("ORAS_PULL_PASS");
    let stored = Arc::new(Mutex::new(Some(broken)));
    let (server, client) = ApiServer::start(with_credentials(stored));
    let ctx = context(client);
    let cache = reconciled(cache(json!({"auth": {"enabled": true}})), 1);

    let action = reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(
        server.lines(),
        [
            format!("GET {CREDENTIALS}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    let status = server.call(1).body;
    assert_eq!(ready_condition(&status), ("False", "ApplyFailed"));
    assert_eq!(
        status["status"]["conditions"][0]["message"],
        "Secret oras-credentials has no key ORAS_PULL_PASS: delete the Secret to generate new credentials"
    );
    assert_eq!(server.call(2).body["reason"], "InvalidCredentials");
}

#[tokio::test]
async fn bad_access_and_auth_values_are_invalid_specs_naming_the_field() {
    for (spec, message) in [
        (
            json!({"access": {"namespaces": ["Team_B"]}}),
            "spec.access.namespaces[0] \"Team_B\" is not a namespace name",
        ),
        (
            json!({"auth": {"enabled": true}, "port": 5001}),
            "spec.port 5001 is the port the registry listens on behind the gate",
        ),
    ] {
        let (server, client) =
            ApiServer::start(|call| match (call.method.as_str(), call.path.as_str()) {
                ("PATCH", STATUS) => (200, cache_with_status(call)),
                ("POST", EVENTS) => (200, call.body.clone()),
                _ => panic!("unexpected request {}", call.line()),
            });
        let ctx = context(client);
        reconcile(Arc::new(cache(spec)), ctx).await.unwrap();
        let status = server.call(0).body;
        assert_eq!(ready_condition(&status), ("False", "InvalidSpec"));
        let text = status["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap();
        assert!(text.contains(message), "{text}");
    }
}

/// The `<cache>-http-secret` Secret as the API server returns it.
fn http_secret_object(value: &str) -> Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "oras-http-secret", "namespace": NS, "uid": "http-secret-uid",
                     "resourceVersion": "160"},
        "type": "Opaque",
        "data": {"REGISTRY_HTTP_SECRET": base64::engine::general_purpose::STANDARD.encode(value)}
    })
}

/// An API server for a cache on S3: `stored` is the generated HTTP secret it holds
/// (None: not found; a POST stores it), `left` the paths of objects an earlier spec made
/// that it still has, owned by the cache.
fn on_s3(
    stored: Arc<Mutex<Option<Value>>>,
    left: &'static [&'static str],
    ready: Option<i32>,
) -> impl FnMut(&Call) -> (u16, Value) + Send + 'static {
    let mut healthy = healthy(ready);
    let kind = |path: &str| match path {
        STS => ("StatefulSet", "apps/v1"),
        DEPLOY => ("Deployment", "apps/v1"),
        PDB => ("PodDisruptionBudget", "policy/v1"),
        other => panic!("no kind for {other}"),
    };
    move |call| match (call.method.as_str(), call.path.as_str()) {
        ("GET", HTTP_SECRET) => match stored.lock().unwrap().clone() {
            Some(secret) => (200, secret),
            None => not_found(),
        },
        ("POST", SECRETS) => {
            let mut secret = call.body.clone();
            secret["metadata"]["resourceVersion"] = json!("170");
            *stored.lock().unwrap() = Some(secret.clone());
            (201, secret)
        }
        ("GET" | "DELETE", path) if left.contains(&path) => {
            let (kind, api_version) = kind(path);
            (200, child(kind, api_version, UID))
        }
        _ => healthy(call),
    }
}

fn s3_spec(replicas: i32) -> Value {
    json!({
        "replicas": replicas,
        "storage": {"s3": {"bucket": "artifacts", "endpoint": "minio.storage:9000",
                           "insecure": true, "forcePathStyle": true, "secretName": "s3-keys"}}
    })
}

#[tokio::test]
async fn a_cache_on_s3_gets_its_http_secret_a_deployment_and_a_budget() {
    let stored = Arc::new(Mutex::new(None));
    let (server, client) = ApiServer::start(on_s3(stored.clone(), &[], None));
    let ctx = context(client);
    let cache = cache(s3_spec(2));

    reconcile(Arc::new(cache.clone()), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("GET {HTTP_SECRET}"),
            format!("POST {SECRETS}"),
            format!("POST {EVENTS}"),
            format!("PATCH {DEPLOY}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("GET {STS}"),
            format!("PATCH {PDB}{APPLY}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    // The HTTP secret: random, owned by the cache, announced.
    let secret = server.call(1).body;
    assert_eq!(secret["metadata"]["name"], "oras-http-secret");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], UID);
    let value = secret_text(&secret, "REGISTRY_HTTP_SECRET");
    assert_eq!(value.len(), 44);
    assert_eq!(server.call(2).body["reason"], "HttpSecretCreated");
    // The Deployment: exactly what the builders make, the pods marked with the secret's
    // digest, the secret itself and the S3 keys only by reference.
    let mut template = builders::pod_template(&cache);
    builders::http_secret::annotate(&mut template, &value);
    let deployment = builders::deployment::deployment(&cache, owner(&cache), template);
    assert_eq!(
        server.call(3).body,
        serde_json::to_value(deployment).unwrap()
    );
    let text = server.call(3).body.to_string();
    assert!(!text.contains(&value));
    assert!(text.contains("\"secretKeyRef\":{\"key\":\"AWS_ACCESS_KEY_ID\""));
    // The budget, the status of 0 of 2 pods, the event naming the Deployment.
    assert_eq!(
        server.call(7).body,
        serde_json::to_value(builders::disruption::pod_disruption_budget(
            &cache,
            owner(&cache)
        ))
        .unwrap()
    );
    let status = server.call(8).body;
    assert_eq!(ready_condition(&status), ("False", "RegistryNotReady"));
    assert_eq!(status["status"]["replicas"], 2);
    assert_eq!(status["status"]["readyReplicas"], 0);
    assert_eq!(
        status["status"]["conditions"][0]["message"],
        "0/2 registry pods ready"
    );
    assert_eq!(
        server.call(9).body["note"],
        "applied the registry Deployment and Service oras"
    );
}

#[tokio::test]
async fn the_http_secret_stays_across_reconciles_and_one_ready_pod_of_two_serves() {
    let stored = Arc::new(Mutex::new(Some(http_secret_object("kept-secret"))));
    let (server, client) = ApiServer::start(on_s3(stored.clone(), &[], Some(1)));
    let ctx = context(client);
    let cache = reconciled(cache(s3_spec(2)), 0);

    reconcile(Arc::new(cache.clone()), ctx).await.unwrap();

    // Settled: nothing to remove, no Secret written; the status turns ready.
    assert_eq!(
        server.lines(),
        [
            format!("GET {HTTP_SECRET}"),
            format!("PATCH {DEPLOY}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("PATCH {PDB}{APPLY}"),
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
    let mut template = builders::pod_template(&cache);
    builders::http_secret::annotate(&mut template, "kept-secret");
    assert_eq!(
        server.call(1).body["spec"]["template"]["metadata"],
        serde_json::to_value(template.metadata).unwrap()
    );
    let status = server.call(5).body;
    assert_eq!(ready_condition(&status), ("True", "RegistryReady"));
    assert_eq!(status["status"]["readyReplicas"], 1);
    assert_eq!(status["status"]["replicas"], 2);
    assert_eq!(
        stored.lock().unwrap().clone().unwrap(),
        http_secret_object("kept-secret")
    );
}

#[tokio::test]
async fn registry_http_given_means_no_generated_secret() {
    let (server, client) = ApiServer::start(on_s3(Arc::default(), &[], Some(1)));
    let ctx = context(client);
    let mut spec = s3_spec(2);
    spec["secrets"] = json!({"registryHttp": "my-http-secret"});
    let cache = reconciled(cache(spec), 1);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {DEPLOY}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("PATCH {PDB}{APPLY}"),
        ]
    );
    let env = server.call(0).body["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let http = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "REGISTRY_HTTP_SECRET")
        .unwrap()
        .clone();
    assert_eq!(http["valueFrom"]["secretKeyRef"]["name"], "my-http-secret");
}

#[tokio::test]
async fn moving_a_cache_to_s3_replaces_its_statefulset_by_a_deployment() {
    let stored = Arc::new(Mutex::new(Some(http_secret_object("s"))));
    let (server, client) = ApiServer::start(on_s3(stored, &[STS], Some(1)));
    let ctx = context(client);
    let mut cache = reconciled(cache(json!({})), 1);
    cache.spec = serde_json::from_value(s3_spec(1)).unwrap();
    cache.metadata.generation = Some(2);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("GET {HTTP_SECRET}"),
            format!("PATCH {DEPLOY}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("GET {STS}"),
            format!("DELETE {STS}"),
            format!("GET {PDB}"),
            format!("POST {EVENTS}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(
        server.call(7).body["note"],
        "storage.s3: the registry Deployment replaced the StatefulSet"
    );
    assert_eq!(server.call(9).body["reason"], "Updated");
}

#[tokio::test]
async fn moving_back_to_a_volume_replaces_the_deployment_and_drops_the_budget() {
    let (server, client) = ApiServer::start(on_s3(Arc::default(), &[DEPLOY, PDB], Some(1)));
    let ctx = context(client);
    let mut cache = reconciled(cache(s3_spec(2)), 1);
    cache.spec = serde_json::from_value(json!({"storage": {"size": "1Gi"}})).unwrap();
    cache.metadata.generation = Some(2);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("GET {DEPLOY}"),
            format!("DELETE {DEPLOY}"),
            format!("GET {PDB}"),
            format!("DELETE {PDB}"),
            format!("POST {EVENTS}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(
        server.call(7).body["note"],
        "no storage.s3: the registry StatefulSet replaced the Deployment; one registry pod: \
         deleted the PodDisruptionBudget"
    );
}

#[tokio::test]
async fn scaling_down_to_one_pod_drops_the_budget() {
    let stored = Arc::new(Mutex::new(Some(http_secret_object("s"))));
    let (server, client) = ApiServer::start(on_s3(stored, &[PDB], Some(1)));
    let ctx = context(client);
    let mut cache = reconciled(cache(s3_spec(3)), 1);
    cache.spec.replicas = 1;
    cache.metadata.generation = Some(2);

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("GET {HTTP_SECRET}"),
            format!("PATCH {DEPLOY}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("GET {STS}"),
            format!("GET {PDB}"),
            format!("DELETE {PDB}"),
            format!("POST {EVENTS}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(server.call(1).body["spec"]["replicas"], 1);
}

#[tokio::test]
async fn a_broken_http_secret_is_reported_and_nothing_is_applied() {
    let mut broken = http_secret_object("s");
    broken["data"] = json!({});
    let (server, client) = ApiServer::start(on_s3(Arc::new(Mutex::new(Some(broken))), &[], None));
    let ctx = context(client);
    let cache = reconciled(cache(s3_spec(2)), 1);

    let action = reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(
        server.lines(),
        [
            format!("GET {HTTP_SECRET}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    let status = server.call(1).body;
    assert_eq!(ready_condition(&status), ("False", "ApplyFailed"));
    assert_eq!(
        status["status"]["conditions"][0]["message"],
        "Secret oras-http-secret has no key REGISTRY_HTTP_SECRET: delete the Secret to generate a new one"
    );
    assert_eq!(server.call(2).body["reason"], "InvalidHttpSecret");
}

#[tokio::test]
async fn bad_storage_and_replicas_are_invalid_specs_naming_the_field() {
    for (spec, message) in [
        (
            json!({"replicas": 2}),
            "spec.replicas 2 needs shared storage: set spec.storage.s3",
        ),
        (
            json!({"replicas": 2, "storage": {"size": "10Gi"}}),
            "spec.replicas 2 needs shared storage",
        ),
        (
            json!({"storage": {"size": "10Gi", "s3": {"bucket": "artifacts"}}}),
            "spec.storage.size \"10Gi\" and spec.storage.s3 exclude each other",
        ),
        (
            json!({"storage": {"s3": {"bucket": "Artifacts"}}}),
            "spec.storage.s3.bucket \"Artifacts\" is not a bucket name",
        ),
        (
            json!({"storage": {"s3": {"bucket": "artifacts", "endpoint": "http://minio:9000"}}}),
            "spec.storage.s3.endpoint \"http://minio:9000\" is plain HTTP",
        ),
        (
            json!({"replicas": 0, "storage": {"s3": {"bucket": "artifacts"}}}),
            "spec.replicas 0 must be at least 1",
        ),
    ] {
        let (server, client) =
            ApiServer::start(|call| match (call.method.as_str(), call.path.as_str()) {
                ("PATCH", STATUS) => (200, cache_with_status(call)),
                ("POST", EVENTS) => (200, call.body.clone()),
                _ => panic!("unexpected request {}", call.line()),
            });
        let ctx = context(client);
        let action = reconcile(Arc::new(cache(spec.clone())), ctx).await.unwrap();
        assert_eq!(action, Action::await_change());
        assert_eq!(
            server.lines(),
            [format!("PATCH {STATUS}{APPLY}"), format!("POST {EVENTS}")],
            "{spec}"
        );
        let status = server.call(0).body;
        assert_eq!(ready_condition(&status), ("False", "InvalidSpec"));
        let text = status["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap();
        assert!(text.contains(message), "{spec}: {text}");
    }
}

const CRON: &str = "/apis/batch/v1/namespaces/workflows/cronjobs/oras-prune";
const PODS: &str = "/api/v1/namespaces/workflows/pods";

/// A prune pod that finished at `finished` with `exit_code` and termination `message`.
fn prune_pod(finished: &str, exit_code: i32, message: &str) -> Value {
    json!({
        "metadata": {"name": format!("oras-prune-{exit_code}"), "namespace": NS,
            "labels": {"app.kubernetes.io/component": "prune"}},
        "status": {"phase": if exit_code == 0 { "Succeeded" } else { "Failed" },
            "containerStatuses": [{"name": "prune", "image": "agent", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": exit_code, "finishedAt": finished,
                    "message": message}}}]}
    })
}

#[tokio::test]
async fn retention_applies_the_prune_cron_job_and_reports_its_last_run() {
    let summary = oras_contract::retention::PruneSummary {
        dry_run: false,
        manifests_deleted: 3,
        tags_deleted: 4,
        referrers_deleted: 1,
        untagged_bytes: 2048,
    }
    .to_json();
    let pods = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [
        prune_pod("2026-12-01T02:00:04Z", 1, "Error: the registry refused"),
        prune_pod("2026-12-01T03:00:04Z", 0, &summary),
    ]});
    let mut healthy = healthy(Some(1));
    let (server, client) =
        ApiServer::start(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("PATCH", CRON) => (200, applied(call, None)),
                ("GET", PODS) => (200, pods.clone()),
                _ => healthy(call),
            },
        );
    let ctx = context(client);
    let cache = reconciled(
        cache(json!({"retention": {"keepLast": 5, "maxAge": "7d"}})),
        1,
    );

    reconcile(Arc::new(cache.clone()), ctx).await.unwrap();

    let lines = server.lines();
    assert_eq!(
        lines[..4],
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("PATCH {CRON}{APPLY}"),
        ]
    );
    // Only this cache's prune pods are listed.
    let list = server.call(4);
    assert_eq!((list.method.as_str(), list.path.as_str()), ("GET", PODS));
    let query = list
        .query
        .replace("%3D", "=")
        .replace("%2C", ",")
        .replace("%2F", "/");
    assert!(
        query.contains(&builders::agent_job::pods_selector(&cache)),
        "{query}"
    );
    assert_eq!(lines[5..], [format!("PATCH {STATUS}{APPLY}")]);
    let cron = builders::retention::prune_cron_job(
        &cache,
        owner(&cache),
        &Settings::default().agent_image,
        "cluster.local",
    )
    .unwrap();
    assert_eq!(server.call(3).body, serde_json::to_value(cron).unwrap());
    assert_eq!(server.call(3).body["spec"]["schedule"], "0 * * * *");
    let retention = &server.call(5).body["status"]["retention"];
    assert_eq!(retention["cronJob"], "oras-prune");
    assert_eq!(retention["schedule"], "0 * * * *");
    let last = &retention["lastPrune"];
    assert_eq!(last["time"], "2026-12-01T03:00:04Z");
    assert_eq!(last["result"], "Succeeded");
    assert_eq!(last["tagsDeleted"], 4);
    assert_eq!(last["untaggedBytes"], 2048);
    assert_eq!(
        ready_condition(&server.call(5).body),
        ("True", "RegistryReady")
    );
}

#[tokio::test]
async fn unset_retention_deletes_the_prune_cron_job_the_cache_made() {
    let mut healthy = healthy(Some(1));
    let (server, client) =
        ApiServer::start(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", CRON) | ("DELETE", CRON) => (200, child("CronJob", "batch/v1", UID)),
                _ => healthy(call),
            },
        );
    let ctx = context(client);
    let mut cache = reconciled(cache(json!({"retention": {"keepLast": 2}})), 1);
    cache.status.as_mut().unwrap().retention = Some(oras_controller::crd::RetentionStatus {
        cron_job: "oras-prune".into(),
        schedule: "0 * * * *".into(),
        last_prune: None,
        garbage_collect: None,
    });
    cache.spec.retention = None;

    reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("GET {CRON}"),
            format!("DELETE {CRON}"),
            format!("POST {EVENTS}"),
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
    assert!(server.call(6).body["status"].get("retention").is_none());
    let event = server.call(5).body;
    assert_eq!(event["reason"], "Removed");
    assert_eq!(event["note"], "retention is unset: deleted its CronJobs");
}

#[tokio::test]
async fn a_bad_retention_is_an_invalid_spec_naming_the_field() {
    let (server, client) = ApiServer::start(healthy(None));
    let ctx = context(client);
    let cache = cache(json!({"retention": {"maxAge": "7y"}}));

    let action = reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    assert_eq!(
        server.lines(),
        [format!("PATCH {STATUS}{APPLY}"), format!("POST {EVENTS}")]
    );
    let status = server.call(0).body;
    assert_eq!(ready_condition(&status), ("False", "InvalidSpec"));
    let message = status["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("spec.retention.maxAge") && message.contains("\"7y\""),
        "{message}"
    );
}

const COLLECT: &str = "/apis/batch/v1/namespaces/workflows/cronjobs/oras-collect";
const MAINTENANCE: &str = "/api/v1/namespaces/workflows/secrets/oras-maintenance";

#[tokio::test]
async fn garbage_collect_supervises_the_registry_and_schedules_collections() {
    let mut healthy = healthy(Some(1));
    let (server, client) =
        ApiServer::start(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", MAINTENANCE) => not_found(),
                ("POST", SECRETS) => (201, applied(call, None)),
                ("PATCH", CRON) | ("PATCH", COLLECT) => (200, applied(call, None)),
                ("GET", PODS) => (
                    200,
                    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [{
                        "metadata": {"name": "oras-collect-1", "namespace": NS,
                            "labels": {"app.kubernetes.io/component": "collect"}},
                        "status": {"phase": "Succeeded", "containerStatuses": [{
                            "name": "collect", "image": "agent", "imageID": "", "ready": false,
                            "restartCount": 0, "state": {"terminated": {"exitCode": 0,
                                "finishedAt": "2026-12-01T03:30:09Z",
                                "message": oras_contract::retention::CollectionSummary {
                                    blobs_deleted: Some(9), manifests_deleted: Some(1),
                                    bytes_freed: Some(77_000), read_only_millis: 850,
                                }.to_json()}}}]}}]}),
                ),
                _ => healthy(call),
            },
        );
    let ctx = context(client);
    let cache = reconciled(
        cache(json!({"retention": {"keepLast": 3, "garbageCollect": {}}})),
        1,
    );

    reconcile(Arc::new(cache.clone()), ctx).await.unwrap();

    let lines = server.lines();
    assert_eq!(
        lines[..9],
        [
            format!("GET {MAINTENANCE}"),
            format!("POST {SECRETS}"),
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {NP}{APPLY}"),
            format!("PATCH {CRON}{APPLY}"),
            format!("PATCH {COLLECT}{APPLY}"),
            lines[7].clone(),
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
    assert!(
        lines[7].starts_with(&format!("GET {PODS}?")),
        "{}",
        lines[7]
    );
    // The token: generated, long, in the Secret the registry and the CronJob read.
    let secret = server.call(1).body;
    assert_eq!(secret["metadata"]["name"], "oras-maintenance");
    let token = secret["stringData"]["ORAS_MAINTENANCE_TOKEN"]
        .as_str()
        .unwrap();
    assert!(token.len() >= 32, "{token}");
    // The registry under the supervisor, with the maintenance port.
    let pod = &server.call(2).body["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["name"], "install-agent");
    assert_eq!(
        pod["initContainers"][0]["command"],
        json!(["oras-agent", "install", "/oras/bin"])
    );
    let registry = &pod["containers"][0];
    assert_eq!(
        registry["command"],
        json!([
            "/oras/bin/oras-agent",
            "serve-registry",
            "--maintenance",
            "0.0.0.0:5002"
        ])
    );
    assert!(
        registry["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "ORAS_MAINTENANCE_TOKEN"
                && e["valueFrom"]["secretKeyRef"]["name"] == "oras-maintenance"),
        "{registry}"
    );
    assert_eq!(server.call(3).body["spec"]["ports"][1]["port"], 5002);
    // Only the collect pods reach the maintenance port.
    let rules = server.call(4).body["spec"]["ingress"].clone();
    assert_eq!(rules[1]["ports"][0]["port"], 5002);
    assert_eq!(
        rules[1]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "collect"
    );
    let collect = server.call(6).body;
    assert_eq!(collect["spec"]["schedule"], "30 3 * * *");
    let args = &collect["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        args,
        &json!([
            "collect",
            "--report",
            "/dev/termination-log",
            "http://oras.workflows.svc.cluster.local:5002/collect"
        ])
    );
    let status = &server.call(8).body["status"]["retention"]["garbageCollect"];
    assert_eq!(status["cronJob"], "oras-collect");
    let last = &status["lastCollection"];
    assert_eq!(last["result"], "Succeeded");
    assert_eq!(last["blobsDeleted"], 9);
    assert_eq!(last["bytesFreed"], 77_000);
    assert_eq!(last["readOnlyMillis"], 850);
}

#[tokio::test]
async fn an_existing_maintenance_token_is_kept_and_unset_collection_deletes_its_cron_job() {
    let mut healthy = healthy(Some(1));
    let (server, client) =
        ApiServer::start(
            move |call| match (call.method.as_str(), call.path.as_str()) {
                ("GET", MAINTENANCE) => (200, child("Secret", "v1", UID)),
                ("PATCH", CRON) | ("PATCH", COLLECT) => (200, applied(call, None)),
                ("GET", COLLECT) | ("DELETE", COLLECT) => (200, child("CronJob", "batch/v1", UID)),
                ("GET", PODS) => (
                    200,
                    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}),
                ),
                _ => healthy(call),
            },
        );
    let ctx = context(client.clone());
    // Collection on: the token Secret exists, nothing is created.
    let on = reconciled(
        cache(json!({"retention": {"keepLast": 3, "garbageCollect": {"schedule": "@daily"}}})),
        1,
    );
    let mut before = on.clone();
    before.status.as_mut().unwrap().retention = builders::retention::status(&on, &[], None);
    let mut first =
        healthy_lines_after(&server, || reconcile(Arc::new(before.clone()), ctx.clone())).await;
    first.retain(|l| l.contains("secrets"));
    assert_eq!(first, [format!("GET {MAINTENANCE}")]);

    // Collection off: the collect CronJob goes, the prune CronJob stays.
    let mut off = before.clone();
    off.spec.retention.as_mut().unwrap().garbage_collect = None;
    let lines =
        healthy_lines_after(&server, || reconcile(Arc::new(off.clone()), ctx.clone())).await;
    assert!(lines.contains(&format!("DELETE {COLLECT}")), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with(&format!("DELETE {CRON}"))),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("secrets")), "{lines:?}");
    let status = server
        .calls_matching("PATCH", STATUS)
        .last()
        .cloned()
        .unwrap();
    assert!(
        status.body["status"]["retention"]
            .get("garbageCollect")
            .is_none()
    );
}

/// The requests `pass` makes, on a server that may already have served others.
async fn healthy_lines_after<F, Fut>(server: &ApiServer, pass: F) -> Vec<String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Action, oras_controller::Error>>,
{
    let before = server.lines().len();
    pass().await.unwrap();
    server.lines()[before..].to_vec()
}
