//! The compiled policy served to a real API server as a mutating admission webhook, the
//! part of Kubewarden's policy-server that cannot be built here: HTTPS on 127.0.0.1,
//! each `AdmissionReview` through a fresh instance of the policy, and the answer as the
//! API server expects it (a base64 JSON patch computed from the mutated object, the
//! policy's message and warnings).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::policy_host::CompiledPolicy;

/// The review the API server sent, answered by the policy under `settings`.
pub fn answer_review(policy: &CompiledPolicy, settings: &Value, review: &Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let response = match policy
        .instantiate()
        .and_then(|host| host.validate(settings, request))
    {
        Ok(verdict) => response_of(uid, &request["object"], &verdict),
        Err(error) => json!({
            "uid": uid,
            "allowed": false,
            "status": {"code": 500, "message": format!("the policy failed: {error:#}")},
        }),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

/// An `AdmissionResponse` from the policy's `ValidationResponse` about `object`.
fn response_of(uid: Value, object: &Value, verdict: &Value) -> Value {
    let mut response = json!({"uid": uid, "allowed": verdict["accepted"] == true});
    if verdict["accepted"] != true {
        response["status"] = json!({
            "code": verdict["code"].as_u64().unwrap_or(400),
            "message": verdict["message"].as_str().unwrap_or("rejected by the policy"),
        });
    }
    if let Some(mutated) = verdict.get("mutated_object").filter(|m| !m.is_null()) {
        let patch = json_patch::diff(object, mutated);
        // A patch always serializes: it is a list of JSON values.
        let patch = serde_json::to_vec(&patch).unwrap_or_default();
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    if let Some(warnings) = verdict.get("warnings").filter(|w| w.is_array()) {
        response["warnings"] = warnings.clone();
    }
    response
}

/// A running webhook server; stopped when dropped.
pub struct PolicyWebhook {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PolicyWebhook {
    /// Serves `policy` with `settings` over HTTPS on a free port of 127.0.0.1, with the
    /// serving certificate and key given as PEM.
    pub fn start(
        policy: CompiledPolicy,
        settings: Value,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Self> {
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("reading the webhook's certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .context("reading the webhook's key")?;
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the webhook's certificate and key")?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the webhook's runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding 127.0.0.1:0")?;
        let address = listener.local_addr().context("the webhook's address")?;
        let (stop, stopped) = oneshot::channel();
        let shared = Arc::new((policy, settings));
        let thread = std::thread::spawn(move || {
            runtime.block_on(serve(listener, acceptor, shared, stopped));
        });
        Ok(Self {
            address,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT/validate`, what a webhook configuration's `url` names.
    pub fn url(&self) -> String {
        format!("https://{}/validate", self.address)
    }

    /// The MutatingWebhookConfiguration that sends this server what a Kubewarden
    /// `policy` (a ClusterAdmissionPolicy as JSON) would get: its `rules`,
    /// `matchConditions` and `failurePolicy`, over TLS trusted through `ca_pem`.
    pub fn configuration(&self, policy: &Value, ca_pem: &str) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "oras-operator"},
            "webhooks": [{
                "name": "oras-operator.converged-computing.github.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": policy["spec"]["failurePolicy"],
                "rules": policy["spec"]["rules"],
                "matchConditions": policy["spec"]["matchConditions"],
                "clientConfig": {
                    "url": self.url(),
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
                },
            }],
        })
    }
}

impl Drop for PolicyWebhook {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<(CompiledPolicy, Value)>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, hyper::Error>(handle(request, &shared).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: &(CompiledPolicy, Value),
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            "content-type",
            "application/json".parse().expect("a valid header value"),
        );
        response
    };
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => return reply(StatusCode::BAD_REQUEST, error.to_string().into_bytes()),
    };
    let review: Value = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(error) => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview: {error}").into_bytes(),
            );
        }
    };
    let (policy, settings) = shared;
    let answer = answer_review(policy, settings, &review);
    reply(
        StatusCode::OK,
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
}
