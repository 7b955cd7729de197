//! The example workflow on a real single-node cluster built on this machine
//! (`make cluster-e2e`, as root; not part of `make test`): etcd, kube-apiserver,
//! kube-scheduler, kube-controller-manager, kube-proxy and CoreDNS, a kubelet over
//! containerd and runc on a private bridge (`oras_testkit::node`), every image built here.
//! The compiled policy is the API server's mutating webhook. Then what a user does:
//! `kubectl apply -f examples/dist/`, an OrasCache, the two Jobs of `examples/workflow/`
//! (real init containers and native sidecars; the output stored in the in-cluster
//! registry through its Service name), the result pulled through `kubectl port-forward`
//! with `oras-agent pull` and the oras Go CLI; what a user sees when an application
//! fails, is OOM-killed, or names an input that does not exist; and a private cache
//! (`auth.enabled`): the registry behind the gate, Jobs pushing and pulling with the
//! generated credentials, the pull password's push refused. Each phase is timed.

mod cluster {
    pub mod images;
    pub mod kube;
}

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::images::{self, APP, APP_TAG, REGISTRY, REGISTRY_TAG, run};
use cluster::kube::{Kube, example, terminated};
use oras_e2e::policy_host::CompiledPolicy;
use oras_e2e::webhook::PolicyWebhook;
use oras_e2e::workspace;
use oras_testkit::Node;
use oras_testkit::node::{BRIDGE, NODE_IP};
use oras_testkit::registry::http;
use oras_testkit::tls::TestCa;
use oras_testkit::tools::tool;
use serde_json::{Value, json};

const NAMESPACE: &str = "my-workflows";
const PREFIX: &str = "oras.converged-computing.github.io";
const SUMMARY: &str = "runs: 3\nthreshold: 20\nabove threshold: 2\nsimulation log lines: 4\n";

