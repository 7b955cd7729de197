//! The committed manifests agree with the code: the CRD is what `crdgen` prints, the
//! example caches are valid, and the install manifests have what the docs promise.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use oras_controller::OrasCache;
use oras_controller::builders;
use serde::Deserialize;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn documents(path: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(examples().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn the_committed_crd_is_what_crdgen_prints() {
    let committed = std::fs::read_to_string(examples().join("dist/01-crd.yaml")).unwrap();
    let generated = oras_controller::crd::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "examples/dist/01-crd.yaml differs from crdgen's output; regenerate it with\n  \
         cargo run -p oras-controller --bin crdgen > examples/dist/01-crd.yaml"
    );
}

#[test]
fn every_example_cache_is_valid() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(examples().join("cache")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut cache: OrasCache =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        cache.metadata.namespace = Some("default".into());
        assert_eq!(builders::validate(&cache), Ok(()), "{name}");
        seen.push((name, cache));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "oras-cache-external.yaml",
            "oras-cache-persistent.yaml",
            "oras-cache-private.yaml",
            "oras-cache-retention.yaml",
            "oras-cache-s3.yaml",
            "oras-cache.yaml"
        ]
    );
    assert!(!seen[0].1.spec.deploy);
    assert!(seen[1].1.spec.storage.size.is_some());
    let private = &seen[2].1.spec;
    assert!(private.auth.enabled);
    assert!(private.access.network_policy);
    assert_eq!(private.access.namespaces, ["analysis"]);
    assert_eq!(
        private
            .access
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_labels["team"],
        "physics"
    );
    let retention = seen[3].1.spec.retention.as_ref().unwrap();
    assert_eq!(
        (retention.keep_last, retention.max_age.as_deref()),
        (Some(5), Some("7d"))
    );
    assert_eq!(retention.schedule, "30 2 * * *");
    assert_eq!(
        retention
            .garbage_collect
            .as_ref()
            .map(|g| g.schedule.as_str()),
        Some("30 3 * * *")
    );
    let s3 = &seen[4].1.spec;
    assert_eq!(s3.replicas, 3);
    let bucket = s3.storage.s3.as_ref().unwrap();
    assert_eq!(bucket.secret_name.as_deref(), Some("oras-s3"));
    assert!(bucket.insecure && bucket.force_path_style);
    assert!(builders::deployment::wanted(&seen[4].1));
    assert!(builders::disruption::wanted(&seen[4].1));
    assert_eq!(seen[5].1.spec, oras_controller::OrasCacheSpec::default());
}

#[test]
fn the_deployment_has_probes_and_the_restricted_profile() {
    let docs = documents("dist/03-deployment.yaml");
    let deployment: Deployment = serde_yaml::from_value(docs[0].clone()).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("oras-controller"));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let c = &pod.containers[0];
    let ready = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    let live = c
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    // The gate of caches with auth is the controller's own image.
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&format!("--gate-image={}", c.image.as_deref().unwrap())),
        "{:?}",
        c.args
    );
    // The prune CronJobs run the agent of the same release.
    let agent = c
        .image
        .as_deref()
        .unwrap()
        .replace("oras-controller", "oras-agent");
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&format!("--agent-image={agent}")),
        "{:?}",
        c.args
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
}

#[test]
fn rbac_grants_only_what_the_controller_uses() {
    let docs = documents("dist/02-rbac.yaml");
    let role: ClusterRole = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .map(|d| serde_yaml::from_value(d.clone()).unwrap())
        .unwrap();
    let mut grants: Vec<String> = role
        .rules
        .unwrap()
        .iter()
        .flat_map(|rule| {
            let group = rule.api_groups.as_ref().unwrap()[0].clone();
            rule.resources
                .as_ref()
                .unwrap()
                .iter()
                .flat_map(move |res| {
                    let group = group.clone();
                    rule.verbs
                        .iter()
                        .map(move |verb| format!("{group}/{res}:{verb}"))
                })
        })
        .collect();
    grants.sort();
    let mut expected = vec![
        "cache.converged-computing.github.io/orascaches:get",
        "cache.converged-computing.github.io/orascaches:list",
        "cache.converged-computing.github.io/orascaches:watch",
        "cache.converged-computing.github.io/orascaches/status:patch",
        "apps/statefulsets:get",
        "apps/statefulsets:list",
        "apps/statefulsets:watch",
        "apps/statefulsets:create",
        "apps/statefulsets:patch",
        "apps/statefulsets:delete",
        "apps/deployments:get",
        "apps/deployments:list",
        "apps/deployments:watch",
        "apps/deployments:create",
        "apps/deployments:patch",
        "apps/deployments:delete",
        "policy/poddisruptionbudgets:get",
        "policy/poddisruptionbudgets:list",
        "policy/poddisruptionbudgets:watch",
        "policy/poddisruptionbudgets:create",
        "policy/poddisruptionbudgets:patch",
        "policy/poddisruptionbudgets:delete",
        "/services:get",
        "/services:list",
        "/services:watch",
        "/services:create",
        "/services:patch",
        "/services:delete",
        "networking.k8s.io/networkpolicies:get",
        "networking.k8s.io/networkpolicies:list",
        "networking.k8s.io/networkpolicies:watch",
        "networking.k8s.io/networkpolicies:create",
        "networking.k8s.io/networkpolicies:patch",
        "networking.k8s.io/networkpolicies:delete",
        "/secrets:get",
        "/secrets:list",
        "/secrets:watch",
        "/secrets:create",
        "/secrets:patch",
        "batch/cronjobs:get",
        "batch/cronjobs:list",
        "batch/cronjobs:watch",
        "batch/cronjobs:create",
        "batch/cronjobs:patch",
        "batch/cronjobs:delete",
        "/pods:list",
        "/pods:watch",
        "events.k8s.io/events:create",
        "events.k8s.io/events:patch",
    ];
    expected.sort();
    assert_eq!(grants, expected);
}

#[test]
fn the_install_manifests_use_one_namespace() {
    for file in ["dist/02-rbac.yaml", "dist/03-deployment.yaml"] {
        for doc in documents(file) {
            if let Some(ns) = doc["metadata"].get("namespace") {
                assert_eq!(ns, "oras-system", "{file}");
            }
        }
    }
    let ns = &documents("dist/00-namespace.yaml")[0];
    assert_eq!(ns["metadata"]["name"], "oras-system");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}
