//! The artifact layout: what `oras push` writes and `oras pull` reads. The only place
//! that knows tar, gzip and the ORAS annotations.
//!
//! An OCI image manifest with the empty config; one layer per file, titled by
//! `org.opencontainers.image.title`; a directory is one tar+gzip layer whose entries are
//! prefixed by the title, annotated with the digest of the uncompressed tar and
//! `io.deis.oras.content.unpack: "true"`.
//!
//! In the image format ([`Format::Image`]) the config is an image config and a file is
//! a tar+gzip layer too, holding one entry named by the title, so that the artifact is
//! also a container image whose root filesystem is the pushed files.

pub mod beneath;
pub mod image;
pub mod pack;
pub mod unpack;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker's manifest type, accepted on pull.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What `oras push` sets when no artifact type is given.
pub const ARTIFACT_TYPE: &str = "application/vnd.unknown.artifact.v1";
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// `{}` in base64, inlined in the config descriptor as `oras push` does.
pub const EMPTY_CONFIG_DATA: &str = "e30=";
/// Media type of a file layer (the `oras push` default).
pub const FILE_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of a directory layer.
pub const DIRECTORY_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
pub const CONTENT_DIGEST_ANNOTATION: &str = "io.deis.oras.content.digest";
pub const UNPACK_ANNOTATION: &str = "io.deis.oras.content.unpack";
/// Marks a tar+gzip layer that carries one file (the image format): pull places the
/// file even when directory archives are kept packed.
pub const PACKED_FILE_ANNOTATION: &str = "oras.converged-computing.github.io/packed-file";

/// How a push lays out its artifact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// What `oras push` writes: the empty config, a file as its raw bytes.
    #[default]
    Oras,
    /// An ORAS artifact that is also a valid container image (see [`image`]).
    Image,
}

/// The config blob of a manifest and its media type.
#[derive(Debug, Clone)]
pub struct Config {
    pub media_type: String,
    pub body: bytes::Bytes,
}

impl Config {
    /// The empty config of ORAS artifacts.
    pub fn empty() -> Self {
        Self {
            media_type: EMPTY_CONFIG_MEDIA_TYPE.to_string(),
            body: bytes::Bytes::from_static(EMPTY_CONFIG),
        }
    }

    /// An image config (see [`image::config_for`]).
    pub fn image(body: Vec<u8>) -> Self {
        Self {
            media_type: image::CONFIG_MEDIA_TYPE.to_string(),
            body: body.into(),
        }
    }

    pub fn digest(&self) -> String {
        crate::registry::sha256_digest(&self.body)
    }

    fn is_empty_config(&self) -> bool {
        self.media_type == EMPTY_CONFIG_MEDIA_TYPE
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one is about (a referrer, such as an attestation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn title(&self) -> Option<&str> {
        self.annotations.get(TITLE_ANNOTATION).map(String::as_str)
    }
}

/// The manifest `oras push` writes for these layers. `annotations` are the user's; the
/// creation time is added unless given.
pub fn build_manifest(layers: Vec<Descriptor>, annotations: BTreeMap<String, String>) -> Manifest {
    build_manifest_with(&Config::empty(), layers, annotations)
}

/// The manifest of `layers` with `config`. With the empty config it is an artifact
/// (`artifactType` set, the config inlined, as `oras push` does); with an image config
/// it is an image, which has no artifact type.
pub fn build_manifest_with(
    config: &Config,
    layers: Vec<Descriptor>,
    mut annotations: BTreeMap<String, String>,
) -> Manifest {
    annotations
        .entry(CREATED_ANNOTATION.to_string())
        .or_insert_with(now_rfc3339);
    let empty = config.is_empty_config();
    Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.to_string()),
        artifact_type: empty.then(|| ARTIFACT_TYPE.to_string()),
        config: Descriptor {
            media_type: config.media_type.clone(),
            digest: config.digest(),
            size: config.body.len() as u64,
            data: empty.then(|| EMPTY_CONFIG_DATA.to_string()),
            annotations: BTreeMap::new(),
        },
        layers,
        subject: None,
        annotations,
    }
}

