//! The pod roles as processes on one share, in Kubernetes order: `init`, then the
//! `sidecar` in the background, then `launch` around a shell command.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;

use support::registry::TestRegistry;
use support::*;

/// A sidecar process whose stderr is collected; started only once it is listening
/// for signals (it logs that it waits).
struct Sidecar {
    child: Child,
    log: mpsc::Receiver<String>,
}

impl Sidecar {
    fn start(share: &Path, output: &str, extra: &[&str]) -> Self {
        let mut child = agent()
            .args([
                "sidecar",
                "--share",
                share.to_str().unwrap(),
                "--output",
                output,
                "--plain-http",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let sidecar = Sidecar { child, log };
        sidecar.wait_for_line("waiting for the application");
        sidecar
    }

    fn wait_for_line(&self, needle: &str) -> String {
        for line in self.log.iter() {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("the sidecar ended without logging {needle:?}");
    }

    /// SIGTERM, as Kubernetes sends when the main containers have exited; returns the
    /// exit code and the rest of the log.
    fn terminate(mut self) -> (i32, String) {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.log.iter().collect();
        (status.code().unwrap_or(-1), rest.join("\n"))
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(share: &Path, cwd: &Path, flags: &[&str], script: &str) -> std::process::Output {
    agent()
        .args(["launch", "--share", share.to_str().unwrap()])
        .args(flags)
        .args(["--", "sh", "-c", script])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn init_launch_sidecar_then_a_second_init_pulls_the_output_back() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("a.txt"), b"from input one\n");
    write(&src.join("shared.txt"), b"one\n");
    tricky_tree(&src.join("tree"));
    write(&src.join("two/b.txt"), b"from input two\n");
    write(&src.join("two/shared.txt"), b"two\n");
    let input1 = registry.reference("flow/input:one");
    let input2 = registry.reference("flow/input:two");
    let output = registry.reference("flow/output:v1");
    agent_ok(
        &[
            "push",
            "--plain-http",
            &input1,
            "a.txt",
            "shared.txt",
            "tree",
        ],
        &src,
    );
    agent_ok(
        &["push", "--plain-http", &input2, "b.txt", "shared.txt"],
        &src.join("two"),
    );

    let share = work.path().join("share");
    let share_arg = share.to_str().unwrap();
    agent_ok(
        &[
            "init",
            "--share",
            share_arg,
            "--input",
            &input1,
            "--input",
            &input2,
            "--plain-http",
        ],
        work.path(),
    );
    let installed = fs::metadata(share.join("bin/oras-agent")).unwrap();
    assert!(std::os::unix::fs::PermissionsExt::mode(&installed.permissions()) & 0o111 != 0);
    assert!(share.join("inputs/1/tree/bin/run.sh").is_file());
    assert!(share.join("inputs/2/b.txt").is_file());

    let sidecar = Sidecar::start(&share, &output, &[]);
    let app = work.path().join("app");
    fs::create_dir_all(&app).unwrap();
    let launched = launch(
        &share,
        &app,
        &[
            "--input-path",
            "data",
            "--output-path",
            "data/result",
            "--wait-push",
        ],
        "cd data && mkdir result && cat a.txt b.txt > result/joined.txt && cat shared.txt > result/shared.txt && cp -a tree result/tree && echo done",
    );
    let stderr = String::from_utf8_lossy(&launched.stderr);
    assert!(launched.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&launched.stdout), "done\n");
    // A later input's file replaced the earlier one, with a warning.
    assert!(
        stderr.contains("replaces the one of an earlier input"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(app.join("data/result/shared.txt")).unwrap(),
        "two\n"
    );
    assert_eq!(
        fs::read_to_string(share.join("state/exit")).unwrap().trim(),
        "0"
    );
    let push = fs::read_to_string(share.join("state/push")).unwrap();
    assert!(push.starts_with("ok sha256:"), "{push}");
    let (code, _) = sidecar.terminate();
    assert_eq!(code, 0);

    let share2 = work.path().join("share2");
    agent_ok(
        &[
            "init",
            "--share",
            share2.to_str().unwrap(),
            "--input",
            &output,
            "--plain-http",
        ],
        work.path(),
    );
    assert_eq!(
        snapshot(&share2.join("inputs/1/result")),
        snapshot(&app.join("data/result"))
    );
    assert_eq!(
        fs::read_to_string(share2.join("inputs/1/result/joined.txt")).unwrap(),
        "from input one\nfrom input two\n"
    );
}

#[test]
fn killed_application_is_recorded_as_128_plus_signal_and_not_pushed() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    agent_ok(&["init", "--share", share.to_str().unwrap()], work.path());
    let output = registry.reference("killed/app:v1");
    let sidecar = Sidecar::start(&share, &output, &[]);
    let launched = launch(
        &share,
        work.path(),
        &["--output-path", "out", "--wait-push"],
        "mkdir out && echo partial > out/x && kill -KILL $$",
    );
    assert_eq!(launched.status.code(), Some(137));
    assert_eq!(
        fs::read_to_string(share.join("state/exit")).unwrap().trim(),
        "137"
    );
    let push = fs::read_to_string(share.join("state/push")).unwrap();
    assert!(push.starts_with("error not pushed"), "{push}");
    let (code, _) = sidecar.terminate();
    assert_eq!(code, 0);
    let tags = run_agent(
        &["tags", "--plain-http", &registry.reference("killed/app")],
        work.path(),
    );
    assert!(String::from_utf8_lossy(&tags.stdout).trim().is_empty());
}

#[test]
fn push_on_failure_pushes_the_output_and_keeps_the_code() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = registry.reference("failed/app:v1");
    let sidecar = Sidecar::start(&share, &output, &["--push-on-failure"]);
    let launched = launch(
        &share,
        work.path(),
        &[
            "--output-path",
            "log.txt",
            "--wait-push",
            "--push-on-failure",
        ],
        "echo partial > log.txt; exit 3",
    );
    assert_eq!(launched.status.code(), Some(3));
    assert!(
        fs::read_to_string(share.join("state/push"))
            .unwrap()
            .starts_with("ok ")
    );
    let (code, _) = sidecar.terminate();
    assert_eq!(code, 0);
    agent_ok(
        &["pull", "--plain-http", &output, "-o", "back"],
        work.path(),
    );
    assert_eq!(
        fs::read_to_string(work.path().join("back/log.txt")).unwrap(),
        "partial\n"
    );
}

#[test]
fn missing_output_is_a_clear_error_and_the_exit_code_is_kept() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = registry.reference("missing/output:v1");
    let sidecar = Sidecar::start(&share, &output, &[]);
    let launched = launch(
        &share,
        work.path(),
        &["--output-path", "never-written", "--wait-push"],
        "echo ran",
    );
    let stderr = String::from_utf8_lossy(&launched.stderr);
    assert_eq!(
        fs::read_to_string(share.join("state/exit")).unwrap().trim(),
        "0"
    );
    assert!(stderr.contains("never-written does not exist"), "{stderr}");
    // The application succeeded but nothing was stored: the launcher says so.
    assert_eq!(launched.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("output was not stored"), "{stderr}");
    assert!(
        fs::read_to_string(share.join("state/push"))
            .unwrap()
            .starts_with("error ")
    );
    let (code, _) = sidecar.terminate();
    assert_eq!(code, 0);

    // Without a sidecar to wait for, the application's code is the launcher's.
    let share2 = work.path().join("share2");
    let launched = launch(
        &share2,
        work.path(),
        &["--output-path", "never-written"],
        "exit 5",
    );
    assert_eq!(launched.status.code(), Some(5));
    assert_eq!(
        fs::read_to_string(share2.join("state/exit"))
            .unwrap()
            .trim(),
        "5"
    );
}

#[test]
fn launcher_forwards_sigterm_to_the_application() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let ready = work.path().join("ready");
    let mut child = agent()
        .args([
            "launch",
            "--share",
            share.to_str().unwrap(),
            "--",
            "sh",
            "-c",
        ])
        .arg(format!(
            "trap 'echo got-term; exit 42' TERM; touch {}; while :; do sleep 0.05; done",
            ready.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while !ready.exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child, not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, "got-term\n");
    assert_eq!(
        fs::read_to_string(share.join("state/exit")).unwrap().trim(),
        "42"
    );
}

#[test]
fn output_pipe_receives_stdout_and_stderr_while_they_pass_through() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let pipe = work.path().join("logs/app.log");
    let launched = launch(
        &share,
        work.path(),
        &["--output-pipe", pipe.to_str().unwrap()],
        "echo to-stdout; echo to-stderr >&2",
    );
    assert!(launched.status.success());
    assert_eq!(String::from_utf8_lossy(&launched.stdout), "to-stdout\n");
    assert!(String::from_utf8_lossy(&launched.stderr).contains("to-stderr\n"));
    let logged = fs::read_to_string(&pipe).unwrap();
    assert!(
        logged.contains("to-stdout\n") && logged.contains("to-stderr\n"),
        "{logged}"
    );
}

