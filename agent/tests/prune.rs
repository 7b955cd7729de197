//! `oras-agent prune` against a real registry (Debian's distribution 2.8, deletes
//! enabled): dated artifacts in several repositories, one undated, one with a referrer
//! attached by the oras Go CLI; then the registry's own garbage collector.

mod support;

use std::path::Path;
use std::process::Command;

use oras_contract::retention::PruneSummary;
use support::registry::TestRegistry;
use support::*;

const CREATED: &str = "org.opencontainers.image.created";

fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Push `name` holding one file whose content is `content`, created `days` ago.
fn push_dated(registry: &TestRegistry, work: &Path, name: &str, content: &str, days: i64) {
    let dir = work.join(name.replace([':', '/'], "_"));
    write(&dir.join("result.txt"), content.as_bytes());
    agent_ok(
        &[
            "push",
            "--plain-http",
            "-a",
            &format!("{CREATED}={}", days_ago(days)),
            &registry.reference(name),
            "result.txt",
        ],
        &dir,
    );
}

/// An artifact whose manifest has no creation time (pushed by a tool that sets none).
fn push_undated(registry: &TestRegistry, repository: &str, tag: &str) {
    let layer = registry.upload_blob(repository, b"undated\n");
    let config = registry.upload_blob(repository, b"{}");
    registry.put_manifest(
        repository,
        tag,
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 8,
                        "annotations": {"org.opencontainers.image.title": "undated.txt"}}]
        }),
    );
}

fn oras(args: &[&str], cwd: &Path) -> String {
    let oras = oras_testkit::tools::tool("oras").expect("the oras CLI from `make tools`");
    let output = Command::new(oras)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "oras {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
}

#[test]
fn prune_applies_each_rule_and_the_collector_then_frees_the_space() {
    let mut registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    for (tag, days) in [("run-1", 10), ("run-2", 3), ("run-3", 0)] {
        push_dated(
            &registry,
            work,
            &format!("steps/a:{tag}"),
            &format!("a {tag}\n"),
            days,
        );
    }
    push_undated(&registry, "steps/a", "undated");
    push_dated(&registry, work, "steps/b:old", "b old\n", 10);
    push_dated(&registry, work, "steps/b:new", "b new\n", 0);
    push_dated(&registry, work, "other/c:old", "c old\n", 10);
    // A referrer of steps/b:old, attached the way `oras attach` does on 2.8 (the
    // referrers tag schema).
    write(&work.join("sbom.json"), b"{\"sbom\": true}\n");
    oras(
        &[
            "attach",
            "--plain-http",
            "--artifact-type",
            "application/vnd.example.sbom",
            &registry.reference("steps/b:old"),
            "sbom.json",
        ],
        work,
    );
    let b_tags_before = sorted(registry.tags("steps/b"));
    assert_eq!(b_tags_before.len(), 3, "{b_tags_before:?}");

    // No policy: refused, naming the flags.
    let refused = run_agent(&["prune", "--plain-http", &registry.host()], work);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--keep-last") && stderr.contains("--max-age"),
        "{stderr}"
    );

    // A dry run says what would go and deletes nothing.
    let steps = format!("{}/steps", registry.host());
    let dry = agent_ok(
        &[
            "prune",
            "--plain-http",
            "--max-age",
            "2d",
            "--dry-run",
            &steps,
        ],
        work,
    );
    assert!(
        dry.contains(&format!("would delete {}/steps/a:run-1 ", registry.host())),
        "{dry}"
    );
    assert!(dry.contains("would delete referrer"), "{dry}");
    assert!(
        dry.contains("would delete 3 manifests (3 tags) and 1 referrers"),
        "{dry}"
    );
    assert_eq!(registry.tags("steps/a").len(), 4);
    assert_eq!(sorted(registry.tags("steps/b")), b_tags_before);

    // --max-age: older than two days go, except a protected tag; undated stays; other
    // repositories are outside the prefix; the referrer and its tag go with b:old.
    let stored_before = registry.stored_bytes();
    let out = agent_ok(
        &[
            "prune",
            "--plain-http",
            "--max-age",
            "2d",
            "--protect",
            "run-1",
            "--report",
            "report.json",
            &steps,
        ],
        work,
    );
    let report = std::fs::read_to_string(work.join("report.json")).unwrap();
    assert_eq!(
        PruneSummary::from_json(&report),
        Some(PruneSummary {
            dry_run: false,
            manifests_deleted: 2,
            tags_deleted: 2,
            referrers_deleted: 1,
            untagged_bytes: 14,
        }),
        "{report}"
    );
    assert!(
        out.contains("deleted 2 manifests (2 tags) and 1 referrers"),
        "{out}"
    );
    // "a run-2\n" and "b old\n": the layers no kept tag uses.
    assert!(
        out.contains("14 bytes of layers no longer have a tag"),
        "{out}"
    );
    assert_eq!(
        sorted(registry.tags("steps/a")),
        ["run-1", "run-3", "undated"]
    );
    assert_eq!(registry.tags("steps/b"), ["new"]);
    assert_eq!(registry.tags("other/c"), ["old"]);

    // --keep-last 1 on one repository: the newest stays; undated counts as oldest.
    let out = agent_ok(
        &[
            "prune",
            "--plain-http",
            "--keep-last",
            "1",
            &format!("{}/steps/a", registry.host()),
        ],
        work,
    );
    assert!(out.contains("deleted 2 manifests (2 tags)"), "{out}");
    assert_eq!(registry.tags("steps/a"), ["run-3"]);

    // What remains pulls byte-identical.
    for (name, content) in [
        ("steps/a:run-3", "a run-3\n"),
        ("steps/b:new", "b new\n"),
        ("other/c:old", "c old\n"),
    ] {
        let dir = work.join("pulled").join(name.replace([':', '/'], "_"));
        agent_ok(
            &[
                "pull",
                "--plain-http",
                &registry.reference(name),
                "-o",
                dir.to_str().unwrap(),
            ],
            work,
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("result.txt")).unwrap(),
            content
        );
    }

    // Only the garbage collector frees the space.
    registry.collect_garbage();
    let stored_after = registry.stored_bytes();
    assert!(
        stored_after < stored_before,
        "{stored_after} bytes after collection, {stored_before} before"
    );
    let dir = work.join("after-gc");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &registry.reference("steps/b:new"),
            "-o",
            dir.to_str().unwrap(),
        ],
        work,
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("result.txt")).unwrap(),
        "b new\n"
    );
}

