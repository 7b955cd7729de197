//! oras-operator's Kubewarden policy.
//!
//! This file is only the waPC glue: `validate` parses the request, asks
//! [`evaluate::evaluate`] and turns its [`evaluate::Outcome`] into the answer
//! policy-server expects. Everything else is plain Rust, tested on the host.

pub mod agent_containers;
pub mod annotations;
pub mod evaluate;
pub mod image;
pub mod inject;
pub mod names;
pub mod plan;
pub mod quantity;
pub mod reference;
pub mod settings;
pub mod workload;

use kubewarden_policy_sdk::response::ValidationResponse;
use kubewarden_policy_sdk::settings::{SettingsValidationResponse, Validatable};
use kubewarden_policy_sdk::wapc_guest::{self as guest, CallResult};
use kubewarden_policy_sdk::{accept_request, protocol_version_guest, reject_request};

use serde::Deserialize;

use crate::evaluate::{AdmissionRequest, Outcome, evaluate};
use crate::image::{ImageEntrypoint, ImageLookup};
use crate::settings::Settings;

/// What policy-server sends to `validate`: the settings and the AdmissionReview's
/// `request`.
#[derive(Deserialize)]
struct ValidationPayload {
    #[serde(default)]
    settings: Settings,
    request: AdmissionRequest,
}

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {
    guest::register_function("validate", validate);
    guest::register_function("validate_settings", validate_settings);
    guest::register_function("protocol_version", protocol_version_guest);
}

/// The `validate` waPC function: images are looked up through the host.
pub fn validate(payload: &[u8]) -> CallResult {
    validate_with(payload, &host_image_lookup)
}

/// `validate` with another image lookup (tests compare the native build with the wasm
/// one this way).
pub fn validate_with(payload: &[u8], lookup: ImageLookup) -> CallResult {
    let payload = match serde_json::from_slice::<ValidationPayload>(payload) {
        Ok(payload) => payload,
        Err(error) => return reject(format!("cannot read the admission request: {error}")),
    };
    if let Err(message) = payload.settings.validate() {
        return reject(format!("invalid policy settings: {message}"));
    }
    match evaluate(payload.request, &payload.settings, lookup) {
        Outcome::Accept => accept_request(),
        Outcome::Reject(message) => reject(message),
        Outcome::Mutate { object, warnings } => Ok(serde_json::to_vec(&ValidationResponse {
            accepted: true,
            message: None,
            code: None,
            mutated_object: Some(object),
            audit_annotations: None,
            warnings: (!warnings.is_empty()).then_some(warnings),
        })?),
    }
}

/// The `validate_settings` waPC function; unlike the SDK's helper it answers malformed
/// settings (unknown keys, wrong types) with `valid: false` and serde's message, which
/// names the field.
pub fn validate_settings(payload: &[u8]) -> CallResult {
    let verdict = serde_json::from_slice::<Settings>(payload)
        .map_err(|error| error.to_string())
        .and_then(|settings| settings.validate());
    Ok(serde_json::to_vec(&SettingsValidationResponse {
        valid: verdict.is_ok(),
        message: verdict.err(),
    })?)
}

/// Kubewarden's OCI host capability (`kubewarden`/`oci`/`v1/oci_manifest_config`):
/// policy-server or `kwctl run` fetch the manifest and config, choosing the platform of
/// an image index themselves.
#[cfg(target_arch = "wasm32")]
fn host_image_lookup(image: &str) -> Result<ImageEntrypoint, String> {
    use kubewarden_policy_sdk::Error;
    use kubewarden_policy_sdk::host_capabilities::oci::get_manifest_and_config;
    match get_manifest_and_config(image) {
        Ok(answer) => Ok(image::entrypoint_of(&answer)),
        // The host's own message, without the SDK's and waPC's prefixes.
        Err(Error::HostCall { source, .. }) => {
            let message = source.to_string();
            Err(message
                .strip_prefix("Host error: ")
                .unwrap_or(&message)
                .to_string())
        }
        Err(error) => Err(format!("the host's answer cannot be read: {error}")),
    }
}

/// Outside a waPC host there is no registry to ask.
#[cfg(not(target_arch = "wasm32"))]
fn host_image_lookup(_image: &str) -> Result<ImageEntrypoint, String> {
    Err("no Kubewarden host answers image lookups here (the policy runs natively)".into())
}

fn reject(message: String) -> CallResult {
    reject_request(Some(message), None, None, None)
}
