//! What the shipping tool's tests share: running `ship`, the agent binaries built for
//! the image tests, and reading what landed in the registry.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oras_e2e::workspace;
use oras_testkit::registry::{Registry, header};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The commit time the tests build with: 2023-11-14T22:13:20Z.
pub const EPOCH: &str = "1700000000";
pub const CREATED: &str = "2023-11-14T22:13:20Z";
pub const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

/// Runs `ship` from the repository root, without push credentials from the environment.
pub fn ship(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ship"))
        .current_dir(workspace::root())
        .args(args)
        .env_remove("ORAS_USER")
        .env_remove("ORAS_PUSH_PASS")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

/// `ship` that must succeed; its stdout.
pub fn ship_ok(args: &[&str]) -> String {
    let output = ship(args);
    assert!(
        output.status.success(),
        "ship {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The agent built for the image tests (`make test-binaries`) for `triple`.
pub fn test_agent(triple: &str) -> PathBuf {
    let path = oras_testkit::oras_py::target_dir()
        .join(triple)
        .join("debug")
        .join("oras-agent");
    assert!(
        path.is_file(),
        "{} is missing: build it with `make test-binaries`",
        path.display()
    );
    path
}

pub fn amd64_agent() -> PathBuf {
    test_agent("x86_64-unknown-linux-musl")
}

pub fn arm64_agent() -> PathBuf {
    test_agent("aarch64-unknown-linux-musl")
}

/// `ship push-images` of `binaries` (`(PLATFORM, PATH)`) to `registry` with the tests'
/// build inputs.
pub fn push_images(registry: &str, plain_http: bool, binaries: &[(&str, &Path)]) -> Output {
    let mut args: Vec<String> = [
        "push-images",
        "--registry",
        registry,
        "--revision",
        REVISION,
    ]
    .into_iter()
    .chain(["--source-date-epoch", EPOCH])
    .map(String::from)
    .collect();
    if plain_http {
        args.push("--plain-http".into());
    }
    for (platform, path) in binaries {
        args.push("--binary".into());
        args.push(format!("{platform}={}", path.display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ship(&args)
}

/// `ship push-images` of the test agents for both platforms to `registry`/`path`.
pub fn push_agent_images(registry: &Registry, path: &str) -> String {
    let output = push_images(
        &registry.reference(path),
        true,
        &[
            ("linux/amd64", &amd64_agent()),
            ("linux/arm64", &arm64_agent()),
        ],
    );
    assert!(
        output.status.success(),
        "push-images failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `REPOSITORY@sha256:...` split, the repository relative to the registry host.
pub fn split_pushed<'a>(registry: &Registry, pushed: &'a str) -> (&'a str, &'a str) {
    let (name, digest) = pushed
        .trim()
        .split_once('@')
        .unwrap_or_else(|| panic!("{pushed:?} is not REF@sha256:..."));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{pushed:?}"
    );
    let host = format!("{}/", registry.host());
    let repository = name
        .strip_prefix(&host)
        .unwrap_or_else(|| panic!("{pushed:?} is not on {host}"));
    (repository, digest)
}

/// The manifest or index `repository@reference` as the registry serves it (`accept`),
/// checked against its digest when `reference` is one.
pub fn manifest(
    registry: &Registry,
    repository: &str,
    reference: &str,
    accept: &str,
) -> (Value, String) {
    let (status, headers, body) = registry
        .request(
            "GET",
            &format!("/v2/{repository}/manifests/{reference}"),
            &[("Accept", accept)],
            &[],
        )
        .unwrap();
    assert_eq!(
        status,
        200,
        "{repository}@{reference}: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(header(&headers, "Content-Type").as_deref(), Some(accept));
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    if reference.starts_with("sha256:") {
        assert_eq!(digest, reference, "the manifest matches its digest");
    }
    (serde_json::from_slice(&body).unwrap(), digest)
}

/// The blob `digest` of `repository`, checked against its digest.
pub fn blob(registry: &Registry, repository: &str, digest: &str) -> Vec<u8> {
    let (status, _, body) = registry
        .request("GET", &format!("/v2/{repository}/blobs/{digest}"), &[], &[])
        .unwrap();
    assert_eq!(status, 200, "blob {digest} of {repository}");
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&body))),
        digest
    );
    body
}

/// The files of a tar+gzip blob, by path.
pub fn tgz_files(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.path().unwrap().display().to_string(), bytes)
        })
        .collect()
}

/// The one layer of `manifest`, after checking the config's and the layer's media
/// types.
pub fn single_layer<'a>(manifest: &'a Value, config_type: &str, layer_type: &str) -> &'a Value {
    assert_eq!(manifest["config"]["mediaType"], config_type);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer in {manifest}");
    assert_eq!(layers[0]["mediaType"], layer_type);
    &layers[0]
}

/// The annotations every artifact we push carries, from the tests' build inputs.
pub fn assert_build_annotations(annotations: &Value, title: &str, version: &str) {
    assert_build_annotations_created(annotations, title, version, CREATED);
}

/// The same, for an artifact made at `created`.
pub fn assert_build_annotations_created(
    annotations: &Value,
    title: &str,
    version: &str,
    created: &str,
) {
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert_eq!(annotations["org.opencontainers.image.version"], version);
    assert_eq!(annotations["org.opencontainers.image.revision"], REVISION);
    assert_eq!(annotations["org.opencontainers.image.created"], created);
    assert_eq!(annotations["org.opencontainers.image.title"], title);
}
