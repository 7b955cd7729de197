//! Whole artifacts: push a list of files and directories as one artifact, pull an
//! artifact into a directory. Composes the layout (what goes in a blob) and the registry
//! client (how a blob travels); used by the user commands and by the pod roles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};

use crate::credentials::Operation;
use crate::layout::{self, Descriptor, LayerKind, pack};
use crate::reference::ArtifactRef;
use crate::registry::{Registry, RegistryError, RetryPolicy};

/// Blobs transferred at the same time.
const CONCURRENT_BLOBS: usize = 4;

/// A file or directory to push, and the title it gets.
#[derive(Debug, Clone)]
pub struct PushSource {
    pub path: PathBuf,
    pub title: String,
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub plain_http: bool,
    pub retry: RetryPolicy,
}

impl Connection {
    /// The registry of `reference`, authenticated for `operation`.
    pub async fn open(
        &self,
        reference: &ArtifactRef,
        operation: Operation,
    ) -> Result<Registry, RegistryError> {
        Registry::connect(reference, operation, self.plain_http, self.retry).await
    }
}

/// Where a layer's bytes are on disk.
enum Blob {
    File(PathBuf),
    Packed(pack::Packed),
}

impl Blob {
    fn path(&self) -> &Path {
        match self {
            Blob::File(path) => path,
            Blob::Packed(packed) => packed.file.path(),
        }
    }
}

fn prepare(source: &PushSource, temp_dir: &Path) -> Result<(Descriptor, Blob)> {
    let meta = std::fs::metadata(&source.path)
        .with_context(|| format!("cannot push {}", source.path.display()))?;
    if meta.is_dir() {
        let packed = pack::pack_directory(&source.path, &source.title, temp_dir)?;
        tracing::debug!(
            path = %source.path.display(),
            digest = %packed.digest,
            size = packed.size,
            "packed directory"
        );
        Ok((
            layout::directory_descriptor(&source.title, &packed),
            Blob::Packed(packed),
        ))
    } else if meta.is_file() {
        let (digest, size) = pack::hash_file(&source.path)?;
        Ok((
            layout::file_descriptor(&source.title, digest, size),
            Blob::File(source.path.clone()),
        ))
    } else {
        bail!(
            "cannot push {}: not a file or a directory",
            source.path.display()
        )
    }
}

/// The manifest a push stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedManifest {
    pub digest: String,
    pub size: u64,
}

/// Push `sources` as the artifact `reference`; returns its manifest.
/// Directories are packed into temporary files in `temp_dir`.
pub async fn push(
    reference: &ArtifactRef,
    sources: &[PushSource],
    annotations: BTreeMap<String, String>,
    connection: &Connection,
    temp_dir: &Path,
) -> Result<PushedManifest> {
    if sources.is_empty() {
        bail!("nothing to push to {reference}");
    }
    let owned_sources = sources.to_vec();
    let temp = temp_dir.to_path_buf();
    let packing = tokio::task::spawn_blocking(move || {
        owned_sources
            .iter()
            .map(|source| prepare(source, &temp))
            .collect::<Result<Vec<_>>>()
    });
    let connecting = connection.open(reference, Operation::Push);
    let (layers, registry) = tokio::join!(packing, connecting);
    let layers = layers.context("the packing task failed")??;
    let registry = registry?;

    upload_missing_blobs(&registry, &layers).await?;
    let descriptors = layers.iter().map(|(d, _)| d.clone()).collect();
    let manifest = layout::build_manifest(descriptors, annotations);
    let body = serde_json::to_vec_pretty(&manifest).context("cannot serialize the manifest")?;
    let size = body.len() as u64;
    let digest = publish_manifest(&registry, &layers, body).await?;
    tracing::info!("pushed {reference} as {digest}");
    Ok(PushedManifest { digest, size })
}

