//! The reconciler: fetch -> validate -> build -> server-side apply -> status, and the
//! watches that drive it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::builders::credentials::Credentials;
use crate::builders::{self, FIELD_MANAGER, MANAGED_SELECTOR, Observed};
use crate::crd::{OrasCache, OrasCacheStatus, RetentionStatus};
use crate::error::Error;
use crate::metrics::{FailureLabels, Metrics};

/// How long a healthy cache waits before it is looked at again without any event: a
/// fallback for missed watch events, not a poll.
pub const RESYNC: Duration = Duration::from_secs(3600);
/// First retry delay after a failure; doubles with each further failure of the same cache.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// First retry delay after a conflict on a write.
pub const CONFLICT_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Settings of the controller process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// DNS domain of the cluster, for `status.endpoint`.
    pub cluster_domain: String,
    /// Image of the gate in front of the registry of caches with `auth.enabled`: the
    /// controller's own image (`oras-controller gate`).
    pub gate_image: String,
    /// Image of the prune CronJob of caches with `retention` (`oras-agent prune`).
    pub agent_image: String,
}

/// The agent image of this release, by its version tag.
pub const DEFAULT_AGENT_IMAGE: &str = concat!(
    "ghcr.io/converged-computing/oras-operator-rs/oras-agent:",
    env!("CARGO_PKG_VERSION")
);

/// The gate image of this release: the controller image by its version tag.
pub const DEFAULT_GATE_IMAGE: &str = concat!(
    "ghcr.io/converged-computing/oras-operator-rs/oras-controller:",
    env!("CARGO_PKG_VERSION")
);

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_domain: "cluster.local".into(),
            gate_image: DEFAULT_GATE_IMAGE.into(),
            agent_image: DEFAULT_AGENT_IMAGE.into(),
        }
    }
}

/// The owned objects this controller is applying or has just applied. The watch event
/// that carries the version an apply returned is the echo of its own write, not a
/// change: dropping it keeps a create or an update to one reconcile. The event can
/// arrive before the apply's response, so an event for an object whose apply is still
/// in flight waits for that response (bounded by [`ECHO_WAIT`]).
#[derive(Debug, Default)]
pub struct OwnWrites(Mutex<HashMap<WriteKey, Write>>);

