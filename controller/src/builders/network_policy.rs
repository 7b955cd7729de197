//! The NetworkPolicy `<cache>`: ingress to the registry pod only from the pods of the
//! cache's namespace and of the namespaces `spec.access` names, on the registry port.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use oras_contract::kubernetes::is_dns1123_label;

use super::{InvalidSpec, owned_meta, selector_labels};
use crate::crd::{NamespaceSelector, OrasCache};

/// The label every namespace carries with its own name (set by the API server).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Operators of a selector requirement.
const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Checks `spec.access`: namespace names and the selector's requirements.
pub fn validate(cache: &OrasCache) -> Result<(), InvalidSpec> {
    let access = &cache.spec.access;
    for (index, namespace) in access.namespaces.iter().enumerate() {
        if !is_dns1123_label(namespace) {
            return Err(InvalidSpec(format!(
                "spec.access.namespaces[{index}] {namespace:?} is not a namespace name"
            )));
        }
    }
    let Some(selector) = &access.namespace_selector else {
        return Ok(());
    };
    for (index, requirement) in selector.match_expressions.iter().enumerate() {
        let field = format!("spec.access.namespaceSelector.matchExpressions[{index}]");
        if requirement.key.trim().is_empty() {
            return Err(InvalidSpec(format!("{field}.key must not be empty")));
        }
        let operator = requirement.operator.as_str();
        if !OPERATORS.contains(&operator) {
            return Err(InvalidSpec(format!(
                "{field}.operator {operator:?} is not one of {}",
                OPERATORS.join(", ")
            )));
        }
        let needs_values = matches!(operator, "In" | "NotIn");
        if needs_values && requirement.values.is_empty() {
            return Err(InvalidSpec(format!(
                "{field}.values must not be empty with operator {operator}"
            )));
        }
        if !needs_values && !requirement.values.is_empty() {
            return Err(InvalidSpec(format!(
                "{field}.values {:?} must be empty with operator {operator}",
                requirement.values
            )));
        }
    }
    Ok(())
}

/// The NetworkPolicy named after the cache: it selects the cache's registry pod and
/// admits, on the registry port only, the pods of the cache's own namespace, of every
/// namespace in `spec.access.namespaces`, and of the namespaces `namespaceSelector`
/// selects. Everything else is refused where the network plugin enforces it.
pub fn network_policy(cache: &OrasCache, owner: OwnerReference) -> NetworkPolicy {
    let access = &cache.spec.access;
    // A peer with only an empty podSelector: every pod of the policy's own namespace.
    let mut from = vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    }];
    from.extend(access.namespaces.iter().map(|namespace| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                namespace.clone(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }));
    if let Some(selector) = &access.namespace_selector {
        from.push(NetworkPolicyPeer {
            namespace_selector: Some(label_selector(selector)),
            ..Default::default()
        });
    }
    NetworkPolicy {
        metadata: owned_meta(cache, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cache)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(
                std::iter::once(NetworkPolicyIngressRule {
                    from: Some(from),
                    ports: Some(vec![NetworkPolicyPort {
                        protocol: Some("TCP".into()),
                        port: Some(IntOrString::Int(cache.spec.port)),
                        ..Default::default()
                    }]),
                })
                .chain(super::collection::ingress_rule(cache))
                .collect(),
            ),
            ..Default::default()
        }),
    }
}

fn label_selector(selector: &NamespaceSelector) -> LabelSelector {
    LabelSelector {
        match_labels: (!selector.match_labels.is_empty()).then(|| selector.match_labels.clone()),
        match_expressions: (!selector.match_expressions.is_empty()).then(|| {
            selector
                .match_expressions
                .iter()
                .map(|r| LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.clone(),
                    values: (!r.values.is_empty()).then(|| r.values.clone()),
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cache(spec: serde_json::Value) -> OrasCache {
        let mut cache = OrasCache::new("oras", serde_json::from_value(spec).unwrap());
        cache.metadata.namespace = Some("workflows".into());
        cache.metadata.uid = Some("0b5c6a9e-1111-2222-3333-444455556666".into());
        cache
    }

    fn policy(spec: serde_json::Value) -> serde_json::Value {
        let cache = cache(spec);
        let owner = kube::Resource::controller_owner_ref(&cache, &()).unwrap();
        serde_json::to_value(network_policy(&cache, owner)).unwrap()
    }

    #[test]
    fn by_default_only_the_caches_namespace_reaches_the_registry_port() {
        let policy = policy(json!({}));
        assert_eq!(policy["metadata"]["name"], "oras");
        assert_eq!(policy["metadata"]["namespace"], "workflows");
        assert_eq!(
            policy["metadata"]["ownerReferences"][0]["uid"],
            "0b5c6a9e-1111-2222-3333-444455556666"
        );
        assert_eq!(
            policy["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "oras-controller"
        );
        assert_eq!(
            policy["spec"],
            json!({
                "podSelector": {"matchLabels": {
                    "app.kubernetes.io/instance": "oras",
                    "app.kubernetes.io/name": "oras-cache"
                }},
                "policyTypes": ["Ingress"],
                "ingress": [{
                    "from": [{"podSelector": {}}],
                    "ports": [{"protocol": "TCP", "port": 5000}]
                }]
            })
        );
    }

    #[test]
    fn named_namespaces_and_the_selector_are_admitted_on_the_cache_port() {
        let policy = policy(json!({
            "port": 6000,
            "access": {
                "namespaces": ["analysis", "viz"],
                "namespaceSelector": {
                    "matchLabels": {"team": "physics"},
                    "matchExpressions": [{"key": "tier", "operator": "Exists"}]
                }
            }
        }));
        let rule = &policy["spec"]["ingress"][0];
        assert_eq!(
            rule["from"],
            json!([
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "analysis"}}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "viz"}}},
                {"namespaceSelector": {
                    "matchLabels": {"team": "physics"},
                    "matchExpressions": [{"key": "tier", "operator": "Exists"}]
                }}
            ])
        );
        assert_eq!(rule["ports"], json!([{"protocol": "TCP", "port": 6000}]));
    }

    #[test]
    fn an_empty_selector_admits_every_namespace() {
        let policy = policy(json!({"access": {"namespaceSelector": {}}}));
        assert_eq!(
            policy["spec"]["ingress"][0]["from"][1],
            json!({"namespaceSelector": {}})
        );
    }

    #[test]
    fn validation_names_the_field_and_the_value() {
        let cases = [
            (
                json!({"namespaces": ["ok", "Not_A_Namespace"]}),
                "spec.access.namespaces[1] \"Not_A_Namespace\" is not a namespace name",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}}),
                "spec.access.namespaceSelector.matchExpressions[0].operator \"Equals\" is not one of In, NotIn, Exists, DoesNotExist",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
                "spec.access.namespaceSelector.matchExpressions[0].values must not be empty with operator In",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}),
                "spec.access.namespaceSelector.matchExpressions[0].values [\"x\"] must be empty with operator Exists",
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": " ", "operator": "Exists"}]}}),
                "spec.access.namespaceSelector.matchExpressions[0].key must not be empty",
            ),
        ];
        for (access, expected) in cases {
            let err = validate(&cache(json!({ "access": access }))).unwrap_err();
            assert_eq!(err.0, expected);
        }
        assert_eq!(
            validate(&cache(json!({"access": {
                "namespaces": ["analysis"],
                "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}
            }}))),
            Ok(())
        );
    }
}
