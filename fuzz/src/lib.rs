//! What each fuzz target checks, one function per parser that faces untrusted bytes.
//! A panic (or a failed `assert!`) is what libFuzzer reports as a crash; each crash
//! found becomes a regression test in the crate it belongs to.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oras_agent::layout::{self, LayerKind};
use oras_agent::reference::ArtifactRef;
use oras_agent::share::{self, MemoizedRecord, PushRecord, RunRecord};
use oras_policy::image::ImageEntrypoint;
use serde_json::{Map, Value};

/// A scratch directory for the whole fuzzing process (libFuzzer runs every input in
/// one process), removed by the OS's temp cleaning when the run is killed.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("oras-fuzz-")
            .tempdir()
            .expect("a scratch directory")
    })
    .path()
}

/// An image lookup that answers from the image name alone, so the same input always
/// takes the same path: an entrypoint, only a command, nothing, or an error.
fn lookup(image: &str) -> Result<ImageEntrypoint, String> {
    let entry = |words: &[&str]| words.iter().map(|w| w.to_string()).collect();
    match image.len() % 4 {
        0 => Ok(ImageEntrypoint {
            entrypoint: entry(&["/bin/run"]),
            cmd: entry(&["--flag"]),
        }),
        1 => Ok(ImageEntrypoint {
            entrypoint: Vec::new(),
            cmd: entry(&["sh", "-c", "true"]),
        }),
        2 => Ok(ImageEntrypoint::default()),
        _ => Err(format!("manifest unknown: {image}")),
    }
}

/// The policy's `validate` on arbitrary bytes: it always answers, with a response
/// policy-server can read.
pub fn policy_validate(data: &[u8]) {
    let answer = oras_policy::validate_with(data, &lookup).expect("validate answers");
    let response: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    assert!(response["accepted"].is_boolean(), "{response}");
}

/// The policy's `validate_settings` on arbitrary bytes.
pub fn policy_settings(data: &[u8]) {
    let answer = oras_policy::validate_settings(data).expect("validate_settings answers");
    let response: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    let valid = response["valid"].as_bool().expect("valid is a boolean");
    assert!(valid || response["message"].is_string(), "{response}");
}

/// `name=value` lines as the contract's annotations (`name` gets the prefix), read by
/// the policy; a retention age as the controller and `prune` read it.
pub fn annotations(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut map = Map::new();
    for line in text.lines() {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        map.insert(
            oras_contract::annotations::key(name),
            Value::String(value.to_string()),
        );
        let _ = oras_contract::retention::parse_age(value);
    }
    if let Err(message) = oras_policy::annotations::read(Some(&map)) {
        assert!(!message.is_empty());
    }
}

/// A reference as users write it (first line: a registry host, second: the
/// annotation's `repository[:tag][@digest]`). What the policy accepts and qualifies,
/// the agent must accept too, with the same digest.
pub fn references(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (host, written) = text.split_once('\n').unwrap_or(("", &text));
    let _ = ArtifactRef::parse(&text);
    let _ = ArtifactRef::parse_repository(&text);
    let _ = oras_contract::reference::check_digest(written);
    let _ = oras_contract::reference::is_tag(written);
    if oras_contract::reference::check_reference_registry(host).is_err() {
        return;
    }
    let Ok(reference) = oras_policy::reference::Reference::parse(written) else {
        return;
    };
    let qualified = reference.qualified(host);
    let parsed = ArtifactRef::parse(&qualified)
        .unwrap_or_else(|e| panic!("the policy wrote {qualified:?}, which the agent refuses: {e}"));
    assert_eq!(parsed.oci().registry(), host, "{qualified}");
    let digest = written.split_once('@').map(|(_, digest)| digest);
    assert_eq!(parsed.digest(), digest, "{qualified}");
}

/// A pulled manifest: parsed or refused, and every layer it would write lands at a
/// clean relative path.
pub fn manifest(data: &[u8]) {
    let Ok(manifest) = layout::parse_manifest(data) else {
        return;
    };
    for layer in &manifest.layers {
        for unpack in [true, false] {
            let title = match layout::classify(layer, unpack) {
                Ok(LayerKind::File { title } | LayerKind::Archive { title, .. }) => title,
                Ok(LayerKind::Untitled) | Err(_) => continue,
            };
            assert!(
                title
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{title:?}"
            );
            assert!(!title.as_os_str().is_empty());
        }
    }
}

