//! The part of a pod spec the local runner needs, read from a Pod or from the pod
//! template of a Job, CronJob or other workload, as the policy returned it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_SECONDS: u64 = 30;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub init_containers: Vec<Container>,
    pub containers: Vec<Container>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    pub termination_grace_period_seconds: Option<u64>,
    pub restart_policy: Option<String>,
    pub security_context: Option<SecurityContext>,
}

/// The user and group a container's processes run as (pod level, overridden per
/// container).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub env_from: Vec<EnvFromSource>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    /// `Always` on an init container makes it a native sidecar.
    pub restart_policy: Option<String>,
    pub security_context: Option<SecurityContext>,
}

impl Container {
    /// `runAsUser` and `runAsGroup` of this container, else of the pod.
    pub fn run_as(&self, pod: &PodSpec) -> (Option<u32>, Option<u32>) {
        let own = self.security_context.clone().unwrap_or_default();
        let shared = pod.security_context.clone().unwrap_or_default();
        (
            own.run_as_user.or(shared.run_as_user),
            own.run_as_group.or(shared.run_as_group),
        )
    }

    /// A native sidecar: an init container with `restartPolicy: Always`.
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub secret_key_ref: Option<KeyRef>,
    pub field_ref: Option<FieldRef>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// The downward API: a field of the pod.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    pub prefix: Option<String>,
    pub secret_ref: Option<NameRef>,
    pub config_map_ref: Option<NameRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NameRef {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    pub sub_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub empty_dir: Option<Value>,
}

/// A pod to run: its name, namespace, labels and spec.
#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: PodSpec,
}

/// The label the Job controller puts on the pods of a Job.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

impl Pod {
    /// The value of the downward API's `fieldPath` for this pod, as the kubelet gives it
    /// (an absent label or annotation is the empty string).
    pub fn field(&self, path: &str) -> Option<String> {
        let keyed = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix("['"))
                .and_then(|rest| rest.strip_suffix("']"))
        };
        match path {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            _ => {
                if let Some(key) = keyed("metadata.labels") {
                    Some(self.labels.get(key).cloned().unwrap_or_default())
                } else {
                    keyed("metadata.annotations")
                        .map(|key| self.annotations.get(key).cloned().unwrap_or_default())
                }
            }
        }
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The pod of `object`: a Pod's spec, or the pod template of a workload (`Job`:
/// `spec.template`, `CronJob`: `spec.jobTemplate.spec.template`, others
/// `spec.template`). The pod is named after the object, in the object's namespace
/// (`default` when it has none), with its template's labels and annotations; the pod of
/// a Job also gets the Job controller's `batch.kubernetes.io/job-name` label.
pub fn pod_of(object: &Value) -> Result<Pod> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"]
        .as_str()
        .or_else(|| object["metadata"]["generateName"].as_str())
        .unwrap_or("pod")
        .to_string();
    let template = match kind {
        "Pod" => object,
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"],
        _ => &object["spec"]["template"],
    };
    let spec = &template["spec"];
    let mut labels = string_map(&template["metadata"]["labels"]);
    match kind {
        "Job" => {
            labels.insert(JOB_NAME_LABEL.to_string(), name.clone());
        }
        // The CronJob controller names each Job after its scheduled minute.
        "CronJob" => {
            labels.insert(JOB_NAME_LABEL.to_string(), format!("{name}-29000000"));
        }
        _ => {}
    }
    if spec.is_null() {
        bail!("{kind} {name} has no pod spec (or pod template) to run");
    }
    let spec: PodSpec = serde_json::from_value(spec.clone())
        .with_context(|| format!("the pod spec of {kind} {name} is not one the runner reads"))?;
    Ok(Pod {
        name,
        namespace: object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        labels,
        annotations: string_map(&template["metadata"]["annotations"]),
        spec,
    })
}

/// Reads a Kubernetes object from a YAML or JSON file. An AdmissionReview yields its
/// `request.object`; a policy answer (`mutated_object`, or an expected-answer fixture's
/// `response.mutated_object`) yields the mutated object.
pub fn read_object(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
    if value["kind"] == "AdmissionReview" {
        return Ok(value["request"]["object"].clone());
    }
    for mutated in [
        &value["mutated_object"],
        &value["response"]["mutated_object"],
    ] {
        if mutated.is_object() {
            return Ok(mutated.clone());
        }
    }
    Ok(value)
}

/// Secrets given to the runner as files, by name: the `envFrom.secretRef` and
/// `secretKeyRef` sources of the pods it runs.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

