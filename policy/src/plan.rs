//! Turns what the annotations ask for, the policy settings and the namespace into the
//! concrete plan of the injection: registry, references, image and flags.

use oras_contract::annotations as keys;
use oras_contract::pod::{CACHE_PORT, credentials_secret};

use crate::annotations::{OrasAnnotations, StepOptions};
use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `host[:port]` every reference is qualified with.
    pub registry: String,
    pub plain_http: bool,
    /// Fully qualified input references, in order.
    pub inputs: Vec<String>,
    /// Fully qualified output reference.
    pub output: Option<String>,
    /// The step's own choices, as the annotations say them.
    pub step: StepOptions,
    /// The in-namespace cache's generated credentials (`<cache>-credentials`), given to
    /// the agents as an optional Secret; unset when a `registry` annotation names
    /// another registry, which must never receive the cache's credentials.
    pub cache_credentials: Option<String>,
    pub agent_image: String,
}

impl Plan {
    pub fn new(
        annotations: &OrasAnnotations,
        settings: &Settings,
        namespace: &str,
    ) -> Result<Self, String> {
        let (registry, plain_http, cache_credentials) = match &annotations.registry {
            Some(host) => {
                if !settings.allows_registry(host) {
                    return Err(format!(
                        "annotation {}={host:?} names a registry outside the allowed list ({})",
                        keys::key(keys::REGISTRY),
                        settings.allowed_registries.join(", ")
                    ));
                }
                (host.clone(), settings.is_insecure(host), None)
            }
            None => {
                let cache = annotations
                    .cache
                    .as_deref()
                    .unwrap_or(&settings.default_cache);
                (
                    format!(
                        "{cache}.{namespace}.svc.{}:{CACHE_PORT}",
                        settings.cluster_domain
                    ),
                    true,
                    Some(credentials_secret(cache)),
                )
            }
        };
        if annotations.step.memoize && annotations.output.is_none() {
            return Err(format!(
                "annotation {}=\"true\" needs {}: memoization compares this run with the existing output",
                keys::key(keys::MEMOIZE),
                keys::key(keys::OUTPUT_URI)
            ));
        }
        Ok(Self {
            inputs: annotations
                .inputs
                .iter()
                .map(|r| r.qualified(&registry))
                .collect(),
            output: annotations.output.as_ref().map(|r| r.qualified(&registry)),
            registry,
            plain_http,
            step: annotations.step.clone(),
            cache_credentials,
            agent_image: annotations
                .agent_image
                .clone()
                .unwrap_or_else(|| settings.agent_image.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    fn asking(registry: Option<&str>, cache: Option<&str>) -> OrasAnnotations {
        OrasAnnotations {
            registry: registry.map(str::to_string),
            cache: cache.map(str::to_string),
            inputs: vec![Reference::parse("a/b:in").unwrap()],
            output: Some(Reference::parse("a/b").unwrap()),
            step: StepOptions {
                unpack: true,
                ..StepOptions::default()
            },
            ..OrasAnnotations::default()
        }
    }

    #[test]
    fn the_cache_is_reached_through_its_service_over_plain_http() {
        let plan = Plan::new(
            &asking(None, Some("orascache-sample")),
            &Settings::default(),
            "team",
        )
        .unwrap();
        assert_eq!(
            plan.registry,
            "orascache-sample.team.svc.cluster.local:5000"
        );
        assert!(plan.plain_http);
        assert_eq!(
            plan.inputs,
            ["orascache-sample.team.svc.cluster.local:5000/a/b:in"]
        );
        assert_eq!(
            plan.output.as_deref(),
            Some("orascache-sample.team.svc.cluster.local:5000/a/b:latest")
        );
        assert_eq!(
            plan.cache_credentials.as_deref(),
            Some("orascache-sample-credentials")
        );
    }

    #[test]
    fn another_registry_never_gets_the_caches_credentials() {
        let plan = Plan::new(
            &asking(Some("ghcr.io"), Some("oras")),
            &Settings::default(),
            "ns",
        )
        .unwrap();
        assert_eq!(plan.cache_credentials, None);
    }

    #[test]
    fn the_default_cache_and_cluster_domain_come_from_the_settings() {
        let settings = Settings {
            default_cache: "shared".into(),
            cluster_domain: "corp.internal".into(),
            ..Settings::default()
        };
        let plan = Plan::new(&asking(None, None), &settings, "ns").unwrap();
        assert_eq!(plan.registry, "shared.ns.svc.corp.internal:5000");
        assert_eq!(plan.agent_image, settings.agent_image);
    }

    #[test]
    fn a_registry_annotation_means_https_unless_listed_insecure() {
        let settings = Settings {
            insecure_registries: vec!["local:5000".into()],
            ..Settings::default()
        };
        let secure = Plan::new(&asking(Some("ghcr.io"), None), &settings, "ns").unwrap();
        assert_eq!(secure.registry, "ghcr.io");
        assert!(!secure.plain_http);
        assert_eq!(secure.inputs, ["ghcr.io/a/b:in"]);
        let insecure = Plan::new(&asking(Some("local:5000"), None), &settings, "ns").unwrap();
        assert!(insecure.plain_http);
    }

    #[test]
    fn registries_outside_the_allowed_list_are_refused() {
        let settings = Settings {
            allowed_registries: vec!["ghcr.io".into(), "quay.io".into()],
            ..Settings::default()
        };
        let message = Plan::new(&asking(Some("docker.io"), None), &settings, "ns").unwrap_err();
        assert_eq!(
            message,
            "annotation oras.converged-computing.github.io/registry=\"docker.io\" names a registry outside the allowed list (ghcr.io, quay.io)"
        );
        assert!(Plan::new(&asking(None, None), &settings, "ns").is_ok());
    }
}
