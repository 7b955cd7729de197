//! `oras-agent prune`: apply a retention policy to the repositories of a registry,
//! deleting manifests (and their referrers, such as provenance attestations) through
//! the registry API. Deleting frees no space by itself: the registry's garbage
//! collector does, afterwards.

pub mod policy;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use oras_contract::retention::PruneSummary;
use serde_json::Value;

use crate::credentials::Operation;
use crate::layout;
use crate::provenance::attestation::INDEX_MEDIA_TYPE;
use crate::reference::ArtifactRef;
use crate::registry::Registry;
use crate::transfer::Connection;
use policy::{RetentionPolicy, TaggedManifest};

/// `REGISTRY[/REPOSITORY-PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub registry: String,
    pub prefix: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Self> {
        let (registry, prefix) = text.split_once('/').unwrap_or((text, ""));
        let prefix = prefix.trim_end_matches('/');
        // Checked with the reference grammar, as `registry/prefix:tag` would be.
        let probe = if prefix.is_empty() {
            format!("{registry}/probe")
        } else {
            format!("{registry}/{prefix}")
        };
        ArtifactRef::parse_repository(&probe)
            .with_context(|| format!("{text:?} is not REGISTRY[/REPOSITORY-PREFIX]"))?;
        Ok(Self {
            registry: registry.to_string(),
            prefix: prefix.to_string(),
        })
    }

    fn covers(&self, repository: &str) -> bool {
        self.prefix.is_empty()
            || repository == self.prefix
            || repository
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// What a prune did (or, with `--dry-run`, would do).
#[derive(Debug, Default)]
pub struct Report {
    /// One line per deleted manifest or referrer.
    pub lines: Vec<String>,
    pub manifests: usize,
    pub tags: usize,
    pub referrers: usize,
    /// Bytes of layers that no kept tag of their repository uses any more.
    pub untagged_bytes: u64,
}

impl Report {
    pub fn summary(&self, dry_run: bool) -> PruneSummary {
        PruneSummary {
            dry_run,
            manifests_deleted: self.manifests as u64,
            tags_deleted: self.tags as u64,
            referrers_deleted: self.referrers as u64,
            untagged_bytes: self.untagged_bytes,
        }
    }
}

/// A referrers tag (`sha256-<hex>`): it follows its subject, it is never a result.
fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Layer digests and sizes of a manifest body (an index has none of its own).
fn layers(manifest: &Value) -> Vec<(String, u64)> {
    manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&manifest["config"]))
        .filter_map(|d| Some((d["digest"].as_str()?.to_string(), d["size"].as_u64()?)))
        .collect()
}

const ACCEPTED: &[&str] = &[
    layout::MANIFEST_MEDIA_TYPE,
    layout::DOCKER_MANIFEST_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
];

pub async fn run(
    target: &Target,
    policy: &RetentionPolicy,
    dry_run: bool,
    connection: &Connection,
) -> Result<Report> {
    if policy.is_empty() {
        bail!("prune needs a policy: --keep-last N and/or --max-age DURATION");
    }
    let any = ArtifactRef::parse(&format!("{}/catalog", target.registry))?;
    let registry = connection.open(&any, Operation::Pull).await?;
    let repositories: Vec<String> = registry
        .catalog()
        .await?
        .into_iter()
        .filter(|r| target.covers(r))
        .collect();
    let mut report = Report::default();
    let now = chrono::Utc::now();
    for repository in repositories {
        prune_repository(
            &target.registry,
            &repository,
            policy,
            dry_run,
            connection,
            now,
            &mut report,
        )
        .await
        .with_context(|| format!("cannot prune {}/{repository}", target.registry))?;
    }
    Ok(report)
}

