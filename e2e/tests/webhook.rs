//! The compiled policy as a real API server's mutating webhook: an etcd and a
//! kube-apiserver (from `make tools`) on 127.0.0.1, the policy served over HTTPS by
//! `oras_e2e::webhook`, registered with the `rules` and `matchConditions` of
//! `examples/policy/cluster-admission-policy.yaml`. Objects created through the API
//! server come back rewritten (and still valid to the API server), refused with the
//! policy's message, or untouched when they carry no key of ours.

use oras_e2e::policy_host::CompiledPolicy;
use oras_e2e::webhook::PolicyWebhook;
use oras_e2e::workspace;
use oras_testkit::ControlPlane;
use oras_testkit::tls::TestCa;
use serde_json::{Value, json};

fn example(path: &str) -> Value {
    let text = std::fs::read_to_string(workspace::root().join(path)).unwrap();
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
}

/// A control plane whose API server sends pods, Jobs and CronJobs to the policy.
struct Cluster {
    plane: ControlPlane,
    _webhook: PolicyWebhook,
}

impl Cluster {
    fn start() -> Self {
        let plane = ControlPlane::start().unwrap_or_else(|e| panic!("{e}"));
        let ca = TestCa::new("oras-webhook-ca").unwrap();
        let serving = ca
            .serving_cert("oras-policy-webhook", &["127.0.0.1"])
            .unwrap();
        let policy = example("examples/policy/cluster-admission-policy.yaml");
        let settings = policy["spec"]["settings"].clone();
        let compiled = CompiledPolicy::load(&workspace::policy_wasm()).unwrap();
        let webhook =
            PolicyWebhook::start(compiled, settings, &serving.cert_pem, &serving.key_pem).unwrap();
        let configuration = webhook.configuration(&policy, &ca.cert_pem());
        let cluster = Self {
            plane,
            _webhook: webhook,
        };
        cluster.apply(&configuration).unwrap();
        cluster
    }

    fn apply(&self, object: &Value) -> Result<String, String> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), serde_json::to_vec(object).unwrap()).unwrap();
        self.plane
            .kubectl(&["create", "-f", file.path().to_str().unwrap()])
    }

    fn get(&self, kind: &str, namespace: &str, name: &str) -> Value {
        let text = self
            .plane
            .kubectl(&["get", kind, "-n", namespace, name, "-o", "json"])
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn names(containers: &Value) -> Vec<&str> {
    containers
        .as_array()
        .map(|list| list.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn the_api_server_stores_what_the_policy_rewrote_refuses_what_it_refused_and_leaves_the_rest() {
    let cluster = Cluster::start();
    cluster
        .apply(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "workflows"}}))
        .unwrap();
    // No controller-manager makes the namespace's default ServiceAccount; pods need it.
    cluster
        .apply(&json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": "workflows"}}))
        .unwrap();

    // Step 1 of the example workflow: its Job comes back with the agent wired in.
    let mut step1 = example("examples/workflow/step1-simulate.yaml");
    step1["metadata"]["namespace"] = json!("workflows");
    cluster.apply(&step1).unwrap();
    let job = cluster.get("job", "workflows", "simulate");
    let template = &job["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["oras.converged-computing.github.io/injected"],
        "true"
    );
    let spec = &template["spec"];
    assert_eq!(names(&spec["initContainers"]), ["oras-init", "oras"]);
    assert_eq!(spec["initContainers"][1]["restartPolicy"], "Always");
    assert_eq!(names(&spec["containers"]), ["simulate"]);
    let launcher = &spec["containers"][0];
    assert_eq!(launcher["command"][0], "/mnt/oras/bin/oras-agent");
    let args: Vec<&str> = launcher["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let original = args
        .iter()
        .position(|a| *a == "--")
        .expect("`--` in the args")
        + 1;
    assert_eq!(
        &args[original..original + 2],
        ["sh", "-c"],
        "the original command follows `--`: {launcher}"
    );
    assert_eq!(spec["volumes"][0]["name"], "oras-share");
    let sidecar_args = spec["initContainers"][1]["args"].to_string()
        + &spec["initContainers"][1]["command"].to_string();
    assert!(
        sidecar_args.contains("oras.workflows.svc.cluster.local:5000/workflow/simulate:results"),
        "the output is qualified with the namespace's cache: {sidecar_args}"
    );

    // A refusal reaches the user with the policy's message.
    let refused = cluster
        .apply(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "typo", "namespace": "workflows", "annotations": {
                "oras.converged-computing.github.io/output-uri": "results:v1"}},
            "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["true"]}]},
        }))
        .expect_err("a pod with output-uri and no output-path is refused");
    assert!(
        refused.contains("output-path") && refused.contains("oras-operator"),
        "{refused}"
    );

    // A pod without our annotations is not even sent to the policy, and is stored as is.
    cluster
        .apply(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "plain", "namespace": "workflows"},
            "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["true"]}]},
        }))
        .unwrap();
    let plain = cluster.get("pod", "workflows", "plain");
    assert_eq!(names(&plain["spec"]["containers"]), ["app"]);
    assert!(plain["spec"]["initContainers"].is_null());
}
