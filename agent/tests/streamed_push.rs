//! Pushes that read their sources once, hashed while they stream to the registry: a
//! source that changes on the way is refused and nothing is published, an upload cut
//! mid-stream starts again from scratch, and a small file the registry has already is
//! not sent again.

mod support;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Stdio;

use support::front::{Front, Hindrance};
use support::registry::TestRegistry;
use support::*;

/// `len` bytes that gzip cannot shrink (xorshift), different for each `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[test]
fn a_file_changed_while_it_streams_is_refused_and_nothing_is_published() {
    let registry = TestRegistry::start();
    // Held once 2 MiB went up: the agent is then still reading the 40 MiB file.
    let front = Front::start(registry.port, Hindrance::HoldAfter(2 << 20));
    let work = tempfile::tempdir().unwrap();
    let original = noise(40 << 20, 1);
    let path = work.path().join("result.bin");
    write(&path, &original);

    let reference = format!("{}/steps/changing:v1", front.host());
    let agent = agent()
        .args(["push", "--plain-http", &reference, "result.bin"])
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    front.wait_until_held();
    // Same size, other content at a place already sent.
    let mut file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(16)).unwrap();
    file.write_all(b"changed while it streamed").unwrap();
    drop(file);
    front.release();
    let output = agent.wait_with_output().unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("result.bin changed while it was read (it was modified)"),
        "{stderr}"
    );
    assert!(!registry.has_manifest("steps/changing", "v1"));
    assert_eq!(registry.stored_blobs(), Vec::<String>::new(), "{stderr}");
}

#[test]
fn an_upload_cut_mid_stream_starts_again_and_the_pulled_artifact_is_identical() {
    let registry = TestRegistry::start();
    // The first connection to carry 3 MiB up is reset: the file's or the directory's.
    let front = Front::start(registry.port, Hindrance::ResetFirstAfter(3 << 20));
    let work = tempfile::tempdir().unwrap();
    let file = noise(12 << 20, 2);
    write(&work.path().join("model.bin"), &file);
    write(&work.path().join("tree/a.bin"), &noise(6 << 20, 3));
    write(&work.path().join("tree/sub/b.txt"), b"b\n");

    let reference = format!("{}/steps/cut:v1", front.host());
    let output = run_agent(
        &["push", "--plain-http", &reference, "model.bin", "tree"],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(front.resets(), 1);
    assert!(stderr.contains("starting its upload again"), "{stderr}");

    let pulled = tempfile::tempdir().unwrap();
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &registry.reference("steps/cut:v1"),
            "-o",
            pulled.path().to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(fs::read(pulled.path().join("model.bin")).unwrap(), file);
    assert_eq!(
        snapshot(&pulled.path().join("tree")),
        snapshot(&work.path().join("tree"))
    );
    // Every stored blob is whole (checked against its digest); the cut upload left
    // none behind: the layers, the config and the manifest.
    let manifest = registry.manifest("steps/cut", "v1");
    assert_eq!(registry.stored_blobs().len(), 4, "{manifest}");
    assert!(
        registry.stored_blobs().contains(
            &manifest["layers"][0]["digest"]
                .as_str()
                .unwrap()
                .to_string()
        )
    );
    assert_eq!(manifest["layers"][0]["digest"], sha256(&file));
}

#[test]
fn a_small_file_the_registry_has_is_not_uploaded_again() {
    let registry = TestRegistry::start_with_access_log();
    let work = tempfile::tempdir().unwrap();
    let data = b"the same result twice\n";
    write(&work.path().join("result.txt"), data);
    let push = |tag: &str| {
        agent_ok(
            &[
                "push",
                "--plain-http",
                &registry.reference(&format!("steps/same:{tag}")),
                "result.txt",
            ],
            work.path(),
        );
    };
    push("v1");
    let first = registry.agent_requests();
    push("v2");
    let second = registry.agent_requests()[first.len()..].to_vec();

    let uploads = |requests: &[String]| {
        requests
            .iter()
            .filter(|r| r.contains("/blobs/uploads/"))
            .count()
    };
    // The layer and the config the first time, nothing the second.
    assert_eq!(uploads(&first), 4, "{first:#?}");
    assert_eq!(uploads(&second), 0, "{second:#?}");
    let head = format!("HEAD /v2/steps/same/blobs/{}", sha256(data));
    assert!(second.contains(&head), "{second:#?}");
    assert_eq!(
        registry.manifest("steps/same", "v2")["layers"][0]["digest"],
        sha256(data)
    );
    // One version check per process, the registry being open.
    assert_eq!(
        second.iter().filter(|r| *r == "GET /v2/").count(),
        1,
        "{second:#?}"
    );
}

#[test]
fn a_directory_whose_file_changes_while_it_streams_is_refused() {
    let registry = TestRegistry::start();
    let front = Front::start(registry.port, Hindrance::HoldAfter(2 << 20));
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("tree/a.bin"), &noise(40 << 20, 4));
    write(&work.path().join("tree/b.txt"), b"b\n");

    let reference = format!("{}/steps/tree:v1", front.host());
    let agent = agent()
        .args(["push", "--plain-http", &reference, "tree"])
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    front.wait_until_held();
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(work.path().join("tree/a.bin"))
        .unwrap();
    file.write_all(b"more").unwrap();
    drop(file);
    front.release();
    let output = agent.wait_with_output().unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let changed = Path::new("tree").join("a.bin");
    assert!(
        stderr.contains(&format!("{} changed while it was read", changed.display())),
        "{stderr}"
    );
    assert!(!registry.has_manifest("steps/tree", "v1"));
    assert_eq!(registry.stored_blobs(), Vec::<String>::new());
}
