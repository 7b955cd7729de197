//! What a person at a terminal (or a script) gets from the user commands: results on
//! stdout, nothing else on stderr when all goes well, one `Error: <causes>` line and exit
//! code 1 when it does not, 2 for a wrong command line; and what `kubectl logs` gets
//! from the pod roles: timestamped lines with their level.

mod support;

use std::process::Output;

use support::registry::TestRegistry;
use support::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// The single `Error: ` line a failed user command leaves on stderr, with exit code 1.
fn error_line(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("Error: "), "{stderr}");
    lines[0].to_string()
}

/// `2026-01-02T03:04:05...` at the start of a line.
fn starts_with_timestamp(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 20
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
}

#[test]
fn push_pull_and_tags_print_their_results_on_stdout_and_nothing_on_stderr() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("a.txt"), b"a\n");
    write(&work.path().join("dir/b.txt"), b"b\n");
    let reference = registry.reference("cli/output:v1");

    let pushed = run_agent(
        &["push", "--plain-http", &reference, "a.txt", "dir"],
        work.path(),
    );
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    assert_eq!(text(&pushed.stderr), "");
    let digest = text(&pushed.stdout);
    let digest = digest.strip_suffix('\n').unwrap();
    assert!(
        digest.starts_with("sha256:") && !digest.contains('\n'),
        "{digest}"
    );

    let pulled = run_agent(
        &["pull", "--plain-http", &reference, "-o", "out"],
        work.path(),
    );
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    assert_eq!(text(&pulled.stderr), "");
    assert_eq!(
        text(&pulled.stdout),
        format!("out/a.txt\nout/dir\n{digest}\n")
    );

    let tags = run_agent(
        &["tags", "--plain-http", &registry.reference("cli/output")],
        work.path(),
    );
    assert!(tags.status.success(), "{}", text(&tags.stderr));
    assert_eq!(text(&tags.stderr), "");
    assert_eq!(text(&tags.stdout), "v1\n");
}

#[test]
fn each_user_command_fails_with_one_error_line_naming_the_cause_and_exit_code_1() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let missing = registry.reference("cli/missing:v1");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["push", "--plain-http", &missing, "no-such-file"],
            "no-such-file".to_string(),
        ),
        (
            vec!["pull", "no-registry/repo:tag"],
            "no-registry/repo:tag".to_string(),
        ),
        (
            vec!["tags", "--plain-http", "Bad Name"],
            "Bad Name".to_string(),
        ),
        (
            vec!["lineage", "--plain-http", &missing],
            format!("cannot read {missing}"),
        ),
        (
            vec!["prune", "--plain-http", "--keep-last", "1", "Bad Name"],
            "Bad Name".to_string(),
        ),
        (
            vec!["collect", "http://127.0.0.1:1/collect"],
            "ORAS_MAINTENANCE_TOKEN".to_string(),
        ),
    ];
    for (args, cause) in cases {
        let output = agent()
            .env_remove("ORAS_MAINTENANCE_TOKEN")
            .args(&args)
            .current_dir(work.path())
            .output()
            .unwrap();
        let line = error_line(&output);
        assert!(line.contains(&cause), "{args:?}: {line}");
        assert!(!line.contains("ERROR"), "{args:?}: {line}");
    }
}

#[test]
fn a_wrong_command_line_exits_2() {
    let work = tempfile::tempdir().unwrap();
    for args in [
        &["push", "--no-such-flag", "localhost:5000/x:1", "f"][..],
        &["push"],
        &["no-such-command"],
    ] {
        let output = run_agent(args, work.path());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(
            text(&output.stderr).contains("Usage"),
            "{args:?}: {output:?}"
        );
    }
}

#[test]
fn debug_and_the_log_filters_add_details_on_stderr_only() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("a.txt"), b"a\n");
    let reference = registry.reference("cli/debug:v1");
    for (flag, env) in [
        (Some("--debug"), None),
        (None, Some(("ORAS_AGENT_LOG", "oras_agent=debug"))),
        (None, Some(("RUST_LOG", "oras_agent=debug"))),
    ] {
        let mut command = agent();
        command.arg("push").args(flag).arg("--plain-http");
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let output = command
            .args([&reference, "a.txt"])
            .current_dir(work.path())
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        // The digest alone, as without details (it differs by the creation time).
        let stdout = text(&output.stdout);
        assert!(
            stdout.starts_with("sha256:") && stdout.lines().count() == 1,
            "{flag:?} {env:?}: {stdout}"
        );
        assert!(
            stderr
                .lines()
                .any(|line| line.starts_with("debug: connecting")),
            "{flag:?} {env:?}: {stderr}"
        );
        assert!(
            !stderr.lines().any(starts_with_timestamp),
            "{flag:?} {env:?}: {stderr}"
        );
    }
}

#[test]
fn pod_roles_log_timestamped_lines_with_their_level() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = agent()
        .env("ORAS_AGENT_RETRY_SECONDS", "0")
        .args([
            "init",
            "--share",
            share.to_str().unwrap(),
            "--input",
            "127.0.0.1:1/pod/input:v1",
            "--plain-http",
        ])
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let failure = stderr
        .lines()
        .find(|line| line.contains("127.0.0.1:1/pod/input:v1") && line.contains(" ERROR "))
        .unwrap_or_else(|| panic!("no ERROR line naming the input: {stderr}"));
    assert!(starts_with_timestamp(failure), "{failure}");
    assert!(!stderr.contains("Error: "), "{stderr}");
}
