//! What the workflow tests share: the local setup with short agent time limits, Jobs
//! written in a few lines, and tree comparisons.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oras_contract::annotations;
use oras_e2e::local::Local;
use oras_e2e::runner::RunnerConfig;
use oras_e2e::workspace;
use serde_json::{Value, json};

/// A registry, the policy and the runner, with the agent's retry budget set to
/// `retry_seconds` in every container.
pub fn local_with_retry(retry_seconds: u64) -> Local {
    let mut config = RunnerConfig::detect().expect("the runner cannot run here");
    config.node_env = vec![
        ("ORAS_AGENT_RETRY_SECONDS".into(), retry_seconds.to_string()),
        ("ORAS_AGENT_PUSH_WAIT_SECONDS".into(), "120".into()),
    ];
    config.grace_period = Some(Duration::from_secs(10));
    // A hung pod fails the test instead of hanging it.
    config.deadline = Some(Duration::from_secs(180));
    Local::start(&workspace::policy_wasm(), config).expect("cannot start the local setup")
}

pub fn local() -> Local {
    local_with_retry(10)
}

/// A Job whose one container runs `script` with `sh -c` in `/tmp/work` (private to the container), annotated with
/// `annotations` (short keys).
pub fn job(name: &str, annotations_: &[(&str, &str)], script: &str) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations_
        .iter()
        .map(|(k, v)| (annotations::key(k), Value::String(v.to_string())))
        .collect();
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "app",
                "image": "debian:bookworm-slim",
                "workingDir": "/tmp/work",
                "command": ["sh", "-c", script]
            }]
        }}}
    })
}

/// Push the example workflow's parameters and run its step 1, which must succeed.
pub fn start_example_workflow(local: &Local) -> oras_e2e::local::Step {
    let params = workspace::root().join("examples/workflow/params");
    local
        .push("workflow/params:v1", &["params.env"], &params)
        .expect("push the workflow's parameters");
    let step1 = local
        .run(&example("examples/workflow/step1-simulate.yaml"))
        .expect("run step 1");
    assert_eq!(
        step1.report.phase,
        oras_e2e::runner::Phase::Succeeded,
        "{}",
        step1.report.summary()
    );
    step1
}

pub fn example(path: &str) -> Value {
    oras_e2e::pod::read_object(&workspace::root().join(path)).expect("read the example")
}

/// Relative path -> content of every file under `root` (directories as `dir`).
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(relative, b"dir".to_vec());
                walk(root, &path, out);
            } else {
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Prints what happened in a pod (visible with `--nocapture`, and in a failing test's
/// output).
pub fn show(report: &oras_e2e::runner::PodReport) {
    for container in &report.containers {
        println!(
            "--- {} ({})\n{}",
            container.name,
            container.role,
            container.log()
        );
    }
    println!("{}", report.summary());
}