/// Pushes the manifest of `layers`. When the registry collected garbage between their
/// upload and now (it refuses the manifest: blob unknown), they are uploaded again and
/// the manifest pushed once more.
async fn publish_manifest(
    registry: &Registry,
    layers: &[(Descriptor, Blob)],
    body: Vec<u8>,
) -> Result<String> {
    match registry
        .push_manifest(body.clone(), layout::MANIFEST_MEDIA_TYPE)
        .await
    {
        Err(RegistryError::BlobUnknown { .. }) => {
            tracing::warn!(
                "{}: the registry lost blobs of this push; uploading them again",
                registry.reference()
            );
            upload_missing_blobs(registry, layers).await?;
            Ok(registry
                .push_manifest(body, layout::MANIFEST_MEDIA_TYPE)
                .await?)
        }
        pushed => Ok(pushed?),
    }
}

/// Uploads the layers and the empty config the registry does not have yet.
async fn upload_missing_blobs(registry: &Registry, layers: &[(Descriptor, Blob)]) -> Result<()> {
    futures_util::stream::iter(layers.iter())
        .map(|(descriptor, blob)| async move {
            if registry.has_blob(&descriptor.digest).await? {
                tracing::debug!(digest = %descriptor.digest, "blob already in the registry");
                return Ok(());
            }
            tracing::info!(
                "pushing {} ({} bytes) to {}",
                descriptor.title().unwrap_or_default(),
                descriptor.size,
                registry.reference()
            );
            registry
                .push_blob_file(blob.path(), &descriptor.digest, descriptor.size)
                .await
        })
        .buffer_unordered(CONCURRENT_BLOBS)
        .try_collect::<Vec<()>>()
        .await?;
    registry
        .push_blob_if_missing(
            bytes::Bytes::from_static(layout::EMPTY_CONFIG),
            layout::EMPTY_CONFIG_DIGEST,
        )
        .await?;
    Ok(())
}

/// What a pull placed.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub digest: String,
    /// Paths relative to the target directory, in layer order.
    pub placed: Vec<PathBuf>,
}