#[test]
fn sidecar_stopped_before_the_application_ends_exits_zero() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let sidecar = Sidecar::start(&share, "127.0.0.1:1/never/pushed:v1", &[]);
    let (code, log) = sidecar.terminate();
    assert_eq!(code, 0, "{log}");
    assert!(!share.join("state/push").exists());
}

#[test]
fn command_that_cannot_start_is_recorded_as_127() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = agent()
        .args([
            "launch",
            "--share",
            share.to_str().unwrap(),
            "--",
            "/no/such/program",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/program"));
    assert_eq!(
        fs::read_to_string(share.join("state/exit")).unwrap().trim(),
        "127"
    );
}

#[test]
fn restarted_launcher_gets_its_inputs_again_and_the_sidecar_pushes_the_new_run() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("src/in.txt"), b"input\n");
    let input = registry.reference("restart/input:v1");
    let output = registry.reference("restart/output:v1");
    agent_ok(
        &["push", "--plain-http", &input, "in.txt"],
        &work.path().join("src"),
    );
    let share = work.path().join("share");
    agent_ok(
        &[
            "init",
            "--share",
            share.to_str().unwrap(),
            "--input",
            &input,
            "--plain-http",
        ],
        work.path(),
    );
    let sidecar = Sidecar::start(&share, &output, &[]);

    // First run: fails (as with restartPolicy OnFailure); nothing is pushed.
    let first = work.path().join("first");
    fs::create_dir_all(&first).unwrap();
    let launched = launch(
        &share,
        &first,
        &["--output-path", "out.txt", "--wait-push"],
        "cat in.txt > out.txt; exit 1",
    );
    assert_eq!(launched.status.code(), Some(1));
    assert!(
        fs::read_to_string(share.join("state/push"))
            .unwrap()
            .starts_with("error not pushed")
    );
    sidecar.wait_for_line("idle until stopped");

    // The container restarts with a new filesystem: the inputs are placed again, and
    // the sidecar pushes this run's output.
    let second = work.path().join("second");
    fs::create_dir_all(&second).unwrap();
    let launched = launch(
        &share,
        &second,
        &["--output-path", "out.txt", "--wait-push"],
        "cat in.txt > out.txt",
    );
    let stderr = String::from_utf8_lossy(&launched.stderr);
    assert!(launched.status.success(), "{stderr}");
    assert!(
        fs::read_to_string(share.join("state/push"))
            .unwrap()
            .starts_with("ok ")
    );
    let (code, _) = sidecar.terminate();
    assert_eq!(code, 0);
    agent_ok(
        &["pull", "--plain-http", &output, "-o", "back"],
        work.path(),
    );
    assert_eq!(
        fs::read_to_string(work.path().join("back/out.txt")).unwrap(),
        "input\n"
    );
}