type WriteKey = (&'static str, String);

#[derive(Debug)]
enum Write {
    /// The apply was sent; its response wakes the waiters.
    InFlight(Arc<Notify>),
    /// The apply returned this resourceVersion.
    Applied(String),
}

/// Longest time a watch event waits for the response of an apply in flight.
pub const ECHO_WAIT: Duration = Duration::from_secs(10);

impl OwnWrites {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WriteKey, Write>> {
        // A poisoned lock means a panic elsewhere; the map is still a valid map.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the records of the objects named `namespace/name`.
    pub fn forget(&self, key: &str) {
        self.lock().retain(|(_, name), write| {
            // An apply still in flight keeps its record: its waiters need the answer.
            name != key || matches!(write, Write::InFlight(_))
        });
    }

    /// An apply of `kind` `namespace/name` is about to be sent.
    pub fn begin(&self, kind: &'static str, namespace: &str, name: &str) {
        let mut writes = self.lock();
        let key = (kind, format!("{namespace}/{name}"));
        if !matches!(writes.get(&key), Some(Write::InFlight(_))) {
            writes.insert(key, Write::InFlight(Arc::default()));
        }
    }

    /// The apply returned `version` (`None`: it failed).
    pub fn finish(&self, kind: &'static str, namespace: &str, name: &str, version: Option<String>) {
        let mut writes = self.lock();
        let key = (kind, format!("{namespace}/{name}"));
        let previous = match version {
            Some(version) => writes.insert(key, Write::Applied(version)),
            None => writes.remove(&key),
        };
        if let Some(Write::InFlight(waiters)) = previous {
            waiters.notify_waiters();
        }
    }

    /// Whether the watch event of `kind` `namespace/name` at `version` is the echo of
    /// this controller's apply (a record is consumed by the event that matches it).
    pub async fn is_echo(&self, kind: &'static str, key: String, version: Option<String>) -> bool {
        let Some(version) = version else {
            return false;
        };
        let key = (kind, key);
        loop {
            let waiters: Arc<Notify>;
            let response;
            {
                let mut writes = self.lock();
                match writes.get(&key) {
                    Some(Write::Applied(applied)) if *applied == version => {
                        writes.remove(&key);
                        return true;
                    }
                    Some(Write::InFlight(notify)) => {
                        waiters = notify.clone();
                        // Created under the lock: `finish` cannot wake the waiters
                        // before this future is registered.
                        response = waiters.notified();
                    }
                    _ => return false,
                }
            }
            if tokio::time::timeout(ECHO_WAIT, response).await.is_err() {
                return false;
            }
        }
    }
}

fn object_key<K: Resource>(object: &K) -> (String, Option<String>) {
    let meta = object.meta();
    (
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        ),
        meta.resource_version.clone(),
    )
}

/// What reconcile, the error policy and the HTTP server share.
pub struct Context {
    /// Client of the API server.
    pub client: Client,
    /// Publishes Kubernetes events about caches.
    pub recorder: Recorder,
    /// Counters served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Settings of this process.
    pub settings: Settings,
    /// Versions of the objects just applied, to drop their watch echoes.
    pub own_writes: Arc<OwnWrites>,
    /// Consecutive failures per cache (`namespace/name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Status writes the watch may not have delivered yet, per cache: the
    /// resourceVersion the write was based on, and the status written.
    written: Mutex<HashMap<String, (Option<String>, OrasCacheStatus)>>,
}

impl Context {
    /// A context whose events are reported as coming from `oras-controller` (and the pod
    /// named by `instance`, when given).
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            own_writes: Arc::default(),
            failures: Mutex::default(),
            written: Mutex::default(),
        }
    }

    /// The cache with the status this controller last wrote, when the watch has not
    /// delivered that write yet (the object still has the resourceVersion the write was
    /// based on). Without it, a reconcile queued behind the one that wrote the status
    /// would see the old status, write it again and repeat its event.
    fn with_written_status(&self, cache: &OrasCache) -> Option<OrasCache> {
        let key = key(cache);
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match written.get(&key) {
            Some((based_on, status)) if *based_on == cache.metadata.resource_version => {
                let mut fresher = cache.clone();
                fresher.status = Some(status.clone());
                Some(fresher)
            }
            Some(_) => {
                // The watch caught up: the object in hand is newer than the write.
                written.remove(&key);
                None
            }
            None => None,
        }
    }

    fn remember_written(&self, cache: &OrasCache, status: OrasCacheStatus) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.insert(
            key(cache),
            (cache.metadata.resource_version.clone(), status),
        );
    }

    /// Drops what is kept about a deleted cache.
    pub fn forget(&self, cache: &OrasCache) {
        let key = key(cache);
        self.failures().remove(&key);
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        self.own_writes.forget(&key);
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        // A poisoned lock means a panic elsewhere while counting; the map is still usable.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(cache: &OrasCache) -> String {
    format!(
        "{}/{}",
        cache.namespace().unwrap_or_default(),
        cache.name_any()
    )
}

/// Reconciles one cache and records the metrics and the failure event.
pub async fn reconcile(cache: Arc<OrasCache>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = apply_cache(&cache, &ctx).await;
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(|error| FailureLabels {
            error: error.metric_label(),
            cause: error.metric_cause(),
        }),
    );
    match &result {
        Ok(_) => {
            ctx.failures().remove(&key(&cache));
        }
        Err(error) => {
            tracing::warn!(cache = %key(&cache), %error, "reconcile failed");
            publish(
                &ctx,
                &cache,
                EventType::Warning,
                "ReconcileFailed",
                error.to_string(),
            )
            .await;
        }
    }
    result
}

/// Decides when a failed cache is tried again: exponential backoff per cache for API
/// errors, and nothing until the object changes when retrying cannot help.
pub fn error_policy(cache: Arc<OrasCache>, error: &Error, ctx: Arc<Context>) -> Action {
    if !error.is_retryable() {
        return Action::await_change();
    }
    let mut failures = ctx.failures();
    let count = failures.entry(key(&cache)).or_insert(0);
    let delay = if error.is_conflict() {
        conflict_backoff(*count)
    } else {
        backoff(*count)
    };
    *count = count.saturating_add(1);
    Action::requeue(delay)
}

/// The delay after a conflict (409): another writer was first, and the next reconcile
/// reads its version, so the retry comes soon: 250 ms, doubling, at most [`BACKOFF_BASE`].
pub fn conflict_backoff(previous_failures: u32) -> Duration {
    doubled(CONFLICT_BACKOFF_BASE, previous_failures, BACKOFF_BASE)
}

