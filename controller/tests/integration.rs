//! The real controller against a real API server: the cluster of ORAS_TEST_KUBECONFIG
//! when it is set (its user must be allowed to create CRDs and namespaces), else an etcd
//! and a kube-apiserver that the test starts on 127.0.0.1 from what `make tools` built.
//! No scheduler or kubelet is needed: the test writes the StatefulSet's status itself to
//! stand for a ready registry pod. The API server validates every object the controller
//! makes: the StatefulSet, the Service, the NetworkPolicy (`spec.access`), with
//! `spec.auth` the credentials and htpasswd Secrets (kept across reconciles, made again
//! with new passwords when deleted), with `spec.storage.s3` and `spec.replicas` the
//! Deployment in place of the StatefulSet, its PodDisruptionBudget and the generated HTTP
//! secret, and with `spec.retention` the prune and collect CronJobs (a prune pod the
//! test finishes reaches the status). With no garbage collector running, nothing is
//! deleted through owner references.
//!
//!   ORAS_TEST_KUBECONFIG=$HOME/.kube/config cargo test -p oras-controller --test integration -- --nocapture

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Client, Config, CustomResourceExt, Resource, ResourceExt};
use oras_controller::controller::{self, Shutdown};
use oras_controller::metrics::Metrics;
use oras_controller::{Context, OrasCache, Settings};
use oras_testkit::ControlPlane;
use serde_json::json;

/// Upper bound of every wait, so that a broken controller fails the test instead of
/// hanging it. Nothing is asserted about how long a step takes.
const PATIENCE: Duration = Duration::from_secs(120);
const MANAGER: &str = "oras-controller-integration-test";