/// The creation time as `oras push` writes it (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The descriptor of a file layer.
pub fn file_descriptor(title: &str, digest: String, size: u64) -> Descriptor {
    Descriptor {
        media_type: FILE_MEDIA_TYPE.to_string(),
        digest,
        size,
        data: None,
        annotations: BTreeMap::from([(TITLE_ANNOTATION.to_string(), title.to_string())]),
    }
}

/// The descriptor of a directory layer: the packed blob's `digest` and `size`, and the
/// digest of its uncompressed tar.
pub fn directory_descriptor(
    title: &str,
    digest: String,
    size: u64,
    content_digest: String,
) -> Descriptor {
    Descriptor {
        media_type: DIRECTORY_MEDIA_TYPE.to_string(),
        digest,
        size,
        data: None,
        annotations: BTreeMap::from([
            (TITLE_ANNOTATION.to_string(), title.to_string()),
            (CONTENT_DIGEST_ANNOTATION.to_string(), content_digest),
            (UNPACK_ANNOTATION.to_string(), "true".to_string()),
        ]),
    }
}

/// The descriptor of a file packed as a one-entry tar+gzip layer (the image format):
/// the blob's `digest` and `size`, and the digest of its uncompressed tar.
pub fn packed_file_descriptor(
    title: &str,
    digest: String,
    size: u64,
    content_digest: String,
) -> Descriptor {
    let mut descriptor = directory_descriptor(title, digest, size, content_digest);
    descriptor
        .annotations
        .insert(PACKED_FILE_ANNOTATION.to_string(), "true".to_string());
    descriptor
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("media type {0:?} is not an image manifest (an index or another kind of document)")]
    NotAManifest(String),
}

/// Parse a pulled manifest; refuses indexes.
pub fn parse_manifest(body: &[u8]) -> Result<Manifest, ManifestError> {
    let manifest: Manifest = serde_json::from_slice(body)?;
    match manifest.media_type.as_deref() {
        None | Some(MANIFEST_MEDIA_TYPE) | Some(DOCKER_MANIFEST_MEDIA_TYPE) => Ok(manifest),
        Some(other) => Err(ManifestError::NotAManifest(other.to_string())),
    }
}

/// What pull does with a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerKind {
    /// Write the blob as the file named by the title.
    File { title: PathBuf },
    /// Unpack the tar+gzip blob into the target directory.
    Archive {
        title: PathBuf,
        content_digest: Option<String>,
    },
    /// No title: `oras pull` skips such layers too.
    Untitled,
}