/// The delay after `previous_failures` consecutive failures: 5 s, 10 s, 20 s ... 5 min.
pub fn backoff(previous_failures: u32) -> Duration {
    doubled(BACKOFF_BASE, previous_failures, BACKOFF_MAX)
}

/// `base` doubled `times` times, at most `max`.
fn doubled(base: Duration, times: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(times.min(16)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

async fn apply_cache(cache: &OrasCache, ctx: &Context) -> Result<Action, Error> {
    let fresher = ctx.with_written_status(cache);
    let cache = fresher.as_ref().unwrap_or(cache);
    let name = cache.name_any();
    let namespace = cache.namespace().ok_or_else(|| Error::MissingObjectKey {
        name: name.clone(),
        field: "metadata.namespace",
    })?;
    let owner = cache
        .controller_owner_ref(&())
        .ok_or_else(|| Error::MissingObjectKey {
            name: name.clone(),
            field: "metadata.uid",
        })?;
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let domain = &ctx.settings.cluster_domain;

    if let Err(invalid) = builders::validate(cache) {
        let status = builders::status(cache, &Observed::Invalid(invalid.0.clone()), domain, &now);
        if write_status(cache, ctx, &namespace, status).await? {
            publish(ctx, cache, EventType::Warning, "InvalidSpec", invalid.0).await;
        }
        return Ok(Action::await_change());
    }

    if !cache.spec.deploy {
        let mut removed = Vec::new();
        if remove_owned::<StatefulSet>(cache, ctx, &namespace, "StatefulSet").await? {
            removed.push("StatefulSet");
        }
        if remove_owned::<Deployment>(cache, ctx, &namespace, "Deployment").await? {
            removed.push("Deployment");
        }
        if remove_owned::<PodDisruptionBudget>(cache, ctx, &namespace, "PodDisruptionBudget")
            .await?
        {
            removed.push("PodDisruptionBudget");
        }
        if remove_owned::<Service>(cache, ctx, &namespace, "Service").await? {
            removed.push("Service");
        }
        if remove_owned::<NetworkPolicy>(cache, ctx, &namespace, "NetworkPolicy").await? {
            removed.push("NetworkPolicy");
        }
        if remove_retention_cron_jobs(cache, ctx, &namespace, true).await? {
            removed.push("retention CronJobs");
        }
        let mut status = builders::status(cache, &Observed::External, domain, &now);
        status.retention = None;
        write_status(cache, ctx, &namespace, status).await?;
        if !removed.is_empty() {
            let listed = match removed.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
                _ => removed.join(""),
            };
            let note = format!("deploy is false: deleted the registry {listed}");
            publish(ctx, cache, EventType::Normal, "Removed", note).await;
        }
        return Ok(Action::await_change());
    }

    let mut template = builders::pod_template(cache);
    if cache.spec.auth.enabled {
        let credentials = match credentials(cache, ctx, &namespace, &owner).await? {
            Ok(credentials) => credentials,
            Err(message) => {
                // A credentials Secret someone broke: say how to repair it, and wait for
                // it to change (the Secret watch brings the cache back).
                let status =
                    builders::status(cache, &Observed::Failed(message.clone()), domain, &now);
                if write_status(cache, ctx, &namespace, status).await? {
                    publish(
                        ctx,
                        cache,
                        EventType::Warning,
                        "InvalidCredentials",
                        message,
                    )
                    .await;
                }
                return Ok(Action::await_change());
            }
        };
        let htpasswd = htpasswd(cache, credentials).await?;
        let secret = builders::credentials::htpasswd_secret(cache, owner.clone(), &htpasswd);
        let secret_name = builders::credentials::htpasswd_secret_name(cache);
        apply(ctx, &namespace, &secret_name, "Secret", &secret).await?;
        builders::auth::secure(&mut template, cache, &ctx.settings.gate_image, &htpasswd);
    }
    if builders::http_secret::generated(cache) {
        match http_secret(cache, ctx, &namespace, &owner).await? {
            Ok(value) => builders::http_secret::annotate(&mut template, &value),
            Err(message) => {
                let status =
                    builders::status(cache, &Observed::Failed(message.clone()), domain, &now);
                if write_status(cache, ctx, &namespace, status).await? {
                    publish(ctx, cache, EventType::Warning, "InvalidHttpSecret", message).await;
                }
                return Ok(Action::await_change());
            }
        }
    }
    if builders::collection::garbage_collect(cache).is_some() {
        maintenance_token(cache, ctx, &namespace, &owner).await?;
        builders::collection::supervise(&mut template, cache, &ctx.settings.agent_image);
    }
    // Shared storage: a Deployment of `replicas` pods; a volume: the StatefulSet.
    let ready_replicas = if builders::deployment::wanted(cache) {
        let deployment = builders::deployment::deployment(cache, owner.clone(), template);
        let applied = apply_registry(cache, ctx, &namespace, "Deployment", &deployment).await?;
        applied.status.and_then(|s| s.ready_replicas)
    } else {
        let statefulset = builders::statefulset_of(cache, owner.clone(), template);
        let applied = apply_registry(cache, ctx, &namespace, "StatefulSet", &statefulset).await?;
        applied.status.and_then(|s| s.ready_replicas)
    };
    apply(
        ctx,
        &namespace,
        &name,
        "Service",
        &builders::service(cache, owner.clone()),
    )
    .await?;
    if cache.spec.access.network_policy {
        let policy = builders::network_policy::network_policy(cache, owner.clone());
        apply(ctx, &namespace, &name, "NetworkPolicy", &policy).await?;
    } else if remove_owned::<NetworkPolicy>(cache, ctx, &namespace, "NetworkPolicy").await? {
        let note = "access.networkPolicy is false: deleted the NetworkPolicy".to_string();
        publish(ctx, cache, EventType::Normal, "Removed", note).await;
    }
    replicas_objects(cache, ctx, &namespace, owner.clone()).await?;
    let retention = retention_objects(cache, ctx, &namespace, owner).await?;

    let ready_replicas = ready_replicas.unwrap_or(0);
    let event = builders::deploy_event(cache);
    let mut status = builders::status(cache, &Observed::Deployed { ready_replicas }, domain, &now);
    status.retention = retention;
    write_status(cache, ctx, &namespace, status).await?;
    if let Some((reason, note)) = event {
        publish(ctx, cache, EventType::Normal, reason, note).await;
    }
    Ok(Action::requeue(RESYNC))
}

/// The retention CronJobs the spec wants, applied, the others deleted; the retention
/// status with the runs of the cache's agent pods.
async fn retention_objects(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    owner: OwnerReference,
) -> Result<Option<RetentionStatus>, Error> {
    let agent_image = &ctx.settings.agent_image;
    let domain = &ctx.settings.cluster_domain;
    let Some(job) = builders::retention::prune_cron_job(cache, owner.clone(), agent_image, domain)
    else {
        if remove_retention_cron_jobs(cache, ctx, namespace, true).await? {
            let note = "retention is unset: deleted its CronJobs".to_string();
            publish(ctx, cache, EventType::Normal, "Removed", note).await;
        }
        return Ok(None);
    };
    let prune = builders::retention::prune_job_name(cache);
    apply(ctx, namespace, &prune, "CronJob", &job).await?;
    match builders::collection::collect_cron_job(cache, owner, agent_image, domain) {
        Some(job) => {
            let collect = builders::collection::collect_job_name(cache);
            apply(ctx, namespace, &collect, "CronJob", &job).await?;
        }
        None => {
            if remove_retention_cron_jobs(cache, ctx, namespace, false).await? {
                let note = "retention.garbageCollect is unset: deleted the collect CronJob";
                publish(ctx, cache, EventType::Normal, "Removed", note.into()).await;
            }
        }
    }
    let pods = agent_pods(cache, ctx, namespace).await?;
    let previous = cache.status.as_ref().and_then(|s| s.retention.as_ref());
    Ok(builders::retention::status(cache, &pods, previous))
}

/// Server-side applies the registry workload. A refusal of the object itself (422, for
/// example a change of `storage` a StatefulSet cannot take) is also said in the status.
async fn apply_registry<K>(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    kind: &'static str,
    object: &K,
) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = cache.name_any();
    match apply(ctx, namespace, &name, kind, object).await {
        Err(error) if error.api_status() == Some(422) => {
            let now = k8s_openapi::jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let failed = Observed::Failed(error.to_string());
            let status = builders::status(cache, &failed, &ctx.settings.cluster_domain, &now);
            write_status(cache, ctx, namespace, status).await?;
            Err(error)
        }
        result => result,
    }
}