/// What an archive may leave: the tree it extracted, whose symlinks all resolve
/// beneath the target.
fn assert_beneath(target: &Path, dir: &Path) {
    for entry in fs::read_dir(dir).expect("list the extracted tree") {
        let path = entry.expect("an entry").path();
        let meta = fs::symlink_metadata(&path).expect("its metadata");
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&path).expect("its target");
            assert!(
                link.is_relative(),
                "{} -> {}",
                path.display(),
                link.display()
            );
            let mut resolved: Vec<_> = path
                .parent()
                .expect("a parent")
                .strip_prefix(target)
                .expect("beneath the target")
                .components()
                .collect();
            for component in link.components() {
                match component {
                    std::path::Component::ParentDir => {
                        assert!(
                            resolved.pop().is_some(),
                            "{} -> {} leaves the target",
                            path.display(),
                            link.display()
                        );
                    }
                    std::path::Component::Normal(_) => resolved.push(component),
                    _ => {}
                }
            }
        } else if meta.is_dir() {
            assert_beneath(target, &path);
        }
    }
}

/// Make a tree removable whatever modes the archive gave its directories.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}

/// An uncompressed tar (gzipped here: the fuzzer then mutates the tar, not the gzip
/// stream) extracted into a fresh target beside a sentinel directory: never a panic,
/// nothing outside the target, nothing left in it when refused.
pub fn archive(data: &[u8]) {
    let root = scratch().join("archive");
    let (target, outside) = (root.join("target"), root.join("outside"));
    if root.exists() {
        make_writable(&root);
        fs::remove_dir_all(&root).expect("clean the previous run");
    }
    fs::create_dir_all(&target).expect("create the target");
    fs::create_dir_all(&outside).expect("create the sentinel");
    let mut blob = tempfile::tempfile_in(&root).expect("a blob file");
    let mut gz = flate2::write::GzEncoder::new(&mut blob, flate2::Compression::fast());
    gz.write_all(data).expect("compress");
    gz.finish().expect("compress");

    let result = layout::unpack::extract_archive(&blob, &target, Path::new("fuzz"), "fuzz", None);
    let names = |dir: &Path| -> Vec<PathBuf> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("an entry").path())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&root),
        [outside.clone(), target.clone()],
        "{result:?}"
    );
    assert!(names(&outside).is_empty(), "{result:?}");
    match result {
        Ok(placed) => {
            assert_eq!(placed.len(), names(&target).len());
            assert_beneath(&target, &target);
        }
        Err(_) => assert!(names(&target).is_empty(), "a refused archive left files"),
    }
}

/// The share's records as the launcher, sidecar and init read them, from arbitrary
/// content; and what a writer writes reads back the same.
pub fn share_records(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = share::parse_exit(&text);
    let _ = share::parse_inputs(&text);
    let _ = PushRecord::parse(&text);
    let _ = serde_json::from_str::<RunRecord>(&text);
    let _ = serde_json::from_str::<MemoizedRecord>(&text);

    // A digest comes from the registry's answer and has no spaces; a message may have any.
    let record = if text.len().is_multiple_of(2) || text.contains(char::is_whitespace) {
        PushRecord::Failed {
            message: text.clone(),
        }
    } else {
        PushRecord::Pushed {
            digest: text.clone(),
        }
    };
    let expected = match &record {
        PushRecord::Failed { message } => PushRecord::Failed {
            message: message.replace('\n', " ").trim_end().to_string(),
        },
        pushed => pushed.clone(),
    };
    assert_eq!(PushRecord::parse(&record.to_text()), Some(expected));
    // References never hold a carriage return, which `lines()` would take as a break.
    let inputs: Vec<String> = text
        .lines()
        .filter(|line| !line.contains('\r'))
        .map(str::to_string)
        .collect();
    assert_eq!(share::parse_inputs(&share::inputs_text(&inputs)), inputs);
    if let Ok(code) = i32::try_from(data.len()) {
        assert_eq!(share::parse_exit(&format!("{}\n", -code)), Some(-code));
    }
    let run = RunRecord {
        argv: text.split(' ').map(str::to_string).collect(),
        started: text.clone(),
        finished: String::new(),
    };
    let json = serde_json::to_string(&run).expect("a run serializes");
    assert_eq!(serde_json::from_str::<RunRecord>(&json).ok(), Some(run));
}
