//! The `OrasCache` custom resource: one OCI registry (an artifact cache) per namespace.
//!
//! The spec keeps the original project's fields (`image`, `deploy`, `secrets.orasEnv`,
//! `secrets.registryHttp`) and adds what a registry that keeps its artifacts needs
//! (`storage`, `resources`, `port`), and who may use it (`access`, `auth`). `crdgen`
//! prints the CRD generated from these types.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the CRD, the same as the original Go operator's.
pub const GROUP: &str = "cache.converged-computing.github.io";
/// Version of the CRD.
pub const VERSION: &str = "v1alpha1";
/// Registry image used when `spec.image` is not set: the CNCF distribution registry,
/// pinned to a release (never `latest`, so a node restart cannot change the cache).
pub const DEFAULT_IMAGE: &str = "docker.io/library/registry:3.0.0";
/// Port the registry listens on and the Service exposes when `spec.port` is not set:
/// the port the admission policy puts in the agents' references.
pub const DEFAULT_PORT: i32 = oras_contract::pod::CACHE_PORT as i32;
/// The condition type this controller reports.
pub const CONDITION_READY: &str = "Ready";

/// Spec of an OrasCache: an OCI registry that workflow pods in the namespace push their
/// outputs to and pull their inputs from.
// Each `printcolumn(...)` repeats `type_`, which the lint takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cache.converged-computing.github.io",
    version = "v1alpha1",
    kind = "OrasCache",
    namespaced,
    status = "OrasCacheStatus",
    category = "oras",
    doc = "An OCI registry (artifact cache) for the workflows of one namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Whether the registry serves requests",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        description = "Registry pods wanted",
        json_path = ".status.replicas"
    ),
    printcolumn(
        name = "Ready Replicas",
        type_ = "integer",
        description = "Registry pods that pass their readiness probe",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        description = "host:port of the registry inside the cluster",
        json_path = ".status.endpoint"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheSpec {
    /// Registry container image. Defaults to the CNCF distribution registry pinned to a
    /// release; any image that serves the OCI distribution API on `port` works.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// Whether the controller deploys the registry. `false` means the workflows use an
    /// external registry (the `registry` pod annotation): the controller removes the
    /// StatefulSet and Service it made and reports Ready with reason `External`.
    #[serde(default = "default_true")]
    pub deploy: bool,

    /// Names of Secrets in the cache's namespace.
    #[serde(default)]
    pub secrets: CacheSecrets,

    /// Where the registry keeps its artifacts. Without a size: an emptyDir (lost when the
    /// registry pod is deleted). With a size: a PersistentVolumeClaim per registry pod,
    /// kept across restarts.
    #[serde(default)]
    pub storage: CacheStorage,

    /// Compute resources of the registry container.
    #[serde(default)]
    pub resources: CacheResources,

    /// Port the registry listens on and the Service exposes. The admission policy
    /// addresses the in-namespace cache on 5000: with another port, pods name the cache
    /// with the `registry` annotation (`status.endpoint`).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Who may reach the registry over the network: a NetworkPolicy owned by the cache
    /// admits the pods of the cache's namespace and of the namespaces named here.
    #[serde(default)]
    pub access: CacheAccess,

    /// Whether the registry requires credentials, which the controller generates.
    #[serde(default)]
    pub auth: CacheAuth,

    /// Number of registry pods behind the Service. More than one needs shared storage
    /// (`storage.s3`): each pod then serves every artifact, and the cache survives the
    /// loss of a node.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// Which artifacts the cache keeps: a CronJob `<cache>-prune` runs `oras-agent
    /// prune` against the registry on `schedule`. Absent: everything is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<CacheRetention>,
}

/// What `oras-agent prune` keeps of each repository (at least one of `keepLast` and
/// `maxAge`). Tags are dated by `org.opencontainers.image.created`; undated ones are
/// never deleted by age and count as the oldest for `keepLast`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheRetention {
    /// Keep the N newest tags of each repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,

    /// Delete tags created longer ago than this: a whole number and s, m, h, d or w
    /// (`12h`, `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,

    /// When the prune runs, in cron syntax (UTC unless the CronJob's time zone is set).
    #[serde(default = "default_retention_schedule")]
    pub schedule: String,

    /// Collect the registry's garbage (the layers of deleted tags) on its own schedule,
    /// while the registry refuses pushes for the collection's length. Absent: deleted
    /// tags free no space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collect: Option<GarbageCollect>,
}

