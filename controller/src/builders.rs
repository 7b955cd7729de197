//! Pure functions from an `OrasCache` to the objects the controller applies and the
//! status it writes. No client here: everything is unit-tested on plain values.
//!
//! The registry's pod template, StatefulSet and Service are built here; each further
//! object has its own module: [`network_policy`], [`credentials`] (the generated
//! Secrets), [`auth`] (the registry pod behind the gate), [`s3`] (storage in a bucket),
//! [`deployment`] (the registry of a cache on S3, with replicas), [`disruption`] (its
//! PodDisruptionBudget) and [`http_secret`] (the HTTP secret its pods share).

pub mod agent_job;
pub mod auth;
pub mod collection;
pub mod credentials;
pub mod deployment;
pub mod disruption;
pub mod http_secret;
pub mod network_policy;
pub mod retention;
pub mod s3;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use oras_contract::kubernetes::{is_dns1035_label, is_dns1123_subdomain, is_quantity};

use crate::crd::{CONDITION_READY, CacheCondition, OrasCache, OrasCacheStatus, Quantity};

/// The field manager of every server-side apply this controller makes.
pub const FIELD_MANAGER: &str = "oras-controller";
/// Label value of `app.kubernetes.io/name` on everything a cache owns.
pub const APP_NAME: &str = "oras-cache";
/// Label value of `app.kubernetes.io/managed-by`; the controller watches only objects
/// carrying it.
pub const MANAGED_BY: &str = "oras-controller";
/// Label selector matching every object this controller makes.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=oras-controller";
/// Name of the registry container and of its port.
pub const REGISTRY_CONTAINER: &str = "registry";
/// Key, in the `secrets.registryHttp` Secret, of the registry's HTTP secret.
pub const REGISTRY_HTTP_SECRET_KEY: &str = "REGISTRY_HTTP_SECRET";
/// Where the registry keeps its blobs and manifests.
pub const DATA_PATH: &str = "/var/lib/registry";
/// Name of the data volume (and of the volume claim template with persistent storage).
pub const DATA_VOLUME: &str = "data";
/// UID and GID the registry runs as: the image's default is root, which the restricted
/// Pod Security profile forbids.
pub const REGISTRY_UID: i64 = 1000;

/// Longest cache name: the StatefulSet's pods carry the label
/// `controller-revision-hash=<name>-<10 character hash>`, and labels stop at 63.
pub const MAX_NAME_LEN: usize = 52;

/// Why an OrasCache cannot be turned into objects. The message names the field and the
/// value; the controller reports it in the status and waits for the object to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);

/// Labels on the StatefulSet, its pods and the Service.
pub fn labels(cache: &OrasCache) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cache);
    labels.insert("app.kubernetes.io/component".into(), "registry".into());
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    labels
}

/// The labels that select one cache's registry pod: unique per cache in a namespace.
pub fn selector_labels(cache: &OrasCache) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), APP_NAME.to_string()),
        ("app.kubernetes.io/instance".to_string(), cache.name_any()),
    ])
}

/// `host:port` of the cache's Service: what the admission policy gives the agents.
pub fn endpoint(cache: &OrasCache, cluster_domain: &str) -> String {
    format!(
        "{}.{}.svc.{}:{}",
        cache.name_any(),
        cache.namespace().unwrap_or_default(),
        cluster_domain,
        cache.spec.port
    )
}

