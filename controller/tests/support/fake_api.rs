//! A small fake Kubernetes API server on 127.0.0.1, for running the real controller
//! (its watches included) without a cluster. Shared by `tests/watch_loop.rs` and
//! `benches/idle.rs`.
//!
//! It serves what oras-controller uses and nothing else: list and watch of OrasCaches
//! and Pods (whole objects) and of StatefulSets, Deployments, PodDisruptionBudgets,
//! Services, NetworkPolicies, Secrets and CronJobs (metadata only, as the controller asks); server-side applies of those and of
//! the OrasCache status; create of a Secret; GET and DELETE of each; a namespace's Pods by
//! label selector; event create and patch. It sends the watch events
//! a real API server would: ADDED for a new object, MODIFIED for a changed one, DELETED,
//! and nothing for an apply that changes nothing. Watches stream from the moment they
//! connect (no replay from a resourceVersion), so callers wait for
//! [`FakeApi::watching`] before they change anything.
//!
//! It can also misbehave as a real one does: go away (connections cut, the port
//! closed) for a while, end every watch, answer status writes with 409 Conflict, and
//! run one of those, or a deletion, the moment a given request arrives (in the middle
//! of a reconcile).

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;

const GROUP_PATH: &str = "/apis/cache.converged-computing.github.io/v1alpha1";

type Body = BoxBody<Bytes, Infallible>;

/// The kinds the fake server keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    Cache,
    StatefulSet,
    Deployment,
    PodDisruptionBudget,
    Service,
    NetworkPolicy,
    Secret,
    CronJob,
    Pod,
}

impl Kind {
    /// Whether watches and lists carry the whole object (else only its metadata).
    fn whole(self) -> bool {
        matches!(self, Kind::Cache | Kind::Pod)
    }
}

/// Every kind the controller watches.
const WATCHED: [Kind; 9] = [
    Kind::Cache,
    Kind::StatefulSet,
    Kind::Deployment,
    Kind::PodDisruptionBudget,
    Kind::Service,
    Kind::NetworkPolicy,
    Kind::Secret,
    Kind::CronJob,
    Kind::Pod,
];

/// The kinds the controller applies and deletes.
fn owned(kind: Kind) -> bool {
    !matches!(kind, Kind::Cache | Kind::Pod)
}

/// The kinds whose pods turn ready.
fn workload(kind: Kind) -> bool {
    matches!(kind, Kind::StatefulSet | Kind::Deployment)
}

#[derive(Default)]
struct State {
    resource_version: u64,
    /// Objects by kind and `namespace/name`.
    objects: HashMap<(Kind, String), Value>,
    watchers: HashMap<Kind, Vec<mpsc::UnboundedSender<Bytes>>>,
    /// Requests served, by `METHOD kind` (or the last path segment).
    requests: HashMap<String, u64>,
    /// Applies and creates of owned objects, by `kind namespace/name`.
    applies: HashMap<String, u64>,
    /// The connections being served, so that an outage can cut them.
    connections: Vec<AbortHandle>,
    /// Until when the server is away.
    away_until: Option<Instant>,
    /// Status writes still to be answered with 409 Conflict.
    conflicts: u32,
    /// What to do when a request (`METHOD kind namespace/name`) first arrives.
    triggers: Vec<(String, Fault)>,
}

/// Something that goes wrong.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The server goes away for this long: every connection is cut (the request that
    /// triggered it gets no answer) and the port refuses connections.
    Away(Duration),
    /// Someone deletes this object just before the request is served.
    Delete(Kind, String),
}

impl State {
    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn notify(&mut self, kind: Kind, event: &str, object: &Value) {
        let object = if kind.whole() {
            object.clone()
        } else {
            metadata_only(object)
        };
        let mut line = serde_json::to_vec(&json!({"type": event, "object": object}))
            .expect("a JSON value serializes");
        line.push(b'\n');
        let line = Bytes::from(line);
        if let Some(list) = self.watchers.get_mut(&kind) {
            list.retain(|tx| tx.send(line.clone()).is_ok());
        }
    }