/// When the registry's garbage is collected (a CronJob `<cache>-collect`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GarbageCollect {
    /// In cron syntax; daily at 03:30 by default.
    #[serde(default = "default_collect_schedule")]
    pub schedule: String,
}

/// Daily at 03:30.
pub const DEFAULT_COLLECT_SCHEDULE: &str = "30 3 * * *";

fn default_collect_schedule() -> String {
    DEFAULT_COLLECT_SCHEDULE.to_string()
}

/// Hourly, at minute 0.
pub const DEFAULT_RETENTION_SCHEDULE: &str = "0 * * * *";

fn default_retention_schedule() -> String {
    DEFAULT_RETENTION_SCHEDULE.to_string()
}

/// Network access to the registry, enforced by a NetworkPolicy (only where the cluster's
/// network plugin enforces NetworkPolicies).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheAccess {
    /// Whether the controller makes the NetworkPolicy `<cache>` that admits only the
    /// pods of the cache's namespace, `namespaces` and `namespaceSelector`, on the
    /// registry port. `false` for clusters whose network plugin does not enforce
    /// NetworkPolicies; the controller then deletes the one it made.
    #[serde(default = "default_true")]
    pub network_policy: bool,

    /// Names of other namespaces whose pods may reach the registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,

    /// Other namespaces whose pods may reach the registry, selected by their labels (as
    /// a NetworkPolicy's `namespaceSelector`; `{}` admits every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,
}

impl Default for CacheAccess {
    fn default() -> Self {
        Self {
            network_policy: true,
            namespaces: Vec::new(),
            namespace_selector: None,
        }
    }
}

/// A label selector over namespaces, as Kubernetes' `LabelSelector`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Labels a namespace must have, all of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,

    /// Requirements on a namespace's labels, all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One requirement of a namespace selector.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    /// The label key.
    pub key: String,

    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,

    /// Values for `In` and `NotIn` (at least one); empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Authentication of the registry.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheAuth {
    /// `true`: the controller generates a user with a push password and a pull password
    /// into the Secret `<cache>-credentials` (keys `ORAS_USER`, `ORAS_PUSH_PASS`,
    /// `ORAS_PULL_PASS`, the keys of `oras-env`), and the registry requires them: the
    /// push password may read and write, the pull password only read, anonymous requests
    /// are refused. Passwords change only when that Secret is deleted.
    #[serde(default)]
    pub enabled: bool,
}

/// Secrets the cache refers to by name; all are optional.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSecrets {
    /// Secret whose keys (`ORAS_USER`, `ORAS_PUSH_PASS`, `ORAS_PULL_PASS`) become the
    /// environment of the injected agent containers (used by the admission policy, not by
    /// the registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oras_env: Option<String>,

    /// Secret holding the registry's HTTP secret (the key that signs upload state) under
    /// the key `REGISTRY_HTTP_SECRET`; the registry gets it as the environment variable of
    /// that name. Without it the registry makes a random one at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_http: Option<String>,
}

/// Storage of the registry's artifacts.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheStorage {
    /// Size of the PersistentVolumeClaim (a quantity such as `10Gi`). Unset: emptyDir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,

    /// StorageClass of the PersistentVolumeClaim; unset uses the cluster's default class.
    /// Only used with `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// An S3 bucket (AWS, or an S3-compatible service such as MinIO or Ceph RGW) instead
    /// of a volume: the registry pods keep nothing themselves, so there may be several
    /// (`replicas`). Not together with `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// An S3 bucket as the registry's storage (the registry's own `s3` storage driver).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Name of the bucket; it must exist.
    #[schemars(length(min = 1))]
    pub bucket: String,

    /// Region of the bucket. Unset: `us-east-1` (what S3-compatible services accept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Endpoint of an S3-compatible service, `host[:port]` or a URL
    /// (`http://minio.storage:9000`). Unset: AWS S3 of `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Prefix of every key the registry writes in the bucket, so that several caches
    /// can share one bucket (`/caches/team-a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,

    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted style
    /// (`bucket.endpoint/key`): what most S3-compatible services need.
    #[serde(default)]
    pub force_path_style: bool,

    /// The endpoint speaks plain HTTP, not HTTPS.
    #[serde(default)]
    pub insecure: bool,

    /// A Secret in the cache's namespace with the keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`. Unset: the registry's default AWS credential chain
    /// (IAM roles for service accounts, instance profiles, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Requests and limits of the registry container, as in a Pod's `resources`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheResources {
    /// Minimum resources the registry is scheduled with, e.g. `cpu: 100m`, `memory: 64Mi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,

    /// Maximum resources the registry may use, e.g. `memory: 512Mi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
}