/// What the number of replicas brings beside the workload: the PodDisruptionBudget of
/// several pods; and, until the status shows this spec deployed, the removal of what an
/// earlier spec made (the other workload kind, a budget no longer wanted).
async fn replicas_objects(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    owner: OwnerReference,
) -> Result<(), Error> {
    let name = cache.name_any();
    let settled = builders::settled(cache);
    let mut removed = Vec::new();
    if !settled {
        let replaced = if builders::deployment::wanted(cache) {
            remove_owned::<StatefulSet>(cache, ctx, namespace, "StatefulSet")
                .await?
                .then_some("storage.s3: the registry Deployment replaced the StatefulSet")
        } else {
            remove_owned::<Deployment>(cache, ctx, namespace, "Deployment")
                .await?
                .then_some("no storage.s3: the registry StatefulSet replaced the Deployment")
        };
        removed.extend(replaced);
    }
    if builders::disruption::wanted(cache) {
        let budget = builders::disruption::pod_disruption_budget(cache, owner);
        apply(ctx, namespace, &name, "PodDisruptionBudget", &budget).await?;
    } else if !settled
        && remove_owned::<PodDisruptionBudget>(cache, ctx, namespace, "PodDisruptionBudget").await?
    {
        removed.push("one registry pod: deleted the PodDisruptionBudget");
    }
    if !removed.is_empty() {
        // One event: a second of the same reason would be folded into the first's series.
        publish(ctx, cache, EventType::Normal, "Removed", removed.join("; ")).await;
    }
    Ok(())
}

