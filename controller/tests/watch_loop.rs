//! The whole controller loop (watches, echo filtering, reconcile, status) in-process
//! against the fake API server of `tests/support/fake_api.rs` on 127.0.0.1: what the
//! mock scenarios cannot show, that watch events lead to the right reconciles and that
//! the controller's own writes lead to none.

mod support;

use serde_json::{Value, json};
use support::fake_api::{FakeApi, Kind};
use support::running::{Running, is, until};

#[tokio::test]
async fn watch_events_drive_reconciles_and_own_writes_do_not() {
    let api = FakeApi::start(3).await;
    let controller = Running::start(&api);

    // Created: each cache gets its StatefulSet and Service, and a not-ready status.
    let caches = ["team-000/oras", "team-001/oras", "team-002/oras"];
    until("three caches applied", || {
        caches
            .iter()
            .all(|c| is(&api, c, "False", "RegistryNotReady"))
    })
    .await;
    until("the watches", || api.watching()).await;
    until("/readyz to turn ready", || controller.is_ready()).await;
    let sts = api.object(Kind::StatefulSet, "team-000/oras").unwrap();
    assert_eq!(
        sts["metadata"]["ownerReferences"][0]["uid"],
        "00000000-0000-4000-8000-000000000000"
    );
    assert!(api.object(Kind::Service, "team-000/oras").is_some());

    // The registry pods turn ready: the caches follow.
    api.set_ready(1);
    until("three caches ready", || {
        caches.iter().all(|c| is(&api, c, "True", "RegistryReady"))
    })
    .await;

    // Drift: someone scales the registry and swaps its image; it is taken back.
    api.modify(Kind::StatefulSet, "team-001/oras", |sts| {
        sts["spec"]["replicas"] = json!(3);
        sts["spec"]["template"]["spec"]["containers"][0]["image"] = json!("example/evil:1");
    });
    until("the drift corrected", || {
        let sts = api.object(Kind::StatefulSet, "team-001/oras").unwrap();
        sts["spec"]["replicas"] == 1
            && sts["spec"]["template"]["spec"]["containers"][0]["image"]
                == json!(oras_controller::crd::DEFAULT_IMAGE)
    })
    .await;

    // Someone deletes a Service: it is made again.
    api.delete(Kind::Service, "team-000/oras");
    until("the Service back", || {
        api.object(Kind::Service, "team-000/oras").is_some()
    })
    .await;

    // deploy: false removes the registry and reports External.
    api.modify(Kind::Cache, "team-002/oras", |cache| {
        cache["spec"]["deploy"] = json!(false);
        cache["metadata"]["generation"] = json!(2);
    });
    until("team-002 external", || {
        is(&api, "team-002/oras", "True", "External")
    })
    .await;
    assert!(api.object(Kind::StatefulSet, "team-002/oras").is_none());
    assert!(api.object(Kind::Service, "team-002/oras").is_none());
    assert_eq!(
        api.object(Kind::Cache, "team-002/oras").unwrap()["status"].get("endpoint"),
        None
    );

    let metrics = controller.metrics.clone();
    controller.stop().await;

    // No reconcile came from the controller's own writes: team-000 was applied once
    // when created, once when its pod turned ready and once when its Service was
    // deleted; team-001 once more for the drift.
    assert_eq!(api.applies(Kind::StatefulSet, "team-000/oras"), 3);
    assert_eq!(api.applies(Kind::Service, "team-000/oras"), 3);
    assert_eq!(api.applies(Kind::StatefulSet, "team-001/oras"), 3);
    let status_writes: Value = json!(api.requests().get("PATCH Cache"));
    // 3 created + 3 ready + 1 external.
    assert_eq!(status_writes, json!(7));
    assert!(metrics.reconciles() >= 8);
}