/// Pull the artifact `reference` into `target` (created if missing).
pub async fn pull(
    reference: &ArtifactRef,
    target: &Path,
    unpack: bool,
    connection: &Connection,
) -> Result<Pulled> {
    let (registry, manifest, digest) = open_manifest(reference, connection).await?;
    std::fs::create_dir_all(target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let mut plan = Vec::new();
    for layer in &manifest.layers {
        let kind = layout::classify(layer, unpack).with_context(|| format!("{reference}"))?;
        match kind {
            LayerKind::Untitled => {
                tracing::warn!(
                    "{reference}: skipping layer {} without a title",
                    layer.digest
                )
            }
            kind => plan.push((layer, kind)),
        }
    }
    // Every file layer's place is checked before any blob is fetched, so a refused title
    // leaves the target as it was.
    for (_, kind) in &plan {
        if let LayerKind::File { title } = kind {
            layout::unpack::check_title(target, title).with_context(|| format!("{reference}"))?;
        }
    }
    let placed: Vec<Vec<PathBuf>> = futures_util::stream::iter(plan)
        .map(|(layer, kind)| {
            let registry = &registry;
            async move {
                tracing::info!(
                    "pulling {} ({} bytes) from {}",
                    layer.title().unwrap_or_default(),
                    layer.size,
                    registry.reference()
                );
                let temp = registry
                    .pull_blob_to_temp(
                        &layer.digest,
                        layer.size,
                        target,
                        layer.title().unwrap_or_default(),
                    )
                    .await?;
                let target = target.to_path_buf();
                let reference = reference.to_string();
                tokio::task::spawn_blocking(move || place(temp, &target, kind, &reference))
                    .await
                    .context("the unpacking task failed")?
            }
        })
        .buffered(CONCURRENT_BLOBS)
        .try_collect()
        .await?;
    Ok(Pulled {
        digest,
        placed: placed.into_iter().flatten().collect(),
    })
}

fn place(
    temp: tempfile::NamedTempFile,
    target: &Path,
    kind: LayerKind,
    reference: &str,
) -> Result<Vec<PathBuf>> {
    match kind {
        LayerKind::File { title } => {
            layout::unpack::place_file(temp, target, &title)
                .with_context(|| reference.to_string())?;
            Ok(vec![title])
        }
        LayerKind::Archive {
            title,
            content_digest,
        } => {
            let layer = format!("{} of {reference}", title.display());
            Ok(layout::unpack::extract_archive(
                temp.as_file(),
                target,
                &layer,
                content_digest.as_deref(),
            )?)
        }
        LayerKind::Untitled => Ok(Vec::new()),
    }
}

/// List the tags of the repository `reference`.
pub async fn tags(reference: &ArtifactRef, connection: &Connection) -> Result<Vec<String>> {
    let registry = connection.open(reference, Operation::Pull).await?;
    Ok(registry.list_tags().await?)
}

/// Reach the registry of `reference` for reading and fetch its image manifest.
async fn open_manifest(
    reference: &ArtifactRef,
    connection: &Connection,
) -> Result<(Registry, layout::Manifest, String)> {
    let registry = connection.open(reference, Operation::Pull).await?;
    let (body, digest) = registry
        .pull_manifest(&[
            layout::MANIFEST_MEDIA_TYPE,
            layout::DOCKER_MANIFEST_MEDIA_TYPE,
        ])
        .await?;
    let manifest = layout::parse_manifest(&body)
        .with_context(|| format!("{reference}: cannot read the manifest"))?;
    Ok((registry, manifest, digest))
}

/// The manifest of `reference` and its digest (for lineage and memoization).
pub async fn manifest_of(
    reference: &ArtifactRef,
    connection: &Connection,
) -> Result<(String, layout::Manifest)> {
    let (_, manifest, digest) = open_manifest(reference, connection).await?;
    Ok((digest, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distribution 2.8 (Debian's `docker-registry`): the layer is uploaded, the
    /// registry collects garbage before the manifest arrives (the blob has no tag yet,
    /// so it goes), and the manifest is refused. The push uploads the blob again.
    #[test]
    fn a_manifest_refused_after_a_collection_is_pushed_again_with_its_blobs() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut registry = oras_testkit::Registry::start().unwrap();
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("result.txt");
        std::fs::write(&file, b"the step's result\n").unwrap();
        let source = PushSource {
            path: file,
            title: "result.txt".into(),
        };
        let reference = ArtifactRef::parse(&registry.reference("steps/a:v1")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connection = Connection {
            plain_http: true,
            retry: RetryPolicy {
                budget: std::time::Duration::from_secs(5),
            },
        };
        let layers = vec![prepare(&source, work.path()).unwrap()];
        let body = serde_json::to_vec(&layout::build_manifest(
            layers.iter().map(|(d, _)| d.clone()).collect(),
            BTreeMap::new(),
        ))
        .unwrap();
        let connect = || connection.open(&reference, Operation::Push);
        let layer = layers[0].0.digest.clone();

        runtime.block_on(async {
            upload_missing_blobs(&connect().await.unwrap(), &layers)
                .await
                .unwrap();
        });
        let stored =
            |registry: &oras_testkit::Registry| registry.blob_data_path(&layer).unwrap().exists();
        assert!(stored(&registry), "uploaded");
        registry.stop();
        let collected = std::process::Command::new(oras_testkit::registry::REGISTRY_BINARY)
            .args(["garbage-collect", "--delete-untagged"])
            .arg(registry.config_path())
            .output()
            .unwrap();
        assert!(collected.status.success());
        registry.restart().unwrap();
        assert!(!stored(&registry), "collected");

        let refused = runtime.block_on(async {
            connect()
                .await
                .unwrap()
                .push_manifest(body.clone(), layout::MANIFEST_MEDIA_TYPE)
                .await
        });
        assert!(
            matches!(refused, Err(RegistryError::BlobUnknown { .. })),
            "{refused:?}"
        );
        let expected = crate::registry::sha256_digest(&body);
        let digest = runtime
            .block_on(async { publish_manifest(&connect().await.unwrap(), &layers, body).await })
            .unwrap();
        assert_eq!(digest, expected);
        assert!(stored(&registry), "uploaded again");
        let stored = registry.manifest("steps/a", "v1").unwrap().unwrap();
        assert_eq!(stored["layers"][0]["digest"], layer);
    }
}