/// Decide how to pull `layer`. A tar+gzip layer is unpacked with or without the unpack
/// annotation (the ORAS Python SDK does not set it), unless `unpack` is false and it
/// holds a directory (a packed file is always unpacked: it is a file, not an archive).
pub fn classify(layer: &Descriptor, unpack: bool) -> Result<LayerKind, TitleError> {
    let Some(title) = layer.title() else {
        return Ok(LayerKind::Untitled);
    };
    let title_path = safe_relative_path(title)?;
    let marked = layer.annotations.get(UNPACK_ANNOTATION).map(String::as_str) == Some("true");
    let gzip_tar = layer.media_type.ends_with("tar+gzip") || layer.media_type.ends_with("tar.gzip");
    let packed_file = layer
        .annotations
        .get(PACKED_FILE_ANNOTATION)
        .map(String::as_str)
        == Some("true");
    if (unpack || packed_file) && (marked || gzip_tar) {
        Ok(LayerKind::Archive {
            title: title_path,
            content_digest: layer.annotations.get(CONTENT_DIGEST_ANNOTATION).cloned(),
        })
    } else if marked || gzip_tar {
        let mut name = title_path.into_os_string();
        name.push(".tar.gz");
        Ok(LayerKind::File { title: name.into() })
    } else {
        Ok(LayerKind::File { title: title_path })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("title {title:?} would land outside the target directory ({reason})")]
pub struct TitleError {
    pub title: String,
    pub reason: &'static str,
}

/// A path made only of normal components: no root, no `..`, not empty.
pub fn safe_relative_path(text: &str) -> Result<PathBuf, TitleError> {
    let refuse = |reason| TitleError {
        title: text.to_string(),
        reason,
    };
    let mut clean = PathBuf::new();
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("it contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("it is absolute")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(refuse("it is empty"));
    }
    Ok(clean)
}

/// The title a pushed path gets: the path as written when it is relative and clean
/// (as `oras push` does), else its file name.
pub fn title_for(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    match safe_relative_path(text) {
        Ok(clean) => clean.to_str().map(String::from),
        Err(_) => path
            .canonicalize()
            .ok()?
            .file_name()?
            .to_str()
            .map(String::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_has_the_oras_shape() {
        let manifest = build_manifest(
            vec![file_descriptor("a.txt", "sha256:00".into(), 3)],
            BTreeMap::new(),
        );
        let json = serde_json::to_value(&manifest).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(json["artifactType"], ARTIFACT_TYPE);
        assert_eq!(json["config"]["mediaType"], EMPTY_CONFIG_MEDIA_TYPE);
        assert_eq!(json["config"]["digest"], EMPTY_CONFIG_DIGEST);
        assert_eq!(json["config"]["size"], 2);
        assert_eq!(json["config"]["data"], "e30=");
        assert_eq!(json["layers"][0]["annotations"][TITLE_ANNOTATION], "a.txt");
        assert!(
            json["annotations"][CREATED_ANNOTATION]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(
            crate::registry::sha256_digest(EMPTY_CONFIG),
            EMPTY_CONFIG_DIGEST
        );
    }

    #[test]
    fn index_is_refused() {
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"config":{"mediaType":"x","digest":"d","size":0}}"#;
        assert!(parse_manifest(body).is_err());
    }

    #[test]
    fn classify_follows_annotations_and_media_type() {
        let mut layer = file_descriptor("dir", "sha256:00".into(), 1);
        assert_eq!(
            classify(&layer, true).unwrap(),
            LayerKind::File {
                title: "dir".into()
            }
        );
        layer.media_type = DIRECTORY_MEDIA_TYPE.into();
        assert!(matches!(
            classify(&layer, true).unwrap(),
            LayerKind::Archive { .. }
        ));
        assert_eq!(
            classify(&layer, false).unwrap(),
            LayerKind::File {
                title: "dir.tar.gz".into()
            }
        );
        layer.annotations.clear();
        assert_eq!(classify(&layer, true).unwrap(), LayerKind::Untitled);

        let packed = packed_file_descriptor("r.txt", "sha256:00".into(), 1, "sha256:01".into());
        let unpacked = LayerKind::Archive {
            title: "r.txt".into(),
            content_digest: Some("sha256:01".into()),
        };
        assert_eq!(classify(&packed, true).unwrap(), unpacked);
        assert_eq!(classify(&packed, false).unwrap(), unpacked);
    }

    #[test]
    fn an_image_manifest_has_no_artifact_type_and_does_not_inline_its_config() {
        let config = Config::image(br#"{"rootfs":{}}"#.to_vec());
        let manifest = build_manifest_with(&config, vec![], BTreeMap::new());
        let json = serde_json::to_value(&manifest).unwrap();
        assert!(json.get("artifactType").is_none(), "{json}");
        assert_eq!(json["config"]["mediaType"], image::CONFIG_MEDIA_TYPE);
        assert_eq!(json["config"]["digest"], config.digest());
        assert!(json["config"].get("data").is_none(), "{json}");
    }

    #[test]
    fn unsafe_titles_are_refused() {
        for title in ["../x", "/etc/passwd", "a/../../b", "", "."] {
            assert!(safe_relative_path(title).is_err(), "{title}");
        }
        assert_eq!(safe_relative_path("./a/b").unwrap(), PathBuf::from("a/b"));
    }
}
