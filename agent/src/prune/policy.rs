//! Which tags a retention policy keeps, decided from the tags' manifests alone.
//!
//! A tag is dated by its manifest's `org.opencontainers.image.created`. With
//! `--keep-last N` the N newest tags of a repository are kept (undated ones count as the
//! oldest); with `--max-age D` tags created more than D ago go (undated ones never do);
//! with both, a tag must pass both. Protected tags are always kept, and a manifest is
//! deleted only when every tag pointing at it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<usize>,
    pub max_age: Option<Duration>,
    pub protect: BTreeSet<String>,
}

/// One tag of a repository and the manifest it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedManifest {
    pub tag: String,
    pub digest: String,
    pub created: Option<DateTime<Utc>>,
}

/// A manifest to delete, with every tag that pointed at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub digest: String,
    pub tags: Vec<String>,
    pub created: Option<DateTime<Utc>>,
}

pub use oras_contract::retention::parse_age;

impl RetentionPolicy {
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none() && self.max_age.is_none()
    }

    /// The manifests of one repository to delete, oldest first.
    pub fn doomed(&self, tags: &[TaggedManifest], now: DateTime<Utc>) -> Vec<Doomed> {
        let mut by_age: Vec<&TaggedManifest> = tags.iter().collect();
        // Newest first; undated last; ties by tag name so the answer is stable.
        by_age.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.tag.cmp(&b.tag)));
        let kept: BTreeSet<&str> = by_age
            .iter()
            .enumerate()
            .filter(|(rank, tagged)| self.keeps(*rank, tagged, now))
            .map(|(_, tagged)| tagged.digest.as_str())
            .collect();
        let mut doomed: BTreeMap<&str, Doomed> = BTreeMap::new();
        for tagged in tags.iter().filter(|t| !kept.contains(t.digest.as_str())) {
            doomed
                .entry(&tagged.digest)
                .or_insert_with(|| Doomed {
                    digest: tagged.digest.clone(),
                    tags: Vec::new(),
                    created: tagged.created,
                })
                .tags
                .push(tagged.tag.clone());
        }
        let mut doomed: Vec<Doomed> = doomed.into_values().collect();
        for manifest in &mut doomed {
            manifest.tags.sort();
        }
        doomed.sort_by(|a, b| {
            a.created
                .cmp(&b.created)
                .then_with(|| a.digest.cmp(&b.digest))
        });
        doomed
    }

    fn keeps(&self, rank: usize, tagged: &TaggedManifest, now: DateTime<Utc>) -> bool {
        if self.protect.contains(&tagged.tag) {
            return true;
        }
        let recent_enough = self.keep_last.is_none_or(|n| rank < n);
        let young_enough = match (self.max_age, tagged.created) {
            (Some(age), Some(created)) => {
                now.signed_duration_since(created)
                    .to_std()
                    .unwrap_or_default()
                    <= age
            }
            _ => true,
        };
        recent_enough && young_enough
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours_ago: i64) -> Option<DateTime<Utc>> {
        Some(now() - chrono::Duration::hours(hours_ago))
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn tagged(tag: &str, digest: &str, created: Option<DateTime<Utc>>) -> TaggedManifest {
        TaggedManifest {
            tag: tag.into(),
            digest: digest.into(),
            created,
        }
    }

    fn doomed_tags(policy: &RetentionPolicy, tags: &[TaggedManifest]) -> Vec<String> {
        policy
            .doomed(tags, now())
            .into_iter()
            .flat_map(|d| d.tags)
            .collect()
    }

    fn runs() -> Vec<TaggedManifest> {
        vec![
            tagged("run-1", "sha256:1", at(240)),
            tagged("run-2", "sha256:2", at(48)),
            tagged("run-3", "sha256:3", at(2)),
            tagged("undated", "sha256:u", None),
        ]
    }

    #[test]
    fn keep_last_counts_undated_as_oldest() {
        let policy = RetentionPolicy {
            keep_last: Some(2),
            ..Default::default()
        };
        assert_eq!(doomed_tags(&policy, &runs()), ["undated", "run-1"]);
    }

    #[test]
    fn max_age_never_deletes_undated() {
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(24 * 3600)),
            ..Default::default()
        };
        assert_eq!(doomed_tags(&policy, &runs()), ["run-1", "run-2"]);
    }

    #[test]
    fn both_rules_must_pass_and_protected_tags_stay() {
        let mut policy = RetentionPolicy {
            keep_last: Some(3),
            max_age: Some(Duration::from_secs(72 * 3600)),
            ..Default::default()
        };
        assert_eq!(doomed_tags(&policy, &runs()), ["undated", "run-1"]);
        policy.protect.insert("run-1".into());
        assert_eq!(doomed_tags(&policy, &runs()), ["undated"]);
    }

    #[test]
    fn a_manifest_kept_by_one_tag_is_kept_for_all() {
        let mut tags = runs();
        tags.push(tagged("latest", "sha256:1", at(240)));
        let policy = RetentionPolicy {
            keep_last: Some(1),
            protect: ["latest".to_string()].into(),
            ..Default::default()
        };
        let doomed = policy.doomed(&tags, now());
        assert!(doomed.iter().all(|d| d.digest != "sha256:1"), "{doomed:?}");
        // Two tags on one doomed manifest: deleted once, both named.
        tags.push(tagged("also-2", "sha256:2", at(48)));
        let doomed = policy.doomed(&tags, now());
        let two = doomed.iter().find(|d| d.digest == "sha256:2").unwrap();
        assert_eq!(two.tags, ["also-2", "run-2"]);
    }
}
