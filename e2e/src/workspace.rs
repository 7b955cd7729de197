//! Where the repository's files are, wherever the tests run from.

use std::path::{Path, PathBuf};

/// The repository root (the workspace that holds this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The compiled policy: `$ORAS_POLICY_WASM`, else `policy.wasm` at the root (what
/// `make policy.wasm` writes).
pub fn policy_wasm() -> PathBuf {
    std::env::var_os("ORAS_POLICY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("policy.wasm"))
}

/// The admission request fixtures.
pub fn requests_dir() -> PathBuf {
    root().join("examples").join("requests")
}
