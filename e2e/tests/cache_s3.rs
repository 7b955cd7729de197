//! A cache on S3 with two replicas, as its users meet it: moto as the bucket on
//! 127.0.0.1, two Debian `docker-registry` processes started from exactly what the
//! controller renders for the cache's Deployment (the registry container's environment,
//! its secretKeyRefs resolved to the test's Secrets: the bucket's keys and the generated
//! HTTP secret), and a round-robin TCP proxy standing for the cache's Service. The agents
//! need no change: they talk to the Service, whichever replica answers.
//!
//! - An upload begun on one replica is continued and finished on the other (the shared
//!   HTTP secret; a replica with another secret refuses it).
//! - The agent pushes 10,000 files and 256 MiB through the Service; each replica alone
//!   serves all of it back identical, and oras-py agrees.
//! - A replica stopped in the middle of a run of pushes loses nothing that was
//!   acknowledged, the other goes on serving, and the stopped one, started again, serves
//!   everything (it keeps nothing of its own).
//!
//! Each against Debian's `docker-registry` (distribution 2.8) and distribution 3 (`make
//! tools`; the cache's default image is distribution 3).

#[path = "support/s3_cache.rs"]
mod s3_cache;

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;

use oras_e2e::runner::find_agent_binary;
use oras_testkit::OrasPy;
use oras_testkit::registry::{REGISTRY_BINARY, Registry, free_port, header, http};
use s3_cache::{BUCKET, ROOT, S3Cache};

fn agent(args: &[&str], cwd: &Path) -> Output {
    Command::new(find_agent_binary().expect("the agent binary"))
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .env("ORAS_AGENT_RETRY_SECONDS", "10")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running the agent")
}

