//! Shared test support: the registry harness, running the agent binary, comparing trees,
//! and the ORAS Python SDK in a venv.

#![allow(dead_code)]

pub mod faulty;
pub mod front;
pub mod registry;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const AGENT: &str = env!("CARGO_BIN_EXE_oras-agent");

/// The agent as a command with a short retry budget and no stray credentials.
pub fn agent() -> Command {
    let mut command = Command::new(AGENT);
    command
        .env("ORAS_AGENT_RETRY_SECONDS", "20")
        .env_remove("ORAS_USER")
        .env_remove("ORAS_PUSH_PASS")
        .env_remove("ORAS_PULL_PASS")
        .env("DOCKER_CONFIG", "/nonexistent-docker-config");
    command
}

/// Run the agent with `args`; returns the output, whatever the exit status.
pub fn run_agent(args: &[&str], cwd: &Path) -> Output {
    agent()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run oras-agent")
}

/// Run the agent and require success; returns stdout.
pub fn agent_ok(args: &[&str], cwd: &Path) -> String {
    let output = run_agent(args, cwd);
    assert!(
        output.status.success(),
        "oras-agent {args:?} failed with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// Bytes of the files under `dir`, recursively.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            _ => entry.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// What a tree holds: relative path -> description of the entry.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(relative, format!("symlink -> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(relative, format!("dir {mode:o}"));
                walk(root, &path, out);
            } else {
                let content = fs::read(&path).unwrap();
                use sha2::Digest;
                out.insert(
                    relative,
                    format!(
                        "file {mode:o} {} {}",
                        content.len(),
                        hex::encode(sha2::Sha256::digest(&content))
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Snapshot ignoring permission bits of files (for tools that do not keep them).
pub fn snapshot_without_modes(root: &Path) -> BTreeMap<PathBuf, String> {
    snapshot(root)
        .into_iter()
        .map(|(path, description)| {
            let mut words: Vec<&str> = description.split(' ').collect();
            if words[0] == "file" || words[0] == "dir" {
                words.remove(1);
            }
            (path, words.join(" "))
        })
        .collect()
}

pub fn write(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, content).unwrap();
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with what must round-trip: zero-byte files, empty directories, symlinks
/// inside the tree, executable bits, long names.
pub fn tricky_tree(root: &Path) {
    write(&root.join("hello.txt"), b"hello\n");
    write(&root.join("empty.bin"), b"");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    write(&root.join("bin/run.sh"), b"#!/bin/sh\necho run\n");
    set_mode(&root.join("bin/run.sh"), 0o755);
    std::os::unix::fs::symlink("bin/run.sh", root.join("run-link")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", root.join("bin/hello-link")).unwrap();
    let long_dir = "d".repeat(120);
    let long_file = format!("{}.dat", "f".repeat(200));
    write(&root.join(&long_dir).join(&long_file), &[7u8; 10_000]);
    let mut big = Vec::with_capacity(3 << 20);
    for i in 0..(3u32 << 18) {
        big.extend_from_slice(&i.to_le_bytes());
    }
    write(&root.join("data/big.bin"), &big);
}

/// Run a Python snippet with the ORAS SDK (`oras_testkit`'s venv under the target
/// directory, made once); `args` become sys.argv[1:].
pub fn python_ok(script: &str, args: &[&str], cwd: &Path) -> String {
    oras_testkit::OrasPy::shared()
        .and_then(|python| python.run(script, args, cwd))
        .unwrap_or_else(|e| panic!("{e}"))
}
