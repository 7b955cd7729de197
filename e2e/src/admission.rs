//! A Kubernetes object through the compiled policy, as the API server's admission
//! webhook call to policy-server would present it (operation CREATE).

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::policy_host::PolicyHost;

/// What the policy made of an object it accepted.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The object as the API server would store it (the original when unchanged).
    pub object: Value,
    /// The JSON patch the policy applied (empty when it changed nothing).
    pub patch: json_patch::Patch,
    pub warnings: Vec<String>,
}

/// `group`, `version` of an `apiVersion` (`batch/v1`, or `v1` for the core group).
fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The resource name of a kind (`Job` -> `jobs`), as the built-in kinds have it.
fn resource_of(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// The admission request for creating `object`.
pub fn create_request(object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = group_version(api_version);
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource_of(kind)});
    json!({
        "uid": "00000000-0000-4000-8000-000000000000",
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"].as_str().unwrap_or("default"),
        "operation": "CREATE",
        "userInfo": {"username": "oras-e2e", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
    })
}

/// Sends `object` through the policy with `settings`; an error when it is rejected,
/// carrying the policy's message.
pub fn admit(policy: &PolicyHost, settings: &Value, object: &Value) -> Result<Admitted> {
    let answer = policy
        .validate(settings, &create_request(object))
        .context("the policy could not evaluate the object")?;
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    let kind = object["kind"].as_str().unwrap_or("?");
    if answer["accepted"] != true {
        bail!(
            "the policy rejected {kind} {name}: {}",
            answer["message"].as_str().unwrap_or("(no message)")
        );
    }
    let warnings = answer["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mutated = &answer["mutated_object"];
    if mutated.is_null() {
        return Ok(Admitted {
            object: object.clone(),
            patch: json_patch::Patch(Vec::new()),
            warnings,
        });
    }
    Ok(Admitted {
        object: mutated.clone(),
        patch: json_patch::diff(object, mutated),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_the_resource_of_the_kind() {
        let request = create_request(&json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "n"}}));
        assert_eq!(request["kind"]["group"], "batch");
        assert_eq!(request["resource"]["resource"], "cronjobs");
        assert_eq!(request["namespace"], "default");
        let request = create_request(&json!({"apiVersion": "v1", "kind": "Pod"}));
        assert_eq!(request["kind"]["group"], "");
        assert_eq!(request["resource"]["resource"], "pods");
    }
}
