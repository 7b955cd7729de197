//! The CronJobs that run `oras-agent` for a cache (`prune`, `collect`): one run at a
//! time, the agent image, the restricted security profile, and the run's summary as its
//! termination message, which the controller reads back from the finished pod.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvFromSource, EnvVar, Pod, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use super::{MANAGED_BY, owned_meta_named, runtime_default_seccomp};
use crate::crd::OrasCache;

/// The unprivileged user of the agent image.
pub const AGENT_UID: i64 = 65532;
/// Where a run writes its summary: the container's termination message.
pub const REPORT_PATH: &str = "/dev/termination-log";
/// `app.kubernetes.io/name` of the agent's pods.
const AGENT_NAME: &str = "oras-agent";
/// Runs of each outcome kept for `kubectl get jobs`.
const HISTORY: i32 = 3;
/// The longest failure message kept in the status.
const MESSAGE_LIMIT: usize = 512;

/// One kind of agent run.
pub struct AgentJob {
    /// The CronJob's name.
    pub name: String,
    /// `prune` or `collect`: the pods' component label and the container's name.
    pub component: &'static str,
    pub schedule: String,
    pub args: Vec<String>,
    pub env: Option<Vec<EnvVar>>,
    pub env_from: Option<Vec<EnvFromSource>>,
}

/// The labels of a cache's agent pods. Not the registry's selector labels: the cache's
/// Service must never send a pull to an agent pod.
pub fn pod_labels(cache: &OrasCache, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), AGENT_NAME.to_string()),
        ("app.kubernetes.io/instance".to_string(), cache.name_any()),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
    ])
}

/// The selector of one cache's agent pods, whatever their component.
pub fn pods_selector(cache: &OrasCache) -> String {
    format!(
        "app.kubernetes.io/name={AGENT_NAME},app.kubernetes.io/instance={},app.kubernetes.io/managed-by={MANAGED_BY}",
        cache.name_any()
    )
}

/// The selector of every cache's agent pods, which the controller watches.
pub fn all_pods_selector() -> String {
    format!("app.kubernetes.io/name={AGENT_NAME},app.kubernetes.io/managed-by={MANAGED_BY}")
}

/// The restricted profile, as the agent image's user.
pub fn security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(AGENT_UID),
        run_as_group: Some(AGENT_UID),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

pub fn cron_job(
    cache: &OrasCache,
    owner: OwnerReference,
    agent_image: &str,
    job: AgentJob,
) -> CronJob {
    let small = |cpu: &str, memory: &str| {
        [
            ("cpu".to_string(), K8sQuantity(cpu.into())),
            ("memory".to_string(), K8sQuantity(memory.into())),
        ]
        .into()
    };
    let container = Container {
        name: job.component.into(),
        image: Some(agent_image.to_string()),
        command: Some(vec!["oras-agent".into()]),
        args: Some(job.args),
        env: job.env,
        env_from: job.env_from,
        // A failed run has no summary: the end of its log tells why.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: Some(ResourceRequirements {
            requests: Some(small("10m", "32Mi")),
            limits: Some([("memory".to_string(), K8sQuantity("256Mi".into()))].into()),
            ..Default::default()
        }),
        security_context: Some(security_context()),
        ..Default::default()
    };
    CronJob {
        metadata: owned_meta_named(cache, owner, job.name),
        spec: Some(CronJobSpec {
            schedule: job.schedule.trim().to_string(),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(HISTORY),
            failed_jobs_history_limit: Some(HISTORY),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels(cache, job.component)),
                            ..Default::default()
                        }),
                        spec: Some(PodSpec {
                            restart_policy: Some("Never".into()),
                            containers: vec![container],
                            automount_service_account_token: Some(false),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// How a run ended: when (RFC 3339), its exit code, and its message (the summary, or
/// the end of its log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub time: String,
    pub exit_code: i32,
    pub message: String,
}

/// The end of `component`'s run in `pod`, if it has ended.
pub fn finished(pod: &Pod, component: &str) -> Option<Finished> {
    if pod
        .labels()
        .get("app.kubernetes.io/component")
        .map(String::as_str)
        != Some(component)
    {
        return None;
    }
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let state = statuses
        .iter()
        .find(|s| s.name == component)?
        .state
        .as_ref()?;
    let terminated = state.terminated.as_ref()?;
    let time = terminated
        .finished_at
        .as_ref()?
        .0
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Some(Finished {
        time,
        exit_code: terminated.exit_code,
        message: terminated
            .message
            .as_deref()
            .unwrap_or("")
            .trim()
            .to_string(),
    })
}

/// The newest of the runs read from `pods` and the one the status `recorded` before (a
/// run stays in the status after its Job is gone).
pub fn newest<R: Clone>(
    pods: &[Pod],
    run_of: impl Fn(&Pod) -> Option<R>,
    recorded: Option<&R>,
    time: impl Fn(&R) -> &str,
) -> Option<R> {
    // RFC 3339 in UTC with the same precision: the text orders as the time.
    pods.iter()
        .filter_map(run_of)
        .chain(recorded.cloned())
        .max_by(|a, b| time(a).cmp(time(b)))
}

/// A failed run's message: the end of its log, at most [`MESSAGE_LIMIT`] bytes.
pub fn failure_message(log: &str, exit_code: i32) -> String {
    if log.is_empty() {
        return format!("exited with {exit_code}");
    }
    let mut start = log.len().saturating_sub(MESSAGE_LIMIT);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    log[start..].trim().to_string()
}
