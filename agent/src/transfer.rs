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

/// Files up to this size are hashed before the upload: their digest is then known
/// first, so a blob the registry already has costs one `HEAD` and is not sent again;
/// when it must be sent, the file is read a second time (into memory, checked against
/// that digest). Larger files and directories are read once, hashed while they stream,
/// and always sent: knowing their digest first would mean reading them twice. At 1 MiB
/// the second read costs well under a millisecond, and the memory of the uploads in
/// flight stays a few MiB.
const SMALL_FILE: u64 = 1 << 20;

/// How a layer's bytes are read.
enum Blob {
    /// A small file, hashed already.
    Small(PathBuf),
    /// A larger file, streamed from disk.
    File(PathBuf),
    /// A directory, packed while it streams.
    Directory { path: PathBuf, title: String },
}

/// A file of at most [`SMALL_FILE`] bytes, read whole; refused if it is no longer
/// `size` bytes or changes while it is read.
fn read_small_file(path: &Path, size: u64) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(size as usize);
    let read = pack::read_file_into(path, &mut data)?;
    if read != size {
        bail!(
            "{} changed since it was hashed ({read} bytes, was {size}): refused, nothing published",
            path.display()
        );
    }
    Ok(data)
}

/// A layer before its upload: small files are hashed (and so known) already.
struct Layer {
    title: String,
    blob: Blob,
    /// Known before the upload for small files, after it for the others.
    descriptor: Option<Descriptor>,
}

fn prepare(source: &PushSource) -> Result<Layer> {
    let meta = std::fs::metadata(&source.path)
        .with_context(|| format!("cannot push {}", source.path.display()))?;
    let title = source.title.clone();
    if meta.is_dir() {
        Ok(Layer {
            title,
            blob: Blob::Directory {
                path: source.path.clone(),
                title: source.title.clone(),
            },
            descriptor: None,
        })
    } else if meta.is_file() && meta.len() <= SMALL_FILE {
        let data = read_small_file(&source.path, meta.len())?;
        let digest = crate::registry::sha256_digest(&data);
        let descriptor = layout::file_descriptor(&title, digest, data.len() as u64);
        Ok(Layer {
            title,
            blob: Blob::Small(source.path.clone()),
            descriptor: Some(descriptor),
        })
    } else if meta.is_file() {
        Ok(Layer {
            title,
            blob: Blob::File(source.path.clone()),
            descriptor: None,
        })
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

/// Push `sources` as the artifact `reference`; returns its manifest. Small files are
/// read while the registry is reached; a source that cannot be read fails the push
/// at once.
pub async fn push(
    reference: &ArtifactRef,
    sources: &[PushSource],
    annotations: BTreeMap<String, String>,
    connection: &Connection,
) -> Result<PushedManifest> {
    if sources.is_empty() {
        bail!("nothing to push to {reference}");
    }
    let connecting =
        async { Ok::<_, anyhow::Error>(connection.open(reference, Operation::Push).await?) };
    let (layers, registry) = tokio::try_join!(prepare_all(sources), connecting)?;
    push_layers(&registry, layers, annotations).await
}

/// Push `sources` as the artifact of `registry`'s reference, through a registry
/// already reached (the sidecar reaches it while the application runs).
pub async fn push_to(
    registry: &Registry,
    sources: &[PushSource],
    annotations: BTreeMap<String, String>,
) -> Result<PushedManifest> {
    if sources.is_empty() {
        bail!("nothing to push to {}", registry.reference());
    }
    let layers = prepare_all(sources).await?;
    push_layers(registry, layers, annotations).await
}

async fn prepare_all(sources: &[PushSource]) -> Result<Vec<Layer>> {
    let sources = sources.to_vec();
    tokio::task::spawn_blocking(move || sources.iter().map(prepare).collect::<Result<Vec<_>>>())
        .await
        .context("the reading task failed")?
}

async fn push_layers(
    registry: &Registry,
    mut layers: Vec<Layer>,
    annotations: BTreeMap<String, String>,
) -> Result<PushedManifest> {
    upload_layers(registry, &mut layers).await?;
    let descriptors = layers
        .iter()
        .map(|layer| layer.descriptor.clone())
        .collect::<Option<Vec<_>>>()
        .context("a layer has no descriptor after its upload")?;
    let manifest = layout::build_manifest(descriptors, annotations);
    let body = serde_json::to_vec_pretty(&manifest).context("cannot serialize the manifest")?;
    let size = body.len() as u64;
    let digest = publish_manifest(registry, &mut layers, body).await?;
    tracing::info!("pushed {} as {digest}", registry.reference());
    Ok(PushedManifest { digest, size })
}

/// Pushes the manifest of `layers`. When the registry collected garbage between their
/// upload and now (it refuses the manifest: blob unknown), they are uploaded again
/// (and must read back to the same digests) and the manifest pushed once more.
async fn publish_manifest(
    registry: &Registry,
    layers: &mut [Layer],
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
            upload_layers(registry, layers).await?;
            Ok(registry
                .push_manifest(body, layout::MANIFEST_MEDIA_TYPE)
                .await?)
        }
        pushed => Ok(pushed?),
    }
}

