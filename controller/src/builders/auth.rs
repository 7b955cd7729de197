//! The registry pod of a cache with `spec.auth.enabled`. The registry moves to
//! 127.0.0.1 and requires htpasswd authentication from the `<cache>-htpasswd` Secret
//! volume (bcrypt hashes only); the gate (`oras-controller gate`, `crate::gate`) takes
//! the registry port and lets the pull password read and nothing else. Nothing outside
//! the pod reaches the registry except through the gate.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PodTemplateSpec, Probe,
    SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::credentials::{HTPASSWD_KEY, htpasswd_secret_name};
use super::{InvalidSpec, REGISTRY_CONTAINER, env, runtime_default_seccomp};
use crate::crd::OrasCache;
use crate::gate::HEALTH_PATH;

/// Port the registry listens on, on 127.0.0.1, behind the gate.
pub const REGISTRY_INTERNAL_PORT: i32 = 5001;
/// Name of the gate container.
pub const GATE_CONTAINER: &str = "gate";
/// Name of the volume holding the htpasswd file.
pub const AUTH_VOLUME: &str = "auth";
/// Where the htpasswd Secret is mounted in the registry and the gate.
pub const AUTH_PATH: &str = "/etc/oras-cache/auth";
/// Pod template annotation with the SHA-256 of the htpasswd file: new credentials (the
/// credentials Secret deleted) restart the registry pod, which then reads the new file.
/// Under the CRD's group, not the policy's annotation prefix: the admission policy
/// refuses a pod with an unknown key under its prefix (the registry pod was refused so on
/// a real node).
pub const HTPASSWD_DIGEST_ANNOTATION: &str = "cache.converged-computing.github.io/htpasswd-sha256";

/// The htpasswd file's path in the containers.
pub fn htpasswd_path() -> String {
    format!("{AUTH_PATH}/{HTPASSWD_KEY}")
}

/// With auth, the registry port must not be the registry's internal one.
pub fn validate(cache: &OrasCache) -> Result<(), InvalidSpec> {
    if cache.spec.auth.enabled && cache.spec.port == REGISTRY_INTERNAL_PORT {
        return Err(InvalidSpec(format!(
            "spec.port {REGISTRY_INTERNAL_PORT} is the port the registry listens on behind the \
             gate when spec.auth.enabled is true: choose another port"
        )));
    }
    Ok(())
}

/// The registry's configuration (environment, distribution's `REGISTRY_*` names) that
/// makes it listen on 127.0.0.1 and require htpasswd authentication.
pub fn registry_env(cache: &OrasCache) -> Vec<EnvVar> {
    vec![
        env(
            "REGISTRY_HTTP_ADDR",
            &format!("127.0.0.1:{REGISTRY_INTERNAL_PORT}"),
        ),
        env("REGISTRY_AUTH", "htpasswd"),
        env(
            "REGISTRY_AUTH_HTPASSWD_REALM",
            &format!(
                "{}/{}",
                cache.namespace().unwrap_or_default(),
                cache.name_any()
            ),
        ),
        env("REGISTRY_AUTH_HTPASSWD_PATH", &htpasswd_path()),
    ]
}

/// The gate's arguments (after the controller binary).
pub fn gate_args(cache: &OrasCache) -> Vec<String> {
    vec![
        "gate".into(),
        "--listen".into(),
        format!("0.0.0.0:{}", cache.spec.port),
        "--upstream".into(),
        format!("127.0.0.1:{REGISTRY_INTERNAL_PORT}"),
        "--htpasswd".into(),
        htpasswd_path(),
    ]
}

/// Turns the registry pod of [`super::pod_template`] into the authenticated one: the
/// registry behind the gate, both reading the htpasswd Secret volume, the pod restarted
/// when the file changes.
pub fn secure(template: &mut PodTemplateSpec, cache: &OrasCache, gate_image: &str, htpasswd: &str) {
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            HTPASSWD_DIGEST_ANNOTATION.into(),
            format!("{:x}", Sha256::digest(htpasswd.as_bytes())),
        );
    let Some(pod) = template.spec.as_mut() else {
        return;
    };
    let mount = VolumeMount {
        name: AUTH_VOLUME.into(),
        mount_path: AUTH_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    };
    for registry in pod
        .containers
        .iter_mut()
        .filter(|c| c.name == REGISTRY_CONTAINER)
    {
        let env = registry.env.get_or_insert_with(Vec::new);
        let settings = registry_env(cache);
        env.retain(|var| settings.iter().all(|s| s.name != var.name));
        env.extend(settings);
        // Nothing reaches 127.0.0.1 from outside the pod, the kubelet's probes neither:
        // the gate's health check asks the registry instead.
        registry.ports = None;
        registry.readiness_probe = None;
        registry.liveness_probe = None;
        registry
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount.clone());
    }
    pod.containers
        .push(gate_container(cache, gate_image, mount));
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: AUTH_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(htpasswd_secret_name(cache)),
            // Group-readable: the pod's fsGroup is the registry's group.
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
}