struct Phases(Vec<(&'static str, Duration)>);

impl Phases {
    fn time<T>(&mut self, name: &'static str, phase: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = phase();
        self.0.push((name, started.elapsed()));
        eprintln!("phase {name}: {:.1} s", started.elapsed().as_secs_f64());
        result
    }
}

#[test]
#[ignore = "needs root, containerd and the tools: make cluster-e2e"]
fn the_example_workflow_runs_on_a_real_node() {
    let mut phases = Phases(Vec::new());
    let root = workspace::root();
    let node = phases.time("cluster start", || {
        Node::start().unwrap_or_else(|e| panic!("the cluster did not start: {e}"))
    });
    let work = node.dir().join("user");
    std::fs::create_dir_all(&work).unwrap();
    let kube = Kube {
        node: &node,
        work: work.clone(),
    };

    let agent_image = phases.time("image import", || images::import_all(&node, &work));
    let webhook = phases.time("workflow", || {
        let webhook = serve_policy(&kube, &root, &agent_image);
        install_and_run_the_workflow(&kube, &root, &work, &agent_image);
        webhook
    });
    phases.time("failure modes", || failure_modes(&kube));
    phases.time("private cache", || private_cache(&kube, &root, &work));
    phases.time("tidy cache", || tidy_cache(&kube, &root, &work));

    drop(webhook);
    let dir = node.dir().to_path_buf();
    phases.time("teardown", || {
        node.stop()
            .unwrap_or_else(|e| panic!("the teardown failed: {e}"))
    });
    assert_no_leftovers(&dir);

    eprintln!("\n| phase | seconds |\n| --- | --- |");
    for (name, took) in &phases.0 {
        eprintln!("| {name} | {:.1} |", took.as_secs_f64());
    }
}

/// The compiled policy as the API server's mutating webhook, registered with the rules
/// and matchConditions of `examples/policy/`, its default agent image the imported one.
fn serve_policy(kube: &Kube, root: &Path, agent_image: &str) -> PolicyWebhook {
    let policy = example(root, "examples/policy/cluster-admission-policy.yaml");
    let mut settings = policy["spec"]["settings"].clone();
    settings["agentImage"] = json!(agent_image);
    let ca = TestCa::new("oras-webhook-ca").unwrap();
    let serving = ca
        .serving_cert("oras-policy-webhook", &["127.0.0.1"])
        .unwrap();
    let compiled = CompiledPolicy::load(&workspace::policy_wasm())
        .unwrap_or_else(|e| panic!("loading policy.wasm (make policy.wasm): {e:#}"));
    let webhook = PolicyWebhook::start(compiled, settings, &serving.cert_pem, &serving.key_pem)
        .unwrap_or_else(|e| panic!("{e:#}"));
    kube.apply(None, &webhook.configuration(&policy, &ca.cert_pem()));
    webhook
}

fn install_and_run_the_workflow(kube: &Kube, root: &Path, work: &Path, agent_image: &str) {
    // The operator, as `kubectl apply -f examples/dist/`, the controller's image being
    // the one built here.
    for file in ["00-namespace.yaml", "01-crd.yaml", "02-rbac.yaml"] {
        let path = root.join("examples/dist").join(file);
        kube.run(&["apply", "-f", &path.to_string_lossy()]);
    }
    let mut deployment = example(root, "examples/dist/03-deployment.yaml");
    let controller = format!("{}:{}", images::CONTROLLER, images::version());
    let container = &mut deployment["spec"]["template"]["spec"]["containers"][0];
    container["image"] = json!(controller);
    // The gate of caches with auth is the controller image, the retention CronJobs'
    // the agent image: the ones imported here.
    for arg in container["args"].as_array_mut().unwrap() {
        if arg.as_str().is_some_and(|a| a.starts_with("--gate-image=")) {
            *arg = json!(format!("--gate-image={controller}"));
        }
        if arg
            .as_str()
            .is_some_and(|a| a.starts_with("--agent-image="))
        {
            *arg = json!(format!("--agent-image={agent_image}"));
        }
    }
    kube.apply(None, &deployment);
    kube.run(&[
        "wait",
        "--for=condition=Established",
        "crd/orascaches.cache.converged-computing.github.io",
    ]);
    if let Err(e) = kube.node.kubectl(&[
        "rollout",
        "status",
        "-n",
        "oras-system",
        "deployment/oras-controller",
        "--timeout=180s",
    ]) {
        panic!("the controller did not roll out: {e}\n{}", kube.state());
    }

    // A cache in the workflows' namespace, running the registry image built here.
    kube.run(&["create", "namespace", NAMESPACE]);
    let mut cache = example(root, "examples/cache/oras-cache.yaml");
    cache["spec"]["image"] = json!(format!("{REGISTRY}:{REGISTRY_TAG}"));
    kube.apply(Some(NAMESPACE), &cache);
    kube.wait_cache_ready(NAMESPACE, "oras");
    let cache = kube.get(NAMESPACE, "orascache", "oras");
    assert_eq!(
        cache["status"]["endpoint"],
        format!("oras.{NAMESPACE}.svc.cluster.local:5000")
    );

    // The workflow's parameters, pushed from this machine with the oras Go CLI.
    let registry = kube.port_forward(NAMESPACE, "oras", 5000);
    let oras = tool("oras").unwrap_or_else(|e| panic!("{e}"));
    run(Command::new(&oras)
        .current_dir(root.join("examples/workflow/params"))
        .args([
            "push",
            "--plain-http",
            &format!("{}/workflow/params:v1", registry.host()),
            "params.env",
        ]));

    for (file, job) in [
        ("examples/workflow/step1-simulate.yaml", "simulate"),
        ("examples/workflow/step2-summarize.yaml", "summarize"),
    ] {
        let mut object = example(root, file);
        object["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!(format!("{APP}:{APP_TAG}"));
        kube.apply(Some(NAMESPACE), &object);
        kube.wait_job(NAMESPACE, job, "complete");
        let pod = kube.pod_of_job(NAMESPACE, job);
        assert_eq!(pod["status"]["phase"], "Succeeded", "{}", pod["status"]);
        let init: Vec<&str> = pod["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(init, ["oras-init", "oras"], "the policy wired the agent in");
        assert_eq!(pod["spec"]["initContainers"][1]["restartPolicy"], "Always");
        assert_eq!(terminated(&pod, job)["exitCode"], 0);
        // The native sidecar was stopped by the kubelet once the application ended.
        assert!(
            !terminated(&pod, "oras").is_null(),
            "the sidecar ended: {}",
            pod["status"]
        );
    }

    // The result, from this machine, with both clients: the same bytes.
    let reference = format!("{}/workflow/summarize:summary", registry.host());
    let agent = images::binaries().join("oras-agent");
    let by_agent = work.join("pulled-by-agent");
    run(Command::new(&agent).args([
        "pull",
        "--plain-http",
        &reference,
        "-o",
        &by_agent.to_string_lossy(),
    ]));
    let by_oras = work.join("pulled-by-oras");
    run(Command::new(&oras).args([
        "pull",
        "--plain-http",
        &reference,
        "-o",
        &by_oras.to_string_lossy(),
    ]));
    for dir in [&by_agent, &by_oras] {
        let summary = std::fs::read_to_string(dir.join("summary.txt"))
            .unwrap_or_else(|e| panic!("{}/summary.txt: {e}", dir.display()));
        assert_eq!(summary, SUMMARY, "pulled into {}", dir.display());
    }

    // Its provenance names the pod and the Job, which the sidecar learnt from the
    // kubelet's downward API, and its attestation is where `oras discover` looks.
    let manifest: Value = serde_json::from_str(&run(Command::new(&oras).args([
        "manifest",
        "fetch",
        "--plain-http",
        &reference,
    ])))
    .unwrap();
    let pod = kube.pod_of_job(NAMESPACE, "summarize");
    let annotation = |key: &str| manifest["annotations"][format!("{PREFIX}/{key}")].clone();
    assert_eq!(
        annotation("pod"),
        json!(format!(
            "{NAMESPACE}/{}",
            pod["metadata"]["name"].as_str().unwrap()
        ))
    );
    assert_eq!(annotation("workload"), json!("Job/summarize"));
    assert_eq!(annotation("image"), json!(format!("{APP}:{APP_TAG}")));
    let discovered: Value = serde_json::from_str(&run(Command::new(&oras).args([
        "discover",
        "--plain-http",
        "--format",
        "json",
        &reference,
    ])))
    .unwrap();
    let referrers = discovered["referrers"]
        .as_array()
        .or_else(|| discovered["manifests"].as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        referrers
            .iter()
            .any(|r| r["artifactType"] == "application/vnd.in-toto+json"),
        "{discovered}"
    );
}

/// A Job of the busybox image in the workflows' namespace with `annotations` (under the
/// prefix) running `script`.
fn job(name: &str, annotations: &[(&str, &str)], script: &str, resources: Value) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(key, value)| (format!("{PREFIX}/{key}"), json!(value)))
        .collect();
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "app",
                "image": format!("{APP}:{APP_TAG}"),
                "workingDir": "/work",
                "command": ["sh", "-c", script],
                "resources": resources,
            }],
        }}},
    })
}

