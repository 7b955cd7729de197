//! Idle memory and reconcile count of the real `oras-controller` binary with 100
//! OrasCaches, against a small fake API server on 127.0.0.1 (there is no cluster here).
//!
//!   cargo bench -p oras-controller --bench idle
//!
//! The fake server lists and watches OrasCaches and the owned StatefulSets and Services
//! (metadata-only, as the controller asks), answers server-side applies with the applied
//! object (StatefulSets with one ready replica), and sends the watch events a real API
//! server would: ADDED for a new child, MODIFIED for a changed one or a changed status,
//! nothing for an apply that changes nothing. The bench then reads the controller's RSS
//! from /proc and its reconcile count from its own /metrics.
//!
//! Figures printed: RSS after the caches settled and after an idle period, reconciles to
//! settle, reconciles while idle, reconciles for one spec change, graceful stop on
//! SIGTERM.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const CACHES: usize = 100;
const GROUP_PATH: &str = "/apis/cache.converged-computing.github.io/v1alpha1";
/// How long reconcile counts must stay still to call the controller settled.
const QUIET: Duration = Duration::from_secs(3);
/// Idle period before the idle figures are read.
const IDLE: Duration = Duration::from_secs(10);
/// Upper bound of any wait: the bench stops by itself.
const PATIENCE: Duration = Duration::from_secs(120);

type Body = BoxBody<Bytes, Infallible>;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Cache,
    StatefulSet,
    Service,
}

#[derive(Default)]
struct State {
    resource_version: u64,
    /// Objects by kind and `namespace/name`.
    objects: HashMap<(Kind, String), Value>,
    watchers: HashMap<Kind, Vec<mpsc::UnboundedSender<Bytes>>>,
    requests: HashMap<String, u64>,
}

impl State {
    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn notify(&mut self, kind: Kind, event: &str, object: &Value) {
        let object = if kind == Kind::Cache {
            object.clone()
        } else {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"]})
        };
        let mut line = serde_json::to_vec(&json!({"type": event, "object": object})).unwrap();
        line.push(b'\n');
        let line = Bytes::from(line);
        if let Some(list) = self.watchers.get_mut(&kind) {
            list.retain(|tx| tx.send(line.clone()).is_ok());
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn full(status: u16, value: &Value) -> Response<Body> {
    let mut response =
        Response::new(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn cache_object(state: &mut State, index: usize) -> Value {
    let rv = state.next_rv();
    json!({
        "apiVersion": "cache.converged-computing.github.io/v1alpha1",
        "kind": "OrasCache",
        "metadata": {
            "name": "oras", "namespace": format!("team-{index:03}"),
            "uid": format!("00000000-0000-4000-8000-{index:012}"),
            "generation": 1, "resourceVersion": rv,
            "creationTimestamp": "2026-01-01T00:00:00Z"
        },
        "spec": {}
    })
}

async fn handle(state: Shared, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
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
    let mut st = state.lock().unwrap();
    let what = format!(
        "{method} {}",
        kind_of(&segments).map_or("other".into(), |k| format!("{k:?}"))
    );
    *st.requests.entry(what).or_default() += 1;

    // Cluster-wide list and watch.
    let collection = match path.as_str() {
        p if p == format!("{GROUP_PATH}/orascaches") => Some(Kind::Cache),
        "/apis/apps/v1/statefulsets" => Some(Kind::StatefulSet),
        "/api/v1/services" => Some(Kind::Service),
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
                if kind == Kind::Cache {
                    o.clone()
                } else {
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]})
                }
            })
            .collect();
        let (api_version, list_kind) = match kind {
            Kind::Cache => (
                "cache.converged-computing.github.io/v1alpha1",
                "OrasCacheList",
            ),
            _ => ("meta.k8s.io/v1", "PartialObjectMetadataList"),
        };
        return Ok(full(
            200,
            &json!({"apiVersion": api_version, "kind": list_kind, "metadata": {"resourceVersion": rv}, "items": items}),
        ));
    }

