//! Policy settings, as written under `settings:` in a ClusterAdmissionPolicy.

use std::collections::BTreeMap;

use kubewarden_policy_sdk::settings::Validatable;
use serde::{Deserialize, Serialize};

use crate::names::{check_dns_label, check_dns_subdomain, check_image};
use crate::quantity::check_quantity;
use crate::reference::check_registry_host;

/// Image of the agent containers unless the `oras-container` annotation names another:
/// `ORAS_POLICY_DEFAULT_AGENT_IMAGE` when the policy is built (`make release` pins the
/// agent digest it pushed), else the project's agent image of this version.
pub const DEFAULT_AGENT_IMAGE: &str = match option_env!("ORAS_POLICY_DEFAULT_AGENT_IMAGE") {
    Some(image) => image,
    None => concat!(
        "ghcr.io/converged-computing/oras-operator-rs/oras-agent:",
        env!("CARGO_PKG_VERSION")
    ),
};
pub const DEFAULT_CACHE: &str = "oras";
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
const RESOURCE_NAMES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Image of the injected `oras-init` and `oras` containers.
    pub agent_image: String,
    /// OrasCache used when a pod does not name one with `oras-cache`.
    pub default_cache: String,
    /// Cluster DNS domain used to build the cache's Service address.
    pub cluster_domain: String,
    /// `registry` hosts reached over plain HTTP instead of HTTPS.
    pub insecure_registries: Vec<String>,
    /// When not empty, the only hosts the `registry` annotation may name.
    pub allowed_registries: Vec<String>,
    /// Requests and limits of the injected agent containers.
    pub agent_resources: AgentResources,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentResources {
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            agent_image: DEFAULT_AGENT_IMAGE.to_string(),
            default_cache: DEFAULT_CACHE.to_string(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            insecure_registries: Vec::new(),
            allowed_registries: Vec::new(),
            agent_resources: AgentResources::default(),
        }
    }
}

impl Default for AgentResources {
    fn default() -> Self {
        let pairs = |items: &[(&str, &str)]| {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Self {
            requests: pairs(&[("cpu", "10m"), ("memory", "32Mi")]),
            limits: pairs(&[("memory", "256Mi")]),
        }
    }
}

impl Settings {
    /// Whether the `registry` annotation may name `host`.
    pub fn allows_registry(&self, host: &str) -> bool {
        self.allowed_registries.is_empty() || self.allowed_registries.iter().any(|a| a == host)
    }

    /// Whether `host` is reached over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure_registries.iter().any(|a| a == host)
    }
}

impl Validatable for Settings {
    fn validate(&self) -> Result<(), String> {
        check_image(&self.agent_image).map_err(|e| field("agentImage", &self.agent_image, &e))?;
        check_dns_label(&self.default_cache)
            .map_err(|e| field("defaultCache", &self.default_cache, &e))?;
        check_dns_subdomain(&self.cluster_domain)
            .map_err(|e| field("clusterDomain", &self.cluster_domain, &e))?;
        for (name, list) in [
            ("insecureRegistries", &self.insecure_registries),
            ("allowedRegistries", &self.allowed_registries),
        ] {
            for host in list {
                check_registry_host(host).map_err(|e| field(name, host, &e))?;
            }
        }
        for (name, quantities) in [
            ("agentResources.requests", &self.agent_resources.requests),
            ("agentResources.limits", &self.agent_resources.limits),
        ] {
            for (resource, quantity) in quantities {
                if !RESOURCE_NAMES.contains(&resource.as_str()) {
                    return Err(format!(
                        "{name}: unknown resource {resource:?}; expected one of {}",
                        RESOURCE_NAMES.join(", ")
                    ));
                }
                check_quantity(quantity).map_err(|e| format!("{name}.{resource}: {e}"))?;
            }
        }
        Ok(())
    }
}

fn field(name: &str, value: &str, problem: &str) -> String {
    format!("{name} {value:?} {problem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Settings, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_settings_take_the_documented_defaults() {
        let settings = parse("{}").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.default_cache, "oras");
        assert_eq!(settings.cluster_domain, "cluster.local");
        assert!(
            settings
                .agent_image
                .ends_with(&format!(":{}", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(settings.agent_resources.requests["cpu"], "10m");
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn keys_are_camel_case_and_unknown_keys_are_refused() {
        let settings =
            parse(r#"{"defaultCache":"cache","insecureRegistries":["r:5000"]}"#).unwrap();
        assert_eq!(settings.default_cache, "cache");
        assert!(settings.is_insecure("r:5000"));
        let error = parse(r#"{"default_cache":"x"}"#).unwrap_err();
        assert!(error.contains("unknown field `default_cache`"), "{error}");
    }

    #[test]
    fn allowed_registries_empty_means_any() {
        let mut settings = Settings::default();
        assert!(settings.allows_registry("anything:1"));
        settings.allowed_registries = vec!["ghcr.io".into()];
        assert!(settings.allows_registry("ghcr.io"));
        assert!(!settings.allows_registry("docker.io"));
    }

    #[test]
    fn bad_values_are_named_in_the_message() {
        let cases = [
            (r#"{"agentImage":""}"#, "agentImage \"\" is empty"),
            (
                r#"{"defaultCache":"Bad_Name"}"#,
                "defaultCache \"Bad_Name\"",
            ),
            (r#"{"clusterDomain":"a..b"}"#, "clusterDomain \"a..b\""),
            (
                r#"{"insecureRegistries":["http://r"]}"#,
                "insecureRegistries \"http://r\"",
            ),
            (
                r#"{"allowedRegistries":["r:99999"]}"#,
                "allowedRegistries \"r:99999\"",
            ),
            (
                r#"{"agentResources":{"requests":{"cpu":"lots"}}}"#,
                "agentResources.requests.cpu: \"lots\"",
            ),
            (
                r#"{"agentResources":{"limits":{"gpu":"1"}}}"#,
                "agentResources.limits: unknown resource \"gpu\"",
            ),
        ];
        for (json, expected) in cases {
            let message = parse(json).unwrap().validate().unwrap_err();
            assert!(message.starts_with(expected), "{json}: {message}");
        }
    }
}