    /// Changes a stored object as another actor would: new resourceVersion, MODIFIED.
    fn modify(&mut self, kind: Kind, key: &str, change: impl FnOnce(&mut Value)) {
        let rv = self.next_rv();
        let object = self
            .objects
            .get_mut(&(kind, key.to_string()))
            .unwrap_or_else(|| panic!("no {kind:?} {key}"));
        change(object);
        object["metadata"]["resourceVersion"] = json!(rv);
        let object = object.clone();
        self.notify(kind, "MODIFIED", &object);
    }
}

impl State {
    fn delete(&mut self, kind: Kind, key: &str) {
        let mut object = self
            .objects
            .remove(&(kind, key.to_string()))
            .unwrap_or_else(|| panic!("no {kind:?} {key}"));
        object["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.notify(kind, "DELETED", &object);
    }
}

fn metadata_only(object: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"]})
}

/// A running fake API server.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    /// Wakes the acceptor to close the port for an outage.
    outage: Arc<Notify>,
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
}

impl FakeApi {
    /// Starts the server with `caches` OrasCaches named `oras` in namespaces
    /// `team-000`, `team-001`, ... (spec `{}`, generation 1, no status).
    pub async fn start(caches: usize) -> FakeApi {
        let state: Arc<Mutex<State>> = Arc::default();
        {
            let mut st = state.lock().unwrap();
            for index in 0..caches {
                let rv = st.next_rv();
                let cache = json!({
                    "apiVersion": "cache.converged-computing.github.io/v1alpha1",
                    "kind": "OrasCache",
                    "metadata": {
                        "name": "oras", "namespace": format!("team-{index:03}"),
                        "uid": format!("00000000-0000-4000-8000-{index:012}"),
                        "generation": 1, "resourceVersion": rv,
                        "creationTimestamp": "2026-01-01T00:00:00Z"
                    },
                    "spec": {}
                });
                st.objects
                    .insert((Kind::Cache, format!("team-{index:03}/oras")), cache);
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let outage = Arc::new(Notify::new());
        tokio::spawn(accept(listener, state.clone(), outage.clone()));
        FakeApi {
            state,
            outage,
            addr,
        }
    }

    /// Goes away for `duration`: cuts every connection (watches included) and refuses
    /// new ones, then listens again on the same port.
    pub fn go_away(&self, duration: Duration) {
        go_away(&self.state, &self.outage, duration);
    }

    /// Whether the server is away now.
    pub fn is_away(&self) -> bool {
        let st = self.state.lock().unwrap();
        st.away_until.is_some_and(|until| Instant::now() < until)
    }

    /// Ends every watch stream (cleanly, as an API server does when a watch times out).
    pub fn end_watches(&self) {
        self.state.lock().unwrap().watchers.clear();
    }

    /// Answers the next `count` status writes with 409 Conflict.
    pub fn conflict_status_writes(&self, count: u32) {
        self.state.lock().unwrap().conflicts = count;
    }

    /// Runs `fault` when the first request `METHOD Kind namespace/name` (such as `PATCH
    /// Service team-000/oras`) arrives, before serving it.
    pub fn on_request(&self, request: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .triggers
            .push((request.to_string(), fault));
    }

    /// A kubeconfig for this server (no credentials).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\n",
            self.addr
        )
    }