fn secret_text(secret: &Value, key: &str) -> String {
    use base64::Engine as _;
    let encoded = secret["data"][key].as_str().unwrap_or_default();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_network_policy_and_the_credentials_follow_the_cache() {
    let api = FakeApi::start(1).await;
    let controller = Running::start(&api);
    let key = "team-000/oras";
    let credentials = "team-000/oras-credentials";
    let htpasswd = "team-000/oras-htpasswd";

    // A new cache gets its NetworkPolicy, and no Secret without auth.
    until("the cache applied", || {
        is(&api, key, "False", "RegistryNotReady")
    })
    .await;
    until("the watches", || api.watching()).await;
    let policy = api
        .object(Kind::NetworkPolicy, key)
        .expect("the NetworkPolicy");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 5000);
    assert!(api.objects(Kind::Secret).is_empty());

    // Someone deletes the NetworkPolicy: it is made again.
    api.delete(Kind::NetworkPolicy, key);
    until("the NetworkPolicy back", || {
        api.object(Kind::NetworkPolicy, key).is_some()
    })
    .await;

    // auth: the credentials Secret, the htpasswd Secret and the gated registry.
    api.modify(Kind::Cache, key, |cache| {
        cache["spec"]["auth"] = json!({"enabled": true});
        cache["metadata"]["generation"] = json!(2);
    });
    until("the gate in the registry pod", || {
        api.object(Kind::StatefulSet, key).is_some_and(|sts| {
            sts["spec"]["template"]["spec"]["containers"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == "gate"))
        })
    })
    .await;
    let first = api
        .object(Kind::Secret, credentials)
        .expect("the credentials");
    let push = secret_text(&first, "ORAS_PUSH_PASS");
    assert_eq!(push.len(), 32);
    let file = secret_text(&api.object(Kind::Secret, htpasswd).unwrap(), "htpasswd");
    assert!(!file.contains(&push));

    // Later reconciles (the pod turns ready, drift) keep the Secret as it is.
    api.set_ready(1);
    until("ready", || is(&api, key, "True", "RegistryReady")).await;
    api.modify(Kind::StatefulSet, key, |sts| {
        sts["spec"]["replicas"] = json!(2);
    });
    until("the drift corrected", || {
        api.object(Kind::StatefulSet, key).unwrap()["spec"]["replicas"] == 1
    })
    .await;
    assert_eq!(api.object(Kind::Secret, credentials).unwrap(), first);
    assert_eq!(
        api.applies(Kind::Secret, credentials),
        1,
        "created once, never written"
    );
    assert_eq!(
        secret_text(&api.object(Kind::Secret, htpasswd).unwrap(), "htpasswd"),
        file,
        "the same hashes"
    );

    // Someone deletes the credentials: new passwords, a new htpasswd file.
    api.delete(Kind::Secret, credentials);
    until("new credentials", || {
        api.object(Kind::Secret, credentials)
            .is_some_and(|s| secret_text(&s, "ORAS_PUSH_PASS") != push)
    })
    .await;
    until("a new htpasswd", || {
        api.object(Kind::Secret, htpasswd)
            .is_some_and(|s| secret_text(&s, "htpasswd") != file)
    })
    .await;

    // access.networkPolicy false: the NetworkPolicy goes.
    api.modify(Kind::Cache, key, |cache| {
        cache["spec"]["access"] = json!({"networkPolicy": false});
        cache["metadata"]["generation"] = json!(3);
    });
    until("the NetworkPolicy deleted", || {
        api.object(Kind::NetworkPolicy, key).is_none()
    })
    .await;

    controller.stop().await;
}

/// An agent pod (`component`: prune, collect) of the cache `oras` in `team-000` that
/// finished with `summary`.
fn finished_agent_pod(component: &str, name: &str, finished: &str, summary: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-000", "uid": format!("pod-{name}"),
            "labels": {"app.kubernetes.io/name": "oras-agent",
                "app.kubernetes.io/instance": "oras",
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/managed-by": "oras-controller"}},
        "spec": {"containers": [{"name": component, "image": "agent"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": component,
            "image": "agent", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "finishedAt": finished,
                "message": summary}}}]}
    })
}