/// The registry HTTP secret of a cache on S3 without `secrets.registryHttp`: that of its
/// `<cache>-http-secret` Secret, created with a random one when it does not exist and
/// never written again. The inner error says what is wrong with an existing Secret.
async fn http_secret(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    owner: &OwnerReference,
) -> Result<Result<String, String>, Error> {
    let name = builders::http_secret::generated_name(cache);
    let made = create_once(ctx, namespace, &name, || {
        let generated = builders::http_secret::generate()?;
        let secret = builders::http_secret::secret(cache, owner.clone(), &generated);
        Ok((generated, secret))
    })
    .await?;
    Ok(match made {
        Once::Existing(secret) => builders::http_secret::value_of(&secret),
        Once::Created(generated) => {
            let note = format!("generated the registry HTTP secret in Secret {name}");
            publish(ctx, cache, EventType::Normal, "HttpSecretCreated", note).await;
            Ok(generated)
        }
    })
}

/// The cache's credentials: those of its `<cache>-credentials` Secret, which is created
/// with new random passwords when it does not exist and never written again (the
/// passwords change only when someone deletes it). The inner error says what is wrong
/// with an existing Secret.
async fn credentials(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    owner: &OwnerReference,
) -> Result<Result<Credentials, String>, Error> {
    let name = builders::credentials::credentials_secret_name(cache);
    let made = create_once(ctx, namespace, &name, || {
        let generated = Credentials::generate()?;
        let secret = builders::credentials::credentials_secret(cache, owner.clone(), &generated);
        Ok((generated, secret))
    })
    .await?;
    Ok(match made {
        Once::Existing(secret) => Credentials::from_secret(&secret),
        Once::Created(generated) => {
            let note = format!("generated the registry credentials in Secret {name}");
            publish(ctx, cache, EventType::Normal, "CredentialsCreated", note).await;
            Ok(generated)
        }
    })
}

/// What [`create_once`] found or made.
enum Once<T> {
    /// The Secret that was there, or that someone made in the meantime.
    Existing(Box<Secret>),
    /// The value of the Secret created now.
    Created(T),
}

/// A Secret this controller creates once and never writes again: the existing one, else
/// the one `make` gives (with the value it holds, from the system's random source),
/// created now.
async fn create_once<T>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    make: impl FnOnce() -> Result<(T, Secret), getrandom::Error>,
) -> Result<Once<T>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let failed = |action: &'static str| {
        move |source| Error::Kube {
            action,
            kind: "Secret",
            namespace: namespace.into(),
            name: name.into(),
            source,
        }
    };
    if let Some(existing) = api.get_opt(name).await.map_err(failed("get"))? {
        return Ok(Once::Existing(Box::new(existing)));
    }
    let (value, secret) = make().map_err(|e| Error::Random(e.to_string()))?;
    ctx.own_writes.begin("Secret", namespace, name);
    let created = api.create(&PostParams::default(), &secret).await;
    let version = created
        .as_ref()
        .ok()
        .and_then(|s| s.metadata.resource_version.clone());
    ctx.own_writes.finish("Secret", namespace, name, version);
    match created {
        Ok(_) => Ok(Once::Created(value)),
        // Made in the meantime (by another reconcile, or a user): that one stands.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api.get(name).await.map_err(failed("get"))?;
            Ok(Once::Existing(Box::new(existing)))
        }
        Err(source) => Err(failed("create")(source)),
    }
}