fn failure_modes(kube: &Kube) {
    let registry = kube.port_forward(NAMESPACE, "oras", 5000);

    // An application that exits 3: the Job fails with the pod's exit code, the sidecar
    // does not keep the pod alive, and nothing is pushed.
    kube.apply(
        Some(NAMESPACE),
        &job(
            "exits-3",
            &[
                ("output-uri", "failures/exits:out"),
                ("output-path", "out.txt"),
            ],
            "echo partial > out.txt; exit 3",
            json!({}),
        ),
    );
    kube.wait_job(NAMESPACE, "exits-3", "failed");
    let pod = kube.pod_of_job(NAMESPACE, "exits-3");
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(terminated(&pod, "app")["exitCode"], 3, "{}", pod["status"]);
    assert!(!terminated(&pod, "oras").is_null(), "{}", pod["status"]);
    let (status, _, _) = http(
        registry.local,
        "GET",
        "/v2/failures/exits/tags/list",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(status, 404, "nothing was pushed for a failed application");
    let failed = kube.get(NAMESPACE, "job", "exits-3");
    assert!(
        failed["status"]["conditions"]
            .to_string()
            .contains("BackoffLimitExceeded"),
        "{}",
        failed["status"]
    );

    // An application over its memory limit: killed by the kernel, the pod fails with
    // 137 and the kubelet says OOMKilled.
    kube.apply(
        Some(NAMESPACE),
        &job(
            "oom",
            &[
                ("output-uri", "failures/oom:out"),
                ("output-path", "out.txt"),
            ],
            "echo started > out.txt; exec dd if=/dev/zero of=/dev/null bs=256M count=1",
            json!({"limits": {"memory": "64Mi"}}),
        ),
    );
    kube.wait_job(NAMESPACE, "oom", "failed");
    let pod = kube.pod_of_job(NAMESPACE, "oom");
    let app = terminated(&pod, "app");
    assert_eq!(app["exitCode"], 137, "{}", pod["status"]);
    let events = kube.run(&[
        "get",
        "events",
        "-n",
        NAMESPACE,
        "--field-selector",
        &format!(
            "involvedObject.name={}",
            pod["metadata"]["name"].as_str().unwrap()
        ),
    ]);
    eprintln!("the OOM-killed pod: {}\n{events}", pod["status"]);
    assert_eq!(app["reason"], "OOMKilled", "{}", pod["status"]);

    // A missing input: oras-init fails naming it, the application never starts.
    kube.apply(
        Some(NAMESPACE),
        &job(
            "missing-input",
            &[("input-uri", "failures/nothing:here")],
            "echo must not run",
            json!({}),
        ),
    );
    kube.wait_job(NAMESPACE, "missing-input", "failed");
    let pod = kube.pod_of_job(NAMESPACE, "missing-input");
    let init = terminated(&pod, "oras-init");
    assert_ne!(init["exitCode"], 0, "{}", pod["status"]);
    assert!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"].is_null()
            || pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"]
                != "Completed",
        "the application never ran: {}",
        pod["status"]
    );
    let pod_name = pod["metadata"]["name"].as_str().unwrap();
    let log = kube.run(&["logs", "-n", NAMESPACE, pod_name, "-c", "oras-init"]);
    assert!(
        log.contains("failures/nothing:here"),
        "oras-init names the missing input: {log}"
    );
    eprintln!(
        "{}",
        kube.run(&["get", "pods", "-n", NAMESPACE, "-o", "wide"])
    );
}