#[tokio::test]
async fn retention_runs_as_a_cron_job_whose_finished_runs_reach_the_status() {
    let api = FakeApi::start(1).await;
    let controller = Running::start(&api);
    let key = "team-000/oras";
    let cron = "team-000/oras-prune";
    until("the cache applied", || {
        is(&api, key, "False", "RegistryNotReady")
    })
    .await;
    until("the watches", || api.watching()).await;
    assert!(api.objects(Kind::CronJob).is_empty());

    api.modify(Kind::Cache, key, |cache| {
        cache["spec"]["retention"] = json!({"keepLast": 3, "schedule": "*/10 * * * *"});
        cache["metadata"]["generation"] = json!(2);
    });
    until("the prune CronJob", || {
        api.object(Kind::CronJob, cron).is_some()
    })
    .await;
    let job = api.object(Kind::CronJob, cron).unwrap();
    assert_eq!(job["spec"]["schedule"], "*/10 * * * *");
    assert_eq!(job["spec"]["concurrencyPolicy"], "Forbid");
    until("the retention status", || {
        api.object(Kind::Cache, key)
            .is_some_and(|c| c["status"]["retention"]["cronJob"] == "oras-prune")
    })
    .await;

    // A run finishes: the watch of prune pods brings its summary into the status.
    let summary = oras_contract::retention::PruneSummary {
        dry_run: false,
        manifests_deleted: 6,
        tags_deleted: 7,
        referrers_deleted: 2,
        untagged_bytes: 123_456,
    }
    .to_json();
    api.create(
        Kind::Pod,
        "team-000/oras-prune-29000000-abcde",
        finished_agent_pod(
            "prune",
            "oras-prune-29000000-abcde",
            "2026-12-01T05:10:03Z",
            &summary,
        ),
    );
    until("the last prune in the status", || {
        api.object(Kind::Cache, key).is_some_and(|c| {
            let last = &c["status"]["retention"]["lastPrune"];
            last["tagsDeleted"] == 7 && last["time"] == "2026-12-01T05:10:03Z"
        })
    })
    .await;

    // Someone deletes the CronJob: it is made again.
    api.delete(Kind::CronJob, cron);
    until("the CronJob back", || {
        api.object(Kind::CronJob, cron).is_some()
    })
    .await;

    // Garbage collection: its token Secret (made once), the supervised registry, the
    // collect CronJob, and a finished collection in the status.
    let collect = "team-000/oras-collect";
    let token = "team-000/oras-maintenance";
    api.modify(Kind::Cache, key, |cache| {
        cache["spec"]["retention"]["garbageCollect"] = json!({"schedule": "@daily"});
        cache["metadata"]["generation"] = json!(3);
    });
    until("the collect CronJob", || {
        api.object(Kind::CronJob, collect).is_some()
    })
    .await;
    let supervised = api.object(Kind::StatefulSet, key).unwrap();
    assert_eq!(
        supervised["spec"]["template"]["spec"]["containers"][0]["command"][1],
        "serve-registry"
    );
    let secret = api
        .object(Kind::Secret, token)
        .expect("the maintenance token");
    let summary = oras_contract::retention::CollectionSummary {
        blobs_deleted: Some(11),
        manifests_deleted: Some(0),
        bytes_freed: Some(9_999),
        read_only_millis: 420,
    }
    .to_json();
    api.create(
        Kind::Pod,
        "team-000/oras-collect-29000001-fghij",
        finished_agent_pod(
            "collect",
            "oras-collect-29000001-fghij",
            "2026-12-01T05:20:00Z",
            &summary,
        ),
    );
    until("the last collection in the status", || {
        api.object(Kind::Cache, key).is_some_and(|c| {
            c["status"]["retention"]["garbageCollect"]["lastCollection"]["blobsDeleted"] == 11
        })
    })
    .await;
    let cache = api.object(Kind::Cache, key).unwrap();
    assert_eq!(
        cache["status"]["retention"]["lastPrune"]["tagsDeleted"], 7,
        "the prune's run stays"
    );
    assert_eq!(api.object(Kind::Secret, token).unwrap(), secret);
    assert_eq!(api.applies(Kind::Secret, token), 1, "made once");

    // Retention unset: the CronJob and its status go.
    api.modify(Kind::Cache, key, |cache| {
        cache["spec"].as_object_mut().unwrap().remove("retention");
        cache["metadata"]["generation"] = json!(4);
    });
    until(
        "the CronJobs deleted and the status without retention",
        || {
            api.object(Kind::CronJob, cron).is_none()
                && api.object(Kind::CronJob, collect).is_none()
                && api
                    .object(Kind::Cache, key)
                    .is_some_and(|c| c["status"].get("retention").is_none())
        },
    )
    .await;

    controller.stop().await;
}

fn annotation(object: &Value, key: &str) -> Value {
    object["spec"]["template"]["metadata"]["annotations"][key].clone()
}

