//! A registry behind a token server, as GHCR, Harbor or Docker Hub run theirs: the
//! agent trades the `oras-env` credentials for bearer tokens, its own requests (streamed
//! uploads, blob downloads) carry them, and a token that expires while the application
//! runs is renewed by the sidecar's push. Debian's `docker-registry` verifies every token
//! (`auth.token`, the server's certificate as its root bundle).

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use oras_testkit::TokenServer;
use support::registry::TestRegistry;
use support::*;

const USER: &str = "lab";
const PASSWORD: &str = "token-secret";

/// The agent with the `oras-env` credentials.
fn agent_as_user(args: &[&str], cwd: &Path) -> Output {
    agent()
        .env("ORAS_USER", USER)
        .env("ORAS_PUSH_PASS", PASSWORD)
        .env("ORAS_PULL_PASS", PASSWORD)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run oras-agent")
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "oras-agent failed with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn pushes_and_pulls_through_bearer_tokens() {
    let tokens = TokenServer::start(USER, PASSWORD, Duration::from_secs(300)).unwrap();
    let registry = TestRegistry::start_behind(&tokens);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write(&src.join("result.txt"), b"behind a token\n");
    // Larger than the small-file limit: it streams through our own upload session.
    let big: Vec<u8> = (0..(1u32 << 19)).flat_map(|i| i.to_le_bytes()).collect();
    write(&src.join("big.bin"), &big);
    tricky_tree(&src.join("tree"));
    let reference = registry.reference("lab/run:v1");

    // Without credentials the token server refuses, and the agent says for what.
    let anonymous = run_agent(&["push", "--plain-http", &reference, "result.txt"], &src);
    assert!(!anonymous.status.success());
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains(&reference) || stderr.contains("lab/run"),
        "{stderr}"
    );
    assert_eq!(tokens.issued(), 0);

    succeeded(&agent_as_user(
        &[
            "push",
            "--plain-http",
            &reference,
            "result.txt",
            "big.bin",
            "tree",
        ],
        &src,
    ));
    let after_push = tokens.issued();
    assert!(after_push >= 1, "no token was issued for the push");

    let out = work.path().join("out");
    succeeded(&agent_as_user(
        &[
            "pull",
            "--plain-http",
            &reference,
            "-o",
            out.to_str().unwrap(),
        ],
        work.path(),
    ));
    assert!(
        tokens.issued() > after_push,
        "no token was issued for the pull"
    );
    assert_eq!(snapshot(&out), snapshot(&src));
}

#[test]
fn a_token_that_expires_while_the_application_runs_is_renewed_for_the_push() {
    let tokens = TokenServer::start(USER, PASSWORD, Duration::from_secs(2)).unwrap();
    let registry = TestRegistry::start_behind(&tokens);
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    let output = registry.reference("lab/long-step:v1");
    let mut sidecar = agent()
        .env("ORAS_USER", USER)
        .env("ORAS_PUSH_PASS", PASSWORD)
        .args(["sidecar", "--share", share.to_str().unwrap()])
        .args(["--output", &output, "--plain-http"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The sidecar reaches the registry (and gets its tokens) while the application
    // runs; the application outlives them.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokens.issued() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sidecar got no token"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let issued_before_the_push = tokens.issued();
    // Larger than the small-file limit: our own streamed upload meets the expiry.
    let launched = agent()
        .args(["launch", "--share", share.to_str().unwrap()])
        .args(["--output-path", "big.bin", "--wait-push", "--"])
        .args(["sh", "-c", "sleep 4; head -c 3000000 /dev/zero > big.bin"])
        .current_dir(work.path())
        .output()
        .unwrap();
    // SAFETY: kill(2) on our own child, not reaped yet.
    unsafe {
        libc::kill(sidecar.id() as libc::pid_t, libc::SIGTERM);
    }
    let mut log = String::new();
    std::io::Read::read_to_string(sidecar.stderr.as_mut().unwrap(), &mut log).unwrap();
    sidecar.wait().unwrap();
    assert!(
        launched.status.success(),
        "launch: {}\nsidecar: {log}",
        String::from_utf8_lossy(&launched.stderr)
    );
    assert!(
        tokens.issued() > issued_before_the_push,
        "no new token after the first expired: {log}"
    );
    let pulled = work.path().join("pulled");
    succeeded(&agent_as_user(
        &[
            "pull",
            "--plain-http",
            &output,
            "-o",
            pulled.to_str().unwrap(),
        ],
        work.path(),
    ));
    assert_eq!(
        std::fs::read(pulled.join("big.bin")).unwrap(),
        vec![0u8; 3_000_000]
    );
}