/// Checks what the API server's schema cannot: a name that fits the objects made from it,
/// quantities, Secret names and the storage combination.
pub fn validate(cache: &OrasCache) -> Result<(), InvalidSpec> {
    let name = cache.name_any();
    if !is_dns1035_label(&name) || name.len() > MAX_NAME_LEN {
        return Err(InvalidSpec(format!(
            "metadata.name {name:?} must be at most {MAX_NAME_LEN} characters of lower case \
             letters, digits and '-', starting with a letter and ending with a letter or digit \
             (it names the registry's Service and StatefulSet)"
        )));
    }
    let spec = &cache.spec;
    if spec.image.trim().is_empty() || spec.image.chars().any(char::is_whitespace) {
        return Err(InvalidSpec(format!(
            "spec.image {:?} is not an image reference",
            spec.image
        )));
    }
    if !(1..=65535).contains(&spec.port) {
        return Err(InvalidSpec(format!(
            "spec.port {} is not a port number (1-65535)",
            spec.port
        )));
    }
    for (field, secret) in [
        ("spec.secrets.orasEnv", &spec.secrets.oras_env),
        ("spec.secrets.registryHttp", &spec.secrets.registry_http),
    ] {
        if let Some(secret) = secret
            && !is_dns1123_subdomain(secret)
        {
            return Err(InvalidSpec(format!(
                "{field} {secret:?} is not a Secret name"
            )));
        }
    }
    if let Some(size) = &spec.storage.size {
        check_quantity("spec.storage.size", size)?;
    } else if let Some(class) = &spec.storage.storage_class_name {
        return Err(InvalidSpec(format!(
            "spec.storage.storageClassName {class:?} needs spec.storage.size: without a size \
             the registry uses an emptyDir"
        )));
    }
    for (kind, map) in [
        ("requests", &spec.resources.requests),
        ("limits", &spec.resources.limits),
    ] {
        for (resource, quantity) in map {
            check_quantity(&format!("spec.resources.{kind}.{resource}"), quantity)?;
        }
    }
    s3::validate(cache)?;
    deployment::validate(cache)?;
    network_policy::validate(cache)?;
    auth::validate(cache)?;
    retention::validate(cache)?;
    Ok(())
}

/// The registry's StatefulSet (a cache on a volume): one replica, its own selector, and
/// an emptyDir or a volume claim template for the data.
pub fn statefulset(cache: &OrasCache, owner: OwnerReference) -> StatefulSet {
    statefulset_of(cache, owner, pod_template(cache))
}

/// The registry's environment: distribution's `REGISTRY_*` configuration. Its storage is
/// the data volume, or the bucket of `storage.s3`.
pub fn registry_env(cache: &OrasCache) -> Vec<EnvVar> {
    let spec = &cache.spec;
    let mut env = vec![env("REGISTRY_HTTP_ADDR", &format!(":{}", spec.port))];
    match &spec.storage.s3 {
        None => env.push(self::env(
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            DATA_PATH,
        )),
        Some(bucket) => env.extend(s3::registry_env(bucket)),
    }
    env.extend([
        self::env("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        // distribution 3 exports traces over OTLP by default and logs every failure.
        self::env("OTEL_TRACES_EXPORTER", "none"),
    ]);
    env.extend(http_secret::env_var(cache));
    env
}

/// The registry pod: probes on `GET /v2/`, the restricted security profile, a writable
/// `/tmp`, and the data volume unless the artifacts are in a bucket.
pub fn pod_template(cache: &OrasCache) -> PodTemplateSpec {
    let spec = &cache.spec;
    let on_volume = spec.storage.s3.is_none();
    let env = registry_env(cache);

    let probe = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/v2/".into()),
            port: IntOrString::String(REGISTRY_CONTAINER.into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    };

    let resources = if spec.resources.requests.is_empty() && spec.resources.limits.is_empty() {
        None
    } else {
        Some(ResourceRequirements {
            requests: non_empty(quantities(&spec.resources.requests)),
            limits: non_empty(quantities(&spec.resources.limits)),
            ..Default::default()
        })
    };

    let container = Container {
        name: REGISTRY_CONTAINER.into(),
        image: Some(spec.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some(REGISTRY_CONTAINER.into()),
            container_port: spec.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: Some(env),
        readiness_probe: Some(probe(5, 3)),
        liveness_probe: Some(probe(10, 6)),
        resources,
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..Default::default()
        }),
        volume_mounts: Some(
            on_volume
                .then(|| VolumeMount {
                    name: DATA_VOLUME.into(),
                    mount_path: DATA_PATH.into(),
                    ..Default::default()
                })
                .into_iter()
                .chain([VolumeMount {
                    name: "tmp".into(),
                    mount_path: "/tmp".into(),
                    ..Default::default()
                }])
                .collect(),
        ),
        ..Default::default()
    };

    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    // With a size, the StatefulSet's volume claim template provides the data volume.
    if on_volume && spec.storage.size.is_none() {
        volumes.insert(
            0,
            Volume {
                name: DATA_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        );
    }

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(cache)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            // The registry talks to nobody: no API token, and no Service
            // variables (a Service named `registry` would inject REGISTRY_PORT,
            // which the registry reads as its own configuration).
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(REGISTRY_UID),
                run_as_group: Some(REGISTRY_UID),
                fs_group: Some(REGISTRY_UID),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// The StatefulSet of `template`'s pod: one replica, and the volume claim template of a
/// persistent cache.
pub fn statefulset_of(
    cache: &OrasCache,
    owner: OwnerReference,
    template: PodTemplateSpec,
) -> StatefulSet {
    let spec = &cache.spec;
    let claim_templates = spec.storage.size.as_ref().map(|size| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(DATA_VOLUME.into()),
                labels: Some(selector_labels(cache)),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: spec.storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        K8sQuantity(size.0.clone()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });

    StatefulSet {
        metadata: owned_meta(cache, owner),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(cache.name_any()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(cache)),
                ..Default::default()
            },
            template,
            volume_claim_templates: claim_templates,
            ..Default::default()
        }),
        status: None,
    }
}