impl Secrets {
    /// Adds secret `name` from `path`: a directory holds one file per key (a mounted
    /// Secret's layout); a file holds `KEY=VALUE` lines (`kubectl create secret generic
    /// --from-env-file`'s format; blank lines and `#` comments skipped).
    pub fn add_from_path(&mut self, name: &str, path: &Path) -> Result<()> {
        let mut data = BTreeMap::new();
        if path.is_dir() {
            for entry in std::fs::read_dir(path)
                .with_context(|| format!("cannot list the secret {}", path.display()))?
            {
                let entry = entry?;
                let key = entry.file_name().to_string_lossy().into_owned();
                if key.starts_with('.') || !entry.file_type()?.is_file() {
                    continue;
                }
                let value = std::fs::read_to_string(entry.path())
                    .with_context(|| format!("cannot read {}", entry.path().display()))?;
                data.insert(key, value);
            }
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the secret {}", path.display()))?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((key, value)) = line.split_once('=') else {
                    bail!("{} line {}: expected KEY=VALUE", path.display(), number + 1);
                };
                data.insert(key.trim().to_string(), value.to_string());
            }
        }
        self.secrets.insert(name.to_string(), data);
        Ok(())
    }

    pub fn insert(&mut self, name: &str, data: BTreeMap<String, String>) {
        self.secrets.insert(name.to_string(), data);
    }

    pub fn get(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.secrets.get(name)
    }
}

/// The environment Kubernetes gives `container` of `pod` from its spec: `envFrom`
/// sources in order, then `env` entries (which win), as the kubelet resolves them.
pub fn container_env(
    container: &Container,
    pod: &Pod,
    secrets: &Secrets,
) -> Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |name: String, value: String| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for source in &container.env_from {
        if let Some(reference) = &source.config_map_ref {
            bail!(
                "container {}: envFrom configMapRef {} is not supported by the local runner (give it as a secret)",
                container.name,
                reference.name
            );
        }
        let Some(reference) = &source.secret_ref else {
            continue;
        };
        match secrets.get(&reference.name) {
            Some(data) => {
                for (key, value) in data {
                    set(
                        format!("{}{key}", source.prefix.as_deref().unwrap_or("")),
                        value.clone(),
                    );
                }
            }
            None if reference.optional => {}
            None => bail!(
                "container {}: secret {} (envFrom) was not given to the runner (--secret {}=PATH)",
                container.name,
                reference.name,
                reference.name
            ),
        }
    }
    for var in &container.env {
        if let Some(value) = &var.value {
            set(var.name.clone(), value.clone());
            continue;
        }
        let Some(source) = &var.value_from else {
            set(var.name.clone(), String::new());
            continue;
        };
        if let Some(field) = &source.field_ref {
            let Some(value) = pod.field(&field.field_path) else {
                bail!(
                    "container {}: env {} takes fieldRef {:?}, which the local runner does not support",
                    container.name,
                    var.name,
                    field.field_path
                );
            };
            set(var.name.clone(), value);
            continue;
        }
        let Some(key_ref) = &source.secret_key_ref else {
            bail!(
                "container {}: env {} takes its value from {:?}, which the local runner does not support",
                container.name,
                var.name,
                source.other.keys().collect::<Vec<_>>()
            );
        };
        match secrets.get(&key_ref.name).and_then(|d| d.get(&key_ref.key)) {
            Some(value) => set(var.name.clone(), value.clone()),
            None if key_ref.optional => {}
            None => bail!(
                "container {}: env {} needs key {} of secret {}, which the runner was not given",
                container.name,
                var.name,
                key_ref.key,
                key_ref.name
            ),
        }
    }
    Ok(env)
}