    // Namespaced writes: .../namespaces/{ns}/{resource}/{name}[/status]
    let ns_at = segments.iter().position(|s| *s == "namespaces");
    if let (Some(at), &Method::PATCH) = (ns_at, &method) {
        let ns = segments[at + 1];
        let name = segments.get(at + 3).copied().unwrap_or("");
        let key = format!("{ns}/{name}");
        let kind = kind_of(&segments);
        let status_write = segments.last() == Some(&"status");
        match (kind, status_write) {
            (Some(Kind::Cache), true) => {
                let rv = st.next_rv();
                let Some(cache) = st.objects.get_mut(&(Kind::Cache, key)) else {
                    return Ok(full(404, &json!({"kind": "Status", "code": 404})));
                };
                if cache.get("status") == Some(&body["status"]) {
                    return Ok(full(200, &cache.clone()));
                }
                cache["status"] = body["status"].clone();
                cache["metadata"]["resourceVersion"] = json!(rv);
                let cache = cache.clone();
                st.notify(Kind::Cache, "MODIFIED", &cache);
                return Ok(full(200, &cache));
            }
            (Some(kind @ (Kind::StatefulSet | Kind::Service)), false) => {
                let existing = st.objects.get(&(kind, key.clone())).cloned();
                let changed = existing.as_ref().is_none_or(|e| e["spec"] != body["spec"]);
                let mut object = body.clone();
                if changed {
                    let rv = st.next_rv();
                    let generation = existing
                        .as_ref()
                        .and_then(|e| e["metadata"]["generation"].as_i64())
                        .unwrap_or(0)
                        + 1;
                    object["metadata"]["uid"] = json!(format!("child-{key}-{kind:?}"));
                    object["metadata"]["resourceVersion"] = json!(rv);
                    object["metadata"]["generation"] = json!(generation);
                    if kind == Kind::StatefulSet {
                        // No kubelet here: a new registry pod is not ready until the
                        // bench says so; an updated one keeps its status.
                        object["status"] = existing
                            .as_ref()
                            .map(|e| e["status"].clone())
                            .unwrap_or_else(|| json!({"replicas": 1, "readyReplicas": 0}));
                    }
                    st.objects.insert((kind, key), object.clone());
                    let event = if existing.is_some() {
                        "MODIFIED"
                    } else {
                        "ADDED"
                    };
                    st.notify(kind, event, &object);
                } else if let Some(existing) = existing {
                    object = existing;
                }
                return Ok(full(200, &object));
            }
            _ => {}
        }
    }
    if method == Method::POST && path.ends_with("/events") {
        return Ok(full(201, &body));
    }
    if method == Method::PATCH && segments.contains(&"events") {
        // A repeated event: the recorder counts it in a series.
        return Ok(full(200, &body));
    }
    Ok(full(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "message": format!("{method} {path}")}),
    ))
}

fn kind_of(segments: &[&str]) -> Option<Kind> {
    if segments.contains(&"orascaches") {
        Some(Kind::Cache)
    } else if segments.contains(&"statefulsets") {
        Some(Kind::StatefulSet)
    } else if segments.contains(&"services") {
        Some(Kind::Service)
    } else {
        None
    }
}

