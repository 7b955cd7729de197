//! Garbage collection of a cache's registry (`spec.retention.garbageCollect`). The
//! registry container runs under `oras-agent serve-registry` (copied in by an init
//! container from the agent image), which serves a maintenance port beside the
//! registry; the CronJob `<cache>-collect` runs `oras-agent collect` against it with the
//! token of the Secret `<cache>-maintenance`. Only the collect pods may reach that port.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, Pod, PodTemplateSpec,
    Secret, SecretKeySelector, ServicePort, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use oras_contract::retention::CollectionSummary;

use super::agent_job::{self, AgentJob, REPORT_PATH};
use super::retention::is_cron_schedule;
use super::{InvalidSpec, REGISTRY_CONTAINER, owned_meta_named};
use crate::crd::{CollectionRun, CollectionStatus, GarbageCollect, OrasCache};

/// The pods' component and the container's name.
pub const COMPONENT: &str = "collect";
/// The port of the maintenance endpoint in the registry pod.
pub const MAINTENANCE_PORT: i32 = 5002;
/// Its name, on the container and the Service.
pub const MAINTENANCE_PORT_NAME: &str = "maintenance";
/// The key of the token in `<cache>-maintenance`, and the variable that carries it.
pub const TOKEN_KEY: &str = "ORAS_MAINTENANCE_TOKEN";
/// The init container that copies the agent into the registry pod.
pub const INSTALL_CONTAINER: &str = "install-agent";
/// Where the agent is, in the registry pod.
pub const AGENT_BIN_PATH: &str = "/oras/bin";
const AGENT_BIN_VOLUME: &str = "oras-bin";

/// The cache's `garbageCollect`, when it has one (with retention).
pub fn garbage_collect(cache: &OrasCache) -> Option<&GarbageCollect> {
    cache.spec.retention.as_ref()?.garbage_collect.as_ref()
}

/// `<cache>-collect`.
pub fn collect_job_name(cache: &OrasCache) -> String {
    format!("{}-collect", cache.name_any())
}

/// `<cache>-maintenance`.
pub fn token_secret_name(cache: &OrasCache) -> String {
    format!("{}-maintenance", cache.name_any())
}

/// Checks `spec.retention.garbageCollect`.
pub fn validate(cache: &OrasCache) -> Result<(), InvalidSpec> {
    let Some(collect) = garbage_collect(cache) else {
        return Ok(());
    };
    if !is_cron_schedule(&collect.schedule) {
        return Err(InvalidSpec(format!(
            "spec.retention.garbageCollect.schedule {:?} is not a cron schedule (five fields, such as \"30 3 * * *\", or @daily)",
            collect.schedule
        )));
    }
    if cache.spec.replicas > 1 {
        return Err(InvalidSpec(format!(
            "spec.retention.garbageCollect needs spec.replicas 1 (it is {}): a collection \
             makes the registry read-only, and a pod can do that for itself only, so the \
             other replicas would take pushes into the storage being collected",
            cache.spec.replicas
        )));
    }
    if cache.spec.port == MAINTENANCE_PORT {
        return Err(InvalidSpec(format!(
            "spec.port {MAINTENANCE_PORT} is the registry pod's maintenance port when \
             spec.retention.garbageCollect is set: choose another port"
        )));
    }
    Ok(())
}

/// The Secret `<cache>-maintenance` holding `token`.
pub fn token_secret(cache: &OrasCache, owner: OwnerReference, token: &str) -> Secret {
    Secret {
        metadata: owned_meta_named(cache, owner, token_secret_name(cache)),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), token.to_string())])),
        ..Default::default()
    }
}

fn token_env(cache: &OrasCache) -> EnvVar {
    EnvVar {
        name: TOKEN_KEY.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: token_secret_name(cache),
                key: TOKEN_KEY.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Puts the registry of a cache with `garbageCollect` under `oras-agent
/// serve-registry`: the agent copied in by an init container, the maintenance port and
/// its token. Does nothing without `garbageCollect`.
pub fn supervise(template: &mut PodTemplateSpec, cache: &OrasCache, agent_image: &str) {
    if garbage_collect(cache).is_none() {
        return;
    }
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    let mount = VolumeMount {
        name: AGENT_BIN_VOLUME.into(),
        mount_path: AGENT_BIN_PATH.into(),
        ..Default::default()
    };
    pod.init_containers
        .get_or_insert_with(Vec::new)
        .push(Container {
            name: INSTALL_CONTAINER.into(),
            image: Some(agent_image.to_string()),
            command: Some(vec![
                "oras-agent".into(),
                "install".into(),
                AGENT_BIN_PATH.into(),
            ]),
            volume_mounts: Some(vec![mount.clone()]),
            security_context: Some(agent_job::security_context()),
            ..Default::default()
        });
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: AGENT_BIN_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    let Some(registry) = pod
        .containers
        .iter_mut()
        .find(|c| c.name == REGISTRY_CONTAINER)
    else {
        return;
    };
    registry.command = Some(vec![
        format!("{AGENT_BIN_PATH}/oras-agent"),
        "serve-registry".into(),
        "--maintenance".into(),
        format!("0.0.0.0:{MAINTENANCE_PORT}"),
    ]);
    registry.args = None;
    registry
        .env
        .get_or_insert_with(Vec::new)
        .push(token_env(cache));
    registry
        .ports
        .get_or_insert_with(Vec::new)
        .push(ContainerPort {
            name: Some(MAINTENANCE_PORT_NAME.into()),
            container_port: MAINTENANCE_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        });
    registry
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            read_only: Some(true),
            ..mount
        });
}