/// `text` (an item of a container's `command` or `args`) with the kubelet's expansion:
/// `$(NAME)` becomes the value of `NAME` in `env` (left as it is when `NAME` is not
/// set), `$$` becomes `$`, and any other `$` stays.
pub fn expand_references(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(n, _)| n == name) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(&rest[at..at + end + 3]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn command_items_expand_like_the_kubelet() {
        let env = vec![("NAME".to_string(), "world".to_string())];
        for (text, expanded) in [
            ("hello $(NAME)", "hello world"),
            ("$(MISSING) stays", "$(MISSING) stays"),
            ("$$(NAME) is escaped", "$(NAME) is escaped"),
            ("echo $$HOME $HOME $$$$", "echo $HOME $HOME $$"),
            ("unclosed $(NAME", "unclosed $(NAME"),
            ("end $", "end $"),
            ("$(NAME)$(NAME)", "worldworld"),
        ] {
            assert_eq!(expand_references(text, &env), expanded, "{text}");
        }
    }
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_pod_template_of_each_kind() {
        let containers = json!({"containers": [{"name": "app", "command": ["true"]}]});
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": containers});
        let job = json!({"kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": containers}}});
        let cron = json!({"kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": containers}}}}});
        for (object, name) in [(pod, "p"), (job, "j"), (cron, "c")] {
            let pod = pod_of(&object).unwrap();
            assert_eq!(pod.name, name);
            assert_eq!(pod.namespace, "default");
            assert_eq!(pod.spec.containers[0].command, ["true"]);
            let job_label = pod.field("metadata.labels['batch.kubernetes.io/job-name']");
            match name {
                "p" => assert_eq!(job_label.as_deref(), Some("")),
                "j" => assert_eq!(job_label.as_deref(), Some("j")),
                _ => assert!(job_label.unwrap().starts_with("c-")),
            }
        }
        assert!(pod_of(&json!({"kind": "ConfigMap", "metadata": {"name": "x"}})).is_err());
    }

    #[test]
    fn the_last_env_from_source_wins_and_an_absent_optional_one_changes_nothing() {
        // What the policy writes: the cache's credentials (optional), then oras-env.
        let container: Container = serde_json::from_value(json!({
            "name": "oras",
            "envFrom": [{"secretRef": {"name": "oras-credentials", "optional": true}},
                        {"secretRef": {"name": "oras-env"}}]
        }))
        .unwrap();
        let pod =
            pod_of(&json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}))
                .unwrap();
        let mut secrets = Secrets::default();
        secrets.insert(
            "oras-env",
            [("ORAS_PUSH_PASS".to_string(), "explicit".to_string())].into(),
        );
        let env = container_env(&container, &pod, &secrets).unwrap();
        assert_eq!(
            env,
            [("ORAS_PUSH_PASS".to_string(), "explicit".to_string())]
        );
        secrets.insert(
            "oras-credentials",
            [
                ("ORAS_USER".to_string(), "oras".to_string()),
                ("ORAS_PUSH_PASS".into(), "generated".into()),
            ]
            .into(),
        );
        let env = container_env(&container, &pod, &secrets).unwrap();
        assert_eq!(
            env,
            [
                ("ORAS_USER".to_string(), "oras".to_string()),
                ("ORAS_PUSH_PASS".into(), "explicit".into())
            ]
        );
    }

    #[test]
    fn env_resolves_secrets_and_lets_env_win() {
        let mut secrets = Secrets::default();
        secrets.insert(
            "oras-env",
            [
                ("ORAS_USER".to_string(), "me".to_string()),
                ("A".into(), "secret".into()),
            ]
            .into(),
        );
        let container: Container = serde_json::from_value(json!({
            "name": "c",
            "envFrom": [{"secretRef": {"name": "oras-env"}}, {"secretRef": {"name": "absent", "optional": true}}],
            "env": [{"name": "A", "value": "plain"},
                    {"name": "U", "valueFrom": {"secretKeyRef": {"name": "oras-env", "key": "ORAS_USER"}}}]
        }))
        .unwrap();
        let pod = pod_of(
            &json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns",
            "labels": {"app": "x"}}, "spec": {"containers": []}}),
        )
        .unwrap();
        let env = container_env(&container, &pod, &secrets).unwrap();
        assert_eq!(
            env,
            [
                ("ORAS_USER".to_string(), "me".to_string()),
                ("A".into(), "plain".into()),
                ("U".into(), "me".into())
            ]
        );
        let missing: Container = serde_json::from_value(
            json!({"name": "c", "envFrom": [{"secretRef": {"name": "nope"}}]}),
        )
        .unwrap();
        let err = container_env(&missing, &pod, &secrets)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");

        let downward: Container = serde_json::from_value(json!({"name": "c", "env": [
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['none']"}}}
        ]}))
        .unwrap();
        assert_eq!(
            container_env(&downward, &pod, &secrets).unwrap(),
            [
                ("N".to_string(), "p".to_string()),
                ("NS".into(), "ns".into()),
                ("APP".into(), "x".into()),
                ("NONE".into(), String::new())
            ]
        );
        let unsupported: Container = serde_json::from_value(json!({"name": "c", "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}))
        .unwrap();
        let err = container_env(&unsupported, &pod, &secrets)
            .unwrap_err()
            .to_string();
        assert!(err.contains("status.podIP"), "{err}");
    }

    #[test]
    fn reads_objects_reviews_and_policy_answers() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let yaml = write("pod.yaml", "kind: Pod\nmetadata:\n  name: a\n");
        assert_eq!(read_object(&yaml).unwrap()["metadata"]["name"], "a");
        let review = write(
            "review.json",
            r#"{"kind": "AdmissionReview", "request": {"object": {"kind": "Pod", "metadata": {"name": "b"}}}}"#,
        );
        assert_eq!(read_object(&review).unwrap()["metadata"]["name"], "b");
        let answer = write(
            "answer.json",
            r#"{"response": {"accepted": true, "mutated_object": {"kind": "Job", "metadata": {"name": "c"}}}}"#,
        );
        assert_eq!(read_object(&answer).unwrap()["kind"], "Job");
    }

    #[test]
    fn secret_files_hold_key_value_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "# creds\nORAS_USER=me\n\nORAS_PUSH_PASS=a=b\n").unwrap();
        let mut secrets = Secrets::default();
        secrets.add_from_path("s", &file).unwrap();
        assert_eq!(secrets.get("s").unwrap()["ORAS_PUSH_PASS"], "a=b");
        let folder = dir.path().join("mounted");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("ORAS_USER"), "you").unwrap();
        secrets.add_from_path("m", &folder).unwrap();
        assert_eq!(secrets.get("m").unwrap()["ORAS_USER"], "you");
    }
}
