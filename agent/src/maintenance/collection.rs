//! One garbage collection: the registry restarted read-only, `garbage-collect`, the
//! registry restarted read-write, whatever happened in between.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Result, bail};
use oras_contract::retention::CollectionSummary;

use super::process::{RegistryCommand, stop};

/// The registry the supervisor runs, and where it stores (filesystem storage).
#[derive(Debug)]
pub struct Supervised {
    pub command: RegistryCommand,
    pub child: Child,
    pub storage_root: Option<PathBuf>,
}

/// The longest piece of the collector's output an error carries.
const OUTPUT_LIMIT: usize = 2000;

/// Collects garbage with the registry read-only. The registry is read-write again
/// afterwards (unless the supervisor is `stopping`), also when the collection failed.
pub fn collect(registry: &mut Supervised, stopping: &AtomicBool) -> Result<CollectionSummary> {
    let before = registry.storage_root.as_deref().map(dir_size);
    let command = registry.command.clone();
    stop(&mut registry.child, command.grace)?;
    let window = Instant::now();
    tracing::info!("registry read-only: collecting garbage");
    let outcome = command.spawn(true).and_then(|child| {
        registry.child = child;
        command.wait_ready(&mut registry.child)?;
        command.collect_garbage()
    });
    stop(&mut registry.child, command.grace)?;
    if !stopping.load(Ordering::SeqCst) {
        registry.child = command.spawn(false)?;
        command.wait_ready(&mut registry.child)?;
    }
    let read_only_millis = u64::try_from(window.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(read_only_millis, "registry read-write again");
    let output = outcome?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() && is_empty_storage(&text) {
        return Ok(CollectionSummary {
            blobs_deleted: Some(0),
            manifests_deleted: Some(0),
            bytes_freed: Some(0),
            read_only_millis,
        });
    }
    if !output.status.success() {
        bail!(
            "registry garbage-collect failed ({}): {}",
            output.status,
            tail(&text)
        );
    }
    let (blobs_deleted, manifests_deleted) = eligible_counts(&text).unzip();
    let after = registry.storage_root.as_deref().map(dir_size);
    Ok(CollectionSummary {
        blobs_deleted,
        manifests_deleted,
        bytes_freed: before.zip(after).map(|(b, a)| b.saturating_sub(a)),
        read_only_millis,
    })
}

/// The blobs and manifests the collector deleted, from its closing line
/// `N blobs marked, M blobs and K manifests eligible for deletion`.
pub fn eligible_counts(output: &str) -> Option<(u64, u64)> {
    // Each deleted blob gets a line of its own after this one.
    let (_, rest) = output
        .lines()
        .find_map(|line| line.split_once("blobs marked,"))?;
    let numbers: Vec<u64> = rest
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    match numbers[..] {
        [blobs, manifests] => Some((blobs, manifests)),
        _ => None,
    }
}

/// The collector's complaint about a registry that has stored nothing yet (no
/// `repositories` or `blobs` directory to walk).
fn is_empty_storage(output: &str) -> bool {
    output.contains("Path not found: /docker/registry/v2/")
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(OUTPUT_LIMIT);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim()
}

/// Bytes of the regular files under `root` (symlinks not followed).
pub fn dir_size(root: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collectors_closing_line_gives_the_counts() {
        let output = "repo/a\nrepo/a: marking manifest sha256:ab\n\n\
                      7 blobs marked, 3 blobs and 2 manifests eligible for deletion\n\
                      blob eligible for deletion: sha256:cd\n";
        assert_eq!(eligible_counts(output), Some((3, 2)));
        assert_eq!(eligible_counts("nothing to see"), None);
        assert_eq!(
            eligible_counts("x blobs marked, eligible for deletion"),
            None
        );
    }
}
