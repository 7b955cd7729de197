//! The user commands against a real registry (Debian's docker-registry), including the
//! fault cases: a registry that comes up late, one that never does, corrupted blobs and
//! malicious archives.

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use support::registry::{TestRegistry, free_port};
use support::*;

#[test]
fn push_then_pull_round_trips_files_and_trees() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    tricky_tree(&src.join("tree"));
    write(&src.join("zero.bin"), b"");
    write(&src.join("notes.txt"), b"some notes\n");
    let reference = registry.reference("round/trip:v1");
    let digest = agent_ok(
        &[
            "push",
            "--plain-http",
            &reference,
            "tree",
            "zero.bin",
            "notes.txt",
        ],
        &src,
    );
    assert!(digest.trim().starts_with("sha256:"), "{digest}");

    let out = work.path().join("out");
    let pulled = agent_ok(
        &["pull", "--plain-http", &reference, "-o", "out"],
        work.path(),
    );
    // The files it wrote, then the digest.
    assert_eq!(
        pulled.lines().collect::<Vec<_>>(),
        ["out/tree", "out/zero.bin", "out/notes.txt", digest.trim()]
    );
    assert_eq!(snapshot(&out), snapshot(&src));
    // Nothing else (no temporary files) is left in the target.
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    let tags = agent_ok(
        &["tags", "--plain-http", &registry.reference("round/trip")],
        work.path(),
    );
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["v1"]);
}

#[test]
fn manifest_has_the_shape_oras_push_writes() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("a.txt"), b"abc");
    write(&work.path().join("dir/x.txt"), b"x");
    let reference = registry.reference("shape/test:v1");
    agent_ok(
        &[
            "push",
            "--plain-http",
            "-a",
            "team=blue",
            &reference,
            "a.txt",
            "dir",
        ],
        work.path(),
    );
    let manifest = registry.manifest("shape/test", "v1");
    let object = manifest.as_object().unwrap();
    let mut keys: Vec<_> = object.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "annotations",
            "artifactType",
            "config",
            "layers",
            "mediaType",
            "schemaVersion"
        ]
    );
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.unknown.artifact.v1"
    );
    assert_eq!(
        manifest["config"],
        serde_json::json!({
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2,
            "data": "e30="
        })
    );
    assert_eq!(manifest["annotations"]["team"], "blue");
    let created = manifest["annotations"]["org.opencontainers.image.created"]
        .as_str()
        .unwrap();
    assert_eq!(created.len(), "2024-01-01T00:00:00Z".len(), "{created}");
    let file = &manifest["layers"][0];
    assert_eq!(file["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    assert_eq!(file["size"], 3);
    assert_eq!(
        file["digest"],
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        file["annotations"],
        serde_json::json!({"org.opencontainers.image.title": "a.txt"})
    );
    let dir = &manifest["layers"][1];
    assert_eq!(
        dir["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let annotations = dir["annotations"].as_object().unwrap();
    assert_eq!(annotations.len(), 3);
    assert_eq!(annotations["org.opencontainers.image.title"], "dir");
    assert_eq!(annotations["io.deis.oras.content.unpack"], "true");
    assert!(
        annotations["io.deis.oras.content.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // The directory layer: entries prefixed by the title, parents first, sorted,
    // uid/gid 0, no user names; the content digest is the uncompressed tar's.
    let blob = fs::read(registry.blob_data_path(dir["digest"].as_str().unwrap())).unwrap();
    let mut tar_bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&blob[..]), &mut tar_bytes)
        .unwrap();
    use sha2::Digest;
    assert_eq!(
        annotations["io.deis.oras.content.digest"],
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar_bytes)))
    );
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.uid().unwrap(), 0);
        assert_eq!(header.gid().unwrap(), 0);
        assert_eq!(header.username().unwrap().unwrap_or(""), "");
        assert_eq!(header.groupname().unwrap().unwrap_or(""), "");
        names.push(String::from_utf8_lossy(&entry.path_bytes()).to_string());
    }
    assert_eq!(names, ["dir/", "dir/x.txt"]);
}