/// `examples/cache/oras-cache-private.yaml` (`auth.enabled`, a NetworkPolicy): the
/// registry behind the gate turns Ready through the kubelet's probes; a Job pushes and
/// another pulls with the generated credentials the policy gave their agents; a Job
/// whose `oras-env` (which wins) holds the pull password as its push password is refused;
/// from this machine, anonymous requests are refused and the pull password pulls.
fn private_cache(kube: &Kube, root: &Path, work: &Path) {
    use base64::Engine as _;
    let mut cache = example(root, "examples/cache/oras-cache-private.yaml");
    cache["spec"]["image"] = json!(format!("{REGISTRY}:{REGISTRY_TAG}"));
    kube.apply(Some(NAMESPACE), &cache);
    kube.wait_cache_ready(NAMESPACE, "results");
    let secret = kube.get(NAMESPACE, "secret", "results-credentials");
    let value = |key: &str| {
        let encoded = secret["data"][key].as_str().unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    };
    let (user, pull) = (value("ORAS_USER"), value("ORAS_PULL_PASS"));
    let policy = kube.get(NAMESPACE, "networkpolicy", "results");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 5000);
    let sts = kube.get(NAMESPACE, "statefulset", "results");
    let names: Vec<&str> = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["registry", "gate"]);

    // Push, then pull, with the credentials the policy gave the agents.
    kube.apply(
        Some(NAMESPACE),
        &job(
            "private-push",
            &[
                ("oras-cache", "results"),
                ("output-uri", "private/result:v1"),
                ("output-path", "out.txt"),
            ],
            "echo private result > out.txt",
            json!({}),
        ),
    );
    kube.wait_job(NAMESPACE, "private-push", "complete");
    let pod = kube.pod_of_job(NAMESPACE, "private-push");
    for agent in pod["spec"]["initContainers"].as_array().unwrap() {
        assert_eq!(
            agent["envFrom"],
            json!([{"secretRef": {"name": "results-credentials", "optional": true}}]),
            "{}",
            agent["name"]
        );
    }
    assert!(pod["spec"]["containers"][0].get("envFrom").is_none());
    kube.apply(
        Some(NAMESPACE),
        &job(
            "private-pull",
            &[
                ("oras-cache", "results"),
                ("input-uri", "private/result:v1"),
            ],
            "grep -q 'private result' out.txt",
            json!({}),
        ),
    );
    kube.wait_job(NAMESPACE, "private-pull", "complete");

    // The pull password as a push password, in an oras-env Secret (which wins over the
    // generated one): the gate refuses the push, the Job fails saying why.
    kube.apply(
        Some(NAMESPACE),
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "pull-only"},
            "stringData": {"ORAS_USER": user, "ORAS_PUSH_PASS": pull},
        }),
    );
    kube.apply(
        Some(NAMESPACE),
        &job(
            "private-forged",
            &[
                ("oras-cache", "results"),
                ("oras-env", "pull-only"),
                ("output-uri", "private/result:v1"),
                ("output-path", "out.txt"),
            ],
            "echo forged > out.txt",
            json!({}),
        ),
    );
    kube.wait_job(NAMESPACE, "private-forged", "failed");
    let story = kube.job_story(NAMESPACE, "private-forged");
    assert!(
        story.contains("the pull credentials of this cache (ORAS_PULL_PASS) can only read"),
        "{story}"
    );

    // From this machine: anonymous requests are refused, the pull password pulls what the
    // first Job pushed (not the forged output).
    let registry = kube.port_forward(NAMESPACE, "results", 5000);
    let (status, _, _) = http(
        registry.local,
        "GET",
        "/v2/private/result/tags/list",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(status, 401, "anonymous");
    let reference = format!("{}/private/result:v1", registry.host());
    let pulled = work.join("pulled-private");
    run(Command::new(images::binaries().join("oras-agent"))
        .env("ORAS_USER", &user)
        .env("ORAS_PULL_PASS", &pull)
        .args([
            "pull",
            "--plain-http",
            &reference,
            "-o",
            &pulled.to_string_lossy(),
        ]));
    assert_eq!(
        std::fs::read_to_string(pulled.join("out.txt")).unwrap(),
        "private result\n"
    );
}

