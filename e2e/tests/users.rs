//! The pod as the policy really writes it runs its containers as different users: the
//! agent containers as uid/gid 65532 (the `restricted` profile), the application as
//! whatever its image or securityContext says (often root, or another non-root user).
//! The share protocol has to work across those users.

mod common;

use common::{job, show};
use oras_e2e::local::Local;
use oras_e2e::runner::{Phase, RunnerConfig};
use serde_json::json;

fn local_with_users() -> Local {
    let mut config = RunnerConfig::detect().expect("the runner cannot run here");
    config.run_as_users = true;
    config.node_env = vec![
        ("ORAS_AGENT_RETRY_SECONDS".into(), "5".into()),
        // A launcher that could not record the exit waits for a push that never comes.
        ("ORAS_AGENT_PUSH_WAIT_SECONDS".into(), "10".into()),
    ];
    config.deadline = Some(std::time::Duration::from_secs(120));
    Local::start(&oras_e2e::workspace::policy_wasm(), config).expect("local setup")
}

fn root_only() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: running containers as other users needs root");
    }
    root
}

#[test]
fn root_application_with_agent_containers_as_65532_pushes_its_output() {
    if !root_only() {
        return;
    }
    let local = local_with_users();
    let object = job(
        "root-app",
        &[
            ("output-uri", "users/root-app:v1"),
            ("output-path", "out.txt"),
        ],
        "id -u; echo stored > out.txt",
    );
    let report = local.run(&object).unwrap().report;
    show(&report);
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    assert!(
        local
            .registry
            .manifest("users/root-app", "v1")
            .unwrap()
            .is_some()
    );
}

#[test]
fn non_root_application_with_agent_containers_as_65532_pushes_its_output() {
    if !root_only() {
        return;
    }
    let local = local_with_users();
    let mut object = job(
        "user-app",
        &[
            ("output-uri", "users/user-app:v1"),
            ("output-path", "out.txt"),
        ],
        "id -u; echo stored > out.txt",
    );
    object["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
        json!({"runAsUser": 1000, "runAsGroup": 1000});
    let report = local.run(&object).unwrap().report;
    show(&report);
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    assert!(
        local
            .registry
            .manifest("users/user-app", "v1")
            .unwrap()
            .is_some()
    );
}

#[test]
fn containers_run_as_their_security_context_user() {
    if !root_only() {
        return;
    }
    let local = local_with_users();
    // Run as written (no policy): only the user matters here.
    let mut object = job("whoami", &[], "id -u; id -g");
    object["spec"]["template"]["spec"]["securityContext"] = json!({"runAsUser": 4321});
    object["spec"]["template"]["spec"]["containers"][0]["securityContext"] =
        json!({"runAsGroup": 1234});
    let pod = oras_e2e::pod::pod_of(&object).unwrap();
    let report = local.runner.run(&pod, &local.pod_root("whoami")).unwrap();
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    assert_eq!(report.container("app").unwrap().log(), "4321\n1234\n");
}