#[test]
fn bad_prune_arguments_are_named() {
    let work = tempfile::tempdir().unwrap();
    let out = run_agent(&["prune", "--max-age", "7y", "127.0.0.1:1"], work.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"7y\""), "{stderr}");
    let out = run_agent(
        &["prune", "--keep-last", "2", "127.0.0.1:1/Bad Name"],
        work.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Bad Name"));
}

/// Pushes of new tags racing prunes that delete old ones, every push sharing its layer
/// with the manifests being deleted: every push lands complete (the prune deletes
/// manifests, never a blob another manifest uses), and only the old tags go.
#[test]
fn pushes_racing_prunes_land_complete() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let work = work.path().to_path_buf();
    for old in 0..5 {
        push_dated(
            &registry,
            &work,
            &format!("race/r:old-{old}"),
            "same result\n",
            30,
        );
    }
    let pushing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pusher = {
        let pushing = pushing.clone();
        let (host, work) = (registry.host(), work.clone());
        std::thread::spawn(move || {
            let mut pushed = Vec::new();
            let mut n = 0;
            while pushing.load(std::sync::atomic::Ordering::SeqCst) || n < 3 {
                n += 1;
                let dir = work.join(format!("new-{n}"));
                write(&dir.join("result.txt"), b"same result\n");
                let out = run_agent(
                    &[
                        "push",
                        "--plain-http",
                        &format!("{host}/race/r:new-{n}"),
                        "result.txt",
                    ],
                    &dir,
                );
                assert!(
                    out.status.success(),
                    "push new-{n}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                pushed.push(format!("new-{n}"));
            }
            pushed
        })
    };
    let target = format!("{}/race", registry.host());
    for _ in 0..4 {
        agent_ok(
            &["prune", "--plain-http", "--max-age", "7d", &target],
            &work,
        );
    }
    pushing.store(false, std::sync::atomic::Ordering::SeqCst);
    let pushed = pusher.join().unwrap();

    assert_eq!(sorted(registry.tags("race/r")), sorted(pushed.clone()));
    for tag in &pushed {
        let dir = work.join("pulled").join(tag);
        agent_ok(
            &[
                "pull",
                "--plain-http",
                &registry.reference(&format!("race/r:{tag}")),
                "-o",
                dir.to_str().unwrap(),
            ],
            &work,
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("result.txt")).unwrap(),
            "same result\n"
        );
    }
}