/// The htpasswd file for `credentials` (bcrypt takes a while: off the runtime's thread).
async fn htpasswd(cache: &OrasCache, credentials: Credentials) -> Result<String, Error> {
    let cache = cache.clone();
    tokio::task::spawn_blocking(move || builders::credentials::htpasswd(&cache, &credentials))
        .await
        .map_err(|e| Error::Hash(e.to_string()))?
        .map_err(|e| Error::Hash(e.to_string()))
}

/// Server-side applies `object` with this controller's field manager, taking over fields
/// someone else changed (that is how drift is corrected).
async fn apply<K>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    kind: &'static str,
    object: &K,
) -> Result<K, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.own_writes.begin(kind, namespace, name);
    let result = api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await;
    let version = result
        .as_ref()
        .ok()
        .and_then(|applied| applied.meta().resource_version.clone());
    ctx.own_writes.finish(kind, namespace, name, version);
    result.map_err(|source| Error::Kube {
        action: "apply",
        kind,
        namespace: namespace.into(),
        name: name.into(),
        source,
    })
}

/// Deletes the cache's object of kind `K` (named after the cache) when it exists and
/// this cache owns it. Returns whether something was deleted.
async fn remove_owned<K>(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    kind: &'static str,
) -> Result<bool, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    remove_owned_named::<K>(cache, ctx, namespace, kind, cache.name_any()).await
}

/// Deletes the collect CronJob, and with `prune` the prune CronJob too, when the status
/// says the controller made them (a cache that never had retention costs no request).
async fn remove_retention_cron_jobs(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    prune: bool,
) -> Result<bool, Error> {
    let Some(made) = cache.status.as_ref().and_then(|s| s.retention.as_ref()) else {
        return Ok(false);
    };
    let mut removed = false;
    if made.garbage_collect.is_some() {
        let name = builders::collection::collect_job_name(cache);
        removed |= remove_owned_named::<CronJob>(cache, ctx, namespace, "CronJob", name).await?;
    }
    if prune {
        let name = builders::retention::prune_job_name(cache);
        removed |= remove_owned_named::<CronJob>(cache, ctx, namespace, "CronJob", name).await?;
    }
    Ok(removed)
}

/// The `<cache>-maintenance` Secret's token exists: created with a new random token when
/// missing, never written again (the registry pod and the collect CronJob read it).
async fn maintenance_token(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    owner: &OwnerReference,
) -> Result<(), Error> {
    let name = builders::collection::token_secret_name(cache);
    create_once(ctx, namespace, &name, || {
        let token = builders::credentials::random_password()?;
        Ok((
            (),
            builders::collection::token_secret(cache, owner.clone(), &token),
        ))
    })
    .await?;
    Ok(())
}

/// The cache's agent pods (their runs, for the status).
async fn agent_pods(cache: &OrasCache, ctx: &Context, namespace: &str) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let selector = builders::agent_job::pods_selector(cache);
    api.list(&ListParams::default().labels(&selector))
        .await
        .map(|list| list.items)
        .map_err(|source| Error::Kube {
            action: "list",
            kind: "Pod",
            namespace: namespace.into(),
            name: selector,
            source,
        })
}

/// [`remove_owned`] for an object named `name`.
async fn remove_owned_named<K>(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    kind: &'static str,
    name: String,
) -> Result<bool, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let failed = |action: &'static str| {
        let name = name.clone();
        move |source| Error::Kube {
            action,
            kind,
            namespace: namespace.into(),
            name,
            source,
        }
    };
    let Some(existing) = api.get_opt(&name).await.map_err(failed("get"))? else {
        return Ok(false);
    };
    let uid = cache.uid();
    let owned = existing
        .owner_references()
        .iter()
        .any(|r| Some(&r.uid) == uid.as_ref());
    if !owned {
        return Ok(false);
    }
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(failed("delete")(source)),
    }
}

