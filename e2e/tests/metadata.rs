//! metadata.yml, artifacthub-pkg.yml and Cargo.toml tell one story.

use oras_e2e::workspace;
use serde_yaml::Value;

fn yaml(name: &str) -> Value {
    let text = std::fs::read_to_string(workspace::root().join(name)).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn crate_version() -> String {
    let text = std::fs::read_to_string(workspace::root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn metadata_declares_a_mutating_wapc_policy_without_background_audit() {
    let metadata = yaml("metadata.yml");
    assert_eq!(metadata["mutating"], Value::Bool(true));
    assert_eq!(metadata["executionMode"], Value::from("kubewarden-wapc"));
    assert_eq!(metadata["backgroundAudit"], Value::Bool(false));
    let annotations = &metadata["annotations"];
    for key in [
        "io.kubewarden.policy.title",
        "io.kubewarden.policy.description",
        "io.kubewarden.policy.version",
        "io.kubewarden.policy.url",
        "io.kubewarden.policy.source",
        "io.kubewarden.policy.license",
        "io.artifacthub.displayName",
        "io.artifacthub.resources",
        "io.artifacthub.keywords",
    ] {
        assert!(
            annotations[key].as_str().is_some_and(|v| !v.is_empty()),
            "metadata.yml lacks {key}"
        );
    }
}

#[test]
fn metadata_rules_cover_create_of_pods_jobs_and_cronjobs() {
    let metadata = yaml("metadata.yml");
    let mut covered = Vec::new();
    for rule in metadata["rules"].as_sequence().unwrap() {
        assert_eq!(
            rule["operations"],
            serde_yaml::from_str::<Value>("[CREATE]").unwrap()
        );
        for resource in rule["resources"].as_sequence().unwrap() {
            covered.push(resource.as_str().unwrap().to_string());
        }
    }
    covered.sort();
    assert_eq!(covered, ["cronjobs", "jobs", "pods"]);
}

#[test]
fn versions_agree_with_the_crate() {
    let version = crate_version();
    let metadata = yaml("metadata.yml");
    let package = yaml("artifacthub-pkg.yml");
    assert_eq!(
        metadata["annotations"]["io.kubewarden.policy.version"].as_str(),
        Some(version.as_str())
    );
    assert_eq!(package["version"].as_str(), Some(version.as_str()));
    let image = package["containersImages"][0]["image"].as_str().unwrap();
    assert!(image.ends_with(&format!(":v{version}")), "{image}");
    let policy_link = package["links"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "policy")
        .unwrap();
    assert!(
        policy_link["url"]
            .as_str()
            .unwrap()
            .contains(&format!("/v{version}/"))
    );
}

#[test]
fn artifacthub_repeats_the_metadata_rules_name_and_resources() {
    let metadata = yaml("metadata.yml");
    let package = yaml("artifacthub-pkg.yml");
    let annotations = &package["annotations"];
    let rules: Value =
        serde_yaml::from_str(annotations["kubewarden/rules"].as_str().unwrap()).unwrap();
    assert_eq!(rules, metadata["rules"]);
    assert_eq!(
        annotations["kubewarden/mutation"].as_str(),
        Some(metadata["mutating"].as_bool().unwrap().to_string().as_str())
    );
    assert_eq!(
        annotations["kubewarden/resources"],
        metadata["annotations"]["io.artifacthub.resources"]
    );
    assert_eq!(
        package["name"],
        metadata["annotations"]["io.kubewarden.policy.title"]
    );
    assert_eq!(
        package["displayName"],
        metadata["annotations"]["io.artifacthub.displayName"]
    );
    let oci = metadata["annotations"]["io.kubewarden.policy.ociUrl"]
        .as_str()
        .unwrap();
    assert!(
        package["containersImages"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with(oci)
    );
}
