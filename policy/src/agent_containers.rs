//! The containers the policy adds: `oras-init` and the native sidecar `oras`.

use oras_contract::agent_args::{InitCommand, MemoizeKey, SidecarCommand, Transport};
use oras_contract::pod::{
    AGENT_BINARY, INIT_CONTAINER, SHARE_MOUNT_PATH, SHARE_VOLUME, SIDECAR_CONTAINER,
};
use oras_contract::provenance;
use serde_json::{Value, json};

use crate::plan::Plan;
use crate::settings::AgentResources;

/// The unprivileged user of the agent image.
const AGENT_USER: u32 = 65532;

/// The `oras-init` init container: installs the agent into the share and pulls inputs
/// (and, with `memoize`, compares the existing output with `memoize`'s key).
pub fn init_container(
    plan: &Plan,
    memoize: Option<MemoizeKey>,
    resources: &AgentResources,
) -> Value {
    let command = InitCommand {
        share: SHARE_MOUNT_PATH.to_string(),
        inputs: plan.inputs.clone(),
        unpack: plan.step.unpack,
        memoize,
        transport: transport(plan),
    };
    agent_container(INIT_CONTAINER, command.argv(), plan, resources)
}

/// What the sidecar records about the launcher: its image as written in the spec and
/// the digest of the application's argv.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launcher {
    pub image: Option<String>,
    pub command_digest: String,
}

/// The native sidecar `oras`: waits for the launcher, pushes the output with its
/// provenance. The pod and its Job come from the downward API.
pub fn sidecar_container(
    plan: &Plan,
    output: &str,
    launcher: &Launcher,
    resources: &AgentResources,
) -> Value {
    let command = SidecarCommand {
        share: SHARE_MOUNT_PATH.to_string(),
        output: output.to_string(),
        image: launcher.image.clone(),
        command_digest: Some(launcher.command_digest.clone()),
        push_on_failure: plan.step.push_on_failure,
        image_format: false,
        transport: transport(plan),
    };
    let mut container = agent_container(SIDECAR_CONTAINER, command.argv(), plan, resources);
    container["restartPolicy"] = json!("Always");
    container["env"] = provenance::env::field_refs()
        .into_iter()
        .map(|(name, path)| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}))
        .collect();
    container
}

/// The share volume mount every container that uses the share gets.
pub fn share_mount() -> Value {
    json!({"name": SHARE_VOLUME, "mountPath": SHARE_MOUNT_PATH})
}

fn transport(plan: &Plan) -> Transport {
    Transport {
        plain_http: plan.plain_http,
        debug: plan.step.debug,
    }
}

fn agent_container(
    name: &str,
    args: Vec<String>,
    plan: &Plan,
    resources: &AgentResources,
) -> Value {
    let mut container = json!({
        "name": name,
        "image": plan.agent_image,
        "command": [AGENT_BINARY],
        "args": args,
        "volumeMounts": [share_mount()],
        "resources": resources_json(resources),
        "securityContext": restricted_security_context(),
    });
    // Kubernetes lets the last envFrom source win for a key present in several: the
    // cache's generated credentials come first so that an explicit `oras-env` overrides
    // them. Optional: the policy cannot know whether the cache has auth, and an absent
    // optional Secret changes nothing.
    let mut env_from = Vec::new();
    if let Some(secret) = &plan.cache_credentials {
        env_from.push(json!({"secretRef": {"name": secret, "optional": true}}));
    }
    if let Some(secret) = &plan.step.oras_env {
        env_from.push(json!({"secretRef": {"name": secret}}));
    }
    if !env_from.is_empty() {
        container["envFrom"] = json!(env_from);
    }
    container
}

fn resources_json(resources: &AgentResources) -> Value {
    let mut value = json!({});
    if !resources.requests.is_empty() {
        value["requests"] = json!(resources.requests);
    }
    if !resources.limits.is_empty() {
        value["limits"] = json!(resources.limits);
    }
    value
}