    /// A kube client for this server.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().unwrap();
        kube::Client::try_from(kube::Config::new(url)).unwrap()
    }

    /// Whether a watch of each kind is connected.
    pub fn watching(&self) -> bool {
        let st = self.state.lock().unwrap();
        WATCHED
            .iter()
            .all(|k| st.watchers.get(k).is_some_and(|w| !w.is_empty()))
    }

    /// A stored object.
    pub fn object(&self, kind: Kind, key: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&(kind, key.to_string()))
            .cloned()
    }

    /// Stored objects of a kind.
    pub fn objects(&self, kind: Kind) -> Vec<Value> {
        let st = self.state.lock().unwrap();
        st.objects
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Changes an object as another actor (a user, the kubelet) would.
    pub fn modify(&self, kind: Kind, key: &str, change: impl FnOnce(&mut Value)) {
        self.state.lock().unwrap().modify(kind, key, change);
    }

    /// Creates an object as another actor (the Job controller, the kubelet) would.
    pub fn create(&self, kind: Kind, key: &str, mut object: Value) {
        let mut st = self.state.lock().unwrap();
        object["metadata"]["resourceVersion"] = json!(st.next_rv());
        st.objects.insert((kind, key.to_string()), object.clone());
        st.notify(kind, "ADDED", &object);
    }

    /// Deletes an object as another actor would (DELETED with a new resourceVersion).
    pub fn delete(&self, kind: Kind, key: &str) {
        self.state.lock().unwrap().delete(kind, key);
    }

    /// Every StatefulSet and Deployment gets `ready` ready replicas, as their
    /// controllers would write once the kubelet reports the pods.
    pub fn set_ready(&self, ready: i32) {
        let mut st = self.state.lock().unwrap();
        let keys: Vec<(Kind, String)> = st
            .objects
            .keys()
            .filter(|(k, _)| workload(*k))
            .cloned()
            .collect();
        for (kind, key) in keys {
            st.modify(kind, &key, |object| {
                let replicas = object["spec"]["replicas"].clone();
                object["status"] = json!({"replicas": replicas, "readyReplicas": ready});
            });
        }
    }

    /// Requests served so far, by `METHOD kind`.
    pub fn requests(&self) -> HashMap<String, u64> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Applies (and creates) of `kind` to `namespace/name` so far.
    pub fn applies(&self, kind: Kind, key: &str) -> u64 {
        let st = self.state.lock().unwrap();
        st.applies
            .get(&format!("{kind:?} {key}"))
            .copied()
            .unwrap_or(0)
    }
}