/// The Service port of the maintenance endpoint.
pub fn service_port(cache: &OrasCache) -> Option<ServicePort> {
    garbage_collect(cache)?;
    Some(ServicePort {
        name: Some(MAINTENANCE_PORT_NAME.into()),
        port: MAINTENANCE_PORT,
        target_port: Some(IntOrString::String(MAINTENANCE_PORT_NAME.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    })
}

/// The NetworkPolicy rule that admits the cache's collect pods, and nothing else, to
/// the maintenance port.
pub fn ingress_rule(cache: &OrasCache) -> Option<NetworkPolicyIngressRule> {
    garbage_collect(cache)?;
    Some(NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(agent_job::pod_labels(cache, COMPONENT)),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ports: Some(vec![NetworkPolicyPort {
            protocol: Some("TCP".into()),
            port: Some(IntOrString::Int(MAINTENANCE_PORT)),
            ..Default::default()
        }]),
    })
}

/// The maintenance endpoint, through the cache's Service.
pub fn collect_url(cache: &OrasCache, cluster_domain: &str) -> String {
    format!(
        "http://{}.{}.svc.{cluster_domain}:{MAINTENANCE_PORT}/collect",
        cache.name_any(),
        cache.namespace().unwrap_or_default()
    )
}

/// The CronJob `<cache>-collect`, or `None` without `garbageCollect`.
pub fn collect_cron_job(
    cache: &OrasCache,
    owner: OwnerReference,
    agent_image: &str,
    cluster_domain: &str,
) -> Option<CronJob> {
    let collect = garbage_collect(cache)?;
    let job = AgentJob {
        name: collect_job_name(cache),
        component: COMPONENT,
        schedule: collect.schedule.clone(),
        args: vec![
            "collect".into(),
            "--report".into(),
            REPORT_PATH.into(),
            collect_url(cache, cluster_domain),
        ],
        env: Some(vec![token_env(cache)]),
        env_from: None,
    };
    Some(agent_job::cron_job(cache, owner, agent_image, job))
}

/// The collection status: the CronJob and its newest finished run among `pods`, or the
/// one `previous` recorded. `None` without `garbageCollect`.
pub fn status(
    cache: &OrasCache,
    pods: &[Pod],
    previous: Option<&CollectionStatus>,
) -> Option<CollectionStatus> {
    let collect = garbage_collect(cache)?;
    let recorded = previous.and_then(|p| p.last_collection.as_ref());
    let last_collection = agent_job::newest(pods, collection_run, recorded, |run| &run.time);
    Some(CollectionStatus {
        cron_job: collect_job_name(cache),
        schedule: collect.schedule.trim().to_string(),
        last_collection,
    })
}

fn collection_run(pod: &Pod) -> Option<CollectionRun> {
    let finished = agent_job::finished(pod, COMPONENT)?;
    if finished.exit_code != 0 {
        return Some(CollectionRun {
            time: finished.time,
            result: "Failed".into(),
            message: agent_job::failure_message(&finished.message, finished.exit_code),
            ..Default::default()
        });
    }
    let summary = CollectionSummary::from_json(&finished.message);
    let message = match &summary {
        Some(s) => format!(
            "collected {} blobs; {} bytes freed; pushes refused for {} ms",
            s.blobs_deleted.map_or("?".into(), |n| n.to_string()),
            s.bytes_freed.map_or("?".into(), |n| n.to_string()),
            s.read_only_millis
        ),
        None => "succeeded without a summary".to_string(),
    };
    Some(CollectionRun {
        time: finished.time,
        result: "Succeeded".into(),
        blobs_deleted: summary.and_then(|s| s.blobs_deleted),
        bytes_freed: summary.and_then(|s| s.bytes_freed),
        read_only_millis: summary.map(|s| s.read_only_millis),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::{network_policy, pod_template, service};
    use crate::crd::{CacheRetention, OrasCacheSpec};

    fn cache(collect: Option<&str>, auth: bool, port: i32) -> OrasCache {
        let mut spec = OrasCacheSpec {
            port,
            retention: Some(CacheRetention {
                keep_last: Some(2),
                max_age: None,
                schedule: "0 * * * *".into(),
                garbage_collect: collect.map(|schedule| GarbageCollect {
                    schedule: schedule.into(),
                }),
            }),
            ..Default::default()
        };
        spec.auth.enabled = auth;
        let mut cache = OrasCache::new("oras", spec);
        cache.metadata.namespace = Some("team".into());
        cache
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "cache.converged-computing.github.io/v1alpha1".into(),
            kind: "OrasCache".into(),
            name: "oras".into(),
            uid: "u".into(),
            controller: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn bad_collection_settings_are_refused_naming_the_field() {
        let schedule = validate(&cache(Some("nightly"), false, 5000))
            .unwrap_err()
            .0;
        assert!(
            schedule.contains("spec.retention.garbageCollect.schedule \"nightly\""),
            "{schedule}"
        );
        let port = validate(&cache(Some("@daily"), false, 5002)).unwrap_err().0;
        assert!(port.contains("spec.port 5002"), "{port}");
        assert!(validate(&cache(Some("@daily"), false, 5000)).is_ok());
        assert!(validate(&cache(None, false, 5002)).is_ok());
        let mut replicated = cache(Some("@daily"), false, 5000);
        replicated.spec.replicas = 3;
        let replicas = validate(&replicated).unwrap_err().0;
        assert!(
            replicas.contains("garbageCollect needs spec.replicas 1 (it is 3)"),
            "{replicas}"
        );
    }

    #[test]
    fn the_registry_behind_the_gate_is_the_one_supervised() {
        let cache = cache(Some("30 3 * * *"), true, 5000);
        let mut template = pod_template(&cache);
        crate::builders::auth::secure(&mut template, &cache, "gate:1", "oras:$2y$hash\n");
        supervise(&mut template, &cache, "agent:1");
        let pod = template.spec.unwrap();
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("agent:1"));
        let registry = pod
            .containers
            .iter()
            .find(|c| c.name == "registry")
            .unwrap();
        assert_eq!(
            registry.command.as_ref().unwrap()[..2],
            ["/oras/bin/oras-agent", "serve-registry"]
        );
        // The supervisor probes where the registry listens behind the gate.
        assert!(registry.env.as_ref().unwrap().iter().any(|e| {
            e.name == "REGISTRY_HTTP_ADDR" && e.value.as_deref() == Some("127.0.0.1:5001")
        }));
        let gate = pod.containers.iter().find(|c| c.name == "gate").unwrap();
        assert!(
            gate.command
                .as_ref()
                .is_none_or(|c| !c.iter().any(|a| a.contains("serve-registry")))
        );
        assert!(pod.volumes.unwrap().iter().any(|v| v.name == "oras-bin"));
    }

    #[test]
    fn without_collection_nothing_changes() {
        let cache = cache(None, false, 5000);
        let mut template = pod_template(&cache);
        let before = template.clone();
        supervise(&mut template, &cache, "agent:1");
        assert_eq!(template, before);
        assert_eq!(
            service(&cache, owner()).spec.unwrap().ports.unwrap().len(),
            1
        );
        let policy = network_policy::network_policy(&cache, owner());
        assert_eq!(policy.spec.unwrap().ingress.unwrap().len(), 1);
        assert!(collect_cron_job(&cache, owner(), "agent:1", "cluster.local").is_none());
        assert!(status(&cache, &[], None).is_none());
    }

    #[test]
    fn a_failed_collection_reports_the_end_of_its_log() {
        let cache = cache(Some("@daily"), false, 5000);
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "labels": {"app.kubernetes.io/component": "collect"}},
            "status": {"containerStatuses": [{"name": "collect", "image": "a", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1,
                "finishedAt": "2026-12-01T03:30:02Z",
                "message": "Error: http://oras:5002/collect answered 401 Unauthorized"}}}]}
        }))
        .unwrap();
        let status = status(&cache, &[pod], None).unwrap();
        let last = status.last_collection.unwrap();
        assert_eq!(last.result, "Failed");
        assert!(last.message.contains("401"), "{}", last.message);
        assert_eq!(last.blobs_deleted, None);
    }
}
