//! The compiled `policy.wasm`, evaluated through the waPC host stack of Kubewarden's
//! policy-server, on every admission request fixture under `examples/requests/`. The
//! images the fixtures name are served by a local registry (`FixtureImages`).
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the expected answers after an intended change, then
//! review the diff.

use std::sync::OnceLock;

use oras_e2e::fixtures::{Case, FixtureImages, load_cases};
use oras_e2e::oci_host::ImageRegistry;
use oras_e2e::policy_host::{CompiledPolicy, PolicyHost};
use oras_e2e::workspace;
use serde_json::{Value, json};

fn compiled() -> &'static CompiledPolicy {
    static COMPILED: OnceLock<CompiledPolicy> = OnceLock::new();
    COMPILED.get_or_init(|| CompiledPolicy::load(&workspace::policy_wasm()).unwrap())
}

/// A fresh instance of the policy, compiled once for all tests; no registry answers it.
fn host() -> PolicyHost {
    compiled().instantiate().unwrap()
}

fn cases() -> Vec<Case> {
    load_cases(&workspace::requests_dir()).unwrap()
}

/// The native build's answer to the same payload, as JSON, its image lookups answered
/// by `images`.
fn native_answer(settings: &Value, request: &Value, images: &ImageRegistry) -> Value {
    let payload = serde_json::to_vec(&json!({"settings": settings, "request": request})).unwrap();
    let answer = oras_policy::validate_with(&payload, &|image| images.lookup(image)).unwrap();
    serde_json::from_slice(&answer).unwrap()
}

#[test]
fn protocol_version_is_v1() {
    let host = host();
    assert_eq!(host.protocol_version().unwrap(), json!("v1"));
}

#[test]
fn default_and_documented_settings_are_valid() {
    let host = host();
    for settings in [
        json!({}),
        json!({"agentImage": "registry.local/oras-agent:dev", "defaultCache": "cache", "clusterDomain": "corp.internal",
               "insecureRegistries": ["registry.local:5000"], "allowedRegistries": ["ghcr.io", "registry.local:5000"],
               "agentResources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}}),
    ] {
        assert_eq!(
            host.validate_settings(&settings).unwrap(),
            json!({"valid": true, "message": null}),
            "{settings}"
        );
    }
}

#[test]
fn bad_settings_are_invalid_with_a_message_naming_the_field() {
    let host = host();
    let cases = [
        (json!({"defaultcache": "x"}), "unknown field `defaultcache`"),
        (
            json!({"insecureRegistries": "r:5000"}),
            "invalid type: string \"r:5000\", expected a sequence",
        ),
        (
            json!({"clusterDomain": "Cluster.Local"}),
            "clusterDomain \"Cluster.Local\" is not a valid name",
        ),
        (
            json!({"agentResources": {"requests": {"memory": "lots"}}}),
            "agentResources.requests.memory: \"lots\" is not a Kubernetes quantity",
        ),
        (
            json!({"allowedRegistries": ["https://ghcr.io"]}),
            "allowedRegistries \"https://ghcr.io\" must not have a scheme",
        ),
    ];
    for (settings, expected) in cases {
        let answer = host.validate_settings(&settings).unwrap();
        assert_eq!(answer["valid"], false, "{settings}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(expected), "{settings}: {message}");
    }
}

#[test]
fn every_fixture_gets_its_expected_answer() {
    let images = FixtureImages::start(&workspace::requests_dir()).unwrap();
    let host = compiled()
        .instantiate_with(Some(images.lookups.clone()))
        .unwrap();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cases = cases();
    assert!(cases.len() >= 20, "fixtures went missing: {}", cases.len());
    for case in &cases {
        let answer = host.validate(&case.settings, case.request()).unwrap();
        if update {
            case.store_expected(&answer).unwrap();
            continue;
        }
        assert_eq!(answer, case.expected_response, "fixture {}", case.name);
        assert_eq!(
            native_answer(&case.settings, case.request(), &images.lookups),
            answer,
            "native and wasm builds disagree on {}",
            case.name
        );
    }
}

#[test]
fn fixture_names_say_what_the_answer_is() {
    for case in cases() {
        let accepted = case.expected_response["accepted"].as_bool().unwrap();
        let mutated = !case.expected_response["mutated_object"].is_null();
        if case.name.starts_with("reject-") {
            assert!(!accepted, "{} should be rejected", case.name);
            assert!(
                case.expected_response["message"].is_string(),
                "{} has no message",
                case.name
            );
        } else if case.name.starts_with("accept-") {
            assert!(accepted && !mutated, "{} should pass unchanged", case.name);
        } else {
            assert!(accepted && mutated, "{} should be mutated", case.name);
        }
    }
}

#[test]
fn a_mutated_object_sent_again_passes_unchanged() {
    let host = host();
    for case in cases() {
        let mutated = &case.expected_response["mutated_object"];
        if mutated.is_null() {
            continue;
        }
        let mut request = case.request().clone();
        request["object"] = mutated.clone();
        let answer = host.validate(&case.settings, &request).unwrap();
        assert_eq!(answer["accepted"], true, "{}", case.name);
        assert!(
            answer["mutated_object"].is_null(),
            "{} was mutated twice",
            case.name
        );
    }
}

#[test]
fn the_patch_only_adds_and_replaces_what_the_policy_means_to_change() {
    for case in cases() {
        let mutated = &case.expected_response["mutated_object"];
        if mutated.is_null() {
            continue;
        }
        let patch = json_patch::diff(&case.request()["object"], mutated);
        for operation in patch.0.iter() {
            let value = serde_json::to_value(operation).unwrap();
            let path = value["path"].as_str().unwrap();
            // The launcher's command and args are replaced as a whole; a diff expresses
            // that item by item, removals of surplus items included.
            let in_launcher_argv = path.contains("/command") || path.contains("/args");
            if !in_launcher_argv {
                assert_ne!(value["op"], "remove", "{}: removes {path}", case.name);
            }
            let allowed = in_launcher_argv
                || path.ends_with("/volumes")
                || path.contains("/volumes/")
                || path.contains("/initContainers")
                || path.contains("/volumeMounts")
                || path.ends_with("/annotations/oras.converged-computing.github.io~1injected")
                || path.ends_with("/metadata/annotations")
                || path.ends_with("/template/metadata");
            assert!(allowed, "{}: unexpected change at {path}", case.name);
        }
    }
}

#[test]
fn malformed_payloads_are_rejected_not_crashed() {
    let host = host();
    for payload in [
        &b"not json"[..],
        b"{}",
        b"{\"settings\": {}, \"request\": 42}",
        b"",
    ] {
        let answer = host.validate_raw(payload).unwrap();
        assert_eq!(
            answer["accepted"],
            false,
            "{}",
            String::from_utf8_lossy(payload)
        );
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .starts_with("cannot read the admission request")
        );
    }
}

#[test]
fn invalid_settings_reaching_validate_reject_the_request() {
    let host = host();
    let case = cases()
        .into_iter()
        .find(|c| c.name == "hello-world-pod")
        .unwrap();
    let answer = host
        .validate(&json!({"defaultCache": "Not Valid"}), case.request())
        .unwrap();
    assert_eq!(answer["accepted"], false);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid policy settings: defaultCache")
    );
}
