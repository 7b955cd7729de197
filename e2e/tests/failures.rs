//! Failure paths of a whole pod: the application fails or is killed, the registry goes
//! away before the push (and comes back, or not), an input does not exist.

mod common;

use common::{job, local, local_with_retry, show};
use oras_e2e::pod::pod_of;
use oras_e2e::runner::Phase;

#[test]
fn application_exit_3_fails_the_pod_and_pushes_nothing() {
    let local = local();
    let object = job(
        "exit-three",
        &[
            ("output-uri", "fail/exit:three"),
            ("output-path", "out.txt"),
        ],
        "echo partial > out.txt; exit 3",
    );
    let report = local.run(&object).unwrap().report;
    show(&report);
    assert_eq!(report.phase, Phase::Failed, "{}", report.summary());
    assert_eq!(report.container("app").unwrap().exit_code, Some(3));
    assert_eq!(report.container("oras").unwrap().exit_code, Some(0));
    assert_eq!(local.registry.manifest("fail/exit", "three").unwrap(), None);
    assert!(local.registry.tags("fail/exit").unwrap().is_empty());
}

#[test]
fn application_killed_with_sigkill_ends_the_pod_with_137() {
    let local = local();
    let object = job(
        "killed",
        &[("output-uri", "fail/killed:v1"), ("output-path", "out.txt")],
        // `$$$$`: the kubelet turns `$$` in a command into `$`, so the shell sees `$$`.
        "echo partial > out.txt; kill -KILL $$$$",
    );
    let report = local.run(&object).unwrap().report;
    show(&report);
    assert_eq!(report.phase, Phase::Failed, "{}", report.summary());
    assert_ne!(report.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(report.container("app").unwrap().exit_code, Some(137));
    assert_eq!(local.registry.manifest("fail/killed", "v1").unwrap(), None);
}

#[test]
fn registry_back_within_the_retry_window_gets_the_push() {
    let mut local = local_with_retry(60);
    let object = job(
        "late-registry",
        &[
            ("output-uri", "late/registry:v1"),
            ("output-path", "out.txt"),
        ],
        "echo stored > out.txt",
    );
    let admitted = local.admit(&object).unwrap();
    let pod = pod_of(&admitted.object).unwrap();
    let root = local.pod_root(&pod.name);
    local.registry.stop();
    let runner = &local.runner;
    let registry = &mut local.registry;
    let report = std::thread::scope(|scope| {
        let running = scope.spawn(|| runner.run(&pod, &root));
        // Start the registry again once the sidecar has reported a retry.
        let sidecar_log = root.join("logs/oras.log");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !std::fs::read_to_string(&sidecar_log).is_ok_and(|l| l.contains("retrying")) {
            assert!(
                std::time::Instant::now() < deadline && !running.is_finished(),
                "the sidecar never reported a retry"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        registry.restart().unwrap();
        running.join().unwrap().unwrap()
    });
    show(&report);
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    assert_eq!(report.container("app").unwrap().exit_code, Some(0));
    assert!(
        local
            .registry
            .manifest("late/registry", "v1")
            .unwrap()
            .is_some()
    );
}

#[test]
fn registry_gone_for_good_fails_the_launcher_with_the_push_error() {
    let mut local = local_with_retry(1);
    let object = job(
        "no-registry",
        &[
            ("output-uri", "gone/registry:v1"),
            ("output-path", "out.txt"),
        ],
        "echo lost > out.txt",
    );
    let admitted = local.admit(&object).unwrap();
    local.registry.stop();
    let report = local.run_admitted(&admitted).unwrap();
    show(&report);
    assert_eq!(report.phase, Phase::Failed, "{}", report.summary());
    let app = report.container("app").unwrap();
    assert_ne!(app.exit_code, Some(0));
    assert!(app.exit_code.is_some());
    let log = app.log();
    assert!(log.contains("output was not stored"), "{log}");
    assert!(log.contains("gone/registry:v1"), "{log}");
}

#[test]
fn missing_input_fails_init_naming_it_and_the_app_never_starts() {
    let local = local();
    let object = job(
        "missing-input",
        &[("input-uri", "nothing/here:missing")],
        "touch started",
    );
    let report = local.run(&object).unwrap().report;
    show(&report);
    assert_eq!(report.phase, Phase::Failed, "{}", report.summary());
    let init = report.container("oras-init").unwrap();
    assert_ne!(init.exit_code, Some(0));
    assert!(
        init.log().contains("nothing/here:missing"),
        "{}",
        init.log()
    );
    let app = report.container("app").unwrap();
    assert!(!app.started(), "{}", report.summary());
    assert!(!report.workdir("app").join("started").exists());
}