async fn serve(listener: TcpListener, state: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The controller's `oras_controller_reconciles_total`.
async fn reconciles(metrics: SocketAddr) -> Option<u64> {
    let mut conn = TcpStream::connect(metrics).await.ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oras_controller_reconciles_total "))
        .and_then(|n| n.trim().parse().ok())
}

/// Waits until the reconcile count is at least `min` and has not moved for QUIET.
async fn settle(metrics: SocketAddr, min: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    let mut last = (0, Instant::now());
    loop {
        assert!(Instant::now() < deadline, "the controller did not settle");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(now) = reconciles(metrics).await else {
            continue;
        };
        if now != last.0 {
            last = (now, Instant::now());
        } else if now >= min && last.1.elapsed() >= QUIET {
            return now;
        }
    }
}

fn rss_kib(child: &Child) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful.
    if !std::env::args().any(|a| a == "--bench") {
        println!("idle: run with `cargo bench -p oras-controller --bench idle`");
        return;
    }
    let state: Shared = Arc::default();
    {
        let mut st = state.lock().unwrap();
        for i in 0..CACHES {
            let cache = cache_object(&mut st, i);
            let key = format!("team-{i:03}/oras");
            st.objects.insert((Kind::Cache, key), cache);
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, state.clone()));

    let kubeconfig =
        std::env::temp_dir().join(format!("oras-bench-{}.kubeconfig", std::process::id()));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{api}\n\
             users:\n- name: bench\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: bench\n\
             current-context: fake\n"
        ),
    )
    .unwrap();
    let metrics = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oras-controller"))
        .arg(format!("--metrics-addr={metrics}"))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("starting oras-controller");

    // Every cache is reconciled once: StatefulSet and Service applied, status written.
    let started = Instant::now();
    let created = settle(metrics, CACHES as u64).await;
    let settle_time = started.elapsed() - QUIET;
    let (rss_settled, _) = rss_kib(&child);

    // Every registry pod turns ready: one status change per StatefulSet.
    {
        let mut st = state.lock().unwrap();
        let keys: Vec<_> = st
            .objects
            .keys()
            .filter(|(k, _)| *k == Kind::StatefulSet)
            .cloned()
            .collect();
        for key in keys {
            let rv = st.next_rv();
            let sts = st.objects.get_mut(&key).unwrap();
            sts["status"]["readyReplicas"] = json!(1);
            sts["metadata"]["resourceVersion"] = json!(rv);
            let sts = sts.clone();
            st.notify(Kind::StatefulSet, "MODIFIED", &sts);
        }
    }
    let after_ready = settle(metrics, created + CACHES as u64).await;
    let ready_reconciles = after_ready - created;
    let ready_caches = state
        .lock()
        .unwrap()
        .objects
        .iter()
        .filter(|((k, _), o)| *k == Kind::Cache && o["status"]["conditions"][0]["status"] == "True")
        .count();

    // Idle.
    tokio::time::sleep(IDLE).await;
    let after_idle = reconciles(metrics).await.unwrap();
    let idle_reconciles = after_idle - after_ready;
    let (rss_idle, hwm) = rss_kib(&child);

    // One spec change: the port of one cache.
    {
        let mut st = state.lock().unwrap();
        let rv = st.next_rv();
        let cache = st
            .objects
            .get_mut(&(Kind::Cache, "team-007/oras".into()))
            .unwrap();
        cache["spec"]["port"] = json!(6000);
        cache["metadata"]["generation"] = json!(2);
        cache["metadata"]["resourceVersion"] = json!(rv);
        let cache = cache.clone();
        st.notify(Kind::Cache, "MODIFIED", &cache);
    }
    let after_change = settle(metrics, after_idle + 1).await;
    let change_reconciles = after_change - after_idle;

    // Graceful stop.
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let exit = child.wait().unwrap();
    let _ = std::fs::remove_file(&kubeconfig);

    let requests = state.lock().unwrap().requests.clone();
    let mut requests: Vec<_> = requests.into_iter().collect();
    requests.sort();
    println!("oras-controller idle bench, {CACHES} OrasCaches, fake API server on {api}");
    println!(
        "  reconciles to create all caches      {created} ({:.2} per cache, settled in {:.1} s)",
        created as f64 / CACHES as f64,
        settle_time.as_secs_f64()
    );
    println!(
        "  reconciles when all pods turn ready  {ready_reconciles} ({ready_caches} caches Ready)"
    );
    println!(
        "  reconciles during {} s idle          {idle_reconciles}",
        IDLE.as_secs()
    );
    println!("  reconciles for one spec change       {change_reconciles}");
    println!(
        "  RSS after creating the caches        {:.1} MiB",
        rss_settled as f64 / 1024.0
    );
    println!(
        "  RSS after idling                     {:.1} MiB (peak {:.1} MiB)",
        rss_idle as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("  exit on SIGTERM                      {exit}");
    println!("  requests served:");
    for (what, n) in requests {
        println!("    {what:<24} {n}");
    }
}