/// Writes `status` when it differs from the cache's current status. Returns whether it
/// wrote: an unchanged status costs no request and no watch event.
async fn write_status(
    cache: &OrasCache,
    ctx: &Context,
    namespace: &str,
    status: OrasCacheStatus,
) -> Result<bool, Error> {
    if cache.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let name = cache.name_any();
    let api: Api<OrasCache> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": OrasCache::api_version(&()),
        "kind": OrasCache::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    match written {
        Ok(_) => {
            ctx.remember_written(cache, status);
            Ok(true)
        }
        // Deleted while this reconcile ran: nothing is left to report on; its owned
        // objects go with it (the API server's garbage collector).
        Err(kube::Error::Api(gone)) if gone.code == 404 => {
            tracing::info!(cache = %key(cache), "deleted during the reconcile");
            Ok(false)
        }
        Err(source) => Err(Error::Kube {
            action: "write status",
            kind: "OrasCache",
            namespace: namespace.into(),
            name,
            source,
        }),
    }
}

/// Publishes an event about the cache; a failure to publish is logged, never fatal.
async fn publish(ctx: &Context, cache: &OrasCache, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    tracing::info!(cache = %key(cache), reason, note = event.note.as_deref().unwrap_or(""), "event");
    if let Err(error) = ctx.recorder.publish(&event, &cache.object_ref(&())).await {
        tracing::warn!(cache = %key(cache), %error, reason, "could not publish event");
    }
}

/// The owned objects of kind `K` (metadata only) whose watch events are changes: the
/// echoes of this controller's own applies are dropped; deletions always pass.
fn changes<K>(
    client: &Client,
    config: &watcher::Config,
    kind: &'static str,
    own_writes: &Arc<OwnWrites>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let own_writes = own_writes.clone();
    watcher(
        Api::<PartialObjectMeta<K>>::all(client.clone()),
        config.clone(),
    )
    .default_backoff()
    .try_filter_map(move |event| {
        let own_writes = own_writes.clone();
        async move {
            Ok(match event {
                watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                    let (key, version) = object_key(&object);
                    if own_writes.is_echo(kind, key, version).await {
                        None
                    } else {
                        Some(object)
                    }
                }
                watcher::Event::Delete(object) => Some(object),
                watcher::Event::Init | watcher::Event::InitDone => None,
            })
        }
    })
}

/// Agent pods (prune, collect) that have finished: their run goes into their cache's
/// status.
fn finished_agent_pods(
    client: &Client,
) -> impl futures::Stream<Item = Result<Pod, watcher::Error>> + Send + 'static {
    let config = watcher::Config::default().labels(&builders::agent_job::all_pods_selector());
    watcher(Api::<Pod>::all(client.clone()), config)
        .default_backoff()
        .applied_objects()
        .try_filter(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            std::future::ready(matches!(phase, Some("Succeeded" | "Failed")))
        })
}

/// The cache an agent pod ran for: its `app.kubernetes.io/instance`, in its namespace.
fn cache_of_agent_pod(pod: &Pod) -> Option<ObjectRef<OrasCache>> {
    let name = pod.labels().get("app.kubernetes.io/instance")?;
    Some(ObjectRef::new(name).within(&pod.namespace()?))
}

/// When the controller stops.
pub enum Shutdown {
    /// On SIGTERM or SIGINT (the process).
    Signal,
    /// When the sender is used or dropped (tests and embedders).
    On(tokio::sync::oneshot::Receiver<()>),
}

