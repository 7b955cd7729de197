//! Every YAML file under `examples/` parses, and every object in it deserializes into
//! its typed form (k8s-openapi, the controller's OrasCache, the Kubewarden policy
//! shapes) without losing a field: an unknown or misspelt field fails the test.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use oras_controller::OrasCache;
use oras_e2e::workspace;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The fields of Kubewarden's (Cluster)AdmissionPolicy this project uses.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubewardenPolicy {
    api_version: String,
    kind: String,
    metadata: Value,
    spec: KubewardenPolicySpec,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubewardenPolicySpec {
    module: String,
    mutating: bool,
    background_audit: bool,
    failure_policy: String,
    rules: Vec<Value>,
    match_conditions: Vec<Value>,
    settings: Value,
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
}

/// Every field of `value` survives a trip through `T` (a type may add its defaults).
fn round_trips<T: DeserializeOwned + Serialize>(value: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let lost: Vec<Value> = json_patch::diff(value, &back)
        .0
        .iter()
        .map(|op| serde_json::to_value(op).unwrap())
        .filter(|op| op["op"] != "add")
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fields lost or changed by the typed form: {}",
            Value::Array(lost)
        ))
    }
}

fn check(object: &Value) -> Result<(), String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    match kind {
        "Namespace" => round_trips::<Namespace>(object),
        "ServiceAccount" => round_trips::<ServiceAccount>(object),
        "Secret" => round_trips::<Secret>(object),
        "ClusterRole" => round_trips::<ClusterRole>(object),
        "ClusterRoleBinding" => round_trips::<ClusterRoleBinding>(object),
        "Deployment" => round_trips::<Deployment>(object),
        "Job" => round_trips::<Job>(object),
        "CronJob" => round_trips::<CronJob>(object),
        "Pod" => round_trips::<Pod>(object),
        "CustomResourceDefinition" => round_trips::<CustomResourceDefinition>(object),
        "OrasCache" => round_trips::<OrasCache>(object),
        "ClusterAdmissionPolicy" | "AdmissionPolicy" => round_trips::<KubewardenPolicy>(object),
        other => Err(format!(
            "no typed form known for kind {other:?}: add it to this test"
        )),
    }
}

#[test]
fn every_example_object_has_its_typed_form_without_unknown_fields() {
    let mut files = Vec::new();
    yaml_files(&workspace::root().join("examples"), &mut files);
    files.sort();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = match serde_yaml::Value::deserialize(document) {
                Ok(value) => value,
                Err(error) => {
                    failures.push(format!("{}: not YAML: {error}", file.display()));
                    continue;
                }
            };
            if value.is_null() {
                continue;
            }
            let object: Value = serde_json::to_value(value).unwrap();
            checked += 1;
            if let Err(problem) = check(&object) {
                failures.push(format!(
                    "{} ({} {}): {problem}",
                    file.display(),
                    object["kind"],
                    object["metadata"]["name"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 10,
        "only {checked} objects found under examples/"
    );
}

#[test]
fn a_misspelt_field_is_caught() {
    let job: Value = serde_json::from_str(r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"backofLimit":1,"template":{"spec":{"containers":[]}}}}"#).unwrap();
    let problem = check(&job).unwrap_err();
    assert!(problem.contains("backofLimit"), "{problem}");
}
