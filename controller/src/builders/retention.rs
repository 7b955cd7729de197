//! The CronJob `<cache>-prune`: `oras-agent prune` against the cache's Service on
//! `spec.retention.schedule`, with the cache's push credentials when it has
//! `auth.enabled`; and the status of its last run, read from the prune pods'
//! termination messages.

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{EnvFromSource, Pod, SecretEnvSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use oras_contract::retention::{PruneSummary, parse_age};

use super::InvalidSpec;
use super::agent_job::{self, AgentJob, REPORT_PATH};
use super::collection;
use super::credentials::credentials_secret_name;
use crate::crd::{CacheRetention, OrasCache, PruneRun, RetentionStatus};

/// The pods' component and the container's name.
pub const COMPONENT: &str = "prune";

/// `<cache>-prune`.
pub fn prune_job_name(cache: &OrasCache) -> String {
    format!("{}-prune", cache.name_any())
}

/// Whether `schedule` is a five-field cron schedule or one of cron's `@` names.
pub fn is_cron_schedule(schedule: &str) -> bool {
    let schedule = schedule.trim();
    let fields = schedule.split_whitespace().count();
    (schedule.starts_with('@') && fields == 1) || fields == 5
}

/// Checks `spec.retention`: a rule, a positive `keepLast`, an age in the prune grammar, a
/// cron schedule; and its `garbageCollect`.
pub fn validate(cache: &OrasCache) -> Result<(), InvalidSpec> {
    let Some(retention) = &cache.spec.retention else {
        return Ok(());
    };
    if retention.keep_last.is_none() && retention.max_age.is_none() {
        return Err(InvalidSpec(
            "spec.retention needs keepLast or maxAge (or both): without either it would keep everything"
                .into(),
        ));
    }
    if retention.keep_last == Some(0) {
        return Err(InvalidSpec(
            "spec.retention.keepLast 0 would delete every tag: give 1 or more".into(),
        ));
    }
    if let Some(age) = &retention.max_age {
        parse_age(age)
            .map_err(|problem| InvalidSpec(format!("spec.retention.maxAge: {problem}")))?;
    }
    if !is_cron_schedule(&retention.schedule) {
        return Err(InvalidSpec(format!(
            "spec.retention.schedule {:?} is not a cron schedule (five fields, such as \"0 * * * *\", or @hourly)",
            retention.schedule
        )));
    }
    collection::validate(cache)
}

/// `oras-agent prune` arguments for `retention` against `registry` (host:port).
pub fn prune_args(retention: &CacheRetention, registry: &str) -> Vec<String> {
    let mut args = vec![
        "prune".to_string(),
        "--plain-http".to_string(),
        "--report".to_string(),
        REPORT_PATH.to_string(),
    ];
    if let Some(n) = retention.keep_last {
        args.extend(["--keep-last".to_string(), n.to_string()]);
    }
    if let Some(age) = &retention.max_age {
        args.extend(["--max-age".to_string(), age.clone()]);
    }
    args.push(registry.to_string());
    args
}

/// The CronJob, or `None` when the cache has no retention.
pub fn prune_cron_job(
    cache: &OrasCache,
    owner: OwnerReference,
    agent_image: &str,
    cluster_domain: &str,
) -> Option<CronJob> {
    let retention = cache.spec.retention.as_ref()?;
    let registry = super::endpoint(cache, cluster_domain);
    let env_from = cache.spec.auth.enabled.then(|| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: credentials_secret_name(cache),
                optional: Some(false),
            }),
            ..Default::default()
        }]
    });
    let job = AgentJob {
        name: prune_job_name(cache),
        component: COMPONENT,
        schedule: retention.schedule.clone(),
        args: prune_args(retention, &registry),
        env: None,
        env_from,
    };
    Some(agent_job::cron_job(cache, owner, agent_image, job))
}

/// The retention status: the CronJobs, and the newest finished run of each among
/// `pods` (the cache's agent pods), or the one `previous` recorded when no pod is left
/// that is newer. `None` without retention.
pub fn status(
    cache: &OrasCache,
    pods: &[Pod],
    previous: Option<&RetentionStatus>,
) -> Option<RetentionStatus> {
    let retention = cache.spec.retention.as_ref()?;
    let recorded = previous.and_then(|p| p.last_prune.as_ref());
    let last_prune = agent_job::newest(pods, prune_run, recorded, |run| &run.time);
    Some(RetentionStatus {
        cron_job: prune_job_name(cache),
        schedule: retention.schedule.trim().to_string(),
        last_prune,
        garbage_collect: collection::status(
            cache,
            pods,
            previous.and_then(|p| p.garbage_collect.as_ref()),
        ),
    })
}

