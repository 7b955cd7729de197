//! The agent against a real registry behind a fault-injecting front
//! (`support::faulty`): error answers (500, 503, 429, with and without `Retry-After`), a
//! connection reset in the middle of a blob, a download that stalls. (An upload cut
//! mid-stream is in `streamed_push.rs`.) Retries are bounded, a truncated
//! blob is never visible, and a fault that lasts ends in one clear error.

mod support;

use std::fs;
use std::path::Path;

use support::faulty::{Fault, FaultyFront, Rule};
use support::registry::TestRegistry;
use support::*;

/// 3 MiB that no two offsets share.
fn big_content() -> Vec<u8> {
    (0..(3u32 << 18)).flat_map(|i| i.to_le_bytes()).collect()
}

fn server_error() -> Fault {
    Fault::answer("500 Internal Server Error", &[], "storage is away")
}

/// Pushes `files` (name, content) to `repository:v1` straight to the registry.
fn pushed(registry: &TestRegistry, repository: &str, files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    for (name, content) in files {
        write(&work.path().join(name), content);
    }
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    let reference = registry.reference(&format!("{repository}:v1"));
    let mut args = vec!["push", "--plain-http", &reference];
    args.extend(names);
    agent_ok(&args, work.path());
    work
}

/// The files and directories under `dir` (temporary files included).
fn entries(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .keys()
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn server_errors_and_429_are_retried_then_succeed() {
    let registry = TestRegistry::start();
    let work = pushed(
        &registry,
        "faults/errors",
        &[
            ("data.txt", b"through a flaky front\n"),
            ("tree/x.txt", b"x\n"),
        ],
    );
    let too_many = Fault::answer(
        "429 Too Many Requests",
        &["Content-Type: application/json"],
        r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down please"}]}"#,
    );
    let front = FaultyFront::start(
        registry.port,
        vec![
            Rule::new("GET /v2/faults/errors/manifests/", 2, server_error()),
            Rule::new("GET /v2/faults/errors/blobs/", 1, too_many),
            Rule::new(
                "GET /v2/faults/errors/blobs/",
                1,
                Fault::answer("503 Service Unavailable", &[], ""),
            ),
        ],
    );
    let reference = front.reference("faults/errors:v1");
    let output = run_agent(
        &["pull", "--plain-http", &reference, "-o", "out"],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("500"), "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert_eq!(
        front.seen_with("GET /v2/faults/errors/manifests/").len(),
        3,
        "two errors, then the answer"
    );
    let faulted = front.seen().iter().filter(|s| s.fault.is_some()).count();
    assert_eq!(faulted, 4);
    assert_eq!(
        fs::read_to_string(work.path().join("out/data.txt")).unwrap(),
        "through a flaky front\n"
    );
    assert_eq!(
        fs::read_to_string(work.path().join("out/tree/x.txt")).unwrap(),
        "x\n"
    );

    // Pushing through errors on the upload and on the manifest works the same.
    let front = FaultyFront::start(
        registry.port,
        vec![
            Rule::new("PUT /v2/faults/again/blobs/uploads/", 2, server_error()),
            Rule::new(
                "PUT /v2/faults/again/manifests/",
                1,
                Fault::answer("503 Service Unavailable", &[], ""),
            ),
        ],
    );
    let reference = front.reference("faults/again:v1");
    agent_ok(
        &["push", "--plain-http", &reference, "data.txt"],
        work.path(),
    );
    let faulted = front.seen().iter().filter(|s| s.fault.is_some()).count();
    assert_eq!(faulted, 3);
    registry.manifest("faults/again", "v1");
    let back = work.path().join("back");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &registry.reference("faults/again:v1"),
            "-o",
            back.to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(
        fs::read_to_string(back.join("data.txt")).unwrap(),
        "through a flaky front\n"
    );
}

#[test]
fn a_registry_failing_for_good_ends_in_one_clear_error_after_the_budget() {
    let registry = TestRegistry::start();
    let work = pushed(&registry, "faults/down", &[("data.txt", b"never seen\n")]);
    let front = FaultyFront::start(
        registry.port,
        vec![Rule::new(
            "GET /v2/faults/down/",
            usize::MAX,
            server_error(),
        )],
    );
    let reference = front.reference("faults/down:v1");
    let output = agent()
        .env("ORAS_AGENT_RETRY_SECONDS", "2")
        .args(["pull", "--plain-http", &reference, "-o", "out"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"));
    assert!(
        error.contains(&format!("registry {}", front.host())),
        "{error}"
    );
    assert!(error.contains(&reference), "{error}");
    assert!(error.contains("did not answer in 2s"), "{error}");
    assert!(error.contains("500"), "{error}");
    // Bounded: a backoff from 0.1 s doubling to 3 s leaves room for a handful of tries.
    let tries = front.seen_with("GET /v2/faults/down/").len();
    assert!((2..=6).contains(&tries), "{tries} tries");
    assert!(!work.path().join("out").join("data.txt").exists());
}

#[test]
fn a_blob_cut_mid_stream_is_fetched_again_and_never_left_half_written() {
    let registry = TestRegistry::start();
    let content = big_content();
    let work = pushed(&registry, "faults/cut", &[("big.bin", &content)]);
    let front = FaultyFront::start(
        registry.port,
        vec![Rule::new(
            "GET /v2/faults/cut/blobs/",
            2,
            Fault::ResetAfter(1 << 20),
        )],
    );
    let reference = front.reference("faults/cut:v1");
    let out = work.path().join("out");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &reference,
            "-o",
            out.to_str().unwrap(),
        ],
        work.path(),
    );
    assert!(fs::read(out.join("big.bin")).unwrap() == content);
    assert_eq!(entries(&out), ["big.bin"], "no temporary file left");
    let reset = front
        .seen_with("GET /v2/faults/cut/blobs/")
        .iter()
        .filter(|s| s.fault == Some("reset"))
        .count();
    assert_eq!(reset, 2);

    // Cut every time: the pull fails once the budget is spent, and leaves nothing.
    let front = FaultyFront::start(
        registry.port,
        vec![Rule::new(
            "GET /v2/faults/cut/blobs/",
            usize::MAX,
            Fault::ResetAfter(1 << 20),
        )],
    );
    let reference = front.reference("faults/cut:v1");
    let never = work.path().join("never");
    fs::create_dir(&never).unwrap();
    let output = agent()
        .env("ORAS_AGENT_RETRY_SECONDS", "2")
        .args(["pull", "--plain-http", &reference, "-o"])
        .arg(&never)
        .current_dir(work.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("pull blob sha256:"), "{stderr}");
    assert_eq!(entries(&never), Vec::<String>::new(), "nothing written");
}

#[test]
fn a_stalled_download_is_abandoned_and_fetched_again() {
    let registry = TestRegistry::start();
    let content = big_content();
    let work = pushed(&registry, "faults/stall", &[("big.bin", &content)]);
    let front = FaultyFront::start(
        registry.port,
        vec![Rule::new(
            "GET /v2/faults/stall/blobs/",
            1,
            Fault::StallAfter(256 << 10),
        )],
    );
    let reference = front.reference("faults/stall:v1");
    let out = work.path().join("out");
    let output = agent()
        .env("ORAS_AGENT_STALL_SECONDS", "2")
        .args(["pull", "--plain-http", &reference, "-o"])
        .arg(&out)
        .current_dir(work.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(fs::read(out.join("big.bin")).unwrap() == content);
    assert_eq!(entries(&out), ["big.bin"]);
    let tries = front.seen_with("GET /v2/faults/stall/blobs/");
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(tries[0].fault, Some("stall"));
}

fn asks_to_wait(status: &str, retry_after: &str) -> Fault {
    Fault::answer(status, &[&format!("Retry-After: {retry_after}")], "")
}

#[test]
fn the_wait_a_registry_asks_for_is_taken_before_the_next_try() {
    let registry = TestRegistry::start();
    let content = big_content();
    let work = pushed(&registry, "faults/wait", &[("big.bin", &content)]);

    // A pull told to come back in 2 s (seconds).
    let front = FaultyFront::start(
        registry.port,
        vec![Rule::new(
            "GET /v2/faults/wait/blobs/",
            1,
            asks_to_wait("429 Too Many Requests", "2"),
        )],
    );
    let reference = front.reference("faults/wait:v1");
    let out = work.path().join("out");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &reference,
            "-o",
            out.to_str().unwrap(),
        ],
        work.path(),
    );
    assert!(fs::read(out.join("big.bin")).unwrap() == content);
    let tries = front.seen_with("GET /v2/faults/wait/blobs/");
    assert_eq!(tries.len(), 2, "{tries:?}");
    let waited = tries[1].at - tries[0].at;
    assert!(waited.as_secs_f64() >= 2.0, "came back after {waited:?}");

    // A push told to come back at a date (HTTP-date, whole seconds: at least 1 s on).
    let when =
        httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(3));
    let front = FaultyFront::start(
        registry.port,
        vec![Rule::new(
            "POST /v2/faults/wait-push/blobs/uploads/",
            1,
            asks_to_wait("503 Service Unavailable", &when),
        )],
    );
    let reference = front.reference("faults/wait-push:v1");
    agent_ok(
        &["push", "--plain-http", &reference, "big.bin"],
        work.path(),
    );
    // Its retry, then the other blobs' uploads.
    let tries = front.seen_with("POST /v2/faults/wait-push/blobs/uploads/");
    assert!(tries.len() >= 2, "{tries:?}");
    assert_eq!(tries[0].fault, Some("answer"));
    let waited = tries[1].at - tries[0].at;
    assert!(waited.as_secs_f64() >= 1.0, "came back after {waited:?}");
    registry.manifest("faults/wait-push", "v1");
}

#[test]
fn a_wait_longer_than_the_budget_ends_the_command_at_once() {
    let registry = TestRegistry::start();
    let work = pushed(&registry, "faults/later", &[("data.txt", b"later\n")]);
    let front = FaultyFront::start(
        registry.port,
        vec![Rule::new(
            "GET /v2/faults/later/blobs/",
            usize::MAX,
            asks_to_wait("429 Too Many Requests", "600"),
        )],
    );
    let reference = front.reference("faults/later:v1");
    let output = run_agent(
        &["pull", "--plain-http", &reference, "-o", "out"],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("429"), "{stderr}");
    assert!(
        stderr.contains("it asked to wait 600s, more than what is left of the retry budget"),
        "{stderr}"
    );
    assert_eq!(front.seen_with("GET /v2/faults/later/blobs/").len(), 1);
    assert!(!work.path().join("out").join("data.txt").exists());
}
