//! Where and when what we ship was built: the source repository, the version, the commit
//! and its time. It becomes the `org.opencontainers.image.*` labels and annotations, and
//! the only timestamp anything we build contains, so the same commit gives the same
//! digests.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat};

pub const SOURCE: &str = "org.opencontainers.image.source";
pub const VERSION: &str = "org.opencontainers.image.version";
pub const REVISION: &str = "org.opencontainers.image.revision";
pub const CREATED: &str = "org.opencontainers.image.created";
pub const TITLE: &str = "org.opencontainers.image.title";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// URL of the source repository.
    pub source: String,
    /// The version shipped (the crate version).
    pub version: String,
    /// The commit built.
    pub revision: String,
    /// Seconds since the epoch: the commit's time (`SOURCE_DATE_EPOCH`).
    pub epoch: i64,
}

impl BuildInfo {
    pub fn new(source: &str, version: &str, revision: &str, epoch: i64) -> Result<Self> {
        DateTime::from_timestamp(epoch, 0)
            .with_context(|| format!("SOURCE_DATE_EPOCH {epoch} is out of range"))?;
        for (field, value) in [
            ("source", source),
            ("version", version),
            ("revision", revision),
        ] {
            anyhow::ensure!(
                !value.trim().is_empty() && !value.contains('\n'),
                "the {field} {value:?} must be one non-empty line"
            );
        }
        Ok(Self {
            source: source.to_string(),
            version: version.to_string(),
            revision: revision.to_string(),
            epoch,
        })
    }

    /// `epoch` as RFC 3339 (`2026-11-30T21:00:00Z`).
    pub fn created(&self) -> String {
        DateTime::from_timestamp(self.epoch, 0)
            // Checked in `new`.
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The source, version, revision and created annotations.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (SOURCE.to_string(), self.source.clone()),
            (VERSION.to_string(), self.version.clone()),
            (REVISION.to_string(), self.revision.clone()),
            (CREATED.to_string(), self.created()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_is_the_created_time() {
        let info = BuildInfo::new("https://src", "0.1.0", "abc", 1_700_000_000).unwrap();
        assert_eq!(info.created(), "2023-11-14T22:13:20Z");
        assert_eq!(info.annotations()[CREATED], "2023-11-14T22:13:20Z");
        assert_eq!(info.annotations()[REVISION], "abc");
    }

    #[test]
    fn empty_fields_are_refused_by_name() {
        let error = BuildInfo::new("https://src", "0.1.0", " ", 0)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "the revision \" \" must be one non-empty line");
        assert!(BuildInfo::new("s", "v", "r", i64::MAX).is_err());
    }
}
