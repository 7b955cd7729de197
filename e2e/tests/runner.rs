//! The local pod runner on its own (no policy, no registry): Kubernetes' order and
//! rules for init containers, native sidecars and main containers, volumes, working
//! directories and environment.

use std::time::Duration;

use oras_e2e::isolation::Isolation;
use oras_e2e::pod::{Pod, pod_of};
use oras_e2e::runner::{Phase, PodReport, PodRunner, RunnerConfig};
use serde_json::{Value, json};

fn runner() -> PodRunner {
    let mut config = RunnerConfig::detect().expect("the runner cannot run here");
    config.grace_period = Some(Duration::from_secs(1));
    config.deadline = Some(Duration::from_secs(60));
    config.secrets.insert(
        "creds",
        [("ORAS_USER".to_string(), "alice".to_string())].into(),
    );
    PodRunner::new(config)
}

fn pod(spec: Value) -> Pod {
    pod_of(&json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": spec})).unwrap()
}

fn run(spec: Value) -> (PodReport, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let report = runner().run(&pod(spec), root.path()).unwrap();
    (report, root)
}

fn sh(name: &str, script: &str) -> Value {
    json!({"name": name, "command": ["sh", "-c", script],
           "volumeMounts": [{"name": "shared", "mountPath": "/mnt/shared"}]})
}

#[test]
fn init_containers_run_in_order_then_the_main_containers() {
    let (report, _root) = run(json!({
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [
            sh("first", "echo first >> /mnt/shared/order"),
            sh("second", "echo second >> /mnt/shared/order"),
        ],
        "containers": [sh("main", "echo main >> /mnt/shared/order; cat /mnt/shared/order")]
    }));
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    assert_eq!(
        report.container("main").unwrap().log(),
        "first\nsecond\nmain\n"
    );
    assert_eq!(
        std::fs::read_to_string(report.volume_dir("shared").join("order")).unwrap(),
        "first\nsecond\nmain\n"
    );
}

#[test]
fn a_failed_init_container_fails_the_pod_and_nothing_after_it_starts() {
    let (report, _root) = run(json!({
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [sh("broken", "exit 4"), sh("later", "true")],
        "containers": [sh("main", "true")]
    }));
    assert_eq!(report.phase, Phase::Failed);
    assert_eq!(report.container("broken").unwrap().exit_code, Some(4));
    assert!(!report.container("later").unwrap().started());
    assert!(!report.container("main").unwrap().started());
}

#[test]
fn sidecars_keep_running_until_the_main_containers_end_then_get_sigterm() {
    let mut sidecar = sh(
        "side",
        "trap 'echo got TERM; exit 0' TERM; touch /mnt/shared/side-up; while :; do sleep 0.05; done",
    );
    sidecar["restartPolicy"] = json!("Always");
    let mut stubborn = sh("stubborn", "trap '' TERM; while :; do sleep 0.05; done");
    stubborn["restartPolicy"] = json!("Always");
    let (report, _root) = run(json!({
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "initContainers": [stubborn, sidecar],
        // The sidecar was started before the main container.
        "containers": [sh("main", "while [ ! -e /mnt/shared/side-up ]; do sleep 0.01; done; exit 0")]
    }));
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    let side = report.container("side").unwrap();
    assert_eq!(side.exit_code, Some(0));
    assert!(side.log().contains("got TERM"));
    // Ignoring SIGTERM ends with SIGKILL after the grace period.
    assert_eq!(report.container("stubborn").unwrap().exit_code, Some(137));
}

#[test]
fn the_pod_fails_when_one_main_container_fails_and_signals_count_as_128_plus() {
    let (report, _root) = run(json!({
        "volumes": [{"name": "shared", "emptyDir": {}}],
        // `$$$$`: the kubelet turns `$$` in a command into `$`.
        "containers": [sh("ok", "true"), sh("killed", "kill -TERM $$$$")]
    }));
    assert_eq!(report.phase, Phase::Failed);
    assert_eq!(report.container("ok").unwrap().exit_code, Some(0));
    assert_eq!(report.container("killed").unwrap().exit_code, Some(143));
}

#[test]
fn containers_get_their_own_directories_and_environment() {
    let mut app = sh(
        "app",
        "pwd; echo \"$GREETING $ORAS_USER $ALSO\"; echo mine > /tmp/private; touch here /mnt/shared/app-wrote",
    );
    app["workingDir"] = json!("/tmp/app");
    app["env"] = json!([{"name": "GREETING", "value": "hello"},
        {"name": "ALSO", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "ORAS_USER"}}}]);
    app["envFrom"] = json!([{"secretRef": {"name": "creds"}}]);
    let other = sh(
        "other",
        "while [ ! -e /mnt/shared/app-wrote ]; do sleep 0.01; done; \
         if [ -e /tmp/private ]; then echo shared; else echo clean; fi",
    );
    let (report, _root) = run(json!({
        "volumes": [{"name": "shared", "emptyDir": {}}],
        "containers": [app, other]
    }));
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    let log = report.container("app").unwrap().log();
    if runner().config().isolation == Isolation::MountNamespace {
        assert_eq!(log, "/tmp/app\nhello alice alice\n");
        assert_eq!(report.container("other").unwrap().log(), "clean\n");
    } else {
        // Without namespaces /tmp is the host's.
        let _ = std::fs::remove_file("/tmp/private");
    }
    assert!(report.workdir("app").join("here").is_file());
}

#[test]
fn a_container_without_a_command_cannot_start() {
    let (report, _root) = run(json!({"containers": [{"name": "image-only", "image": "x"}]}));
    assert_eq!(report.phase, Phase::Failed);
    let c = report.container("image-only").unwrap();
    assert_eq!(c.exit_code, Some(128));
    assert!(
        c.reason.as_deref().unwrap_or("").contains("no command"),
        "{:?}",
        c.reason
    );
}
