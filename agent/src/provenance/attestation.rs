//! The SLSA provenance of an output as an in-toto Statement v1, attached to the output
//! as an OCI referrer (a manifest whose `subject` is the output's manifest).
//!
//! Registries with the referrers API index the referrer themselves; on the others (such
//! as distribution 2.8) the agent maintains the referrers tag schema of the distribution
//! spec 1.1: an image index tagged `sha256-<hex of the subject>`. Which one applies is
//! learnt by asking for the referrers after the push: a registry that lists the new
//! referrer indexes them.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::Provenance;
use crate::layout::{self, Descriptor, Manifest};
use crate::registry::{Registry, sha256_digest};
use crate::transfer::PushedManifest;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// The artifact type of the referrer and the media type of its one layer.
pub const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// What kind of run the predicate describes: one step of a workflow, run in a pod.
pub const BUILD_TYPE: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/pod-step/v1");
pub const BUILDER_ID: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/oras-agent");

/// `{"sha256": "<hex>"}` of `algorithm:hex`.
fn digest_set(digest: &str) -> Value {
    match digest.split_once(':') {
        Some((algorithm, hex)) => json!({ algorithm: hex }),
        None => json!({}),
    }
}

/// The statement about the output `name` stored as `digest`, made by the run described
/// by `provenance` with the application's `argv`.
pub fn statement(name: &str, digest: &str, provenance: &Provenance, argv: &[String]) -> Value {
    let dependencies: Vec<Value> = provenance
        .inputs
        .iter()
        .map(|input| match input.rsplit_once('@') {
            Some((reference, digest)) => {
                json!({"uri": format!("oci://{reference}"), "digest": digest_set(digest)})
            }
            None => json!({"uri": format!("oci://{input}")}),
        })
        .collect();
    let mut internal = serde_json::Map::new();
    for (field, value) in [
        ("pod", provenance.pod.clone().map(Value::from)),
        ("workload", provenance.workload.clone().map(Value::from)),
        ("exitCode", provenance.exit_code.map(Value::from)),
        (
            "commandDigest",
            provenance.command_digest.clone().map(Value::from),
        ),
    ] {
        if let Some(value) = value {
            internal.insert(field.to_string(), value);
        }
    }
    let mut metadata = serde_json::Map::new();
    for (field, value) in [
        ("invocationId", provenance.pod.clone()),
        ("startedOn", provenance.started.clone()),
        ("finishedOn", provenance.finished.clone()),
    ] {
        if let Some(value) = value {
            metadata.insert(field.to_string(), Value::from(value));
        }
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": digest_set(digest)}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"image": provenance.image, "argv": argv},
                "internalParameters": internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"oras-agent": env!("CARGO_PKG_VERSION")},
                },
                "metadata": metadata,
            },
        },
    })
}

/// The referrer manifest carrying `statement` (one layer) about `subject`.
fn referrer_manifest(statement: &Descriptor, subject: &PushedManifest) -> Manifest {
    let mut manifest = layout::build_manifest(vec![statement.clone()], BTreeMap::new());
    manifest.artifact_type = Some(IN_TOTO_MEDIA_TYPE.to_string());
    manifest.subject = Some(Descriptor {
        media_type: layout::MANIFEST_MEDIA_TYPE.to_string(),
        digest: subject.digest.clone(),
        size: subject.size,
        data: None,
        annotations: BTreeMap::new(),
    });
    manifest
}

/// Push `statement` as a referrer of `subject` in `registry`'s repository; returns the
/// referrer's digest.
pub async fn attach(
    registry: &Registry,
    subject: &PushedManifest,
    statement: &Value,
) -> Result<String> {
    let body = serde_json::to_vec(statement).context("cannot serialize the statement")?;
    let layer = Descriptor {
        media_type: IN_TOTO_MEDIA_TYPE.to_string(),
        digest: sha256_digest(&body),
        size: body.len() as u64,
        data: None,
        annotations: BTreeMap::new(),
    };
    registry
        .push_blob_if_missing(body.into(), &layer.digest)
        .await?;
    registry
        .push_blob_if_missing(
            bytes::Bytes::from_static(layout::EMPTY_CONFIG),
            layout::EMPTY_CONFIG_DIGEST,
        )
        .await?;
    let manifest = referrer_manifest(&layer, subject);
    let body = serde_json::to_vec(&manifest).context("cannot serialize the referrer")?;
    let referrer = Descriptor {
        media_type: layout::MANIFEST_MEDIA_TYPE.to_string(),
        digest: sha256_digest(&body),
        size: body.len() as u64,
        data: None,
        annotations: manifest.annotations.clone(),
    };
    registry
        .push_manifest_untagged(body, layout::MANIFEST_MEDIA_TYPE)
        .await?;
    let listed = registry.referrers(&subject.digest).await?;
    if listed.manifests.iter().any(|m| m.digest == referrer.digest) {
        tracing::debug!(digest = %referrer.digest, "the registry indexes referrers");
        return Ok(referrer.digest);
    }
    let index = tag_schema_index(&listed.manifests, &referrer)?;
    let tag = subject.digest.replace(':', "-");
    registry
        .push_manifest_tagged(&tag, index, INDEX_MEDIA_TYPE)
        .await?;
    tracing::debug!(%tag, digest = %referrer.digest, "referrer added to the referrers tag");
    Ok(referrer.digest)
}

