//! The gate: the registry port of a cache with `spec.auth.enabled`. A reverse proxy in
//! the registry pod, in front of the registry (which listens on 127.0.0.1 only), that
//! refuses writes made with the pull password and presents the pull password to the
//! registry under the user name its htpasswd gives it ([`rules`] decides). The registry
//! still authenticates every request from the htpasswd Secret: the gate never sees a
//! plain password it could store, only the hashes and the requests going through.
//!
//! Run as `oras-controller gate` in the controller image.

pub mod rules;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};

use rules::{Decision, Htpasswd};

/// Path the gate answers itself (the pod's probes): 200 when the registry behind it
/// answers HTTP, 503 otherwise. Not part of the distribution API.
pub const HEALTH_PATH: &str = "/oras-gate/healthz";
/// Most passwords whose bcrypt check is remembered (a wrong password costs a bcrypt
/// each time once the table is full and cleared).
const REMEMBERED: usize = 1024;

type Body = BoxBody<Bytes, hyper::Error>;

/// The gate's state: the pull password's hash, where the registry is, and the passwords
/// already checked (by their SHA-256, so the table holds no password).
pub struct Gate {
    htpasswd: Htpasswd,
    upstream: SocketAddr,
    checked: Mutex<HashMap<[u8; 32], bool>>,
}

impl Gate {
    /// A gate for the registry at `upstream` whose htpasswd file is `htpasswd`.
    pub fn new(htpasswd: &str, upstream: SocketAddr) -> Result<Self, String> {
        Ok(Self {
            htpasswd: Htpasswd::parse(htpasswd)?,
            upstream,
            checked: Mutex::default(),
        })
    }

    fn is_pull_password(&self, password: &str) -> bool {
        let key: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if let Some(known) = self.lock().get(&key) {
            return *known;
        }
        let answer = self.htpasswd.is_pull_password(password);
        let mut checked = self.lock();
        if checked.len() >= REMEMBERED {
            checked.clear();
        }
        checked.insert(key, answer);
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], bool>> {
        // A poisoned lock means a panic elsewhere; the table is still a valid cache.
        self.checked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, gate: Arc<Gate>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection");
                    continue;
                }
            },
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(gate.clone(), request));
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended");
            }
        });
    }
}

async fn handle(
    gate: Arc<Gate>,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if path == HEALTH_PATH && (method == Method::GET || method == Method::HEAD) {
        return Ok(health(gate.upstream).await);
    }
    let basic = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(rules::basic_credentials);
    let decision = {
        let gate = gate.clone();
        let method = method.to_string();
        let path = path.clone();
        // bcrypt takes tens of milliseconds: off the runtime's thread.
        tokio::task::spawn_blocking(move || {
            rules::decide(&method, &path, basic.as_ref(), |p| gate.is_pull_password(p))
        })
        .await
        .unwrap_or_else(|_| Decision::Deny("the gate failed to check the credentials".into()))
    };
    match decision {
        Decision::Forward => {}
        Decision::ForwardAs(authorization) => match HeaderValue::from_str(&authorization) {
            Ok(value) => {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            Err(_) => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "UNAUTHORIZED",
                    "bad credentials",
                ));
            }
        },
        Decision::Deny(message) => {
            tracing::info!(%method, %path, "refused a write with the pull password");
            return Ok(error(StatusCode::FORBIDDEN, "DENIED", &message));
        }
    }
    Ok(match forward(gate.upstream, request).await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(message) => error(
            StatusCode::BAD_GATEWAY,
            "UNAVAILABLE",
            &format!("the registry behind the gate does not answer: {message}"),
        ),
    })
}

async fn forward<B>(upstream: SocketAddr, request: Request<B>) -> Result<Response<Incoming>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connecting to {upstream}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "registry connection ended");
        }
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

async fn health(upstream: SocketAddr) -> Response<Body> {
    let probe = Request::get("/v2/")
        .header("host", upstream.to_string())
        .body(Full::new(Bytes::new()));
    let answered = match probe {
        Ok(probe) => forward(upstream, probe).await,
        Err(e) => Err(e.to_string()),
    };
    match answered {
        // 401 is the answer of a registry that requires credentials: it is up.
        Ok(_) => text(StatusCode::OK, "ok\n"),
        Err(message) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("registry not answering: {message}\n"),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

/// An error in the distribution API's format, so clients print its message.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    respond(status, "application/json", body.to_string())
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
