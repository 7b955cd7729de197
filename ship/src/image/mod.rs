//! A static binary as an OCI image, without a container engine: one gzip layer holding
//! the binary under `/usr/local/bin`, an image config that runs it as 65532:65532, one
//! manifest per platform, and an index over the platforms.

pub mod binary;
pub mod ca_bundle;
pub mod platform;
pub mod push;

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};
use oci_client::manifest::{
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE, ImageIndexEntry,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciImageIndex, OciImageManifest,
};
use oci_spec::image::{
    ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, Os, RootFsBuilder,
};

use crate::archive::{self, Entry};
use crate::build_info::{BuildInfo, TITLE};
use crate::canonical_json;
use crate::registry::{Blob, sha256_digest};
use platform::Platform;

/// The unprivileged user and group every image runs as (the Deployment's and the
/// policy's `runAsUser`).
pub const USER: &str = "65532:65532";
/// Where the binary lives in the image, without the leading `/`.
pub const BIN_DIR: &str = "usr/local/bin";
/// The policy runs the agent as `oras-agent`: without PATH that lookup is left to the
/// container runtime's default.
const PATH: &str = "PATH=/usr/local/bin";

/// An image the project ships: named after its binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub exposed_ports: &'static [&'static str],
    /// Whether the image carries a CA bundle ([`ca_bundle::PATH`]).
    pub ca_bundle: bool,
}

pub const KINDS: &[Kind] = &[
    // The agent talks HTTPS to registries, and its TLS stack refuses to make any client,
    // even a plain-HTTP one, where the system has no root certificate.
    Kind {
        name: "oras-agent",
        exposed_ports: &[],
        ca_bundle: true,
    },
    // The controller trusts the cluster's CA only, which Kubernetes mounts.
    Kind {
        name: "oras-controller",
        exposed_ports: &["8080/tcp"],
        ca_bundle: false,
    },
];

/// The image kind of the binary called `name`.
pub fn kind(name: &str) -> Result<Kind> {
    match KINDS.iter().find(|kind| kind.name == name) {
        Some(kind) => Ok(*kind),
        None => {
            let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
            bail!(
                "no image is made of a binary called {name:?}: the images are {}",
                known.join(", ")
            )
        }
    }
}

impl Kind {
    /// The path the binary has in the image.
    pub fn entrypoint(&self) -> String {
        format!("/{BIN_DIR}/{}", self.name)
    }
}

/// One platform's image, ready to push: its layer, config and manifest.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    pub layer: Blob,
    pub config: Blob,
    pub manifest: Blob,
}

/// The image of `kind` for `platform`, holding `binary` (checked first).
pub fn assemble(
    kind: Kind,
    platform: Platform,
    binary: Vec<u8>,
    info: &BuildInfo,
) -> Result<PlatformImage> {
    binary::check_static_binary(kind.name, &binary, platform)?;
    let mut entries = Vec::new();
    if kind.ca_bundle {
        entries.extend(archive::parents(ca_bundle::PATH));
        entries.push(Entry::File {
            path: ca_bundle::PATH.into(),
            mode: 0o644,
            data: ca_bundle::pem().into_bytes(),
        });
    }
    let path = format!("{BIN_DIR}/{}", kind.name);
    entries.extend(archive::parents(&path));
    entries.push(Entry::File {
        path,
        mode: 0o755,
        data: binary,
    });
    // Checked in BuildInfo::new: not negative.
    let mtime = u64::try_from(info.epoch).unwrap_or_default();
    let tar = archive::tar(&entries, mtime)?;
    let layer = Blob::new(IMAGE_LAYER_GZIP_MEDIA_TYPE, archive::gzip(&tar)?);
    let config = Blob::new(
        IMAGE_CONFIG_MEDIA_TYPE,
        image_config(kind, platform, &sha256_digest(&tar), info)?,
    );
    let manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
        config: config.descriptor(),
        layers: vec![layer.descriptor()],
        annotations: Some(annotations(kind, info)),
        ..OciImageManifest::default()
    };
    let manifest = Blob::new(OCI_IMAGE_MEDIA_TYPE, canonical_json(&manifest)?);
    Ok(PlatformImage {
        platform,
        layer,
        config,
        manifest,
    })
}

fn annotations(kind: Kind, info: &BuildInfo) -> BTreeMap<String, String> {
    let mut annotations = info.annotations();
    annotations.insert(TITLE.to_string(), kind.name.to_string());
    annotations
}

/// The image config: user, PATH, entrypoint, ports, labels, and the one layer's
/// uncompressed digest.
fn image_config(
    kind: Kind,
    platform: Platform,
    diff_id: &str,
    info: &BuildInfo,
) -> Result<Vec<u8>> {
    let labels: HashMap<String, String> = annotations(kind, info).into_iter().collect();
    let mut run = ConfigBuilder::default()
        .user(USER)
        .env(vec![PATH.to_string()])
        .entrypoint(vec![kind.entrypoint()])
        .labels(labels);
    if !kind.exposed_ports.is_empty() {
        run = run.exposed_ports(
            kind.exposed_ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
        );
    }
    let mut config = ImageConfigurationBuilder::default()
        .created(info.created())
        .architecture(platform.architecture())
        .os(Os::Linux)
        .config(run.build()?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.to_string()])
                .build()?,
        )
        .history(vec![
            HistoryBuilder::default()
                .created(info.created())
                .created_by(format!("ship push-images: {}", kind.entrypoint()))
                .build()?,
        ]);
    if let Some(variant) = platform.variant() {
        config = config.variant(variant);
    }
    canonical_json(&config.build()?)
}

/// The index over `images` (one per platform, in platform order).
pub fn index(kind: Kind, images: &[PlatformImage], info: &BuildInfo) -> Result<Blob> {
    let mut ordered: Vec<&PlatformImage> = images.iter().collect();
    ordered.sort_by_key(|image| image.platform);
    if ordered.is_empty() || ordered.windows(2).any(|w| w[0].platform == w[1].platform) {
        bail!("{}: give each platform's binary once", kind.name);
    }
    let manifests = ordered
        .into_iter()
        .map(|image| ImageIndexEntry {
            media_type: OCI_IMAGE_MEDIA_TYPE.to_string(),
            digest: image.manifest.digest().to_string(),
            size: image.manifest.data().len() as i64,
            platform: Some(image.platform.in_index()),
            annotations: None,
            artifact_type: None,
        })
        .collect();
    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_string()),
        manifests,
        artifact_type: None,
        annotations: Some(annotations(kind, info)),
    };
    Ok(Blob::new(
        OCI_IMAGE_INDEX_MEDIA_TYPE,
        canonical_json(&index).context("cannot write the image index")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_binaries_are_refused_with_the_known_names() {
        let error = kind("oras").unwrap_err().to_string();
        assert_eq!(
            error,
            "no image is made of a binary called \"oras\": the images are oras-agent, oras-controller"
        );
        assert_eq!(
            kind("oras-agent").unwrap().entrypoint(),
            "/usr/local/bin/oras-agent"
        );
    }
}