/// The run of a prune pod that has finished.
fn prune_run(pod: &Pod) -> Option<PruneRun> {
    let finished = agent_job::finished(pod, COMPONENT)?;
    if finished.exit_code != 0 {
        return Some(PruneRun {
            time: finished.time,
            result: "Failed".into(),
            tags_deleted: None,
            untagged_bytes: None,
            message: agent_job::failure_message(&finished.message, finished.exit_code),
        });
    }
    let summary = PruneSummary::from_json(&finished.message);
    let message = match &summary {
        Some(s) => format!(
            "deleted {} manifests ({} tags) and {} referrers; {} bytes of layers no longer have a tag",
            s.manifests_deleted, s.tags_deleted, s.referrers_deleted, s.untagged_bytes
        ),
        None => "succeeded without a summary".to_string(),
    };
    Some(PruneRun {
        time: finished.time,
        result: "Succeeded".into(),
        tags_deleted: summary.map(|s| s.tags_deleted),
        untagged_bytes: summary.map(|s| s.untagged_bytes),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{CacheRetention, OrasCacheSpec};

    fn cache(retention: Option<CacheRetention>, auth: bool) -> OrasCache {
        let mut spec = OrasCacheSpec {
            retention,
            ..Default::default()
        };
        spec.auth.enabled = auth;
        let mut cache = OrasCache::new("oras", spec);
        cache.metadata.namespace = Some("team".into());
        cache
    }

    fn retention(keep_last: Option<u32>, max_age: Option<&str>, schedule: &str) -> CacheRetention {
        CacheRetention {
            keep_last,
            max_age: max_age.map(str::to_string),
            schedule: schedule.into(),
            garbage_collect: None,
        }
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
    fn the_cron_job_prunes_the_service_one_run_at_a_time_as_the_agent_user() {
        let cache = cache(Some(retention(Some(5), Some("7d"), "30 2 * * *")), false);
        let job = prune_cron_job(&cache, owner(), "agent:1", "cluster.local").unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("oras-prune"));
        assert_eq!(job.metadata.owner_references.unwrap()[0].name, "oras");
        let spec = job.spec.unwrap();
        assert_eq!(spec.schedule, "30 2 * * *");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        let pod = spec
            .job_template
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("agent:1"));
        assert_eq!(
            container.args.as_deref().unwrap(),
            [
                "prune",
                "--plain-http",
                "--report",
                "/dev/termination-log",
                "--keep-last",
                "5",
                "--max-age",
                "7d",
                "oras.team.svc.cluster.local:5000"
            ]
        );
        assert_eq!(
            container.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        assert!(container.env_from.is_none());
        // The Service selects the registry pods by these: a prune pod must not match.
        let labels = spec
            .job_template
            .spec
            .as_ref()
            .and_then(|j| j.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap();
        let selects_prune_pod = crate::builders::selector_labels(&cache)
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value));
        assert!(!selects_prune_pod, "{labels:?}");
        assert_eq!(labels["app.kubernetes.io/component"], "prune");
        let sc = container.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn with_auth_the_prune_reads_the_push_credentials() {
        let cache = cache(Some(retention(None, Some("12h"), "@hourly")), true);
        let job = prune_cron_job(&cache, owner(), "agent:1", "cluster.local").unwrap();
        let pod = job
            .spec
            .unwrap()
            .job_template
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let from = pod.containers[0].env_from.as_ref().unwrap();
        assert_eq!(
            from[0].secret_ref.as_ref().unwrap().name,
            "oras-credentials"
        );
        assert_eq!(
            pod.containers[0].args.as_deref().unwrap(),
            [
                "prune",
                "--plain-http",
                "--report",
                "/dev/termination-log",
                "--max-age",
                "12h",
                "oras.team.svc.cluster.local:5000"
            ]
        );
    }

    /// A prune pod whose container ended with `exit_code` at `finished`, with `message`.
    fn pod(finished: &str, exit_code: i32, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("oras-prune-{finished}"),
                "labels": {"app.kubernetes.io/component": "prune"}},
            "status": {"phase": if exit_code == 0 { "Succeeded" } else { "Failed" },
                "containerStatuses": [{"name": "prune", "image": "a", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {
                        "exitCode": exit_code, "finishedAt": finished, "message": message}}}]}
        }))
        .unwrap()
    }

    fn running() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "oras-prune-now",
                "labels": {"app.kubernetes.io/component": "prune"}},
            "status": {"phase": "Running", "containerStatuses": [{"name": "prune", "image": "a",
                "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_status_reports_the_newest_finished_run() {
        let cache = cache(Some(retention(Some(5), None, "0 3 * * *")), false);
        let summary = PruneSummary {
            dry_run: false,
            manifests_deleted: 4,
            tags_deleted: 5,
            referrers_deleted: 2,
            untagged_bytes: 4096,
        }
        .to_json();
        let pods = [
            pod(
                "2026-11-30T03:00:09Z",
                0,
                r#"{"dryRun":false,"manifestsDeleted":1,"tagsDeleted":1,"referrersDeleted":0,"untaggedBytes":10}"#,
            ),
            pod("2026-12-01T03:00:07Z", 0, &summary),
            running(),
        ];
        let status = status(&cache, &pods, None).unwrap();
        assert_eq!(status.cron_job, "oras-prune");
        assert_eq!(status.schedule, "0 3 * * *");
        let last = status.last_prune.unwrap();
        assert_eq!(last.time, "2026-12-01T03:00:07Z");
        assert_eq!(last.result, "Succeeded");
        assert_eq!(last.tags_deleted, Some(5));
        assert_eq!(last.untagged_bytes, Some(4096));
        assert!(
            last.message
                .contains("deleted 4 manifests (5 tags) and 2 referrers"),
            "{}",
            last.message
        );
    }

    #[test]
    fn a_failed_run_reports_the_end_of_its_log_and_a_newer_one_replaces_it() {
        let cache = cache(Some(retention(Some(5), None, "@hourly")), false);
        let log = format!(
            "{}Error: 127.0.0.1:5000 refused the connection",
            "x".repeat(2000)
        );
        let failed = status(&cache, &[pod("2026-12-01T03:00:07Z", 1, &log)], None).unwrap();
        let last = failed.last_prune.clone().unwrap();
        assert_eq!(last.result, "Failed");
        assert_eq!(last.tags_deleted, None);
        assert!(
            last.message.ends_with("refused the connection"),
            "{}",
            last.message
        );
        assert!(last.message.len() <= 512);
        let silent = status(&cache, &[pod("2026-12-01T03:00:07Z", 137, "")], None).unwrap();
        assert_eq!(silent.last_prune.unwrap().message, "exited with 137");

        // The pods are gone (history limit): the recorded run stands; a newer pod wins.
        assert_eq!(status(&cache, &[], Some(&failed)), Some(failed.clone()));
        let newer = status(&cache, &[pod("2026-12-01T04:00:05Z", 0, "")], Some(&failed)).unwrap();
        assert_eq!(newer.last_prune.unwrap().result, "Succeeded");
        let older = status(&cache, &[pod("2026-12-01T02:00:05Z", 0, "")], Some(&failed)).unwrap();
        assert_eq!(older.last_prune.unwrap().result, "Failed");
    }

    #[test]
    fn no_retention_no_cron_job() {
        assert!(prune_cron_job(&cache(None, false), owner(), "a", "cluster.local").is_none());
        assert_eq!(status(&cache(None, false), &[running()], None), None);
        assert!(validate(&cache(None, false)).is_ok());
    }

    #[test]
    fn bad_retention_is_refused_naming_the_field_and_value() {
        let refused = |r: CacheRetention| validate(&cache(Some(r), false)).unwrap_err().0;
        assert!(refused(retention(None, None, "0 * * * *")).contains("keepLast or maxAge"));
        assert!(refused(retention(Some(0), None, "0 * * * *")).contains("keepLast 0"));
        let age = refused(retention(None, Some("7y"), "0 * * * *"));
        assert!(
            age.contains("spec.retention.maxAge") && age.contains("\"7y\""),
            "{age}"
        );
        let schedule = refused(retention(Some(1), None, "hourly"));
        assert!(
            schedule.contains("spec.retention.schedule \"hourly\""),
            "{schedule}"
        );
        assert!(validate(&cache(Some(retention(Some(1), None, "@daily")), false)).is_ok());
    }
}