fn gate_container(cache: &OrasCache, image: &str, mount: VolumeMount) -> Container {
    let probe = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(HEALTH_PATH.into()),
            port: IntOrString::String(REGISTRY_CONTAINER.into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    Container {
        name: GATE_CONTAINER.into(),
        image: Some(image.into()),
        args: Some(gate_args(cache)),
        // The Service's targetPort names this port: clients reach the gate.
        ports: Some(vec![ContainerPort {
            name: Some(REGISTRY_CONTAINER.into()),
            container_port: cache.spec.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(probe(5, 3)),
        liveness_probe: Some(probe(10, 6)),
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
        volume_mounts: Some(vec![mount]),
        ..Default::default()
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

    fn secured(spec: Value, htpasswd: &str) -> Value {
        let cache = cache(spec);
        let mut template = super::super::pod_template(&cache);
        secure(&mut template, &cache, "gate:1", htpasswd);
        let sts = super::super::statefulset_of(
            &cache,
            cache.controller_owner_ref(&()).unwrap(),
            template,
        );
        serde_json::to_value(sts).unwrap()
    }

    fn container<'a>(sts: &'a Value, name: &str) -> &'a Value {
        sts["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
    }

    fn env_of(container: &Value) -> Vec<(String, String)> {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or("<from>").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn the_registry_listens_on_localhost_with_htpasswd_from_the_secret_volume() {
        let sts = secured(json!({"auth": {"enabled": true}}), "oras:$2y$10$hash\n");
        let registry = container(&sts, "registry");
        let env = env_of(registry);
        let get = |name: &str| {
            let found: Vec<&String> = env
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v)
                .collect();
            assert_eq!(found.len(), 1, "{name} once");
            found[0].clone()
        };
        assert_eq!(get("REGISTRY_HTTP_ADDR"), "127.0.0.1:5001");
        assert_eq!(get("REGISTRY_AUTH"), "htpasswd");
        assert_eq!(get("REGISTRY_AUTH_HTPASSWD_REALM"), "workflows/oras");
        assert_eq!(
            get("REGISTRY_AUTH_HTPASSWD_PATH"),
            "/etc/oras-cache/auth/htpasswd"
        );
        assert!(registry.get("ports").is_none());
        assert!(registry.get("readinessProbe").is_none());
        assert!(registry["volumeMounts"].as_array().unwrap().contains(
            &json!({"name": "auth", "mountPath": "/etc/oras-cache/auth", "readOnly": true})
        ));
        let volume = sts["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "auth")
            .unwrap();
        assert_eq!(
            volume["secret"],
            json!({"secretName": "oras-htpasswd", "defaultMode": 0o440})
        );
    }

    #[test]
    fn the_gate_takes_the_registry_port_and_its_probes() {
        let sts = secured(json!({"auth": {"enabled": true}, "port": 6000}), "x");
        let gate = container(&sts, "gate");
        assert_eq!(gate["image"], "gate:1");
        assert_eq!(
            gate["args"],
            json!([
                "gate",
                "--listen",
                "0.0.0.0:6000",
                "--upstream",
                "127.0.0.1:5001",
                "--htpasswd",
                "/etc/oras-cache/auth/htpasswd"
            ])
        );
        assert_eq!(
            gate["ports"],
            json!([{"name": "registry", "containerPort": 6000, "protocol": "TCP"}])
        );
        assert_eq!(
            gate["readinessProbe"]["httpGet"]["path"],
            "/oras-gate/healthz"
        );
        assert_eq!(gate["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            gate["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
    }

    #[test]
    fn no_password_reaches_the_pod_spec_and_new_hashes_restart_the_pod() {
        let a = secured(json!({"auth": {"enabled": true}}), "oras:$2y$10$a\n");
        let b = secured(json!({"auth": {"enabled": true}}), "oras:$2y$10$b\n");
        let digest = |sts: &Value| {
            sts["spec"]["template"]["metadata"]["annotations"][HTPASSWD_DIGEST_ANNOTATION].clone()
        };
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a).as_str().unwrap().len(), 64);
        let text = a.to_string();
        assert!(!text.contains("$2y$"), "not even a hash");
        assert!(!text.contains("ORAS_PUSH_PASS") && !text.contains("oras-credentials"));
    }

    #[test]
    fn the_pod_annotation_is_not_one_the_policy_would_refuse() {
        assert!(!HTPASSWD_DIGEST_ANNOTATION.starts_with(oras_contract::annotations::PREFIX));
        let sts = secured(json!({"auth": {"enabled": true}}), "x");
        let annotations = sts["spec"]["template"]["metadata"]["annotations"]
            .as_object()
            .unwrap();
        assert!(
            annotations
                .keys()
                .all(|k| !k.starts_with(oras_contract::annotations::PREFIX)),
            "{annotations:?}"
        );
    }

    #[test]
    fn the_internal_port_cannot_be_the_cache_port() {
        assert_eq!(
            validate(&cache(json!({"auth": {"enabled": true}, "port": 5001})))
                .unwrap_err()
                .0,
            "spec.port 5001 is the port the registry listens on behind the gate when \
             spec.auth.enabled is true: choose another port"
        );
        assert_eq!(validate(&cache(json!({"port": 5001}))), Ok(()));
    }
}