/// `examples/cache/oras-cache-retention.yaml` (on an emptyDir, keeping one tag): three
/// artifacts pushed from this machine, a prune and a garbage collection started from the
/// CronJobs as a user would (`kubectl create job --from=cronjob/...`), each run's result
/// in the cache's status, the kept artifact pulled identical.
fn tidy_cache(kube: &Kube, root: &Path, work: &Path) {
    let mut cache = example(root, "examples/cache/oras-cache-retention.yaml");
    cache["metadata"]["name"] = json!("tidy");
    cache["spec"]["image"] = json!(format!("{REGISTRY}:{REGISTRY_TAG}"));
    cache["spec"].as_object_mut().unwrap().remove("storage");
    cache["spec"]["retention"] = json!({"keepLast": 1, "garbageCollect": {}});
    kube.apply(Some(NAMESPACE), &cache);
    kube.wait_cache_ready(NAMESPACE, "tidy");
    let registry = kube.port_forward(NAMESPACE, "tidy", 5000);
    let agent = images::binaries().join("oras-agent");
    for run_number in 1..=3u8 {
        let file = work.join(format!("tidy-{run_number}.bin"));
        std::fs::write(&file, vec![run_number; 300 * 1024]).unwrap();
        run(Command::new(&agent).current_dir(work).args([
            "push",
            "--plain-http",
            &format!("{}/steps/a:run-{run_number}", registry.host()),
            &format!("tidy-{run_number}.bin"),
        ]));
        // Distinct creation times, to the second.
        std::thread::sleep(Duration::from_millis(1100));
    }

    let status_of = |what: &str, done: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let cache = kube.get(NAMESPACE, "orascache", "tidy");
            let retention = cache["status"]["retention"].clone();
            if done(&retention) {
                return retention;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} in the status: {}\n{}",
                cache["status"],
                kube.state()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    kube.run(&[
        "create",
        "job",
        "-n",
        NAMESPACE,
        "prune-now",
        "--from=cronjob/tidy-prune",
    ]);
    kube.wait_job(NAMESPACE, "prune-now", "complete");
    let retention = status_of("last prune", &|r| r["lastPrune"]["result"] == "Succeeded");
    assert_eq!(retention["lastPrune"]["tagsDeleted"], 2, "{retention}");

    kube.run(&[
        "create",
        "job",
        "-n",
        NAMESPACE,
        "collect-now",
        "--from=cronjob/tidy-collect",
    ]);
    kube.wait_job(NAMESPACE, "collect-now", "complete");
    let retention = status_of("last collection", &|r| {
        r["garbageCollect"]["lastCollection"]["result"] == "Succeeded"
    });
    let collection = &retention["garbageCollect"]["lastCollection"];
    // Two layers and two manifests of the pruned tags.
    assert_eq!(collection["blobsDeleted"], 4, "{retention}");
    assert!(
        collection["bytesFreed"].as_u64().unwrap() >= 2 * 300 * 1024,
        "{retention}"
    );

    // The registry serves again (it restarted twice in its pod), with what was kept.
    drop(registry);
    let registry = kube.port_forward(NAMESPACE, "tidy", 5000);
    let pulled = work.join("pulled-tidy");
    run(Command::new(&agent).args([
        "pull",
        "--plain-http",
        &format!("{}/steps/a:run-3", registry.host()),
        "-o",
        &pulled.to_string_lossy(),
    ]));
    assert_eq!(
        std::fs::read(pulled.join("tidy-3.bin")).unwrap(),
        vec![3u8; 300 * 1024]
    );
    let tags = run(Command::new(&agent).args([
        "tags",
        "--plain-http",
        &format!("{}/steps/a", registry.host()),
    ]));
    assert_eq!(tags.trim(), "run-3");
}

/// Nothing of the node is left on the host: no bridge, no mount, no process.
fn assert_no_leftovers(dir: &Path) {
    assert!(
        !Path::new("/sys/class/net").join(BRIDGE).exists(),
        "the bridge {BRIDGE} is left"
    );
    let dir_text = dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&dir_text),
        "mounts under {dir_text} are left"
    );
    let processes: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&dir_text))
        .collect();
    assert!(processes.is_empty(), "processes are left: {processes:?}");
    let rules = run(&mut Command::new("iptables-save"));
    assert!(
        !rules.contains("10.213.") && !rules.contains("10.96."),
        "iptables rules of the cluster ({NODE_IP}, the Services) are left"
    );
    assert!(!dir.exists(), "{} is left", dir.display());
}