#[test]
fn on_a_registry_with_the_referrers_api_the_attestation_needs_no_referrers_tag() {
    let registry = TestRegistry::start_with_referrers_api();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("in.txt"), b"input\n");
    let input = registry.reference("api/input:1");
    let output = registry.reference("api/output:1");
    agent_ok(&["push", "--plain-http", &input, "in.txt"], &src);
    let share = work.path().join("share");
    agent_ok(
        &[
            "init",
            "--share",
            share.to_str().unwrap(),
            "--input",
            &input,
            "--plain-http",
        ],
        work.path(),
    );
    let sidecar = Sidecar::start(
        &share,
        &output,
        &["--image", "busybox:1.36", "--command-digest", "sha256:00"],
    );
    let app = work.path().join("app");
    fs::create_dir_all(&app).unwrap();
    let launched = launch(
        &share,
        &app,
        &["--output-path", "out.txt", "--wait-push"],
        "cp in.txt out.txt",
    );
    assert!(
        launched.status.success(),
        "{}",
        String::from_utf8_lossy(&launched.stderr)
    );
    let (code, log) = sidecar.terminate();
    assert_eq!(code, 0, "{log}");
    let pushed = fs::read_to_string(share.join("state/push")).unwrap();
    let digest = pushed.trim().strip_prefix("ok ").unwrap().to_string();

    // This registry derives a referrer's artifactType from its config (as the
    // distribution spec's release candidates did), so the referrer is found by digest.
    let found = oras_testkit::tools::discover_referrers(&output).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    // The registry indexed the referrer itself: no referrers tag was written.
    let tags = registry.tags("api/output");
    assert_eq!(tags, ["1"], "{tags:?}");
    let manifest = registry.manifest("api/output", found[0]["digest"].as_str().unwrap());
    assert_eq!(manifest["subject"]["digest"], digest.as_str());
    assert_eq!(manifest["artifactType"], "application/vnd.in-toto+json");
    let annotations = &registry.manifest("api/output", "1")["annotations"];
    assert_eq!(
        annotations["oras.converged-computing.github.io/image"],
        "busybox:1.36"
    );
    assert_eq!(
        annotations["oras.converged-computing.github.io/command-digest"],
        "sha256:00"
    );
    assert!(
        annotations["oras.converged-computing.github.io/inputs"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{input}@sha256:"))
    );
}