/// The referrers tag's index: what it listed before, plus `referrer`.
fn tag_schema_index(
    existing: &[oci_client::manifest::ImageIndexEntry],
    referrer: &Descriptor,
) -> Result<Vec<u8>> {
    let mut manifests: Vec<Value> = existing
        .iter()
        .filter(|entry| entry.digest != referrer.digest)
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .context("cannot re-serialize the referrers index")?;
    let mut entry = json!({
        "mediaType": referrer.media_type,
        "digest": referrer.digest,
        "size": referrer.size,
        "artifactType": IN_TOTO_MEDIA_TYPE,
    });
    if !referrer.annotations.is_empty() {
        entry["annotations"] = json!(referrer.annotations);
    }
    manifests.push(entry);
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    }))
    .context("cannot serialize the referrers index")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance {
        Provenance {
            inputs: vec![format!("r:5000/in:1@sha256:{}", "a".repeat(64))],
            pod: Some("ns/step-2".into()),
            workload: Some("Job/step-2".into()),
            image: Some("busybox:1.36".into()),
            exit_code: Some(0),
            started: Some("2026-12-01T10:00:00Z".into()),
            finished: Some("2026-12-01T10:00:05Z".into()),
            command_digest: Some("sha256:cc".into()),
        }
    }

    #[test]
    fn the_statement_is_slsa_provenance_v1_about_the_output() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "make".to_string()];
        let digest = format!("sha256:{}", "b".repeat(64));
        let statement = statement("r:5000/out:1", &digest, &provenance(), &argv);
        assert_eq!(statement["_type"], STATEMENT_TYPE);
        assert_eq!(statement["predicateType"], SLSA_PROVENANCE_V1);
        assert_eq!(
            statement["subject"],
            json!([{"name": "r:5000/out:1", "digest": {"sha256": "b".repeat(64)}}])
        );
        let definition = &statement["predicate"]["buildDefinition"];
        assert_eq!(
            definition["resolvedDependencies"],
            json!([{"uri": "oci://r:5000/in:1", "digest": {"sha256": "a".repeat(64)}}])
        );
        assert_eq!(
            definition["externalParameters"],
            json!({"image": "busybox:1.36", "argv": ["sh", "-c", "make"]})
        );
        assert_eq!(definition["internalParameters"]["workload"], "Job/step-2");
        let details = &statement["predicate"]["runDetails"];
        assert_eq!(details["builder"]["id"], BUILDER_ID);
        assert_eq!(
            details["builder"]["version"]["oras-agent"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(details["metadata"]["startedOn"], "2026-12-01T10:00:00Z");
        assert_eq!(details["metadata"]["finishedOn"], "2026-12-01T10:00:05Z");
    }

    #[test]
    fn the_referrer_names_its_subject_and_artifact_type() {
        let subject = PushedManifest {
            digest: "sha256:dd".into(),
            size: 321,
        };
        let layer = Descriptor {
            media_type: IN_TOTO_MEDIA_TYPE.into(),
            digest: "sha256:ee".into(),
            size: 10,
            data: None,
            annotations: BTreeMap::new(),
        };
        let manifest = serde_json::to_value(referrer_manifest(&layer, &subject)).unwrap();
        assert_eq!(manifest["artifactType"], IN_TOTO_MEDIA_TYPE);
        assert_eq!(
            manifest["subject"],
            json!({"mediaType": layout::MANIFEST_MEDIA_TYPE, "digest": "sha256:dd", "size": 321})
        );
        assert_eq!(manifest["layers"][0]["mediaType"], IN_TOTO_MEDIA_TYPE);
    }

    #[test]
    fn the_tag_index_keeps_other_referrers_and_lists_the_new_one_once() {
        let other: oci_client::manifest::ImageIndexEntry = serde_json::from_value(json!({
            "mediaType": layout::MANIFEST_MEDIA_TYPE,
            "digest": "sha256:01",
            "size": 5,
            "artifactType": "application/vnd.example.sbom"
        }))
        .unwrap();
        let referrer = Descriptor {
            media_type: layout::MANIFEST_MEDIA_TYPE.into(),
            digest: "sha256:02".into(),
            size: 7,
            data: None,
            annotations: BTreeMap::new(),
        };
        let mut again = other.clone();
        again.digest = "sha256:02".into();
        let index: Value =
            serde_json::from_slice(&tag_schema_index(&[other, again], &referrer).unwrap()).unwrap();
        let digests: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, ["sha256:01", "sha256:02"]);
        assert_eq!(index["manifests"][1]["artifactType"], IN_TOTO_MEDIA_TYPE);
        assert_eq!(index["mediaType"], INDEX_MEDIA_TYPE);
    }
}