/// The Service named after the cache, in front of the registry port.
pub fn service(cache: &OrasCache, owner: OwnerReference) -> Service {
    Service {
        metadata: owned_meta(cache, owner),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(cache)),
            ports: Some(
                std::iter::once(ServicePort {
                    name: Some(REGISTRY_CONTAINER.into()),
                    port: cache.spec.port,
                    target_port: Some(IntOrString::String(REGISTRY_CONTAINER.into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .chain(collection::service_port(cache))
                .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// What reconcile saw, from which the status follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The registry is applied; this many pods are ready.
    Deployed { ready_replicas: i32 },
    /// `deploy: false`: an external registry is in use.
    External,
    /// The spec cannot be turned into objects.
    Invalid(String),
    /// Applying the objects failed.
    Failed(String),
}

/// The status for what was observed. `now` (RFC 3339) becomes the condition's
/// `lastTransitionTime` only when the condition's status changes, so an unchanged status
/// compares equal to the previous one and is not written again.
pub fn status(
    cache: &OrasCache,
    observed: &Observed,
    cluster_domain: &str,
    now: &str,
) -> OrasCacheStatus {
    let generation = cache.meta().generation;
    let previous = cache.status.as_ref();
    let (ready, reason, message, endpoint, ready_replicas, replicas) = match observed {
        Observed::Deployed { ready_replicas } => {
            // Ready while at least one pod serves: the Service sends requests to it.
            let ready = *ready_replicas >= 1;
            let replicas = cache.spec.replicas;
            let endpoint = endpoint(cache, cluster_domain);
            let (reason, message) = if ready && replicas > 1 {
                (
                    "RegistryReady",
                    format!(
                        "registry serves at {endpoint} ({ready_replicas}/{replicas} pods ready)"
                    ),
                )
            } else if ready {
                ("RegistryReady", format!("registry serves at {endpoint}"))
            } else {
                (
                    "RegistryNotReady",
                    format!("{ready_replicas}/{replicas} registry pods ready"),
                )
            };
            (
                ready,
                reason,
                message,
                Some(endpoint),
                Some(*ready_replicas),
                Some(replicas),
            )
        }
        Observed::External => (
            true,
            "External",
            "deploy is false: workflows use an external registry (the registry annotation)"
                .to_string(),
            None,
            None,
            None,
        ),
        Observed::Invalid(message) => (false, "InvalidSpec", message.clone(), None, None, None),
        Observed::Failed(message) => (
            false,
            "ApplyFailed",
            message.clone(),
            previous.and_then(|s| s.endpoint.clone()),
            previous.and_then(|s| s.ready_replicas),
            previous.and_then(|s| s.replicas),
        ),
    };
    let status_text = if ready { "True" } else { "False" };
    let last_transition_time = match previous.and_then(|s| s.ready()) {
        Some(prev) if prev.status == status_text => prev.last_transition_time.clone(),
        _ => Some(now.to_string()),
    };
    OrasCacheStatus {
        conditions: vec![CacheCondition {
            type_: CONDITION_READY.into(),
            status: status_text.into(),
            reason: reason.into(),
            message,
            last_transition_time,
            observed_generation: generation,
        }],
        endpoint,
        ready_replicas,
        replicas,
        observed_generation: generation,
        // What the controller last did about retention stands until it does otherwise
        // (a deploy pass, or a removal).
        retention: previous.and_then(|s| s.retention.clone()),
    }
}

/// Whether the cache's status shows a complete deploy pass of its current spec. Until it
/// does, reconcile also removes what an earlier spec made and this one does not want (the
/// StatefulSet of a cache moved to S3, the Deployment of one moved back, a
/// PodDisruptionBudget after scaling down to one pod).
pub fn settled(cache: &OrasCache) -> bool {
    cache.status.as_ref().is_some_and(|status| {
        status.observed_generation == cache.meta().generation
            && status
                .ready()
                .is_some_and(|c| matches!(c.reason.as_str(), "RegistryReady" | "RegistryNotReady"))
    })
}

/// The event a successful deploy pass reports, judged from the status it replaces:
/// `Created` when the registry was not deployed before (a new cache, or one coming back
/// from `deploy: false` or an invalid spec), `Updated` when the spec changed since the
/// last status, nothing when only a watch event (drift, readiness) brought it here.
pub fn deploy_event(cache: &OrasCache) -> Option<(&'static str, String)> {
    let previous = cache.status.as_ref();
    let deployed_before = previous.and_then(OrasCacheStatus::ready).is_some_and(|c| {
        matches!(
            c.reason.as_str(),
            "RegistryReady" | "RegistryNotReady" | "ApplyFailed"
        )
    });
    let name = cache.name_any();
    let workload = if deployment::wanted(cache) {
        "Deployment"
    } else {
        "StatefulSet"
    };
    if !deployed_before {
        return Some((
            "Created",
            format!("applied the registry {workload} and Service {name}"),
        ));
    }
    let observed = previous.and_then(|s| s.observed_generation);
    if observed != cache.meta().generation {
        return Some((
            "Updated",
            format!("applied the changed spec to the registry {workload} and Service {name}"),
        ));
    }
    None
}

fn owned_meta(cache: &OrasCache, owner: OwnerReference) -> ObjectMeta {
    owned_meta_named(cache, owner, cache.name_any())
}

/// Metadata of an object the cache owns, named `name`.
fn owned_meta_named(cache: &OrasCache, owner: OwnerReference, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cache.namespace(),
        labels: Some(labels(cache)),
        owner_references: Some(vec![owner]),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

fn quantities(map: &BTreeMap<String, Quantity>) -> BTreeMap<String, K8sQuantity> {
    map.iter()
        .map(|(k, v)| (k.clone(), K8sQuantity(v.0.clone())))
        .collect()
}

fn non_empty<T>(map: BTreeMap<String, T>) -> Option<BTreeMap<String, T>> {
    if map.is_empty() { None } else { Some(map) }
}

fn check_quantity(field: &str, quantity: &Quantity) -> Result<(), InvalidSpec> {
    if is_quantity(&quantity.0) {
        Ok(())
    } else {
        Err(InvalidSpec(format!(
            "{field} {:?} is not a quantity (examples: 500m, 64Mi, 10Gi)",
            quantity.0
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::OrasCacheSpec;

    fn cache(spec: serde_json::Value) -> OrasCache {
        let mut cache = OrasCache::new("oras", serde_json::from_value(spec).unwrap());
        cache.metadata.namespace = Some("workflows".into());
        cache.metadata.uid = Some("0b5c6a9e-1111-2222-3333-444455556666".into());
        cache.metadata.generation = Some(3);
        cache
    }

    fn owner(cache: &OrasCache) -> OwnerReference {
        cache.controller_owner_ref(&()).unwrap()
    }

    fn sts(spec: serde_json::Value) -> StatefulSet {
        let cache = cache(spec);
        statefulset(&cache, owner(&cache))
    }

    fn registry(sts: &StatefulSet) -> &Container {
        &sts.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
    }

    fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
        c.env.as_ref().unwrap().iter().find(|e| e.name == name)
    }

    #[test]
    fn defaults_make_one_registry_with_the_pinned_image_on_port_5000() {
        let sts = sts(serde_json::json!({}));
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.service_name.as_deref(), Some("oras"));
        let c = registry(&sts);
        assert_eq!(c.image.as_deref(), Some(crate::crd::DEFAULT_IMAGE));
        assert!(!crate::crd::DEFAULT_IMAGE.ends_with(":latest"));
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!(port.container_port, 5000);
        assert_eq!(port.name.as_deref(), Some("registry"));
        assert_eq!(
            env_value(c, "REGISTRY_HTTP_ADDR").unwrap().value.as_deref(),
            Some(":5000")
        );
        assert_eq!(
            env_value(c, "REGISTRY_STORAGE_DELETE_ENABLED")
                .unwrap()
                .value
                .as_deref(),
            Some("true")
        );
        assert!(env_value(c, "REGISTRY_HTTP_SECRET").is_none());
        assert!(c.resources.is_none());
    }

    #[test]
    fn the_selector_is_unique_per_cache_and_matches_the_pod_labels() {
        let sts = sts(serde_json::json!({}));
        let spec = sts.spec.as_ref().unwrap();
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(selector["app.kubernetes.io/instance"], "oras");
        assert_eq!(selector["app.kubernetes.io/name"], "oras-cache");
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, v) in selector {
            assert_eq!(&pod_labels[k], v);
        }
        let mut other = cache(serde_json::json!({}));
        other.metadata.name = Some("other".into());
        assert_ne!(selector_labels(&other), *selector);
    }

    #[test]
    fn both_objects_are_owned_by_the_cache_as_controller() {
        let c = cache(serde_json::json!({}));
        let sts = statefulset(&c, owner(&c));
        let svc = service(&c, owner(&c));
        for meta in [&sts.metadata, &svc.metadata] {
            let refs = meta.owner_references.as_ref().unwrap();
            assert_eq!(refs.len(), 1);
            assert_eq!(refs[0].kind, "OrasCache");
            assert_eq!(refs[0].name, "oras");
            assert_eq!(refs[0].uid, "0b5c6a9e-1111-2222-3333-444455556666");
            assert_eq!(refs[0].controller, Some(true));
            assert_eq!(meta.namespace.as_deref(), Some("workflows"));
            assert_eq!(meta.name.as_deref(), Some("oras"));
            assert_eq!(
                meta.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
                MANAGED_BY
            );
        }
    }

    #[test]
    fn probes_get_v2_on_the_registry_port() {
        let sts = sts(serde_json::json!({}));
        let c = registry(&sts);
        for probe in [c.readiness_probe.as_ref(), c.liveness_probe.as_ref()] {
            let get = probe.unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.path.as_deref(), Some("/v2/"));
            assert_eq!(get.port, IntOrString::String("registry".into()));
        }
    }

    #[test]
    fn the_pod_meets_the_restricted_security_profile() {
        let sts = sts(serde_json::json!({}));
        let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let psc = pod.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(1000));
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        let sc = registry(&sts).security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        assert_eq!(pod.enable_service_links, Some(false));
        assert_eq!(pod.automount_service_account_token, Some(false));
    }

    #[test]
    fn storage_defaults_to_an_empty_dir() {
        let sts = sts(serde_json::json!({}));
        let spec = sts.spec.as_ref().unwrap();
        assert!(spec.volume_claim_templates.is_none());
        let volumes = spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap();
        let data = volumes.iter().find(|v| v.name == "data").unwrap();
        assert!(data.empty_dir.is_some());
        let mounts = registry(&sts).volume_mounts.as_ref().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "data" && m.mount_path == "/var/lib/registry")
        );
    }

    #[test]
    fn a_storage_size_makes_a_volume_claim_template() {
        let sts = sts(serde_json::json!({"storage": {"size": "10Gi", "storageClassName": "fast"}}));
        let spec = sts.spec.as_ref().unwrap();
        let volumes = spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .as_ref()
            .unwrap();
        assert!(volumes.iter().all(|v| v.name != "data"));
        let claims = spec.volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let claim = claims[0].spec.as_ref().unwrap();
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            claim.access_modes.as_deref(),
            Some(&["ReadWriteOnce".to_string()][..])
        );
        assert_eq!(
            claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
            K8sQuantity("10Gi".into())
        );
    }

    #[test]
    fn a_size_without_a_class_uses_the_default_class() {
        let sts = sts(serde_json::json!({"storage": {"size": "1Gi"}}));
        let claims = sts.spec.unwrap().volume_claim_templates.unwrap();
        assert_eq!(claims[0].spec.as_ref().unwrap().storage_class_name, None);
    }

    #[test]
    fn resources_go_to_the_registry_container() {
        let sts = sts(serde_json::json!({
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}
        }));
        let res = registry(&sts).resources.as_ref().unwrap();
        assert_eq!(
            res.requests.as_ref().unwrap()["cpu"],
            K8sQuantity("100m".into())
        );
        assert_eq!(
            res.requests.as_ref().unwrap()["memory"],
            K8sQuantity("64Mi".into())
        );
        assert_eq!(
            res.limits.as_ref().unwrap()["memory"],
            K8sQuantity("512Mi".into())
        );
    }

    #[test]
    fn only_limits_leave_requests_unset() {
        let sts = sts(serde_json::json!({"resources": {"limits": {"cpu": 1}}}));
        let res = registry(&sts).resources.as_ref().unwrap();
        assert!(res.requests.is_none());
        assert_eq!(res.limits.as_ref().unwrap()["cpu"], K8sQuantity("1".into()));
    }

    #[test]
    fn the_port_moves_the_container_the_service_and_the_endpoint() {
        let c = cache(serde_json::json!({"port": 8080}));
        let sts = statefulset(&c, owner(&c));
        let reg = registry(&sts);
        assert_eq!(reg.ports.as_ref().unwrap()[0].container_port, 8080);
        assert_eq!(
            env_value(reg, "REGISTRY_HTTP_ADDR")
                .unwrap()
                .value
                .as_deref(),
            Some(":8080")
        );
        let svc = service(&c, owner(&c));
        let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.port, 8080);
        assert_eq!(
            port.target_port,
            Some(IntOrString::String("registry".into()))
        );
        assert_eq!(
            endpoint(&c, "cluster.local"),
            "oras.workflows.svc.cluster.local:8080"
        );
    }

    #[test]
    fn the_image_is_used_as_given() {
        let sts = sts(serde_json::json!({"image": "ghcr.io/oras-project/registry:v1.0.0-rc.4"}));
        assert_eq!(
            registry(&sts).image.as_deref(),
            Some("ghcr.io/oras-project/registry:v1.0.0-rc.4")
        );
    }

    #[test]
    fn registry_http_becomes_a_secret_key_ref() {
        let sts = sts(serde_json::json!({"secrets": {"registryHttp": "registry-http"}}));
        let var = env_value(registry(&sts), "REGISTRY_HTTP_SECRET").unwrap();
        assert_eq!(var.value, None);
        let key = var
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(key.name, "registry-http");
        assert_eq!(key.key, "REGISTRY_HTTP_SECRET");
    }

    #[test]
    fn the_default_port_is_the_one_the_policy_uses() {
        assert_eq!(
            crate::crd::DEFAULT_PORT,
            i32::from(oras_contract::pod::CACHE_PORT)
        );
    }

    #[test]
    fn oras_env_is_not_given_to_the_registry() {
        let sts = sts(serde_json::json!({"secrets": {"orasEnv": "oras-creds"}}));
        let text = serde_json::to_string(&sts).unwrap();
        assert!(!text.contains("oras-creds"));
    }

    #[test]
    fn the_service_selects_the_cache_pod() {
        let c = cache(serde_json::json!({}));
        let svc = service(&c, owner(&c));
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.selector.as_ref().unwrap(), &selector_labels(&c));
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, 5000);
    }

    #[test]
    fn the_cluster_domain_is_part_of_the_endpoint() {
        let c = cache(serde_json::json!({}));
        assert_eq!(
            endpoint(&c, "example.internal"),
            "oras.workflows.svc.example.internal:5000"
        );
    }

    #[test]
    fn validation_accepts_the_defaults_and_full_specs() {
        assert_eq!(validate(&cache(serde_json::json!({}))), Ok(()));
        assert_eq!(
            validate(&cache(serde_json::json!({
                "secrets": {"orasEnv": "a.b", "registryHttp": "c"},
                "storage": {"size": "1.5Gi", "storageClassName": "standard"},
                "resources": {"requests": {"cpu": "100m", "memory": "1e6"}, "limits": {"cpu": 2}}
            }))),
            Ok(())
        );
    }

    #[test]
    fn validation_names_the_field_and_the_value() {
        let cases = [
            (serde_json::json!({"port": 0}), "spec.port 0"),
            (serde_json::json!({"image": "a b"}), "spec.image \"a b\""),
            (
                serde_json::json!({"storage": {"size": "ten gigs"}}),
                "spec.storage.size \"ten gigs\"",
            ),
            (
                serde_json::json!({"storage": {"storageClassName": "fast"}}),
                "needs spec.storage.size",
            ),
            (
                serde_json::json!({"resources": {"limits": {"memory": "1GB"}}}),
                "spec.resources.limits.memory \"1GB\"",
            ),
            (
                serde_json::json!({"secrets": {"registryHttp": "Not_A_Name"}}),
                "spec.secrets.registryHttp \"Not_A_Name\"",
            ),
        ];
        for (spec, expected) in cases {
            let err = validate(&cache(spec.clone())).unwrap_err();
            assert!(err.0.contains(expected), "{spec}: {err}");
        }
    }

    #[test]
    fn validation_rejects_names_that_cannot_name_a_service() {
        for name in ["1cache", "a.b", &"x".repeat(53)] {
            let mut c = cache(serde_json::json!({}));
            c.metadata.name = Some(name.to_string());
            assert!(validate(&c).is_err(), "{name}");
        }
        let mut c = cache(serde_json::json!({}));
        c.metadata.name = Some("x".repeat(52));
        assert_eq!(validate(&c), Ok(()));
    }

    #[test]
    fn status_not_ready_then_ready_changes_the_transition_time() {
        let mut c = cache(serde_json::json!({}));
        let s = status(
            &c,
            &Observed::Deployed { ready_replicas: 0 },
            "cluster.local",
            "T1",
        );
        let ready = s.ready().unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, "RegistryNotReady");
        assert_eq!(ready.last_transition_time.as_deref(), Some("T1"));
        assert_eq!(s.ready_replicas, Some(0));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(
            s.endpoint.as_deref(),
            Some("oras.workflows.svc.cluster.local:5000")
        );

        c.status = Some(s.clone());
        let same = status(
            &c,
            &Observed::Deployed { ready_replicas: 0 },
            "cluster.local",
            "T2",
        );
        assert_eq!(same, s, "an unchanged status keeps its transition time");

        let up = status(
            &c,
            &Observed::Deployed { ready_replicas: 1 },
            "cluster.local",
            "T3",
        );
        let ready = up.ready().unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.reason, "RegistryReady");
        assert_eq!(ready.last_transition_time.as_deref(), Some("T3"));
        assert_eq!(up.ready_replicas, Some(1));
    }

    #[test]
    fn status_external_is_ready_without_an_endpoint() {
        let c = cache(serde_json::json!({"deploy": false}));
        let s = status(&c, &Observed::External, "cluster.local", "T1");
        let ready = s.ready().unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "External")
        );
        assert_eq!(s.endpoint, None);
        assert_eq!(s.ready_replicas, None);
    }

    #[test]
    fn status_invalid_carries_the_message() {
        let c = cache(serde_json::json!({}));
        let s = status(
            &c,
            &Observed::Invalid("spec.port 0".into()),
            "cluster.local",
            "T1",
        );
        let ready = s.ready().unwrap();
        assert_eq!(ready.reason, "InvalidSpec");
        assert_eq!(ready.message, "spec.port 0");
        assert_eq!(ready.observed_generation, Some(3));
    }

    #[test]
    fn events_created_then_nothing_then_updated() {
        let mut c = cache(serde_json::json!({}));
        assert_eq!(deploy_event(&c).unwrap().0, "Created");
        c.status = Some(status(
            &c,
            &Observed::Deployed { ready_replicas: 0 },
            "d",
            "T1",
        ));
        assert_eq!(deploy_event(&c), None);
        c.metadata.generation = Some(4);
        assert_eq!(deploy_event(&c).unwrap().0, "Updated");
        c.status = Some(status(&c, &Observed::External, "d", "T2"));
        assert_eq!(deploy_event(&c).unwrap().0, "Created");
    }

    #[test]
    fn a_cache_on_s3_has_no_data_volume_and_the_bucket_as_its_storage() {
        let c = cache(serde_json::json!({"storage": {"s3": {"bucket": "artifacts"}}}));
        let template = pod_template(&c);
        let pod = template.spec.as_ref().unwrap();
        let volumes: Vec<&str> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(volumes, ["tmp"]);
        let registry = &pod.containers[0];
        let mounts: Vec<&str> = registry
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/tmp"]);
        assert!(env_value(registry, "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY").is_none());
        assert_eq!(
            env_value(registry, "REGISTRY_STORAGE")
                .unwrap()
                .value
                .as_deref(),
            Some("s3")
        );
        assert_eq!(
            env_value(registry, "REGISTRY_STORAGE_DELETE_ENABLED")
                .unwrap()
                .value
                .as_deref(),
            Some("true")
        );
        // The same probes and security as the StatefulSet's registry.
        let sts = sts(serde_json::json!({}));
        assert_eq!(
            registry.readiness_probe,
            self::registry(&sts).readiness_probe
        );
        assert_eq!(
            registry.security_context,
            self::registry(&sts).security_context
        );
    }

    #[test]
    fn validation_covers_storage_s3_and_replicas() {
        let cases = [
            (
                serde_json::json!({"replicas": 3}),
                "spec.replicas 3 needs shared storage: set spec.storage.s3",
            ),
            (
                serde_json::json!({"storage": {"size": "1Gi", "s3": {"bucket": "artifacts"}}}),
                "spec.storage.size \"1Gi\" and spec.storage.s3 exclude each other",
            ),
            (
                serde_json::json!({"storage": {"s3": {"bucket": "artifacts", "secretName": "a_b"}}}),
                "spec.storage.s3.secretName \"a_b\"",
            ),
        ];
        for (spec, expected) in cases {
            let err = validate(&cache(spec.clone())).unwrap_err();
            assert!(err.0.contains(expected), "{spec}: {err}");
        }
        assert_eq!(
            validate(&cache(serde_json::json!({
                "replicas": 3,
                "storage": {"s3": {"bucket": "artifacts", "endpoint": "minio:9000", "insecure": true}}
            }))),
            Ok(())
        );
    }

    #[test]
    fn status_counts_ready_replicas_of_replicas_and_is_ready_with_one() {
        let c =
            cache(serde_json::json!({"replicas": 3, "storage": {"s3": {"bucket": "artifacts"}}}));
        let none = status(&c, &Observed::Deployed { ready_replicas: 0 }, "d", "T1");
        assert_eq!((none.ready_replicas, none.replicas), (Some(0), Some(3)));
        assert_eq!(none.ready().unwrap().status, "False");
        assert_eq!(none.ready().unwrap().message, "0/3 registry pods ready");
        let one = status(&c, &Observed::Deployed { ready_replicas: 1 }, "d", "T1");
        assert_eq!((one.ready_replicas, one.replicas), (Some(1), Some(3)));
        assert_eq!(one.ready().unwrap().status, "True");
        assert_eq!(
            one.ready().unwrap().message,
            "registry serves at oras.workflows.svc.d:5000 (1/3 pods ready)"
        );
        let external = status(&c, &Observed::External, "d", "T1");
        assert_eq!(external.replicas, None);
    }

    #[test]
    fn settled_means_this_generation_was_deployed() {
        let mut c = cache(serde_json::json!({}));
        assert!(!settled(&c), "no status yet");
        c.status = Some(status(
            &c,
            &Observed::Deployed { ready_replicas: 0 },
            "d",
            "T1",
        ));
        assert!(settled(&c));
        c.metadata.generation = Some(4);
        assert!(!settled(&c), "a new spec");
        c.status = Some(status(&c, &Observed::Failed("x".into()), "d", "T2"));
        assert!(!settled(&c), "the last pass failed");
        c.status = Some(status(&c, &Observed::Invalid("x".into()), "d", "T2"));
        assert!(!settled(&c));
    }

    #[test]
    fn the_events_name_the_workload() {
        let c = cache(serde_json::json!({"storage": {"s3": {"bucket": "artifacts"}}}));
        assert_eq!(
            deploy_event(&c).unwrap().1,
            "applied the registry Deployment and Service oras"
        );
        let c = cache(serde_json::json!({}));
        assert_eq!(
            deploy_event(&c).unwrap().1,
            "applied the registry StatefulSet and Service oras"
        );
    }

    #[test]
    fn the_default_spec_round_trips() {
        let spec = OrasCacheSpec::default();
        let back: OrasCacheSpec =
            serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }
}
