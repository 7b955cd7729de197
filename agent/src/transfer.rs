//! Whole artifacts: push a list of files and directories as one artifact, pull an
//! artifact into a directory. Composes the layout (what goes in a blob) and the registry
//! client (how a blob travels); used by the user commands and by the pod roles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};

use crate::credentials::Operation;
use crate::layout::{self, Config, Descriptor, Format, LayerKind, image, pack};
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
    /// A small file, hashed (and packed, in the image format) already.
    Small(PathBuf),
    /// A larger file, streamed from disk.
    File(PathBuf),
    /// A directory, packed while it streams.
    Directory(PathBuf),
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
    /// A file goes as a one-entry tar+gzip (the image format) rather than as its bytes.
    packed: bool,
    /// Known before the upload for small files, after it for the others.
    descriptor: Option<Descriptor>,
}

/// The blob of a small file of `size` bytes: its bytes, or with `packed_as` a one-entry
/// tar+gzip of it under that name, with the digest of the tar.
fn small_blob(
    path: &Path,
    size: u64,
    packed_as: Option<&str>,
) -> Result<(Vec<u8>, Option<String>)> {
    let Some(name) = packed_as else {
        return Ok((read_small_file(path, size)?, None));
    };
    let mut blob = Vec::with_capacity(size as usize / 2 + 1024);
    let content_digest = pack::pack_file_into(path, name, &mut blob)?;
    Ok((blob, Some(content_digest)))
}

impl Layer {
    /// The name a packed file gets in its tar.
    fn packed_as(&self) -> Option<&str> {
        self.packed.then_some(self.title.as_str())
    }

    /// The descriptor of this layer's blob.
    fn describe(&self, digest: String, size: u64, content_digest: Option<String>) -> Descriptor {
        match (&self.blob, content_digest) {
            (Blob::Directory(_), Some(content)) => {
                layout::directory_descriptor(&self.title, digest, size, content)
            }
            (_, Some(content)) => {
                layout::packed_file_descriptor(&self.title, digest, size, content)
            }
            (_, None) => layout::file_descriptor(&self.title, digest, size),
        }
    }
}

fn prepare(source: &PushSource, format: Format) -> Result<Layer> {
    let meta = std::fs::metadata(&source.path)
        .with_context(|| format!("cannot push {}", source.path.display()))?;
    let mut layer = Layer {
        title: source.title.clone(),
        blob: Blob::Directory(source.path.clone()),
        packed: format == Format::Image,
        descriptor: None,
    };
    if meta.is_dir() {
        return Ok(layer);
    }
    if meta.is_file() && meta.len() <= SMALL_FILE {
        let (data, content_digest) = small_blob(&source.path, meta.len(), layer.packed_as())?;
        let digest = crate::registry::sha256_digest(&data);
        layer.blob = Blob::Small(source.path.clone());
        layer.descriptor = Some(layer.describe(digest, data.len() as u64, content_digest));
        Ok(layer)
    } else if meta.is_file() {
        layer.blob = Blob::File(source.path.clone());
        Ok(layer)
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

/// Push `sources` as the artifact `reference` laid out in `format`; returns its
/// manifest. Small files are read while the registry is reached; a source that cannot
/// be read fails the push at once.
pub async fn push(
    reference: &ArtifactRef,
    sources: &[PushSource],
    annotations: BTreeMap<String, String>,
    format: Format,
    connection: &Connection,
) -> Result<PushedManifest> {
    if sources.is_empty() {
        bail!("nothing to push to {reference}");
    }
    let connecting =
        async { Ok::<_, anyhow::Error>(connection.open(reference, Operation::Push).await?) };
    let (layers, registry) = tokio::try_join!(prepare_all(sources, format), connecting)?;
    push_layers(&registry, layers, annotations, format).await
}

/// Push `sources` as the artifact of `registry`'s reference, through a registry
/// already reached (the sidecar reaches it while the application runs).
pub async fn push_to(
    registry: &Registry,
    sources: &[PushSource],
    annotations: BTreeMap<String, String>,
    format: Format,
) -> Result<PushedManifest> {
    if sources.is_empty() {
        bail!("nothing to push to {}", registry.reference());
    }
    let layers = prepare_all(sources, format).await?;
    push_layers(registry, layers, annotations, format).await
}

async fn prepare_all(sources: &[PushSource], format: Format) -> Result<Vec<Layer>> {
    let sources = sources.to_vec();
    tokio::task::spawn_blocking(move || {
        sources
            .iter()
            .map(|source| prepare(source, format))
            .collect::<Result<Vec<_>>>()
    })
    .await
    .context("the reading task failed")?
}

async fn push_layers(
    registry: &Registry,
    mut layers: Vec<Layer>,
    mut annotations: BTreeMap<String, String>,
    format: Format,
) -> Result<PushedManifest> {
    upload_layers(registry, &mut layers).await?;
    let descriptors = layers
        .iter()
        .map(|layer| layer.descriptor.clone())
        .collect::<Option<Vec<_>>>()
        .context("a layer has no descriptor after its upload")?;
    let created = annotations
        .entry(layout::CREATED_ANNOTATION.to_string())
        .or_insert_with(layout::now_rfc3339)
        .clone();
    let config = match format {
        Format::Oras => Config::empty(),
        Format::Image => Config::image(image::config_for(&descriptors, Some(&created))?),
    };
    upload_config(registry, &config).await?;
    let manifest = layout::build_manifest_with(&config, descriptors, annotations);
    let body = serde_json::to_vec_pretty(&manifest).context("cannot serialize the manifest")?;
    let size = body.len() as u64;
    let digest = publish_manifest(registry, &mut layers, &config, body).await?;
    tracing::info!("pushed {} as {digest}", registry.reference());
    Ok(PushedManifest { digest, size })
}

/// Pushes the manifest of `layers`. When the registry collected garbage between their
/// upload and now (it refuses the manifest: blob unknown), they are uploaded again
/// (and must read back to the same digests) and the manifest pushed once more.
async fn publish_manifest(
    registry: &Registry,
    layers: &mut [Layer],
    config: &Config,
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
            upload_config(registry, config).await?;
            Ok(registry
                .push_manifest(body, layout::MANIFEST_MEDIA_TYPE)
                .await?)
        }
        pushed => Ok(pushed?),
    }
}

