//! The upstream tools that `make tools` builds from their Go modules (the oras Go CLI,
//! helm, crane, etcd, Kubernetes' binaries, ...): where they are, and a clear error that
//! says how to get them when they are not there.

use std::path::PathBuf;

#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{name} is not in {} (the folder `make tools` fills; set ORAS_TOOLS_DIR if yours is \
     elsewhere): run `make tools`",
    .dir.display()
)]
pub struct ToolMissing {
    pub name: String,
    pub dir: PathBuf,
}

/// The folder `make tools` links the current tools into: `$ORAS_TOOLS_DIR/bin`, else
/// `$XDG_CACHE_HOME/oras-operator-rs/tools/bin`, else `~/.cache/oras-operator-rs/tools/bin`
/// (the same rule as `scripts/tools.sh`).
pub fn tools_bin_dir() -> PathBuf {
    let cache = std::env::var_os("ORAS_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                        .join(".cache")
                })
                .join("oras-operator-rs/tools")
        });
    cache.join("bin")
}

/// The path of tool `name` built by `make tools`.
pub fn tool(name: &str) -> Result<PathBuf, ToolMissing> {
    let dir = tools_bin_dir();
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ToolMissing {
            name: name.to_string(),
            dir,
        })
    }
}

/// The referrers that the oras Go CLI (`oras discover --format json`) lists for
/// `reference` on a plain-HTTP registry.
pub fn discover_referrers(reference: &str) -> Result<Vec<serde_json::Value>, String> {
    let oras = tool("oras").map_err(|e| e.to_string())?;
    let output = std::process::Command::new(oras)
        .args(["discover", "--plain-http", "--format", "json", reference])
        .output()
        .map_err(|e| format!("cannot run oras discover: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "oras discover {reference}: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("oras discover {reference} printed no JSON: {e}"))?;
    Ok(listed["referrers"]
        .as_array()
        .or_else(|| listed["manifests"].as_array())
        .cloned()
        .unwrap_or_default())
}
