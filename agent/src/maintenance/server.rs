//! The maintenance endpoint of the registry pod: `POST /collect` with the cache's
//! maintenance token runs one collection and answers its summary as JSON;
//! `GET /healthz` answers `ok`. Requests are served one at a time.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tiny_http::{Header, Method, Request, Response, Server};

use super::collection::{Supervised, collect};

/// The environment variable that holds the maintenance token, on both sides.
pub const TOKEN_ENV: &str = "ORAS_MAINTENANCE_TOKEN";
/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

pub struct Maintenance {
    pub registry: Arc<Mutex<Supervised>>,
    pub token: String,
    pub stopping: Arc<AtomicBool>,
}

/// Serves until the server is unblocked or fails.
pub fn serve(server: &Server, maintenance: &Maintenance) {
    for request in server.incoming_requests() {
        let (code, body) = answer(&request, maintenance);
        let response = Response::from_string(body)
            .with_status_code(code)
            .with_header(
                Header::from_bytes("Content-Type", "application/json").expect("a valid header"),
            );
        if let Err(error) = request.respond(response) {
            tracing::warn!(%error, "could not answer a maintenance request");
        }
    }
}

fn answer(request: &Request, maintenance: &Maintenance) -> (u16, String) {
    let error = |message: &str| json!({ "error": message }).to_string();
    match (request.method(), request.url()) {
        (Method::Get, "/healthz") => (200, json!({"status": "ok"}).to_string()),
        (Method::Post, "/collect") => {
            if !authorized(request, &maintenance.token) {
                return (
                    401,
                    error("a bearer token is required: the cache's maintenance token"),
                );
            }
            let Ok(mut registry) = maintenance.registry.lock() else {
                return (500, error("the supervisor lost its registry"));
            };
            match collect(&mut registry, &maintenance.stopping) {
                Ok(summary) => {
                    tracing::info!(summary = %summary.to_json(), "garbage collected");
                    (200, summary.to_json())
                }
                Err(failure) => {
                    tracing::error!(error = format!("{failure:#}"), "garbage collection failed");
                    (500, error(&format!("{failure:#}")))
                }
            }
        }
        (_, "/collect" | "/healthz") => (405, error("POST /collect or GET /healthz")),
        (_, path) => (
            404,
            error(&format!("no {path} here: POST /collect or GET /healthz")),
        ),
    }
}

fn authorized(request: &Request, token: &str) -> bool {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer "))
        .is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
}

/// Compares in time that depends on the length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
