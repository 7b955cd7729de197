//! The registry of a cache on S3: a Deployment. Its pods keep nothing of their own (the
//! artifacts are in the bucket, uploads in flight too), so they need no stable identity
//! and no volume claim, which is what a StatefulSet is for; a Deployment rolls them over
//! with a surge, so a new pod serves before an old one stops, and runs `spec.replicas`
//! of them spread over the nodes.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{InvalidSpec, owned_meta, selector_labels};
use crate::crd::OrasCache;

/// The node label the registry pods are spread over.
pub const SPREAD_KEY: &str = "kubernetes.io/hostname";

/// Whether the cache's registry is a Deployment (shared storage) rather than a
/// StatefulSet (a volume per pod).
pub fn wanted(cache: &OrasCache) -> bool {
    cache.spec.storage.s3.is_some()
}

/// `spec.replicas`: at least one, and more than one only on shared storage.
pub fn validate(cache: &OrasCache) -> Result<(), InvalidSpec> {
    let replicas = cache.spec.replicas;
    if replicas < 1 {
        return Err(InvalidSpec(format!(
            "spec.replicas {replicas} must be at least 1 (deploy: false runs no registry)"
        )));
    }
    if replicas > 1 && !wanted(cache) {
        return Err(InvalidSpec(format!(
            "spec.replicas {replicas} needs shared storage: set spec.storage.s3. With a \
             volume per registry pod, each pod would serve only the artifacts pushed to it"
        )));
    }
    Ok(())
}

/// The Deployment of `template`'s pods: `spec.replicas` of them, spread over the nodes
/// where possible, updated one new pod at a time with none stopped before its successor
/// is ready.
pub fn deployment(
    cache: &OrasCache,
    owner: OwnerReference,
    mut template: PodTemplateSpec,
) -> Deployment {
    if let Some(pod) = template.spec.as_mut() {
        pod.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: SPREAD_KEY.into(),
            // Never unschedulable for want of nodes: a one-node cluster runs them all.
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cache)),
                ..Default::default()
            }),
            // Spread each revision's pods on its own: during a rollout, the pods about
            // to go do not count.
            match_label_keys: Some(vec!["pod-template-hash".into()]),
            ..Default::default()
        }]);
    }
    Deployment {
        metadata: owned_meta(cache, owner),
        spec: Some(DeploymentSpec {
            replicas: Some(cache.spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(cache)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template,
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::{Value, json};

    fn cache(spec: Value) -> OrasCache {
        let mut cache = OrasCache::new("oras", serde_json::from_value(spec).unwrap());
        cache.metadata.namespace = Some("workflows".into());
        cache.metadata.uid = Some("0b5c6a9e-1111-2222-3333-444455556666".into());
        cache
    }

    fn built(spec: Value) -> Value {
        let c = cache(spec);
        let template = super::super::pod_template(&c);
        serde_json::to_value(deployment(
            &c,
            c.controller_owner_ref(&()).unwrap(),
            template,
        ))
        .unwrap()
    }

    #[test]
    fn replicas_roll_with_a_surge_and_spread_over_the_nodes() {
        let d = built(json!({"replicas": 3, "storage": {"s3": {"bucket": "artifacts"}}}));
        assert_eq!(d["metadata"]["name"], "oras");
        assert_eq!(d["metadata"]["ownerReferences"][0]["kind"], "OrasCache");
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 3);
        assert_eq!(
            spec["selector"]["matchLabels"],
            json!({"app.kubernetes.io/instance": "oras", "app.kubernetes.io/name": "oras-cache"})
        );
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        );
        assert_eq!(
            spec["template"]["spec"]["topologySpreadConstraints"],
            json!([{
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {
                    "app.kubernetes.io/instance": "oras", "app.kubernetes.io/name": "oras-cache"}},
                "matchLabelKeys": ["pod-template-hash"]
            }])
        );
        for (key, value) in spec["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&spec["template"]["metadata"]["labels"][key], value);
        }
    }

    #[test]
    fn the_pods_keep_nothing_and_read_the_bucket_and_the_shared_secret() {
        let d = built(
            json!({"replicas": 2, "storage": {"s3": {"bucket": "artifacts",
            "secretName": "s3-keys"}}}),
        );
        let pod = &d["spec"]["template"]["spec"];
        let volumes: Vec<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(volumes, ["tmp"], "no data volume");
        let registry = &pod["containers"][0];
        let env = registry["env"].as_array().unwrap();
        let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"REGISTRY_STORAGE"));
        assert!(!names.contains(&"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"));
        let http = env
            .iter()
            .find(|e| e["name"] == "REGISTRY_HTTP_SECRET")
            .unwrap();
        assert_eq!(
            http["valueFrom"]["secretKeyRef"],
            json!({"name": "oras-http-secret", "key": "REGISTRY_HTTP_SECRET", "optional": false})
        );
        assert!(
            env.iter()
                .filter(|e| e["name"].as_str().unwrap().contains("KEY"))
                .all(|e| e.get("value").is_none()),
            "keys only by reference: {env:?}"
        );
        assert_eq!(
            registry["securityContext"]["readOnlyRootFilesystem"], true,
            "the same restricted registry container"
        );
    }

    #[test]
    fn more_than_one_replica_needs_shared_storage() {
        assert_eq!(
            validate(&cache(json!({"replicas": 2}))).unwrap_err().0,
            "spec.replicas 2 needs shared storage: set spec.storage.s3. With a volume per \
             registry pod, each pod would serve only the artifacts pushed to it"
        );
        assert!(
            validate(&cache(json!({"replicas": 2, "storage": {"size": "1Gi"}})))
                .unwrap_err()
                .0
                .starts_with("spec.replicas 2 needs shared storage")
        );
        assert_eq!(
            validate(&cache(json!({"replicas": 0}))).unwrap_err().0,
            "spec.replicas 0 must be at least 1 (deploy: false runs no registry)"
        );
        assert_eq!(validate(&cache(json!({"replicas": 1}))), Ok(()));
        assert_eq!(
            validate(&cache(
                json!({"replicas": 5, "storage": {"s3": {"bucket": "artifacts"}}})
            )),
            Ok(())
        );
    }

    #[test]
    fn only_shared_storage_makes_a_deployment() {
        assert!(!wanted(&cache(json!({}))));
        assert!(!wanted(&cache(json!({"storage": {"size": "1Gi"}}))));
        assert!(wanted(&cache(
            json!({"storage": {"s3": {"bucket": "artifacts"}}})
        )));
    }
}
