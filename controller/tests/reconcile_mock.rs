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

/// An API server where every apply succeeds and the StatefulSet has `ready` ready pods.
fn healthy(ready: Option<i32>) -> impl FnMut(&Call) -> (u16, Value) + Send + 'static {
    move |call| match (call.method.as_str(), call.path.as_str()) {
        ("PATCH", STS) => (200, applied(call, ready)),
        ("PATCH", SVC) | ("POST", EVENTS) => (200, applied(call, None)),
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
    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    // The applied objects are exactly what the builders make.
    let sts = serde_json::to_value(builders::statefulset(&cache, owner(&cache))).unwrap();
    assert_eq!(server.call(0).body, sts);
    let svc = serde_json::to_value(builders::service(&cache, owner(&cache))).unwrap();
    assert_eq!(server.call(1).body, svc);
    // The status: applied, not ready yet, with the endpoint.
    let status = server.call(2).body;
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
    let event = server.call(3).body;
    assert_eq!(event["reason"], "Created");
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "oras");
    assert_eq!(event["regarding"]["uid"], UID);
    assert_eq!(ctx.metrics.reconciles(), 1);
}

#[tokio::test]
async fn second_pass_is_a_no_op_two_applies_and_nothing_else() {
    let (server, client) = ApiServer::start(healthy(Some(0)));
    let ctx = context(client);
    let cache = reconciled(cache(json!({})), 0);

    let action = reconcile(Arc::new(cache), ctx).await.unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
    assert_eq!(
        server.lines(),
        [format!("PATCH {STS}{APPLY}"), format!("PATCH {SVC}{APPLY}")]
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
        [format!("PATCH {STS}{APPLY}"), format!("PATCH {SVC}{APPLY}")]
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

    assert_eq!(
        server.lines(),
        [
            format!("PATCH {STS}{APPLY}"),
            format!("PATCH {SVC}{APPLY}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(
        server.call(1).body["spec"]["ports"][0]["port"],
        6000,
        "the Service follows the port"
    );
    let status = server.call(2).body;
    assert_eq!(status["status"]["observedGeneration"], 2);
    assert_eq!(
        status["status"]["endpoint"],
        "oras.workflows.svc.cluster.local:6000"
    );
    assert_eq!(server.call(3).body["reason"], "Updated");
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
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
    let status = server.call(2).body;
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
            format!("PATCH {STATUS}{APPLY}"),
        ]
    );
    let status = server.call(2).body;
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
            ("GET", SVC) => (200, child("Service", "v1", UID)),
            ("DELETE", STS) => (200, child("StatefulSet", "apps/v1", UID)),
            ("DELETE", SVC) => (200, child("Service", "v1", UID)),
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
            format!("GET {SVC}"),
            format!("DELETE {SVC}"),
            format!("PATCH {STATUS}{APPLY}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(server.call(1).body["propagationPolicy"], "Background");
    let status = server.call(4).body;
    assert_eq!(ready_condition(&status), ("True", "External"));
    assert_eq!(status["status"].get("endpoint"), None);
    assert_eq!(server.call(5).body["reason"], "Removed");
}

#[tokio::test]
async fn deploy_false_leaves_objects_it_does_not_own() {
    let (server, client) =
        ApiServer::start(|call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", STS) => (200, child("StatefulSet", "apps/v1", "someone-else")),
            ("GET", SVC) => not_found(),
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
            format!("GET {SVC}"),
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
    assert!(
        ctx.metrics
            .render()
            .contains("oras_controller_reconcile_failures_total{error=\"apply\"} 1")
    );
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