/// Runs the controller until `shutdown`, then lets running reconciles finish.
/// `ready` turns true once the caches have been listed.
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>, shutdown: Shutdown) {
    let client = ctx.client.clone();
    let (reader, writer) = reflector::store::<OrasCache>();
    // Ready once the first list of caches is complete. (Not `Store::wait_until_ready`:
    // its future keeps a single waker, and the Controller already waits on it.)
    // Status writes do not change `metadata.generation`: filtering on it keeps the
    // controller's own status updates from triggering another reconcile.
    let caches = watcher(
        Api::<OrasCache>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .inspect_ok({
        let ctx = ctx.clone();
        move |event| match event {
            watcher::Event::InitDone if !ready.swap(true, Ordering::Relaxed) => {
                tracing::info!("caches listed");
            }
            // The API server deletes the owned objects; only the bookkeeping is left.
            watcher::Event::Delete(cache) => ctx.forget(cache),
            _ => {}
        }
    })
    .reflect(writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    // Owned objects: only their metadata (owner references) is needed to find the cache,
    // and only the objects this controller made are watched.
    let owned = watcher::Config::default().labels(MANAGED_SELECTOR);
    let statefulsets = changes::<StatefulSet>(&client, &owned, "StatefulSet", &ctx.own_writes);
    let deployments = changes::<Deployment>(&client, &owned, "Deployment", &ctx.own_writes);
    let budgets =
        changes::<PodDisruptionBudget>(&client, &owned, "PodDisruptionBudget", &ctx.own_writes);
    let services = changes::<Service>(&client, &owned, "Service", &ctx.own_writes);
    let policies = changes::<NetworkPolicy>(&client, &owned, "NetworkPolicy", &ctx.own_writes);
    // Secrets: a deleted `<cache>-credentials` brings its cache back to make new ones.
    let secrets = changes::<Secret>(&client, &owned, "Secret", &ctx.own_writes);
    let cron_jobs = changes::<CronJob>(&client, &owned, "CronJob", &ctx.own_writes);
    let finished_runs = finished_agent_pods(&client);

    let controller = Controller::for_stream(caches, reader)
        .owns_stream(statefulsets)
        .owns_stream(deployments)
        .owns_stream(budgets)
        .owns_stream(services)
        .owns_stream(policies)
        .owns_stream(secrets)
        .owns_stream(cron_jobs)
        .watches_stream(finished_runs, |pod| cache_of_agent_pod(&pod));
    let controller = match shutdown {
        Shutdown::Signal => controller.shutdown_on_signal(),
        Shutdown::On(stop) => controller.graceful_shutdown_on(async move {
            let _ = stop.await;
        }),
    };
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((cache, _)) => tracing::debug!(%cache, "reconciled"),
                Err(error) => tracing::debug!(%error, "reconcile error"),
            }
        })
        .await;
    tracing::info!("controller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        "ns/oras".to_string()
    }

    #[tokio::test]
    async fn the_echo_of_an_apply_is_dropped_once_and_later_changes_pass() {
        let writes = OwnWrites::default();
        let v = |s: &str| Some(s.to_string());
        assert!(
            !writes.is_echo("StatefulSet", key(), v("7")).await,
            "nothing applied"
        );
        writes.begin("StatefulSet", "ns", "oras");
        writes.finish("StatefulSet", "ns", "oras", v("8"));
        assert!(
            !writes.is_echo("Service", key(), v("8")).await,
            "another kind"
        );
        assert!(writes.is_echo("StatefulSet", key(), v("8")).await);
        assert!(
            !writes.is_echo("StatefulSet", key(), v("8")).await,
            "consumed"
        );
        writes.begin("StatefulSet", "ns", "oras");
        writes.finish("StatefulSet", "ns", "oras", v("9"));
        assert!(
            !writes.is_echo("StatefulSet", key(), v("10")).await,
            "someone else's change"
        );
    }

    #[tokio::test]
    async fn forgetting_a_cache_drops_its_records() {
        let writes = OwnWrites::default();
        writes.begin("StatefulSet", "ns", "oras");
        writes.finish("StatefulSet", "ns", "oras", Some("8".into()));
        writes.begin("StatefulSet", "ns", "other");
        writes.finish("StatefulSet", "ns", "other", Some("9".into()));
        writes.forget("ns/oras");
        assert!(!writes.is_echo("StatefulSet", key(), Some("8".into())).await);
        assert!(
            writes
                .is_echo("StatefulSet", "ns/other".into(), Some("9".into()))
                .await
        );
    }

    #[tokio::test]
    async fn an_echo_that_beats_the_apply_response_waits_for_it() {
        let writes = Arc::new(OwnWrites::default());
        writes.begin("Service", "ns", "oras");
        let waiting = {
            let writes = writes.clone();
            tokio::spawn(async move { writes.is_echo("Service", key(), Some("5".into())).await })
        };
        tokio::task::yield_now().await;
        writes.finish("Service", "ns", "oras", Some("5".into()));
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_failed_apply_lets_the_event_through() {
        let writes = Arc::new(OwnWrites::default());
        writes.begin("Service", "ns", "oras");
        let waiting = {
            let writes = writes.clone();
            tokio::spawn(async move { writes.is_echo("Service", key(), Some("5".into())).await })
        };
        tokio::task::yield_now().await;
        writes.finish("Service", "ns", "oras", None);
        assert!(!waiting.await.unwrap());
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn a_conflict_is_retried_sooner_and_never_later_than_a_first_failure() {
        let delays: Vec<u128> = (0..7).map(|n| conflict_backoff(n).as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(conflict_backoff(u32::MAX), BACKOFF_BASE);
    }
}
