//! The PodDisruptionBudget of a cache with several registry pods: a node drain or a
//! cluster upgrade evicts them one at a time, so the cache keeps serving.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_meta, selector_labels};
use crate::crd::OrasCache;

/// Whether the cache gets a PodDisruptionBudget: more than one registry pod (one alone
/// could never be evicted under `maxUnavailable: 0`, and under `1` it gains nothing).
pub fn wanted(cache: &OrasCache) -> bool {
    super::deployment::wanted(cache) && cache.spec.replicas > 1
}

/// At most one registry pod of the cache evicted at a time.
pub fn pod_disruption_budget(cache: &OrasCache, owner: OwnerReference) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owned_meta(cache, owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cache)),
                ..Default::default()
            }),
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

    #[test]
    fn one_pod_at_a_time_of_this_cache() {
        let c = cache(json!({"replicas": 2, "storage": {"s3": {"bucket": "artifacts"}}}));
        let pdb = serde_json::to_value(pod_disruption_budget(
            &c,
            c.controller_owner_ref(&()).unwrap(),
        ))
        .unwrap();
        assert_eq!(pdb["metadata"]["name"], "oras");
        assert_eq!(pdb["metadata"]["namespace"], "workflows");
        assert_eq!(pdb["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            pdb["spec"],
            json!({"maxUnavailable": 1, "selector": {"matchLabels": {
                "app.kubernetes.io/instance": "oras", "app.kubernetes.io/name": "oras-cache"}}})
        );
    }

    #[test]
    fn only_several_pods_get_a_budget() {
        assert!(!wanted(&cache(json!({}))));
        assert!(!wanted(&cache(
            json!({"storage": {"s3": {"bucket": "artifacts"}}})
        )));
        assert!(wanted(&cache(
            json!({"replicas": 2, "storage": {"s3": {"bucket": "artifacts"}}})
        )));
    }
}