fn succeeded(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes `size` bytes of a pseudo-random stream seeded by `seed` (no two seeds alike,
/// nothing a compressor or a deduplicating store could shortcut).
fn write_noise(path: &Path, size: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(block.len());
        out.write_all(&block[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
}

/// Whether two files hold the same bytes (streamed, never whole in memory).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ra, mut rb) = (
        std::io::BufReader::with_capacity(1 << 20, fa),
        std::io::BufReader::with_capacity(1 << 20, fb),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = ra.read(&mut ba).unwrap();
        if n == 0 {
            return rb.read(&mut bb).unwrap() == 0;
        }
        if rb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(here) = stack.pop() {
        for entry in std::fs::read_dir(&here).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    found
}

/// `pulled` holds exactly the files of `source`, byte for byte.
fn assert_same_tree(source: &Path, pulled: &Path, what: &str) {
    let expected = files(source);
    assert_eq!(files(pulled), expected, "{what}: the file list");
    for name in &expected {
        assert!(
            same_file(&source.join(name), &pulled.join(name)),
            "{what}: {name} differs"
        );
    }
}

/// The path and query of an upload's `Location`, absolute or not.
fn location(headers: &[(String, String)]) -> String {
    let location = header(headers, "location").expect("a Location");
    match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').unwrap()..].to_string(),
        None => location,
    }
}

fn digest_of(data: &[u8]) -> String {
    // The registry computes it too: take its answer for a one-shot upload elsewhere
    // would hide a mismatch, so compute it here.
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(data))
}

fn an_upload_begun_on_one_replica_is_finished_on_the_other(registry: &Path) {
    let cache = S3Cache::start_with(registry, 2);
    let (a, b) = (cache.replicas[0].port(), cache.replicas[1].port());
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    let digest = digest_of(&data);
    let half = data.len() / 2;

    // POST on a, the first half on b, the second half on a, the PUT on b.
    let (status, headers, _) = http(a, "POST", "/v2/shared/blob/blobs/uploads/", &[], &[]).unwrap();
    assert_eq!(status, 202);
    let octets = [("Content-Type", "application/octet-stream")];
    let (status, headers, body) =
        http(b, "PATCH", &location(&headers), &octets, &data[..half]).unwrap();
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let (status, headers, body) =
        http(a, "PATCH", &location(&headers), &octets, &data[half..]).unwrap();
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let path = location(&headers);
    let separator = if path.contains('?') { '&' } else { '?' };
    let (status, _, body) = http(
        b,
        "PUT",
        &format!("{path}{separator}digest={digest}"),
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    // Each replica serves the blob, read back from the bucket.
    for port in [a, b] {
        let (status, _, body) = http(
            port,
            "GET",
            &format!("/v2/shared/blob/blobs/{digest}"),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(status, 200);
        assert!(body == data, "the blob from 127.0.0.1:{port}");
    }
    let prefix = format!("{}/docker/registry/v2/blobs/", ROOT.trim_start_matches('/'));
    let keys = cache.s3.keys(BUCKET, &prefix).unwrap();
    let hex = digest.trim_start_matches("sha256:");
    assert!(
        keys.iter().any(|k| k.ends_with(&format!("{hex}/data"))),
        "the blob is in the bucket under the root directory: {keys:?}"
    );

    // A registry on the same bucket with another HTTP secret cannot continue an upload
    // begun on the cache's replicas: the shared secret is what makes replicas work.
    let (status, headers, _) =
        http(a, "POST", "/v2/shared/other/blobs/uploads/", &[], &[]).unwrap();
    assert_eq!(status, 202);
    let stranger_port = free_port().unwrap();
    let env: Vec<(String, String)> = cache.replicas[0]
        .env()
        .iter()
        .map(|(name, value)| match name.as_str() {
            "REGISTRY_HTTP_SECRET" => (name.clone(), "not-the-shared-secret".to_string()),
            "REGISTRY_HTTP_ADDR" => (name.clone(), format!("127.0.0.1:{stranger_port}")),
            _ => (name.clone(), value.clone()),
        })
        .collect();
    let stranger = Registry::start_with_env(registry, stranger_port, env).unwrap();
    // (A small body: the refusal comes before the registry reads it.)
    let (status, _, body) = http(
        stranger.port(),
        "PATCH",
        &location(&headers),
        &octets,
        &data[..1024],
    )
    .unwrap();
    let answer = String::from_utf8_lossy(&body);
    assert!(
        (400..500).contains(&status),
        "another secret continued the upload: {status} {answer}"
    );
    assert!(answer.contains("BLOB_UPLOAD_INVALID"), "{answer}");
}

fn the_agent_pushes_through_the_service_and_each_replica_serves_it_all(registry: &Path) {
    let cache = S3Cache::start_with(registry, 2);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let source = dir.join("source");
    let many = source.join("many");
    for i in 0..10_000u32 {
        let sub = many.join(format!("d{:02}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        std::fs::write(
            sub.join(format!("f{i:05}.txt")),
            format!("file {i} of the scaled cache\n").repeat(1 + (i as usize % 7)),
        )
        .unwrap();
    }
    write_noise(&source.join("big.bin"), 256 << 20, 11);
    let reference = cache.reference("workflow/scaled:v1");

    let pushed = agent(
        &["push", "--plain-http", &reference, "many", "big.bin"],
        &source,
    );
    succeeded(&pushed, "push through the Service");
    let counts = cache.service.counts();
    assert!(
        counts.iter().all(|&n| n > 0),
        "the Service spread the push over both replicas: {counts:?}"
    );

    // Each replica alone serves everything that was pushed, identical.
    for (index, replica) in cache.replicas.iter().enumerate() {
        let out = dir.join(format!("from-replica-{index}"));
        let reference = replica.reference("workflow/scaled:v1");
        let pulled = agent(
            &[
                "pull",
                "--plain-http",
                &reference,
                "-o",
                out.to_str().unwrap(),
            ],
            dir,
        );
        succeeded(&pulled, &format!("pull from replica {index}"));
        assert_same_tree(&source, &out, &format!("replica {index}"));
    }

    // oras-py, through the Service, agrees.
    let oras_py = OrasPy::shared().expect("the ORAS Python SDK");
    let out = dir.join("from-oras-py");
    oras_py
        .pull_plain_http(&reference, &out)
        .expect("oras-py pulls through the Service");
    assert_same_tree(&source, &out, "oras-py");
}

fn stopping_a_replica_mid_run_loses_nothing_acknowledged(registry: &Path) {
    let mut cache = S3Cache::start_with(registry, 2);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_path_buf();
    const RUNS: usize = 10;
    for run in 0..RUNS {
        let run_dir = dir.join(format!("run-{run}"));
        std::fs::create_dir(&run_dir).unwrap();
        write_noise(&run_dir.join("result.bin"), 8 << 20, run as u64 + 100);
    }

    // Pushes one after another; the replica is stopped while the fourth is under way.
    let (acked_tx, acked_rx) = mpsc::channel();
    let pusher = {
        let dir = dir.clone();
        let references: Vec<String> = (0..RUNS)
            .map(|run| cache.reference(&format!("workflow/run:{run}")))
            .collect();
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for (run, reference) in references.iter().enumerate() {
                let output = agent(
                    &["push", "--plain-http", reference, "result.bin"],
                    &dir.join(format!("run-{run}")),
                );
                if output.status.success() {
                    acknowledged.push(run);
                }
                let _ = acked_tx.send((run, output.status.success()));
            }
            acknowledged
        })
    };
    for _ in 0..3 {
        let (run, ok) = acked_rx.recv().unwrap();
        assert!(ok, "push {run} with both replicas up");
    }
    let before = cache.service.counts();
    assert!(
        before[1] > 0,
        "replica 1 took part before it stopped: {before:?}"
    );
    cache.replicas[1].stop();
    let acknowledged = pusher.join().expect("the pushing thread");

    // Every push after the stop went to the replica left.
    for run in 4..RUNS {
        assert!(
            acknowledged.contains(&run),
            "push {run} after the stop failed: acknowledged {acknowledged:?}"
        );
    }
    // Whatever was acknowledged is there, on the replica left and on the stopped one
    // started again (it keeps nothing of its own).
    cache.replicas[1].restart().expect("replica 1 starts again");
    for replica in &cache.replicas {
        for &run in &acknowledged {
            let out = dir.join(format!("pulled-{}-{run}", replica.port()));
            let reference = replica.reference(&format!("workflow/run:{run}"));
            let pulled = agent(
                &[
                    "pull",
                    "--plain-http",
                    &reference,
                    "-o",
                    out.to_str().unwrap(),
                ],
                &dir,
            );
            succeeded(
                &pulled,
                &format!("pull of run {run} from {}", replica.host()),
            );
            assert!(
                same_file(
                    &dir.join(format!("run-{run}/result.bin")),
                    &out.join("result.bin")
                ),
                "run {run} from {}",
                replica.host()
            );
        }
    }
}

/// Distribution 3, the registry of the cache's default image (`make tools`).
fn distribution_3() -> PathBuf {
    oras_testkit::tools::tool("registry").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn upload_across_replicas_with_debian_docker_registry_2_8() {
    an_upload_begun_on_one_replica_is_finished_on_the_other(Path::new(REGISTRY_BINARY));
}

#[test]
fn upload_across_replicas_with_distribution_3() {
    an_upload_begun_on_one_replica_is_finished_on_the_other(&distribution_3());
}

#[test]
fn agent_through_the_service_with_debian_docker_registry_2_8() {
    the_agent_pushes_through_the_service_and_each_replica_serves_it_all(Path::new(REGISTRY_BINARY));
}

#[test]
fn agent_through_the_service_with_distribution_3() {
    the_agent_pushes_through_the_service_and_each_replica_serves_it_all(&distribution_3());
}

#[test]
fn replica_stopped_mid_run_with_debian_docker_registry_2_8() {
    stopping_a_replica_mid_run_loses_nothing_acknowledged(Path::new(REGISTRY_BINARY));
}

#[test]
fn replica_stopped_mid_run_with_distribution_3() {
    stopping_a_replica_mid_run_loses_nothing_acknowledged(&distribution_3());
}
