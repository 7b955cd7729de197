//! Everything a workflow needs on one machine: a real registry on 127.0.0.1, the
//! compiled policy set to reach it over plain HTTP (also for the images it looks up),
//! and the pod runner. Objects are
//! pointed at the registry with the `registry` annotation (the in-namespace cache of a
//! cluster does not exist here), admitted by the policy, and their pod run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use oras_contract::annotations;
use oras_testkit::Registry;
use serde_json::{Value, json};

use crate::admission::{self, Admitted};
use crate::oci_host::{ImageRegistry, Sources};
use crate::pod::pod_of;
use crate::policy_host::{CompiledPolicy, PolicyHost};
use crate::runner::{PodReport, PodRunner, RunnerConfig};

/// One object run end to end: what the policy did, and what became of the pod.
pub struct Step {
    pub admitted: Admitted,
    pub report: PodReport,
}

pub struct Local {
    pub registry: Registry,
    pub runner: PodRunner,
    policy: PolicyHost,
    pods: tempfile::TempDir,
}

impl Local {
    /// Starts a registry on a free port and loads the policy from `policy_wasm`; the
    /// policy's image lookups are answered from that registry (plain HTTP).
    pub fn start(policy_wasm: &Path, config: RunnerConfig) -> Result<Self> {
        let registry = Registry::start().context("cannot start the local registry")?;
        let lookups = ImageRegistry::new(Sources::insecure(&[&registry.host()]))?;
        let policy =
            CompiledPolicy::load(policy_wasm)?.instantiate_with(Some(Arc::new(lookups)))?;
        let pods = tempfile::Builder::new()
            .prefix("oras-e2e-pods.")
            .tempdir()
            .context("cannot create a directory for the pods")?;
        Ok(Self {
            registry,
            policy,
            runner: PodRunner::new(config),
            pods,
        })
    }

    pub fn runner(&self) -> &PodRunner {
        &self.runner
    }

    /// The policy settings: the local registry is reached over plain HTTP.
    pub fn settings(&self) -> Value {
        json!({"insecureRegistries": [self.registry.host()]})
    }

    /// `object` with the `registry` annotation naming the local registry.
    pub fn point_at_registry(&self, object: &Value) -> Result<Value> {
        let mut object = object.clone();
        let metadata = object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .context("the object has no metadata")?;
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .context("metadata.annotations is not a map")?;
        annotations.insert(
            annotations::key(annotations::REGISTRY),
            Value::String(self.registry.host()),
        );
        Ok(object)
    }

    /// `object`, pointed at the local registry, through the policy.
    pub fn admit(&self, object: &Value) -> Result<Admitted> {
        admission::admit(
            &self.policy,
            &self.settings(),
            &self.point_at_registry(object)?,
        )
    }

    /// A fresh directory for a pod named `name`.
    pub fn pod_root(&self, name: &str) -> PathBuf {
        let mut n = 0;
        loop {
            let candidate = self.pods.path().join(if n == 0 {
                name.to_string()
            } else {
                format!("{name}.{n}")
            });
            if !candidate.exists() {
                return candidate;
            }
            n += 1;
        }
    }

    /// Admits `object` and runs its pod.
    pub fn run(&self, object: &Value) -> Result<Step> {
        let admitted = self.admit(object)?;
        let report = self.run_admitted(&admitted)?;
        Ok(Step { admitted, report })
    }

    /// Runs the pod of an object the policy returned.
    pub fn run_admitted(&self, admitted: &Admitted) -> Result<PodReport> {
        let pod = pod_of(&admitted.object)?;
        let root = self.pod_root(&pod.name);
        self.runner.run(&pod, &root)
    }

    /// The agent binary as a user's command: no stray credentials, the node env.
    pub fn agent(&self) -> Command {
        let config = self.runner.config();
        let mut command = Command::new(&config.agent_binary);
        command
            .env_remove("ORAS_USER")
            .env_remove("ORAS_PUSH_PASS")
            .env_remove("ORAS_PULL_PASS")
            .env("DOCKER_CONFIG", "/nonexistent-docker-config")
            .envs(config.node_env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// `oras-agent ARGS` in `cwd`, required to succeed; returns its output.
    pub fn agent_ok(&self, args: &[&str], cwd: &Path) -> Result<Output> {
        let output = self
            .agent()
            .args(args)
            .current_dir(cwd)
            .output()
            .context("cannot run oras-agent")?;
        if !output.status.success() {
            bail!(
                "oras-agent {} failed with {}:\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output)
    }

    /// Pushes `paths` (relative to `cwd`) as `repository:tag` in the local registry.
    pub fn push(&self, repository_and_tag: &str, paths: &[&str], cwd: &Path) -> Result<()> {
        let reference = self.registry.reference(repository_and_tag);
        let mut args = vec!["push", "--plain-http", &reference];
        args.extend_from_slice(paths);
        self.agent_ok(&args, cwd).map(|_| ())
    }

    /// Pulls `repository:tag` from the local registry into `dir`.
    pub fn pull(&self, repository_and_tag: &str, dir: &Path) -> Result<()> {
        let reference = self.registry.reference(repository_and_tag);
        let dir_text = dir.to_string_lossy();
        self.agent_ok(
            &["pull", "--plain-http", &reference, "-o", &dir_text],
            Path::new("/"),
        )
        .map(|_| ())
    }
}
