//! The Helm chart installs what `examples/dist/` installs.
//!
//! The chart's versions, its CRD and its default values (against `values.schema.json`);
//! then, with the real `helm` that `make tools` builds: `helm lint` passes, and the chart
//! rendered with default values gives exactly the objects of `examples/dist/` (the
//! Namespace aside: a release's namespace is made by `helm install --create-namespace`).

use std::process::Command;

use oras_e2e::workspace;
use serde::Deserialize;
use serde_json::{Value, json};

fn chart_file(name: &str) -> String {
    std::fs::read_to_string(workspace::root().join("charts/oras-operator").join(name)).unwrap()
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

fn schema() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&chart_file("values.schema.json")).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn default_values() -> Value {
    serde_json::to_value(
        serde_yaml::from_str::<serde_yaml::Value>(&chart_file("values.yaml")).unwrap(),
    )
    .unwrap()
}

#[test]
fn chart_versions_follow_the_crate() {
    let chart = &yaml_documents(&chart_file("Chart.yaml"))[0];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], version);
    assert_eq!(chart["appVersion"], version);
}

#[test]
fn chart_crd_is_the_generated_crd() {
    let dist =
        std::fs::read_to_string(workspace::root().join("examples/dist/01-crd.yaml")).unwrap();
    assert_eq!(
        chart_file("crds/orascaches.yaml"),
        dist,
        "copy examples/dist/01-crd.yaml to charts/oras-operator/crds/orascaches.yaml"
    );
}

#[test]
fn default_values_satisfy_the_schema_and_bad_ones_do_not() {
    let validator = schema();
    let values = default_values();
    let errors: Vec<String> = validator
        .iter_errors(&values)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut bad = values.clone();
    bad["image"]["pullPolicy"] = json!("Sometimes");
    assert!(!validator.is_valid(&bad));
    let mut unknown = values.clone();
    unknown["replicas"] = json!(3);
    assert!(!validator.is_valid(&unknown));
    let mut port = values;
    port["metrics"]["port"] = json!(70000);
    assert!(!validator.is_valid(&port));
}

/// The real helm with `args`, in the workspace root; stdout, or a panic with its stderr.
fn helm(args: &[&str]) -> String {
    let helm = oras_testkit::tools::tool("helm").unwrap_or_else(|e| panic!("{e}"));
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(helm)
        .current_dir(workspace::root())
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .args(args)
        .output()
        .expect("run helm");
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn helm_lints_the_chart() {
    let report = helm(&["lint", "--strict", "charts/oras-operator"]);
    assert!(report.contains("0 chart(s) failed"), "{report}");
}

#[test]
fn rendered_chart_equals_the_dist_manifests() {
    let output = helm(&[
        "template",
        "oras-operator",
        "charts/oras-operator",
        "--namespace",
        "oras-system",
        "--include-crds",
    ]);
    let mut rendered = yaml_documents(&output);
    let mut dist = Vec::new();
    for name in ["01-crd.yaml", "02-rbac.yaml", "03-deployment.yaml"] {
        dist.extend(yaml_documents(
            &std::fs::read_to_string(workspace::root().join("examples/dist").join(name)).unwrap(),
        ));
    }
    let key = |o: &Value| format!("{}/{}", o["kind"], o["metadata"]["name"]);
    rendered.sort_by_key(key);
    dist.sort_by_key(key);
    assert_eq!(rendered, dist);
}

#[test]
fn the_gate_runs_the_controller_image_also_when_pinned_by_digest() {
    let digest = format!("sha256:{}", "7".repeat(64));
    let output = helm(&[
        "template",
        "oras-operator",
        "charts/oras-operator",
        "--set",
        &format!("image.digest={digest}"),
        "--set",
        "image.repository=registry.example/oras-controller",
    ]);
    let deployment = yaml_documents(&output)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let image = format!("registry.example/oras-controller@{digest}");
    assert_eq!(container["image"], image);
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("--gate-image={image}"))),
        "{}",
        container["args"]
    );
    // The agent image of the prune CronJobs is pinned the same way when given.
    let agent_digest = format!("sha256:{}", "b".repeat(64));
    let output = helm(&[
        "template",
        "oras-operator",
        "charts/oras-operator",
        "--set",
        &format!("agentImage.digest={agent_digest}"),
    ]);
    let deployment = yaml_documents(&output)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array().unwrap().contains(&json!(format!(
            "--agent-image=ghcr.io/converged-computing/oras-operator-rs/oras-agent@{agent_digest}"
        ))),
        "{args}"
    );
}