/// A Kubernetes quantity (`500m`, `1Gi`, `2`). YAML numbers are accepted and kept as text.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => Quantity(text),
            Raw::Int(n) => Quantity(n.to_string()),
            Raw::Float(x) => Quantity(x.to_string()),
        })
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Integer or string, as Kubernetes' own quantities; the field's doc comment is
        // its description.
        schemars::json_schema!({ "x-kubernetes-int-or-string": true })
    }
}

/// What the controller observed and did.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheStatus {
    /// Conditions of the cache; `Ready` tells whether workflows can use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CacheCondition>,

    /// `host:port` of the registry inside the cluster
    /// (`<name>.<namespace>.svc.<cluster domain>:<port>`); unset when `deploy` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Number of registry pods that pass their readiness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Number of registry pods wanted (`spec.replicas`); unset when `deploy` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// The `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The prune CronJob of `spec.retention` and its last run; unset without retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionStatus>,
}

/// The CronJob that applies `spec.retention`, and what its last run did.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionStatus {
    /// Name of the CronJob (`<cache>-prune`).
    pub cron_job: String,

    /// Its schedule.
    pub schedule: String,

    /// The last prune run that finished; unset until one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_prune: Option<PruneRun>,

    /// The garbage collection CronJob and its last run; unset without
    /// `spec.retention.garbageCollect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_collect: Option<CollectionStatus>,
}

/// The CronJob that collects the registry's garbage, and what its last run did.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionStatus {
    /// Name of the CronJob (`<cache>-collect`).
    pub cron_job: String,

    /// Its schedule.
    pub schedule: String,

    /// The last collection that finished; unset until one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_collection: Option<CollectionRun>,
}

/// One finished garbage collection, read from its pod's termination message.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CollectionRun {
    /// When it finished (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub time: String,

    /// `Succeeded` or `Failed`.
    pub result: String,

    /// Blobs the registry deleted (layers, configs and manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs_deleted: Option<u64>,

    /// How much the registry's storage shrank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_freed: Option<u64>,

    /// How long the registry refused pushes, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_millis: Option<u64>,

    /// Its summary, or the end of its log when it failed.
    #[serde(default)]
    pub message: String,
}

/// One finished run of `oras-agent prune`, read from its pod's termination message.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneRun {
    /// When it finished (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub time: String,

    /// `Succeeded` or `Failed`.
    pub result: String,

    /// Tags it deleted (a succeeded run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_deleted: Option<u64>,

    /// Bytes of layers that no longer have a tag: what the registry's garbage
    /// collector can free (a succeeded run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged_bytes: Option<u64>,

    /// Its summary, or the end of its log when it failed.
    #[serde(default)]
    pub message: String,
}

/// One condition, with the fields of the Kubernetes `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheCondition {
    /// Kind of condition; this controller reports `Ready`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: String,

    /// One-word CamelCase reason: `RegistryReady`, `RegistryNotReady`, `External`,
    /// `InvalidSpec`, `ApplyFailed`.
    pub reason: String,

    /// Human readable details.
    #[serde(default)]
    pub message: String,

    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: Option<String>,

    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}

fn default_true() -> bool {
    true
}

fn default_port() -> i32 {
    DEFAULT_PORT
}

fn default_replicas() -> i32 {
    1
}

impl Default for OrasCacheSpec {
    fn default() -> Self {
        Self {
            image: default_image(),
            deploy: true,
            secrets: CacheSecrets::default(),
            storage: CacheStorage::default(),
            resources: CacheResources::default(),
            port: DEFAULT_PORT,
            access: CacheAccess::default(),
            auth: CacheAuth::default(),
            retention: None,
            replicas: 1,
        }
    }
}

impl OrasCacheStatus {
    /// The `Ready` condition, when there is one.
    pub fn ready(&self) -> Option<&CacheCondition> {
        self.conditions.iter().find(|c| c.type_ == CONDITION_READY)
    }
}