#[tokio::test]
async fn a_cache_moved_to_s3_runs_replicas_behind_a_budget_and_a_shared_secret() {
    use oras_controller::builders::http_secret::DIGEST_ANNOTATION;
    let api = FakeApi::start(1).await;
    let controller = Running::start(&api);
    let key = "team-000/oras";
    let http_secret = "team-000/oras-http-secret";
    until("the cache applied", || {
        is(&api, key, "False", "RegistryNotReady")
    })
    .await;
    until("the watches", || api.watching()).await;
    assert!(api.object(Kind::StatefulSet, key).is_some());
    assert!(api.object(Kind::Deployment, key).is_none());

    // storage.s3 with three replicas: a Deployment instead of the StatefulSet, a budget,
    // a generated HTTP secret the pods read.
    api.modify(Kind::Cache, key, |cache| {
        cache["spec"]["replicas"] = json!(3);
        cache["spec"]["storage"] = json!({"s3": {"bucket": "artifacts",
            "endpoint": "minio.storage:9000", "insecure": true, "secretName": "s3-keys"}});
        cache["metadata"]["generation"] = json!(2);
    });
    until("the Deployment in place of the StatefulSet", || {
        api.object(Kind::Deployment, key).is_some() && api.object(Kind::StatefulSet, key).is_none()
    })
    .await;
    until("the budget", || {
        api.object(Kind::PodDisruptionBudget, key).is_some()
    })
    .await;
    let deployment = api.object(Kind::Deployment, key).unwrap();
    assert_eq!(deployment["spec"]["replicas"], 3);
    let secret = api
        .object(Kind::Secret, http_secret)
        .expect("the HTTP secret");
    let digest = annotation(&deployment, DIGEST_ANNOTATION);
    assert_eq!(digest.as_str().unwrap().len(), 64);
    let budget = api.object(Kind::PodDisruptionBudget, key).unwrap();
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    until("the status counts three wanted", || {
        api.object(Kind::Cache, key)
            .is_some_and(|c| c["status"]["replicas"] == 3 && c["status"]["readyReplicas"] == 0)
    })
    .await;

    // One pod of three ready: the cache serves.
    api.set_ready(1);
    until("ready with one pod", || {
        is(&api, key, "True", "RegistryReady")
    })
    .await;
    assert_eq!(
        api.object(Kind::Cache, key).unwrap()["status"]["readyReplicas"],
        1
    );

    // Drift and deletion are taken back; the secret is never written again.
    api.modify(Kind::Deployment, key, |d| d["spec"]["replicas"] = json!(1));
    until("the replicas back", || {
        api.object(Kind::Deployment, key).unwrap()["spec"]["replicas"] == 3
    })
    .await;
    api.delete(Kind::PodDisruptionBudget, key);
    until("the budget back", || {
        api.object(Kind::PodDisruptionBudget, key).is_some()
    })
    .await;
    assert_eq!(api.object(Kind::Secret, http_secret).unwrap(), secret);
    assert_eq!(api.applies(Kind::Secret, http_secret), 1);

    // A deleted HTTP secret: a new one, and every pod restarts with it.
    api.delete(Kind::Secret, http_secret);
    until("a new secret and new pods", || {
        api.object(Kind::Secret, http_secret)
            .is_some_and(|s| s != secret)
            && api
                .object(Kind::Deployment, key)
                .is_some_and(|d| annotation(&d, DIGEST_ANNOTATION) != digest)
    })
    .await;

    // One replica: no budget.
    api.modify(Kind::Cache, key, |cache| {
        cache["spec"]["replicas"] = json!(1);
        cache["metadata"]["generation"] = json!(3);
    });
    until("the budget gone", || {
        api.object(Kind::PodDisruptionBudget, key).is_none()
    })
    .await;

    // Back to a volume: the StatefulSet returns, the Deployment goes.
    api.modify(Kind::Cache, key, |cache| {
        cache["spec"]["storage"] = json!({});
        cache["metadata"]["generation"] = json!(4);
    });
    until("the StatefulSet in place of the Deployment", || {
        api.object(Kind::StatefulSet, key).is_some() && api.object(Kind::Deployment, key).is_none()
    })
    .await;

    controller.stop().await;
}