#[test]
fn push_retries_until_a_late_registry_comes_up() {
    let port = free_port();
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("late.txt"), b"late\n");
    let reference = format!("127.0.0.1:{port}/late/one:v1");
    let mut push = agent()
        .env("ORAS_AGENT_RETRY_SECONDS", "60")
        .args(["push", "--plain-http", &reference, "late.txt"])
        .current_dir(work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Start the registry only once the agent has met the closed port and said it retries.
    let stderr = push.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    for line in lines.iter() {
        let retrying = line.contains("retrying");
        log.push(line);
        if retrying {
            break;
        }
    }
    assert!(
        log.last().is_some_and(|l| l.contains("retrying")),
        "{log:?}"
    );
    let registry = TestRegistry::start_on(port);
    let status = push.wait().unwrap();
    log.extend(lines.iter());
    assert!(status.success(), "{log:?}");
    let manifest = registry.manifest("late/one", "v1");
    assert_eq!(
        manifest["layers"][0]["annotations"]["org.opencontainers.image.title"],
        "late.txt"
    );
}

#[test]
fn unreachable_registry_fails_naming_registry_and_reference() {
    let port = free_port();
    let work = tempfile::tempdir().unwrap();
    let reference = format!("127.0.0.1:{port}/nobody/home:v1");
    let output = agent()
        .env("ORAS_AGENT_RETRY_SECONDS", "1")
        .args(["pull", "--plain-http", &reference, "-o", "out"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("registry 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains(&reference), "{stderr}");
}

#[test]
fn corrupted_blob_is_refused_and_nothing_is_left() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("data.txt"), b"the real content\n");
    write(&work.path().join("dir/inner.txt"), b"inner\n");
    let reference = registry.reference("bad/digest:v1");
    agent_ok(
        &["push", "--plain-http", &reference, "data.txt"],
        work.path(),
    );
    let manifest = registry.manifest("bad/digest", "v1");
    let digest = manifest["layers"][0]["digest"].as_str().unwrap();
    fs::write(registry.blob_data_path(digest), b"the fake content\n").unwrap();

    let out = work.path().join("out");
    let output = run_agent(
        &["pull", "--plain-http", &reference, "-o", "out"],
        work.path(),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    assert!(stderr.contains(digest), "{stderr}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "target not empty");

    // The same for a directory layer.
    let reference = registry.reference("bad/dir:v1");
    agent_ok(&["push", "--plain-http", &reference, "dir"], work.path());
    let manifest = registry.manifest("bad/dir", "v1");
    let digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = registry.blob_data_path(digest);
    let mut blob = fs::read(&path).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0xff;
    fs::write(&path, blob).unwrap();
    let output = run_agent(
        &["pull", "--plain-http", &reference, "-o", "out2"],
        work.path(),
    );
    assert!(!output.status.success());
    assert_eq!(fs::read_dir(work.path().join("out2")).unwrap().count(), 0);
}

/// A tar+gzip layer with the given raw entries, pushed as an ORAS directory layer.
struct RawEntry {
    name: &'static [u8],
    kind: tar::EntryType,
    link: &'static [u8],
    data: &'static [u8],
}

fn raw_archive(entries: &[RawEntry]) -> Vec<u8> {
    let mut tar_bytes = Vec::new();
    for entry in entries {
        let mut header = tar::Header::new_old();
        {
            let old = header.as_old_mut();
            old.name[..entry.name.len()].copy_from_slice(entry.name);
            old.linkname[..entry.link.len()].copy_from_slice(entry.link);
        }
        header.set_entry_type(entry.kind);
        header.set_mode(0o644);
        header.set_size(entry.data.len() as u64);
        header.set_cksum();
        tar_bytes.extend_from_slice(header.as_bytes());
        tar_bytes.extend_from_slice(entry.data);
        let pad = (512 - entry.data.len() % 512) % 512;
        tar_bytes.extend(std::iter::repeat_n(0u8, pad));
    }
    tar_bytes.extend(std::iter::repeat_n(0u8, 1024));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_bytes).unwrap();
    gz.finish().unwrap()
}

fn push_raw_archive(
    registry: &TestRegistry,
    repository: &str,
    archive: &[u8],
    unpack_annotation: bool,
) {
    let digest = registry.upload_blob(repository, archive);
    let config = registry.upload_blob(repository, b"{}");
    let mut annotations = serde_json::json!({"org.opencontainers.image.title": "payload"});
    if unpack_annotation {
        annotations["io.deis.oras.content.unpack"] = "true".into();
    }
    registry.put_manifest(
        repository,
        "v1",
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": archive.len(),
                "annotations": annotations
            }]
        }),
    );
}