/// Serves connections; closes the port during an outage and opens it again after.
async fn accept(listener: TcpListener, state: Arc<Mutex<State>>, outage: Arc<Notify>) {
    let addr = listener.local_addr().unwrap();
    let mut listener = Some(listener);
    loop {
        let Some(open) = &listener else {
            let until = state.lock().unwrap().away_until;
            if let Some(until) = until {
                tokio::time::sleep_until(until.into()).await;
            }
            // The port was just released: binding it again can take a few tries.
            listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(again) => break Some(again),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let mut st = state.lock().unwrap();
                if st.away_until.is_some_and(|until| Instant::now() < until) {
                    continue;
                }
                let served = state.clone();
                let outage = outage.clone();
                // Spawned under the lock: its requests wait until the handle is kept.
                let connection = tokio::spawn(async move {
                    let service =
                        service_fn(move |req| handle(served.clone(), outage.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                st.connections.retain(|c| !c.is_finished());
                st.connections.push(connection.abort_handle());
            }
            () = outage.notified() => listener = None,
        }
    }
}

/// Runs the fault set off by `request`, if any; returns how long the server must go
/// away, for the caller to do once it holds no lock.
fn run_trigger(state: &Mutex<State>, request: &str) -> Option<Duration> {
    let mut st = state.lock().unwrap();
    let at = st.triggers.iter().position(|(r, _)| r == request)?;
    match st.triggers.remove(at).1 {
        Fault::Away(duration) => Some(duration),
        Fault::Delete(kind, key) => {
            st.delete(kind, &key);
            None
        }
    }
}

fn go_away(state: &Mutex<State>, outage: &Notify, duration: Duration) {
    let mut st = state.lock().unwrap();
    st.away_until = Some(Instant::now() + duration);
    st.watchers.clear();
    for connection in st.connections.drain(..) {
        connection.abort();
    }
    outage.notify_one();
}

fn full(status: u16, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("a JSON value serializes");
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn status(code: u16, message: String) -> Response<Body> {
    // kube's `get_opt` reads a missing object from the reason, as a real server sends it.
    let reason = match code {
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        _ => "Unknown",
    };
    full(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                "code": code, "message": message}),
    )
}

/// The `key=value` pairs of a `labelSelector` query parameter.
fn label_selector(query: &str) -> Vec<(String, String)> {
    let decoded = query
        .replace("%3D", "=")
        .replace("%2C", ",")
        .replace("%2F", "/");
    decoded
        .split('&')
        .filter_map(|pair| pair.strip_prefix("labelSelector="))
        .flat_map(|selector| selector.split(','))
        .filter_map(|term| term.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn kind_of(segments: &[&str]) -> Option<Kind> {
    if segments.contains(&"orascaches") {
        Some(Kind::Cache)
    } else if segments.contains(&"statefulsets") {
        Some(Kind::StatefulSet)
    } else if segments.contains(&"deployments") {
        Some(Kind::Deployment)
    } else if segments.contains(&"poddisruptionbudgets") {
        Some(Kind::PodDisruptionBudget)
    } else if segments.contains(&"services") {
        Some(Kind::Service)
    } else if segments.contains(&"networkpolicies") {
        Some(Kind::NetworkPolicy)
    } else if segments.contains(&"secrets") {
        Some(Kind::Secret)
    } else if segments.contains(&"cronjobs") {
        Some(Kind::CronJob)
    } else if segments.contains(&"pods") {
        Some(Kind::Pod)
    } else {
        None
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    outage: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let kind = kind_of(&segments);
    let what = format!(
        "{method} {}",
        kind.map_or_else(
            || segments.last().unwrap_or(&"").to_string(),
            |k| format!("{k:?}")
        )
    );
    let target = segments
        .iter()
        .position(|s| *s == "namespaces")
        .map(|at| {
            let part = |offset: usize| segments.get(at + offset).copied().unwrap_or("");
            format!("{}/{}", part(1), part(3))
        })
        .unwrap_or_default();
    if let Some(duration) = run_trigger(&state, &format!("{what} {target}")) {
        go_away(&state, &outage, duration);
        // Cut with its connection: this request never gets an answer.
        return std::future::pending().await;
    }
    let mut st = state.lock().unwrap();
    *st.requests.entry(what).or_default() += 1;

    // Cluster-wide list and watch.
    let collection = match path.as_str() {
        p if p == format!("{GROUP_PATH}/orascaches") => Some(Kind::Cache),
        "/apis/apps/v1/statefulsets" => Some(Kind::StatefulSet),
        "/apis/apps/v1/deployments" => Some(Kind::Deployment),
        "/apis/policy/v1/poddisruptionbudgets" => Some(Kind::PodDisruptionBudget),
        "/api/v1/services" => Some(Kind::Service),
        "/apis/networking.k8s.io/v1/networkpolicies" => Some(Kind::NetworkPolicy),
        "/api/v1/secrets" => Some(Kind::Secret),
        "/apis/batch/v1/cronjobs" => Some(Kind::CronJob),
        "/api/v1/pods" => Some(Kind::Pod),
        _ => None,
    };
    if let (Some(kind), &Method::GET) = (collection, &method) {
        if query.contains("watch=true") {
            let (tx, rx) = mpsc::unbounded_channel();
            st.watchers.entry(kind).or_default().push(tx);
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            return Ok(response);
        }
        let rv = st.resource_version.to_string();
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(_, o)| {
                if kind.whole() {
                    o.clone()
                } else {
                    metadata_only(o)
                }
            })
            .collect();
        let (api_version, list_kind) = match kind {
            Kind::Cache => (
                "cache.converged-computing.github.io/v1alpha1",
                "OrasCacheList",
            ),
            Kind::Pod => ("v1", "PodList"),
            _ => ("meta.k8s.io/v1", "PartialObjectMetadataList"),
        };
        return Ok(full(
            200,
            &json!({"apiVersion": api_version, "kind": list_kind, "metadata": {"resourceVersion": rv}, "items": items}),
        ));
    }

    // One object: .../namespaces/{ns}/{resource}/{name}[/status]
    let Some(at) = segments.iter().position(|s| *s == "namespaces") else {
        return Ok(status(404, format!("{method} {path}")));
    };
    let namespace = segments.get(at + 1).copied().unwrap_or("");
    let resource = segments.get(at + 2).copied().unwrap_or("");
    let name = segments.get(at + 3).copied().unwrap_or("");
    let key = format!("{namespace}/{name}");
    let status_write = segments.len() == at + 5 && segments[at + 4] == "status";

    if resource == "events" {
        return Ok(match method {
            Method::POST => full(201, &body),
            // A repeated event: the recorder counts it in a series.
            Method::PATCH => full(200, &body),
            _ => status(405, format!("{method} {path}")),
        });
    }
    let Some(kind) = kind else {
        return Ok(status(404, format!("{method} {path}")));
    };
    if (&method, kind, name) == (&Method::GET, Kind::Pod, "") {
        let selector = label_selector(&query);
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|((k, key), pod)| {
                *k == Kind::Pod
                    && key.starts_with(&format!("{namespace}/"))
                    && selector
                        .iter()
                        .all(|(label, value)| pod["metadata"]["labels"][label] == *value)
            })
            .map(|(_, pod)| pod.clone())
            .collect();
        let rv = st.resource_version.to_string();
        return Ok(full(
            200,
            &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": rv}, "items": items}),
        ));
    }
    match (&method, kind, status_write) {
        (&Method::PATCH, Kind::Cache, true) => {
            let Some(cache) = st.objects.get(&(Kind::Cache, key.clone())).cloned() else {
                return Ok(status(404, key));
            };
            if st.conflicts > 0 {
                st.conflicts -= 1;
                return Ok(status(409, format!("{key}: the object has been modified")));
            }
            if cache.get("status") == Some(&body["status"]) {
                return Ok(full(200, &cache));
            }
            st.modify(Kind::Cache, &key, |c| c["status"] = body["status"].clone());
            let cache = st.objects[&(Kind::Cache, key)].clone();
            Ok(full(200, &cache))
        }
        (&Method::POST, Kind::Secret, false) if name.is_empty() => {
            let name = body["metadata"]["name"].as_str().unwrap_or_default();
            let key = format!("{namespace}/{name}");
            if st.objects.contains_key(&(kind, key.clone())) {
                return Ok(full(
                    409,
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "reason": "AlreadyExists", "code": 409, "message": key}),
                ));
            }
            *st.applies.entry(format!("{kind:?} {key}")).or_default() += 1;
            let rv = st.next_rv();
            let mut object = body.clone();
            object["metadata"]["uid"] = json!(format!("{kind:?}-{key}-{rv}"));
            object["metadata"]["resourceVersion"] = json!(rv);
            st.objects.insert((kind, key), object.clone());
            st.notify(kind, "ADDED", &object);
            Ok(full(201, &object))
        }
        (&Method::PATCH, kind, false) if owned(kind) => {
            *st.applies.entry(format!("{kind:?} {key}")).or_default() += 1;
            let existing = st.objects.get(&(kind, key.clone())).cloned();
            let changed = existing.as_ref().is_none_or(|e| {
                e["spec"] != body["spec"]
                    || e["data"] != body["data"]
                    || e["metadata"]["labels"] != body["metadata"]["labels"]
            });
            if !changed {
                return Ok(full(200, &existing.unwrap_or_default()));
            }
            let rv = st.next_rv();
            let generation = existing
                .as_ref()
                .and_then(|e| e["metadata"]["generation"].as_i64())
                .unwrap_or(0)
                + 1;
            let mut object = body.clone();
            object["metadata"]["uid"] = json!(format!("{kind:?}-{key}"));
            object["metadata"]["resourceVersion"] = json!(rv);
            object["metadata"]["generation"] = json!(generation);
            if workload(kind) {
                // No kubelet here: a new registry pod is not ready until the caller
                // says so; an updated one keeps its status.
                let replicas = body["spec"]["replicas"].clone();
                object["status"] = existing
                    .as_ref()
                    .map(|e| e["status"].clone())
                    .unwrap_or_else(|| json!({"replicas": replicas, "readyReplicas": 0}));
            }
            st.objects.insert((kind, key), object.clone());
            let event = if existing.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            };
            st.notify(kind, event, &object);
            Ok(full(200, &object))
        }
        (&Method::GET, _, false) => Ok(match st.objects.get(&(kind, key.clone())) {
            Some(object) => full(200, object),
            None => status(404, key),
        }),
        (&Method::DELETE, kind, false) if owned(kind) => {
            match st.objects.remove(&(kind, key.clone())) {
                Some(mut object) => {
                    // As in etcd, the deletion has a revision of its own.
                    object["metadata"]["resourceVersion"] = json!(st.next_rv());
                    st.notify(kind, "DELETED", &object);
                    Ok(full(200, &object))
                }
                None => Ok(status(404, key)),
            }
        }
        _ => Ok(status(405, format!("{method} {path}"))),
    }
}
