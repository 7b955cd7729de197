//! The retention grammar `oras-agent prune` takes and the controller checks in
//! `spec.retention` (ages such as `12h` or `7d`), and the summary a prune run leaves
//! for the controller to report in the cache's status.

use std::time::Duration;

use serde_json::{Value, json};

/// What one prune run did, written by `oras-agent prune --report FILE` (the prune pod's
/// termination message) and read back by the controller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneSummary {
    pub dry_run: bool,
    pub manifests_deleted: u64,
    pub tags_deleted: u64,
    pub referrers_deleted: u64,
    /// Bytes of layers no kept tag uses any more.
    pub untagged_bytes: u64,
}

impl PruneSummary {
    pub fn to_json(&self) -> String {
        json!({
            "dryRun": self.dry_run,
            "manifestsDeleted": self.manifests_deleted,
            "tagsDeleted": self.tags_deleted,
            "referrersDeleted": self.referrers_deleted,
            "untaggedBytes": self.untagged_bytes,
        })
        .to_string()
    }

    /// The summary in `text`, or `None` when it is not one (a failed run's log).
    pub fn from_json(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text.trim()).ok()?;
        let count = |key: &str| value.get(key)?.as_u64();
        Some(Self {
            dry_run: value.get("dryRun")?.as_bool()?,
            manifests_deleted: count("manifestsDeleted")?,
            tags_deleted: count("tagsDeleted")?,
            referrers_deleted: count("referrersDeleted")?,
            untagged_bytes: count("untaggedBytes")?,
        })
    }
}

/// What one garbage collection did, answered by the registry pod's maintenance endpoint
/// to `oras-agent collect`, written to the collect pod's termination message and read
/// back by the controller. Counts the registry did not print are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectionSummary {
    pub blobs_deleted: Option<u64>,
    pub manifests_deleted: Option<u64>,
    /// How much the storage directory shrank (filesystem storage only).
    pub bytes_freed: Option<u64>,
    /// How long pushes were refused, in milliseconds.
    pub read_only_millis: u64,
}

impl CollectionSummary {
    pub fn to_json(&self) -> String {
        json!({
            "blobsDeleted": self.blobs_deleted,
            "manifestsDeleted": self.manifests_deleted,
            "bytesFreed": self.bytes_freed,
            "readOnlyMillis": self.read_only_millis,
        })
        .to_string()
    }

    /// The summary in `text`, or `None` when it is not one.
    pub fn from_json(text: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(text.trim()).ok()?;
        let optional = |key: &str| match value.get(key)? {
            Value::Null => Some(None),
            number => number.as_u64().map(Some),
        };
        Some(Self {
            blobs_deleted: optional("blobsDeleted")?,
            manifests_deleted: optional("manifestsDeleted")?,
            bytes_freed: optional("bytesFreed")?,
            read_only_millis: value.get("readOnlyMillis")?.as_u64()?,
        })
    }
}

/// Parses `90s`, `30m`, `12h`, `7d` or `2w`; the error names the value.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let refuse = || {
        format!(
            "max age {text:?} is not a whole number followed by s, m, h, d or w (such as 12h or 7d)"
        )
    };
    let unit_at = text.len().checked_sub(1).ok_or_else(refuse)?;
    if !text.is_char_boundary(unit_at) {
        return Err(refuse());
    }
    let (number, unit) = text.split_at(unit_at);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let count: u64 = number.parse().map_err(|_| refuse())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(refuse()),
    };
    if count == 0 {
        return Err(format!(
            "max age {text:?} would delete everything: give more than 0"
        ));
    }
    count
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(refuse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_reads_back_what_was_written_and_nothing_else() {
        let summary = PruneSummary {
            dry_run: false,
            manifests_deleted: 3,
            tags_deleted: 4,
            referrers_deleted: 1,
            untagged_bytes: 1 << 40,
        };
        assert_eq!(PruneSummary::from_json(&summary.to_json()), Some(summary));
        assert_eq!(PruneSummary::from_json("Error: registry refused"), None);
        assert_eq!(PruneSummary::from_json(r#"{"tagsDeleted": -1}"#), None);
    }

    #[test]
    fn a_collection_summary_reads_back_with_its_unknown_counts() {
        let summary = CollectionSummary {
            blobs_deleted: Some(12),
            manifests_deleted: None,
            bytes_freed: Some(3 << 30),
            read_only_millis: 1500,
        };
        assert_eq!(
            CollectionSummary::from_json(&summary.to_json()),
            Some(summary)
        );
        assert_eq!(CollectionSummary::from_json("{}"), None);
        assert_eq!(
            CollectionSummary::from_json(
                r#"{"blobsDeleted": "x", "manifestsDeleted": null, "bytesFreed": null, "readOnlyMillis": 1}"#
            ),
            None
        );
    }

    #[test]
    fn ages_parse_with_their_unit_and_bad_ones_are_named() {
        assert_eq!(parse_age("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(1_209_600));
        for bad in [
            "",
            "7",
            "d",
            "1.5h",
            "-1d",
            "+1d",
            "7y",
            "7é",
            "99999999999999999999w",
        ] {
            let err = parse_age(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(parse_age("0d").unwrap_err().contains("more than 0"));
    }
}