/// What the pod-security `restricted` profile requires, plus a read-only root.
fn restricted_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": AGENT_USER,
        "runAsGroup": AGENT_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::StepOptions;

    fn plan() -> Plan {
        Plan {
            registry: "r:5000".into(),
            plain_http: true,
            inputs: vec!["r:5000/a:1".into()],
            output: Some("r:5000/b:2".into()),
            step: StepOptions {
                output_path: Some("out".into()),
                unpack: true,
                ..StepOptions::default()
            },
            cache_credentials: None,
            agent_image: "agent:1".into(),
        }
    }

    #[test]
    fn init_runs_the_agent_with_the_inputs_and_the_restricted_profile() {
        let init = init_container(&plan(), None, &AgentResources::default());
        assert_eq!(init["name"], "oras-init");
        assert_eq!(init["image"], "agent:1");
        assert_eq!(init["command"], json!(["oras-agent"]));
        assert_eq!(
            init["args"],
            json!([
                "init",
                "--share",
                "/mnt/oras",
                "--input",
                "r:5000/a:1",
                "--plain-http"
            ])
        );
        assert_eq!(init["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            init["securityContext"]["capabilities"]["drop"],
            json!(["ALL"])
        );
        assert_eq!(init["resources"]["requests"]["cpu"], "10m");
        assert!(init.get("restartPolicy").is_none());
        assert!(init.get("envFrom").is_none());
    }

    #[test]
    fn the_sidecar_restarts_always_and_gets_the_credentials() {
        let mut plan = plan();
        plan.step.oras_env = Some("oras-env".into());
        plan.step.push_on_failure = true;
        let launcher = Launcher {
            image: Some("python:3.12".into()),
            command_digest: "sha256:ab".into(),
        };
        let sidecar = sidecar_container(&plan, "r:5000/b:2", &launcher, &AgentResources::default());
        assert_eq!(sidecar["name"], "oras");
        assert_eq!(sidecar["restartPolicy"], "Always");
        assert_eq!(
            sidecar["args"],
            json!([
                "sidecar",
                "--share",
                "/mnt/oras",
                "--output",
                "r:5000/b:2",
                "--image",
                "python:3.12",
                "--command-digest",
                "sha256:ab",
                "--push-on-failure",
                "--plain-http"
            ])
        );
        assert_eq!(
            sidecar["envFrom"],
            json!([{"secretRef": {"name": "oras-env"}}])
        );
    }

    #[test]
    fn the_cache_credentials_come_first_and_optional_so_oras_env_wins() {
        let mut plan = plan();
        plan.cache_credentials = Some("oras-credentials".into());
        let init = init_container(&plan, None, &AgentResources::default());
        assert_eq!(
            init["envFrom"],
            json!([{"secretRef": {"name": "oras-credentials", "optional": true}}])
        );
        plan.step.oras_env = Some("oras-env".into());
        let sidecar = sidecar_container(
            &plan,
            "r:5000/b:2",
            &Launcher::default(),
            &AgentResources::default(),
        );
        assert_eq!(
            sidecar["envFrom"],
            json!([
                {"secretRef": {"name": "oras-credentials", "optional": true}},
                {"secretRef": {"name": "oras-env"}}
            ])
        );
    }

    #[test]
    fn the_sidecar_learns_its_pod_and_job_from_the_downward_api_only() {
        let launcher = Launcher::default();
        let sidecar =
            sidecar_container(&plan(), "r:5000/b:2", &launcher, &AgentResources::default());
        assert_eq!(
            sidecar["env"],
            json!([
                {"name": "ORAS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "ORAS_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "ORAS_JOB_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}}
            ])
        );
        assert!(
            !sidecar["args"]
                .as_array()
                .unwrap()
                .contains(&json!("--image"))
        );
    }

    #[test]
    fn init_with_memoize_carries_the_key() {
        let key = MemoizeKey {
            output: "r:5000/b:2".into(),
            image: "python:3.12".into(),
            command_digest: "sha256:ab".into(),
        };
        let init = init_container(&plan(), Some(key), &AgentResources::default());
        let args: Vec<&str> = init["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            &args[5..],
            [
                "--memoize",
                "--output",
                "r:5000/b:2",
                "--image",
                "python:3.12",
                "--command-digest",
                "sha256:ab",
                "--plain-http"
            ]
        );
        assert!(init.get("env").is_none());
    }

    #[test]
    fn empty_resource_settings_leave_no_empty_maps() {
        let none = AgentResources {
            requests: Default::default(),
            limits: Default::default(),
        };
        assert_eq!(init_container(&plan(), None, &none)["resources"], json!({}));
    }
}