fn assert_refused(registry: &TestRegistry, repository: &str, entries: &[RawEntry], entry: &str) {
    push_raw_archive(registry, repository, &raw_archive(entries), true);
    let work = tempfile::tempdir().unwrap();
    let sandbox = work.path().join("sandbox");
    let target = sandbox.join("target");
    fs::create_dir_all(&target).unwrap();
    let output = run_agent(
        &[
            "pull",
            "--plain-http",
            &registry.reference(&format!("{repository}:v1")),
            "-o",
            target.to_str().unwrap(),
        ],
        work.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{repository}: accepted\n{stderr}");
    assert!(
        stderr.contains(entry),
        "{repository}: message does not name {entry}:\n{stderr}"
    );
    // Nothing outside the target, nothing left inside it.
    let outside: Vec<_> = fs::read_dir(&sandbox)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["target"], "{repository}");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0, "{repository}");
    assert!(!work.path().join("evil").exists(), "{repository}");
}

#[test]
fn malicious_archives_are_refused_naming_the_entry() {
    use tar::EntryType::{Block, Char, Directory, Link, Regular, Symlink};
    let registry = TestRegistry::start();
    let file = |name, data| RawEntry {
        name,
        kind: Regular,
        link: b"",
        data,
    };
    assert_refused(
        &registry,
        "evil/dotdot",
        &[
            file(b"payload/ok.txt", b"ok"),
            file(b"payload/../../evil", b"x"),
        ],
        "payload/../../evil",
    );
    assert_refused(
        &registry,
        "evil/absolute",
        &[file(b"/tmp/evil-abs", b"x")],
        "/tmp/evil-abs",
    );
    assert_refused(
        &registry,
        "evil/symlink",
        &[RawEntry {
            name: b"payload/link",
            kind: Symlink,
            link: b"../../..",
            data: b"",
        }],
        "payload/link",
    );
    assert_refused(
        &registry,
        "evil/abssymlink",
        &[RawEntry {
            name: b"payload/passwd",
            kind: Symlink,
            link: b"/etc/passwd",
            data: b"",
        }],
        "payload/passwd",
    );
    assert_refused(
        &registry,
        "evil/hardlink",
        &[RawEntry {
            name: b"payload/hard",
            kind: Link,
            link: b"/etc/passwd",
            data: b"",
        }],
        "payload/hard",
    );
    assert_refused(
        &registry,
        "evil/hardlinkup",
        &[RawEntry {
            name: b"payload/hard",
            kind: Link,
            link: b"../evil",
            data: b"",
        }],
        "payload/hard",
    );
    assert_refused(
        &registry,
        "evil/throughlink",
        &[
            RawEntry {
                name: b"payload/",
                kind: Directory,
                link: b"",
                data: b"",
            },
            RawEntry {
                name: b"payload/sub",
                kind: Symlink,
                link: b".",
                data: b"",
            },
            file(b"payload/sub/x", b"x"),
        ],
        "payload/sub/x",
    );
    assert_refused(
        &registry,
        "evil/chardev",
        &[RawEntry {
            name: b"payload/null",
            kind: Char,
            link: b"",
            data: b"",
        }],
        "payload/null",
    );
    assert_refused(
        &registry,
        "evil/blockdev",
        &[RawEntry {
            name: b"payload/sda",
            kind: Block,
            link: b"",
            data: b"",
        }],
        "payload/sda",
    );
}

#[test]
fn tar_gzip_layer_without_unpack_annotation_is_unpacked_and_no_unpack_keeps_it() {
    let registry = TestRegistry::start();
    let archive = raw_archive(&[
        RawEntry {
            name: b"payload/",
            kind: tar::EntryType::Directory,
            link: b"",
            data: b"",
        },
        RawEntry {
            name: b"payload/a.txt",
            kind: tar::EntryType::Regular,
            link: b"",
            data: b"A",
        },
    ]);
    push_raw_archive(&registry, "plain/targz", &archive, false);
    let work = tempfile::tempdir().unwrap();
    let reference = registry.reference("plain/targz:v1");
    agent_ok(
        &["pull", "--plain-http", &reference, "-o", "out"],
        work.path(),
    );
    assert_eq!(
        fs::read(work.path().join("out/payload/a.txt")).unwrap(),
        b"A"
    );
    agent_ok(
        &[
            "pull",
            "--plain-http",
            "--no-unpack",
            &reference,
            "-o",
            "packed",
        ],
        work.path(),
    );
    assert_eq!(
        fs::read(work.path().join("packed/payload.tar.gz")).unwrap(),
        archive
    );
}