async fn upload_config(registry: &Registry, config: &Config) -> Result<()> {
    registry
        .push_blob_if_missing(config.body.clone(), &config.digest())
        .await?;
    Ok(())
}

/// Uploads the layers (small ones unless the registry has them); fills in the
/// descriptors of the layers streamed. A layer that has a descriptor already must
/// upload to that same digest.
async fn upload_layers(registry: &Registry, layers: &mut [Layer]) -> Result<()> {
    futures_util::stream::iter(layers.iter_mut())
        .map(|layer| upload_layer(registry, layer))
        .buffer_unordered(CONCURRENT_BLOBS)
        .try_collect::<Vec<()>>()
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
            let size = std::fs::metadata(path)
                .with_context(|| format!("cannot push {}", path.display()))?
                .len();
            let (reading, packed_as) = (path.clone(), layer.packed_as().map(String::from));
            let data = tokio::task::spawn_blocking(move || {
                small_blob(&reading, size, packed_as.as_deref())
            })
            .await
            .context("the reading task failed")??
            .0;
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
            let descriptor = if layer.packed {
                let name = title.clone();
                let (digest, size, content_digest) = registry
                    .push_blob_streamed(&title, None, expected.as_deref(), move |sink| {
                        pack::pack_file_into(&path, &name, sink)
                    })
                    .await?;
                layer.describe(digest, size, Some(content_digest))
            } else {
                let (digest, size, ()) = registry
                    .push_blob_streamed(&title, Some(size), expected.as_deref(), move |sink| {
                        pack::read_file_into(&path, sink).map(|_| ())
                    })
                    .await?;
                layer.describe(digest, size, None)
            };
            layer.descriptor = Some(descriptor);
        }
        Blob::Directory(path) => {
            tracing::info!("pushing {title} (a directory) to {}", registry.reference());
            let (path, name) = (path.clone(), title.clone());
            let (digest, size, content_digest) = registry
                .push_blob_streamed(&title, None, expected.as_deref(), move |sink| {
                    pack::pack_directory_into(&path, &name, sink)
                })
                .await?;
            tracing::debug!(%digest, size, "packed and pushed the directory");
            layer.descriptor = Some(layer.describe(digest, size, Some(content_digest)));
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
                &title,
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
        let mut layers = vec![prepare(&source, Format::Oras).unwrap()];
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
                publish_manifest(
                    &connect().await.unwrap(),
                    &mut layers,
                    &Config::empty(),
                    body,
                )
                .await
            })
            .unwrap();
        assert_eq!(digest, expected);
        assert!(stored(&registry), "uploaded again");
        let stored = registry.manifest("steps/a", "v1").unwrap().unwrap();
        assert_eq!(stored["layers"][0]["digest"], layer);
    }
}
