//! What a user does with kubectl, and what they look at when something went wrong.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oras_testkit::Node;
use oras_testkit::registry::{free_port, http};
use serde_json::Value;

/// The cluster as a user sees it, with a place for the files they apply.
pub struct Kube<'a> {
    pub node: &'a Node,
    pub work: PathBuf,
}

impl Kube<'_> {
    /// `kubectl ARGS`; panics with kubectl's message and the cluster's state.
    pub fn run(&self, args: &[&str]) -> String {
        self.node
            .kubectl(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.state()))
    }

    /// `kubectl apply -f` of `object` (written to a file first, as a user would).
    pub fn apply(&self, namespace: Option<&str>, object: &Value) -> String {
        let name = object["metadata"]["name"].as_str().unwrap_or("object");
        let kind = object["kind"].as_str().unwrap_or("Object");
        let file = self.work.join(format!("{kind}-{name}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(object).unwrap()).unwrap();
        let file = file.to_string_lossy().into_owned();
        let mut args = vec!["apply", "-f", &file];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        self.run(&args)
    }

    /// `kubectl get KIND NAME -o json`.
    pub fn get(&self, namespace: &str, kind: &str, name: &str) -> Value {
        serde_json::from_str(&self.run(&["get", kind, name, "-n", namespace, "-o", "json"]))
            .unwrap()
    }

    /// The one pod of Job `job`.
    pub fn pod_of_job(&self, namespace: &str, job: &str) -> Value {
        let list: Value = serde_json::from_str(&self.run(&[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            &format!("job-name={job}"),
            "-o",
            "json",
        ]))
        .unwrap();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 1, "Job {job} has one pod: {list}");
        items[0].clone()
    }

    /// Waits until the OrasCache `name` reports `Ready`, as `kubectl wait` does.
    pub fn wait_cache_ready(&self, namespace: &str, name: &str) {
        if let Err(e) = self.node.kubectl(&[
            "wait",
            "-n",
            namespace,
            "--for=condition=Ready",
            "--timeout=180s",
            &format!("orascache/{name}"),
        ]) {
            panic!(
                "the OrasCache {name} did not become Ready: {e}\n{}",
                self.state()
            );
        }
    }

    /// Waits until Job `job` is Complete (`outcome` "complete") or Failed ("failed"),
    /// as `kubectl wait` does.
    pub fn wait_job(&self, namespace: &str, job: &str, outcome: &str) {
        if let Err(e) = self.node.kubectl(&[
            "wait",
            "-n",
            namespace,
            &format!("--for=condition={outcome}"),
            "--timeout=300s",
            &format!("job/{job}"),
        ]) {
            panic!(
                "Job {job} did not become {outcome}: {e}\n{}\n{}",
                self.job_story(namespace, job),
                self.state()
            );
        }
    }

    /// What a user reads when a Job went wrong: its pod, events and every log.
    pub fn job_story(&self, namespace: &str, job: &str) -> String {
        let selector = format!("job-name={job}");
        let mut story = String::new();
        for args in [
            vec!["describe", "job", job, "-n", namespace],
            vec!["describe", "pods", "-n", namespace, "-l", &selector],
            vec![
                "logs",
                "-n",
                namespace,
                "-l",
                &selector,
                "--all-containers",
                "--prefix",
            ],
        ] {
            story.push_str(&format!("$ kubectl {}\n", args.join(" ")));
            story.push_str(&self.node.kubectl(&args).unwrap_or_else(|e| e));
            story.push('\n');
        }
        story
    }

    /// `kubectl get pods -A` and the events, for a failure message.
    pub fn state(&self) -> String {
        let pods = self
            .node
            .kubectl(&["get", "pods", "-A", "-o", "wide"])
            .unwrap_or_else(|e| e);
        let events = self
            .node
            .kubectl(&["get", "events", "-A", "--sort-by=.lastTimestamp"])
            .unwrap_or_else(|e| e);
        let names = self
            .node
            .kubectl(&[
                "get",
                "pods",
                "-A",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{"\n"}{end}"#,
            ])
            .unwrap_or_default();
        let mut logs = String::new();
        for (namespace, pod) in names.lines().filter_map(|l| l.split_once(' ')) {
            logs.push_str(
                &self
                    .node
                    .kubectl(&[
                        "logs",
                        "-n",
                        namespace,
                        pod,
                        "--all-containers",
                        "--prefix",
                        "--tail=20",
                    ])
                    .unwrap_or_else(|e| e),
            );
        }
        format!(
            "pods:\n{pods}\nevents:\n{events}\nlogs:\n{logs}\nthe components' logs: {}",
            self.node.dir().display()
        )
    }

    /// `kubectl port-forward -n NAMESPACE svc/SERVICE LOCAL:PORT`, ready when the
    /// registry behind it answers `GET /v2/` (200, or 401 from one that requires
    /// credentials).
    pub fn port_forward(&self, namespace: &str, service: &str, port: u16) -> PortForward {
        let local = free_port().unwrap();
        let kubectl = oras_testkit::tools::tool("kubectl").unwrap();
        let log = self.work.join(format!("port-forward-{service}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(self.node.kubeconfig())
            .args([
                "port-forward",
                "-n",
                namespace,
                &format!("svc/{service}"),
                &format!("{local}:{port}"),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let forward = PortForward { child, local };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http(local, "GET", "/v2/", &[], &[]), Ok((200 | 401, _, _))) {
            assert!(
                Instant::now() < deadline,
                "kubectl port-forward to svc/{service} did not answer: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        forward
    }
}

/// A running `kubectl port-forward`; stopped on drop.
pub struct PortForward {
    child: Child,
    pub local: u16,
}

impl PortForward {
    /// `127.0.0.1:PORT`, the registry as seen from this machine.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.local)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The terminated state of container `name` (init or main) in `pod`.
pub fn terminated<'a>(pod: &'a Value, name: &str) -> &'a Value {
    let statuses = pod["status"]["initContainerStatuses"]
        .as_array()
        .into_iter()
        .chain(pod["status"]["containerStatuses"].as_array())
        .flatten();
    for status in statuses {
        if status["name"] == name {
            return &status["state"]["terminated"];
        }
    }
    panic!("pod has no container {name}: {}", pod["status"]);
}

/// Reads a YAML file of the repository as JSON.
pub fn example(root: &Path, path: &str) -> Value {
    let text = std::fs::read_to_string(root.join(path)).unwrap();
    serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap()
}