#[test]
fn wrong_content_digest_annotation_is_refused() {
    let registry = TestRegistry::start();
    let archive = raw_archive(&[RawEntry {
        name: b"payload/a.txt",
        kind: tar::EntryType::Regular,
        link: b"",
        data: b"A",
    }]);
    let digest = registry.upload_blob("content/digest", &archive);
    let config = registry.upload_blob("content/digest", b"{}");
    registry.put_manifest(
        "content/digest",
        "v1",
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": archive.len(),
                "annotations": {
                    "org.opencontainers.image.title": "payload",
                    "io.deis.oras.content.unpack": "true",
                    "io.deis.oras.content.digest": format!("sha256:{}", "0".repeat(64))
                }
            }]
        }),
    );
    let work = tempfile::tempdir().unwrap();
    let output = run_agent(
        &[
            "pull",
            "--plain-http",
            &registry.reference("content/digest:v1"),
            "-o",
            "out",
        ],
        work.path(),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("uncompressed content"), "{stderr}");
    assert_eq!(fs::read_dir(work.path().join("out")).unwrap().count(), 0);
}

#[test]
fn bad_references_are_refused_before_any_request() {
    let work = tempfile::tempdir().unwrap();
    let output = run_agent(&["pull", "no-registry/repo:tag"], work.path());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-registry/repo:tag"));
    let output = run_agent(&["push", "localhost:1/a:b", "missing-file"], work.path());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing-file"));
    assert!(!Path::new(&work.path().join("out")).exists());
}

#[test]
fn titles_that_would_land_outside_the_target_are_refused() {
    let registry = TestRegistry::start();
    let blob = registry.upload_blob("evil/title", b"escaped\n");
    let config = registry.upload_blob("evil/title", b"{}");
    for (tag, title) in [
        ("up", "../escaped.txt"),
        ("abs", "/tmp/escaped-by-title.txt"),
    ] {
        registry.put_manifest(
            "evil/title",
            tag,
            &serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                "layers": [{
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": blob,
                    "size": 8,
                    "annotations": {"org.opencontainers.image.title": title}
                }]
            }),
        );
        let work = tempfile::tempdir().unwrap();
        let output = run_agent(
            &[
                "pull",
                "--plain-http",
                &registry.reference(&format!("evil/title:{tag}")),
                "-o",
                "out",
            ],
            work.path(),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(title), "{stderr}");
        assert!(!work.path().join("escaped.txt").exists());
        assert!(!Path::new("/tmp/escaped-by-title.txt").exists());
    }
}

/// `tester` / `secret-pw` (bcrypt, cost 5).
const HTPASSWD: &str = "tester:$2a$05$bFEgJ/qAgs4j/2chSV6zn.GO9m7XPu/X/L2xZlVH2XQGFEiYXxafW";

#[test]
fn credentials_come_from_the_environment_or_the_docker_config() {
    let registry = TestRegistry::start_with_htpasswd(HTPASSWD);
    let work = tempfile::tempdir().unwrap();
    write(&work.path().join("secret.txt"), b"behind a password\n");
    // A directory streams through its own upload session, with the same credentials.
    write(
        &work.path().join("tree/inner.txt"),
        b"streamed behind a password\n",
    );
    let reference = registry.reference("auth/test:v1");

    // Anonymous: refused, saying which reference.
    let output = run_agent(
        &["push", "--plain-http", &reference, "secret.txt"],
        work.path(),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&reference), "{stderr}");

    // ORAS_USER with the push password.
    let output = agent()
        .env("ORAS_USER", "tester")
        .env("ORAS_PUSH_PASS", "secret-pw")
        .env("ORAS_PULL_PASS", "wrong")
        .args(["push", "--plain-http", &reference, "secret.txt", "tree"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A wrong pull password is refused; the right one works.
    let output = agent()
        .env("ORAS_USER", "tester")
        .env("ORAS_PULL_PASS", "wrong")
        .args(["pull", "--plain-http", &reference, "-o", "wrong"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let output = agent()
        .env("ORAS_USER", "tester")
        .env("ORAS_PULL_PASS", "secret-pw")
        .args(["pull", "--plain-http", &reference, "-o", "env"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        fs::read(work.path().join("env/secret.txt")).unwrap(),
        b"behind a password\n"
    );
    assert_eq!(
        fs::read(work.path().join("env/tree/inner.txt")).unwrap(),
        b"streamed behind a password\n"
    );

    // The Docker config's auths entry for the registry.
    let docker = work.path().join("docker");
    write(
        &docker.join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"username":"tester","password":"secret-pw"}}}}}}"#,
            registry.host()
        )
        .as_bytes(),
    );
    let output = agent()
        .env("DOCKER_CONFIG", &docker)
        .args(["pull", "--plain-http", &reference, "-o", "docker"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(work.path().join("docker/secret.txt").is_file());
    let tags = agent()
        .env("DOCKER_CONFIG", &docker)
        .args(["tags", "--plain-http", &registry.reference("auth/test")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tags.stdout).trim(), "v1");
}