/// Uploads the layers (small ones unless the registry has them) and the empty config;
/// fills in the descriptors of the layers streamed. A layer that has a descriptor
/// already must upload to that same digest.
async fn upload_layers(registry: &Registry, layers: &mut [Layer]) -> Result<()> {
    futures_util::stream::iter(layers.iter_mut())
        .map(|layer| upload_layer(registry, layer))
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

async fn upload_layer(registry: &Registry, layer: &mut Layer) -> Result<()> {
    let expected = layer.descriptor.as_ref().map(|d| d.digest.clone());
    let title = layer.title.clone();
    match &layer.blob {
        Blob::Small(path) => {
            let Some(descriptor) = &layer.descriptor else {
                bail!("{title}: a small file without its digest");
            };
            let digest = &descriptor.digest;
            if registry.has_blob(digest).await? {
                tracing::debug!(%digest, "blob already in the registry");
                return Ok(());
            }
            tracing::info!(
                "pushing {title} ({} bytes) to {}",
                descriptor.size,
                registry.reference()
            );
            let (reading, size) = (path.clone(), descriptor.size);
            let data = tokio::task::spawn_blocking(move || read_small_file(&reading, size))
                .await
                .context("the reading task failed")??;
            let actual = crate::registry::sha256_digest(&data);
            if &actual != digest {
                bail!(
                    "{} changed since it was hashed (now {actual}, was {digest}): refused, nothing published",
                    path.display()
                );
            }
            registry.push_blob_bytes(data.into(), digest).await?;
        }
        Blob::File(path) => {
            let size = std::fs::metadata(path)
                .with_context(|| format!("cannot push {}", path.display()))?
                .len();
            tracing::info!("pushing {title} ({size} bytes) to {}", registry.reference());
            let path = path.clone();
            let (digest, size, ()) = registry
                .push_blob_streamed(&title, Some(size), expected.as_deref(), move |sink| {
                    pack::read_file_into(&path, sink).map(|_| ())
                })
                .await?;
            layer.descriptor = Some(layout::file_descriptor(&title, digest, size));
        }
        Blob::Directory { path, title: name } => {
            tracing::info!("pushing {title} (a directory) to {}", registry.reference());
            let (path, name) = (path.clone(), name.clone());
            let (digest, size, content_digest) = registry
                .push_blob_streamed(&title, None, expected.as_deref(), move |sink| {
                    pack::pack_directory_into(&path, &name, sink)
                })
                .await?;
            tracing::debug!(%digest, size, "packed and pushed the directory");
            layer.descriptor = Some(layout::directory_descriptor(
                &title,
                digest,
                size,
                content_digest,
            ));
        }
    }
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
            retry: RetryPolicy::with_budget(std::time::Duration::from_secs(5)),
        };
        let mut layers = vec![prepare(&source).unwrap()];
        let body = serde_json::to_vec(&layout::build_manifest(
            layers.iter().flat_map(|l| l.descriptor.clone()).collect(),
            BTreeMap::new(),
        ))
        .unwrap();
        let connect = || connection.open(&reference, Operation::Push);
        let layer = layers[0].descriptor.clone().unwrap().digest;

        runtime.block_on(async {
            upload_layers(&connect().await.unwrap(), &mut layers)
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
            .block_on(async {
                publish_manifest(&connect().await.unwrap(), &mut layers, body).await
            })
            .unwrap();
        assert_eq!(digest, expected);
        assert!(stored(&registry), "uploaded again");
        let stored = registry.manifest("steps/a", "v1").unwrap().unwrap();
        assert_eq!(stored["layers"][0]["digest"], layer);
    }
}