#[test]
fn the_sidecar_asks_the_registry_for_its_version_once_for_two_runs() {
    let registry = TestRegistry::start_with_access_log();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = registry.reference("ready/app:v1");
    let sidecar = Sidecar::start(&share, &output, &[]);
    // The registry is reached while the application runs, before any exit record.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !registry.agent_requests().contains(&"GET /v2/".to_string()) {
        assert!(std::time::Instant::now() < deadline, "no GET /v2/ yet");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for run in ["first", "second"] {
        let launched = launch(
            &share,
            work.path(),
            &["--output-path", "out.txt", "--wait-push"],
            &format!("echo {run} > out.txt"),
        );
        assert!(launched.status.success(), "{launched:?}");
        assert!(
            fs::read_to_string(share.join("state/push"))
                .unwrap()
                .starts_with("ok "),
            "{run}"
        );
    }
    let (code, log) = sidecar.terminate();
    assert_eq!(code, 0, "{log}");
    let requests = registry.agent_requests();
    // Two pushes, each with its attestation, on one connection reached once.
    assert_eq!(
        requests.iter().filter(|r| *r == "GET /v2/").count(),
        1,
        "{requests:#?}"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("PUT /v2/ready/app/manifests/v1"))
            .count(),
        2,
        "{requests:#?}"
    );
}

#[test]
fn sidecar_with_image_format_pushes_an_image_carrying_its_provenance() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = registry.reference("steps/as-image:v1");
    let sidecar = Sidecar::start(
        &share,
        &output,
        &["--image-format", "--image", "busybox:1.36"],
    );
    let launched = launch(
        &share,
        work.path(),
        &["--output-path", "result.txt", "--wait-push"],
        "echo 42 > result.txt",
    );
    assert!(
        launched.status.success(),
        "{}",
        String::from_utf8_lossy(&launched.stderr)
    );
    let (code, _) = sidecar.terminate();
    assert_eq!(code, 0);

    let manifest = registry.manifest("steps/as-image", "v1");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        layer["annotations"]["org.opencontainers.image.title"],
        "result.txt"
    );
    let annotations = &manifest["annotations"];
    assert_eq!(
        annotations["oras.converged-computing.github.io/image"],
        "busybox:1.36"
    );
    assert_eq!(
        annotations["oras.converged-computing.github.io/exit-code"],
        "0"
    );
    // Pulled back, the output is the file the application wrote.
    agent_ok(
        &["pull", "--plain-http", &output, "-o", "back"],
        work.path(),
    );
    assert_eq!(
        fs::read_to_string(work.path().join("back/result.txt")).unwrap(),
        "42\n"
    );
}