/// A client of the API server the test runs against, and the control plane it started
/// (kept alive as long as the test holds it).
async fn client() -> (Client, Option<ControlPlane>) {
    let (path, plane) = match std::env::var_os("ORAS_TEST_KUBECONFIG") {
        Some(path) => (std::path::PathBuf::from(path), None),
        None => {
            let plane = ControlPlane::start()
                .unwrap_or_else(|e| panic!("starting etcd and kube-apiserver: {e}"));
            (plane.kubeconfig().to_path_buf(), Some(plane))
        }
    };
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("reading the kubeconfig {path:?}: {e}"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {path:?}: {e}"));
    let client = Client::try_from(config).expect("a client from the kubeconfig");
    (client, plane)
}

async fn wait<K>(api: &Api<K>, name: &str, what: &str, condition: impl Condition<K>) -> Option<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    within(what, await_condition(api.clone(), name, condition))
        .await
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

/// Polls `get` until it finds the object.
async fn poll<K, F, Fut>(get: F) -> K
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<K>, kube::Error>>,
{
    loop {
        if let Some(object) = get().await.unwrap() {
            return object;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn owned_by(uid: String) -> impl Fn(Option<&StatefulSet>) -> bool {
    move |sts| {
        sts.is_some_and(|s| {
            s.owner_references()
                .iter()
                .any(|r| r.uid == uid && r.controller == Some(true))
        })
    }
}

fn ready_is(status: &'static str, reason: &'static str) -> impl Fn(Option<&OrasCache>) -> bool {
    move |cache| {
        cache
            .and_then(|c| c.status.as_ref())
            .and_then(|s| s.ready())
            .is_some_and(|c| c.status == status && c.reason == reason)
    }
}

#[tokio::test]
async fn the_controller_runs_a_cache_through_its_life() {
    let (client, _control_plane) = client().await;

    // The CRD, as crdgen prints it.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply(MANAGER).force();
    crds.patch(
        OrasCache::crd_name(),
        &apply,
        &Patch::Apply(OrasCache::crd()),
    )
    .await
    .expect("applying the CRD");
    wait(
        &crds,
        OrasCache::crd_name(),
        "the CRD to be established",
        conditions::is_crd_established(),
    )
    .await;

    // A namespace of our own.
    let ns_name = format!("oras-it-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": ns_name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating the namespace");

    // The controller, in this process.
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(
        client.clone(),
        Settings::default(),
        metrics.clone(),
        None,
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let running = tokio::spawn(controller::run(
        ctx,
        Arc::new(AtomicBool::new(false)),
        Shutdown::On(stopped),
    ));

    let caches: Api<OrasCache> = Api::namespaced(client.clone(), &ns_name);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns_name);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns_name);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns_name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns_name);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns_name);

    // Create a cache: a StatefulSet and a Service owned by it, status not ready yet.
    let cache: OrasCache = serde_json::from_value(json!({
        "apiVersion": "cache.converged-computing.github.io/v1alpha1",
        "kind": "OrasCache",
        "metadata": {"name": "oras"},
        "spec": {}
    }))
    .unwrap();
    let cache = caches
        .create(&PostParams::default(), &cache)
        .await
        .expect("creating the cache");
    let uid = cache.uid().expect("the API server sets a uid");
    let sts = wait(
        &statefulsets,
        "oras",
        "the StatefulSet",
        owned_by(uid.clone()),
    )
    .await
    .unwrap();
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(1));
    let svc = within("the Service", async {
        loop {
            if let Some(svc) = services.get_opt("oras").await.unwrap() {
                break svc;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(svc.owner_references().iter().any(|r| r.uid == uid));
    assert_eq!(
        svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
        5000
    );
    let cache = wait(
        &caches,
        "oras",
        "status RegistryNotReady",
        ready_is("False", "RegistryNotReady"),
    )
    .await
    .unwrap();
    assert_eq!(
        cache.status.as_ref().unwrap().endpoint.as_deref(),
        Some(format!("oras.{ns_name}.svc.cluster.local:5000").as_str())
    );

    // Stand in for the kubelet: the registry pod is ready.
    statefulsets
        .patch_status(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await
        .expect("patching the StatefulSet status");
    let cache = wait(
        &caches,
        "oras",
        "status RegistryReady",
        ready_is("True", "RegistryReady"),
    )
    .await
    .unwrap();
    assert_eq!(cache.status.as_ref().unwrap().ready_replicas, Some(1));

    // The NetworkPolicy, as the API server validated and stored it: the registry pod,
    // this namespace's pods, the registry port.
    let policy = within("the NetworkPolicy", poll(|| policies.get_opt("oras"))).await;
    assert!(policy.owner_references().iter().any(|r| r.uid == uid));
    let spec = policy.spec.as_ref().unwrap();
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    let rule = &spec.ingress.as_ref().unwrap()[0];
    assert_eq!(
        rule.ports.as_ref().unwrap()[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(5000))
    );

    // Other namespaces by name and by label.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": {
                "namespaces": ["analysis"],
                "namespaceSelector": {"matchLabels": {"team": "physics"}}
            }}})),
        )
        .await
        .expect("widening access");
    within("the NetworkPolicy to admit analysis and team=physics", async {
        loop {
            let policy = policies.get("oras").await.unwrap();
            let from = serde_json::to_value(&policy.spec.unwrap().ingress.unwrap()[0].from).unwrap();
            if from
                == json!([
                    {"podSelector": {}},
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "analysis"}}},
                    {"namespaceSelector": {"matchLabels": {"team": "physics"}}}
                ])
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    // auth: the credentials Secret (owned, the oras-env keys), the htpasswd Secret with
    // hashes only, and the registry behind the gate.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"auth": {"enabled": true}}})),
        )
        .await
        .expect("enabling auth");
    let credentials = within(
        "the credentials Secret",
        poll(|| secrets.get_opt("oras-credentials")),
    )
    .await;
    assert!(credentials.owner_references().iter().any(|r| r.uid == uid));
    let data = credentials.data.clone().unwrap();
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(keys, ["ORAS_PULL_PASS", "ORAS_PUSH_PASS", "ORAS_USER"]);
    let push = String::from_utf8(data["ORAS_PUSH_PASS"].0.clone()).unwrap();
    let htpasswd = within(
        "the htpasswd Secret",
        poll(|| secrets.get_opt("oras-htpasswd")),
    )
    .await;
    let file = String::from_utf8(htpasswd.data.unwrap()["htpasswd"].0.clone()).unwrap();
    assert!(!file.contains(&push));
    let (_, hash) = file.lines().next().unwrap().split_once(':').unwrap();
    assert!(bcrypt::verify(&push, hash).unwrap());
    wait(
        &statefulsets,
        "oras",
        "the gate in the registry pod",
        |sts: Option<&StatefulSet>| {
            sts.and_then(|s| s.spec.as_ref())
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| p.containers.iter().any(|c| c.name == "gate"))
        },
    )
    .await;

    // Reconciles that follow (the pod turning ready again) leave the Secret alone.
    statefulsets
        .patch_status(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 0, "availableReplicas": 0}}),
            ),
        )
        .await
        .expect("patching the StatefulSet status");
    wait(
        &caches,
        "oras",
        "status RegistryNotReady again",
        ready_is("False", "RegistryNotReady"),
    )
    .await;
    let again = secrets.get("oras-credentials").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        credentials.metadata.resource_version
    );
    assert_eq!(again.data, credentials.data);

    // Someone deletes the credentials: new ones are made, with new passwords.
    secrets
        .delete("oras-credentials", &DeleteParams::default())
        .await
        .expect("deleting the credentials");
    let old_uid = credentials.uid().unwrap();
    let renewed = within("new credentials", async {
        loop {
            if let Some(secret) = secrets.get_opt("oras-credentials").await.unwrap()
                && secret.uid().as_deref() != Some(old_uid.as_str())
            {
                break secret;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_ne!(renewed.data.unwrap()["ORAS_PUSH_PASS"].0, push.as_bytes());

    // Change the spec: the Service, the StatefulSet (its gate) and the NetworkPolicy
    // follow.
    let patched = caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"port": 6000}})),
        )
        .await
        .expect("changing the port");
    wait(
        &statefulsets,
        "oras",
        "the StatefulSet on port 6000",
        |sts: Option<&StatefulSet>| {
            sts.and_then(|s| s.spec.as_ref())
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| {
                    p.containers.iter().any(|c| {
                        c.ports
                            .as_ref()
                            .is_some_and(|ports| ports[0].container_port == 6000)
                    })
                })
        },
    )
    .await;
    within("the Service on port 6000", async {
        loop {
            let svc = services.get("oras").await.unwrap();
            if svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port == 6000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let generation = patched.metadata.generation;
    assert!(generation.is_some());
    wait(
        &caches,
        "oras",
        "the status to observe the port change",
        move |c: Option<&OrasCache>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.observed_generation)
                == generation
        },
    )
    .await;

    within("the NetworkPolicy on port 6000", async {
        loop {
            let policy = policies.get("oras").await.unwrap();
            let port = policy.spec.unwrap().ingress.unwrap()[0]
                .ports
                .as_ref()
                .unwrap()[0]
                .port
                .clone();
            if port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(6000)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    // retention: the prune CronJob as the API server validated it, against the Service
    // on its current port; a finished prune pod's summary reaches the status.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"retention": {
                "keepLast": 5, "maxAge": "7d", "schedule": "15 * * * *",
                "garbageCollect": {"schedule": "45 4 * * *"}
            }}})),
        )
        .await
        .expect("setting retention");
    let cron_jobs: Api<CronJob> = Api::namespaced(client.clone(), &ns_name);
    let cron = within(
        "the prune CronJob",
        poll(|| cron_jobs.get_opt("oras-prune")),
    )
    .await;
    assert!(cron.owner_references().iter().any(|r| r.uid == uid));
    let spec = cron.spec.as_ref().unwrap();
    assert_eq!(spec.schedule, "15 * * * *");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    let prune = &spec.job_template.spec.as_ref().unwrap().template;
    let args = prune.spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert_eq!(
        args.last().map(String::as_str),
        Some(format!("oras.{ns_name}.svc.cluster.local:6000").as_str())
    );
    // Stand in for the Job controller and the kubelet: a prune pod that finished.
    let pod_labels = prune.metadata.as_ref().unwrap().labels.clone().unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns_name);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("creating the default ServiceAccount: {error}"),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "oras-prune-1-abcde", "labels": pod_labels},
        "spec": {"automountServiceAccountToken": false,
                 "containers": [{"name": "prune", "image": "oras-agent"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("creating a prune pod");
    let summary = oras_contract::retention::PruneSummary {
        dry_run: false,
        manifests_deleted: 2,
        tags_deleted: 3,
        referrers_deleted: 1,
        untagged_bytes: 4096,
    }
    .to_json();
    pods.patch_status(
        "oras-prune-1-abcde",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"status": {"phase": "Succeeded", "containerStatuses": [{
            "name": "prune", "image": "oras-agent", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0,
                "startedAt": "2026-12-01T05:15:00Z", "finishedAt": "2026-12-01T05:15:02Z",
                "message": summary}}}]}}),
        ),
    )
    .await
    .expect("finishing the prune pod");
    let cache = wait(
        &caches,
        "oras",
        "the last prune in the status",
        |c: Option<&OrasCache>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.retention.as_ref())
                .and_then(|r| r.last_prune.as_ref())
                .is_some_and(|run| run.tags_deleted == Some(3))
        },
    )
    .await
    .unwrap();
    let retention = cache.status.unwrap().retention.unwrap();
    assert_eq!(retention.cron_job, "oras-prune");
    let last = retention.last_prune.unwrap();
    assert_eq!(
        (last.time.as_str(), last.result.as_str()),
        ("2026-12-01T05:15:02Z", "Succeeded")
    );
    // Garbage collection: the collect CronJob with the token of its Secret, and the
    // registry under the supervisor, as the API server validated them.
    let collect = within(
        "the collect CronJob",
        poll(|| cron_jobs.get_opt("oras-collect")),
    )
    .await;
    assert_eq!(collect.spec.as_ref().unwrap().schedule, "45 4 * * *");
    let token = within(
        "the maintenance token",
        poll(|| secrets.get_opt("oras-maintenance")),
    )
    .await;
    assert!(token.owner_references().iter().any(|r| r.uid == uid));
    assert!(token.data.unwrap()["ORAS_MAINTENANCE_TOKEN"].0.len() >= 32);
    wait(
        &statefulsets,
        "oras",
        "the registry under serve-registry",
        |sts: Option<&StatefulSet>| {
            sts.and_then(|s| s.spec.as_ref())
                .and_then(|s| s.template.spec.as_ref())
                .is_some_and(|p| {
                    p.containers.iter().any(|c| {
                        c.command
                            .as_ref()
                            .is_some_and(|cmd| cmd.iter().any(|a| a == "serve-registry"))
                    })
                })
        },
    )
    .await;

    // Retention unset: the CronJobs go.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"retention": null}})),
        )
        .await
        .expect("unsetting retention");
    within("the CronJobs to go", async {
        while cron_jobs.get_opt("oras-prune").await.unwrap().is_some()
            || cron_jobs.get_opt("oras-collect").await.unwrap().is_some()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    // access.networkPolicy: false deletes the NetworkPolicy.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"access": {"networkPolicy": false}}})),
        )
        .await
        .expect("turning the NetworkPolicy off");
    within("the NetworkPolicy to go", async {
        while policies.get_opt("oras").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    // More than one replica without shared storage is refused, naming the field.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("asking for replicas");
    let refused = wait(
        &caches,
        "oras",
        "status InvalidSpec",
        ready_is("False", "InvalidSpec"),
    )
    .await
    .unwrap();
    let message = refused.status.unwrap().ready().unwrap().message.clone();
    assert!(
        message.starts_with("spec.replicas 3 needs shared storage: set spec.storage.s3"),
        "{message}"
    );

    // storage.s3: the API server takes the Deployment (the gated registry reading the
    // bucket's keys by reference), the PodDisruptionBudget and the generated HTTP secret;
    // the StatefulSet goes.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"storage": {"s3": {
                "bucket": "oras-cache", "endpoint": "minio.storage:9000", "insecure": true,
                "forcePathStyle": true, "secretName": "oras-s3"
            }}}})),
        )
        .await
        .expect("moving the cache to S3");
    let deployment = within("the Deployment", poll(|| deployments.get_opt("oras"))).await;
    assert!(deployment.owner_references().iter().any(|r| r.uid == uid));
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.as_ref().unwrap();
    let spread = &pod.topology_spread_constraints.as_ref().unwrap()[0];
    assert_eq!(spread.topology_key, "kubernetes.io/hostname");
    assert_eq!(spread.when_unsatisfiable, "ScheduleAnyway");
    assert_eq!(
        spread.match_label_keys.as_deref(),
        Some(&["pod-template-hash".to_string()][..]),
        "kept by the API server"
    );
    assert!(pod.containers.iter().any(|c| c.name == "gate"));
    let env = serde_json::to_value(&pod.containers[0].env).unwrap();
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "REGISTRY_STORAGE_S3_ACCESSKEY",
            "valueFrom": {"secretKeyRef": {"name": "oras-s3", "key": "AWS_ACCESS_KEY_ID",
                                           "optional": false}}})),
        "{env}"
    );
    let sts_uid = sts.uid().unwrap();
    wait(
        &statefulsets,
        "oras",
        "the StatefulSet to go",
        conditions::is_deleted(&sts_uid),
    )
    .await;
    let budget = within("the budget", poll(|| budgets.get_opt("oras"))).await;
    assert_eq!(
        budget.spec.unwrap().max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    let http_secret = within(
        "the HTTP secret",
        poll(|| secrets.get_opt("oras-http-secret")),
    )
    .await;
    assert!(http_secret.owner_references().iter().any(|r| r.uid == uid));
    assert_eq!(
        http_secret.data.unwrap()["REGISTRY_HTTP_SECRET"].0.len(),
        44
    );

    // Stand in for the Deployment controller: one pod of three ready serves.
    deployments
        .patch_status(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 3, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await
        .expect("patching the Deployment status");
    let cache = wait(
        &caches,
        "oras",
        "status RegistryReady with one pod of three",
        |c: Option<&OrasCache>| {
            c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.ready().is_some_and(|r| r.status == "True")
                    && s.ready_replicas == Some(1)
                    && s.replicas == Some(3)
            })
        },
    )
    .await
    .unwrap();
    assert_eq!(
        cache.status.unwrap().ready().unwrap().reason,
        "RegistryReady"
    );

    // One replica: the budget goes.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scaling down");
    within("the budget to go", async {
        while budgets.get_opt("oras").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    // deploy: false removes the registry and reports External.
    caches
        .patch(
            "oras",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deploy": false}})),
        )
        .await
        .expect("setting deploy false");
    let deployment_uid = deployment.uid().unwrap();
    wait(
        &deployments,
        "oras",
        "the Deployment to go",
        conditions::is_deleted(&deployment_uid),
    )
    .await;
    assert!(statefulsets.get_opt("oras").await.unwrap().is_none());
    let svc_uid = svc.uid().unwrap();
    within("the Service to go", async {
        loop {
            match services.get_opt("oras").await.unwrap() {
                Some(s) if s.uid().as_deref() == Some(svc_uid.as_str()) => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                _ => break,
            }
        }
    })
    .await;
    let cache = wait(
        &caches,
        "oras",
        "status External",
        ready_is("True", "External"),
    )
    .await
    .unwrap();
    assert_eq!(cache.status.as_ref().unwrap().endpoint, None);

    // Delete the cache.
    caches
        .delete("oras", &DeleteParams::default())
        .await
        .expect("deleting the cache");
    wait(
        &caches,
        "oras",
        "the cache to go",
        conditions::is_deleted(&uid),
    )
    .await;

    let _ = stop.send(());
    within("the controller to stop", running)
        .await
        .expect("the controller task");
    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .expect("deleting the namespace");
    println!(
        "integration: passed with {} reconciles",
        metrics.reconciles()
    );
}