async fn prune_repository(
    host: &str,
    repository: &str,
    policy: &RetentionPolicy,
    dry_run: bool,
    connection: &Connection,
    now: chrono::DateTime<chrono::Utc>,
    report: &mut Report,
) -> Result<()> {
    let reference = ArtifactRef::parse(&format!("{host}/{repository}"))?;
    let registry = connection.open(&reference, Operation::Push).await?;
    let mut tagged = Vec::new();
    let mut bodies: BTreeMap<String, Value> = BTreeMap::new();
    for tag in registry.list_tags().await? {
        if is_referrers_tag(&tag) {
            continue;
        }
        let (body, digest) = registry.pull_manifest_of(&tag, ACCEPTED).await?;
        let manifest: Value = serde_json::from_slice(&body)
            .with_context(|| format!("{repository}:{tag}: the manifest is not JSON"))?;
        let created = manifest["annotations"][layout::CREATED_ANNOTATION]
            .as_str()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&chrono::Utc));
        tagged.push(TaggedManifest {
            tag,
            digest: digest.clone(),
            created,
        });
        bodies.insert(digest, manifest);
    }
    let doomed = policy.doomed(&tagged, now);
    let doomed_digests: BTreeSet<&str> = doomed.iter().map(|d| d.digest.as_str()).collect();
    let kept_layers: BTreeSet<String> = bodies
        .iter()
        .filter(|(digest, _)| !doomed_digests.contains(digest.as_str()))
        .flat_map(|(_, manifest)| layers(manifest).into_iter().map(|(d, _)| d))
        .collect();
    let mut freed: BTreeMap<String, u64> = BTreeMap::new();
    let verb = if dry_run { "would delete" } else { "deleted" };
    let listed: BTreeSet<&str> = tagged.iter().map(|t| t.tag.as_str()).collect();
    for manifest in &doomed {
        // A tag pushed since the listing may point at this manifest (same content):
        // deleting by digest would take it too, so such a manifest stays.
        if let Some(tag) = new_tag_on(&registry, &listed, &manifest.digest).await? {
            report.lines.push(format!(
                "kept {host}/{repository}@{}: tag {tag} was pushed on it meanwhile",
                manifest.digest
            ));
            continue;
        }
        // Referrers first: a referrer without its subject would be an orphan.
        let referrers = registry.referrers(&manifest.digest).await?;
        for referrer in &referrers.manifests {
            if !dry_run {
                registry.delete_manifest(&referrer.digest).await?;
            }
            report.referrers += 1;
            report.lines.push(format!(
                "{verb} referrer {host}/{repository}@{} ({}) of {}",
                referrer.digest,
                referrer
                    .artifact_type
                    .as_deref()
                    .unwrap_or("no artifact type"),
                manifest.digest
            ));
        }
        let referrers_tag = manifest.digest.replace(':', "-");
        if !referrers.manifests.is_empty()
            && let Ok((_, index_digest)) = registry
                .pull_manifest_of(&referrers_tag, &[INDEX_MEDIA_TYPE])
                .await
            && !dry_run
        {
            registry.delete_manifest(&index_digest).await?;
        }
        if !dry_run {
            registry.delete_manifest(&manifest.digest).await?;
        }
        if let Some(body) = bodies.get(&manifest.digest) {
            for (digest, size) in layers(body) {
                if !kept_layers.contains(&digest) {
                    freed.insert(digest, size);
                }
            }
        }
        report.manifests += 1;
        report.tags += manifest.tags.len();
        report.lines.push(format!(
            "{verb} {host}/{repository}:{} ({}, created {})",
            manifest.tags.join(","),
            manifest.digest,
            manifest
                .created
                .map_or_else(|| "undated".to_string(), |c| c.to_rfc3339())
        ));
    }
    report.untagged_bytes += freed.values().sum::<u64>();
    Ok(())
}

/// A tag that was not in `listed` and now points at `digest`.
async fn new_tag_on(
    registry: &Registry,
    listed: &BTreeSet<&str>,
    digest: &str,
) -> Result<Option<String>> {
    for tag in registry.list_tags().await? {
        if listed.contains(tag.as_str()) || is_referrers_tag(&tag) {
            continue;
        }
        let (_, now_at) = registry.pull_manifest_of(&tag, ACCEPTED).await?;
        if now_at == digest {
            return Ok(Some(tag));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_registry_and_an_optional_prefix() {
        let all = Target::parse("127.0.0.1:5000").unwrap();
        assert_eq!(all.prefix, "");
        assert!(all.covers("anything/at/all"));
        let some = Target::parse("registry.local/workflow/").unwrap();
        assert_eq!(some.prefix, "workflow");
        assert!(some.covers("workflow") && some.covers("workflow/step1"));
        assert!(!some.covers("workflows") && !some.covers("other/workflow"));
        let err = format!(
            "{:#}",
            Target::parse("localhost:5000/Bad Name").unwrap_err()
        );
        assert!(err.contains("\"localhost:5000/Bad Name\""), "{err}");
    }

    #[test]
    fn a_tag_pushed_after_the_listing_onto_a_doomed_manifest_is_seen() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = oras_testkit::Registry::start().unwrap();
        let layer = registry.upload_blob("race/a", b"same\n").unwrap();
        let config = registry.upload_blob("race/a", b"{}").unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": layout::MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}]
        });
        registry.put_manifest("race/a", "old", &manifest).unwrap();
        let reference = ArtifactRef::parse(&registry.reference("race/a")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connection = Connection {
            plain_http: true,
            retry: crate::registry::RetryPolicy::with_budget(std::time::Duration::from_secs(5)),
        };
        let found = runtime.block_on(async {
            let client = connection.open(&reference, Operation::Push).await.unwrap();
            let (_, digest) = client.pull_manifest_of("old", ACCEPTED).await.unwrap();
            let listed = BTreeSet::from(["old"]);
            let before = new_tag_on(&client, &listed, &digest).await.unwrap();
            registry.put_manifest("race/a", "new", &manifest).unwrap();
            (before, new_tag_on(&client, &listed, &digest).await.unwrap())
        });
        assert_eq!(found, (None, Some("new".to_string())));
    }

    #[test]
    fn referrers_tags_are_recognised() {
        assert!(is_referrers_tag(&format!("sha256-{}", "a".repeat(64))));
        assert!(!is_referrers_tag("sha256-short"));
        assert!(!is_referrers_tag("v1"));
    }
}
