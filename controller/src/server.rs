//! The controller's small HTTP server: `/metrics` (OpenMetrics text), `/healthz` (the
//! process answers) and `/readyz` (the caches have been listed).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What the server reads.
#[derive(Clone)]
pub struct Probes {
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Whether `/readyz` answers 200.
    pub ready: Arc<AtomicBool>,
}

/// The answer to one request: status, content type and body.
pub fn route(method: &Method, path: &str, probes: &Probes) -> (StatusCode, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET\n".into());
    }
    match path {
        "/metrics" => (
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            probes.metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" if probes.ready.load(Ordering::Relaxed) => (StatusCode::OK, TEXT, "ok\n".into()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "caches not listed yet\n".into(),
        ),
        _ => (StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
    }
}

/// Serves until `shutdown` completes; connections in flight are dropped then.
pub async fn serve(listener: TcpListener, probes: Probes, shutdown: impl Future<Output = ()>) {
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
        let probes = probes.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (status, content_type, body) = route(req.method(), req.uri().path(), &probes);
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(content_type),
                );
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "serving a connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn probes(ready: bool) -> Probes {
        Probes {
            metrics: Arc::default(),
            ready: Arc::new(AtomicBool::new(ready)),
        }
    }

    #[test]
    fn routes() {
        let p = probes(false);
        assert_eq!(route(&Method::GET, "/healthz", &p).0, StatusCode::OK);
        assert_eq!(
            route(&Method::GET, "/readyz", &p).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        p.ready.store(true, Ordering::Relaxed);
        assert_eq!(route(&Method::GET, "/readyz", &p).0, StatusCode::OK);
        let (status, content_type, body) = route(&Method::GET, "/metrics", &p);
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"));
        assert!(body.contains("oras_controller_reconciles_total 0"));
        assert_eq!(route(&Method::GET, "/nope", &p).0, StatusCode::NOT_FOUND);
        assert_eq!(
            route(&Method::POST, "/healthz", &p).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn serves_metrics_over_http_on_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, probes(true), async {
            let _ = stopped.await;
        }));
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.contains("oras_controller_reconciles_total 0"));
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