/// The CRD as YAML, exactly what `crdgen` prints and `examples/dist/crd.yaml` holds.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&OrasCache::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_spec_takes_every_default() {
        let spec: OrasCacheSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec, OrasCacheSpec::default());
        assert_eq!(spec.image, "docker.io/library/registry:3.0.0");
        assert!(spec.deploy);
        assert_eq!(spec.port, 5000);
        assert_eq!(spec.storage.size, None);
        assert!(spec.resources.requests.is_empty());
        assert!(spec.access.network_policy);
        assert!(spec.access.namespaces.is_empty());
        assert_eq!(spec.access.namespace_selector, None);
        assert!(!spec.auth.enabled);
        assert_eq!(spec.replicas, 1);
        assert_eq!(spec.storage.s3, None);
    }

    #[test]
    fn s3_storage_and_replicas_take_their_names() {
        let spec: OrasCacheSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3,
            "storage": {"s3": {
                "bucket": "artifacts", "region": "eu-west-1", "endpoint": "http://minio:9000",
                "rootDirectory": "/caches/a", "forcePathStyle": true, "insecure": true,
                "secretName": "s3-keys"
            }}
        }))
        .unwrap();
        assert_eq!(spec.replicas, 3);
        let s3 = spec.storage.s3.unwrap();
        assert_eq!(s3.bucket, "artifacts");
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(s3.root_directory.as_deref(), Some("/caches/a"));
        assert!(s3.force_path_style && s3.insecure);
        assert_eq!(s3.secret_name.as_deref(), Some("s3-keys"));
        let without_bucket: Result<S3Storage, _> =
            serde_json::from_value(serde_json::json!({"region": "x"}));
        assert!(without_bucket.is_err(), "bucket is required");
    }

    #[test]
    fn access_and_auth_take_their_names() {
        let spec: OrasCacheSpec = serde_json::from_value(serde_json::json!({
            "access": {
                "networkPolicy": false,
                "namespaces": ["analysis"],
                "namespaceSelector": {
                    "matchLabels": {"team": "physics"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]
                }
            },
            "auth": {"enabled": true}
        }))
        .unwrap();
        assert!(!spec.access.network_policy);
        assert_eq!(spec.access.namespaces, ["analysis"]);
        let selector = spec.access.namespace_selector.as_ref().unwrap();
        assert_eq!(selector.match_labels["team"], "physics");
        assert_eq!(selector.match_expressions[0].operator, "In");
        assert!(spec.auth.enabled);
    }

    #[test]
    fn the_original_fields_keep_their_names() {
        let spec: OrasCacheSpec = serde_json::from_value(serde_json::json!({
            "image": "ghcr.io/oras-project/registry:v1.0.0-rc.4",
            "deploy": false,
            "secrets": {"orasEnv": "oras-creds", "registryHttp": "registry-http"}
        }))
        .unwrap();
        assert_eq!(spec.image, "ghcr.io/oras-project/registry:v1.0.0-rc.4");
        assert!(!spec.deploy);
        assert_eq!(spec.secrets.oras_env.as_deref(), Some("oras-creds"));
        assert_eq!(spec.secrets.registry_http.as_deref(), Some("registry-http"));
    }

    #[test]
    fn quantities_accept_numbers_and_text() {
        let res: CacheResources = serde_json::from_value(serde_json::json!({
            "requests": {"cpu": 1, "memory": "64Mi"},
            "limits": {"cpu": 0.5}
        }))
        .unwrap();
        assert_eq!(res.requests["cpu"], Quantity("1".into()));
        assert_eq!(res.requests["memory"], Quantity("64Mi".into()));
        assert_eq!(res.limits["cpu"], Quantity("0.5".into()));
    }

    #[test]
    fn the_crd_has_status_printer_columns_and_descriptions() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(OrasCache::crd()).unwrap();
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], VERSION);
        assert!(version["subresources"]["status"].is_object());
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            ["Ready", "Replicas", "Ready Replicas", "Endpoint", "Age"]
        );
        let schema = &version["schema"]["openAPIV3Schema"];
        assert_eq!(
            schema["properties"]["spec"]["properties"]["port"]["default"],
            5000
        );
        assert_eq!(
            schema["properties"]["spec"]["properties"]["deploy"]["default"],
            true
        );
        assert_eq!(
            schema["properties"]["spec"]["properties"]["image"]["default"],
            DEFAULT_IMAGE
        );
        assert_eq!(
            schema["properties"]["spec"]["properties"]["access"]["properties"]["networkPolicy"]["default"],
            true
        );
        assert_every_property_described(schema, "openAPIV3Schema");
    }

    fn assert_every_property_described(schema: &serde_json::Value, path: &str) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if name != "apiVersion" && name != "kind" && name != "metadata" {
                    assert!(
                        prop.get("description").is_some(),
                        "{here} has no description"
                    );
                }
                assert_every_property_described(prop, &here);
            }
        }
        if let Some(items) = schema.get("items") {
            assert_every_property_described(items, &format!("{path}[]"));
        }
        if let Some(extra) = schema.get("additionalProperties") {
            assert_every_property_described(extra, &format!("{path}{{}}"));
        }
    }
}
