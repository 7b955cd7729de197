//! What makes an artifact a container image as well: an image config whose
//! `rootfs.diff_ids` are the digests of the uncompressed layer tars, in layer order.
//! Image volumes (KEP-4639) on containerd mount only such artifacts; the ORAS view
//! (titles, unpack annotations) stays on the layers.

use oci_client::config::{Architecture, ConfigFile, Os, Rootfs};

use super::{CONTENT_DIGEST_ANNOTATION, Descriptor};

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "layer {title:?} has no {CONTENT_DIGEST_ANNOTATION} annotation: an image layer needs its uncompressed digest"
    )]
    NoDiffId { title: String },
    #[error("cannot serialize the image config: {0}")]
    Json(#[from] serde_json::Error),
}

/// The image config of `layers`: the platform of this machine (the node the output was
/// made on, where a runtime that mounts it most likely runs too), no command, and the
/// diff IDs the layers carry in their content digest annotation.
pub fn config_for(layers: &[Descriptor], created: Option<&str>) -> Result<Vec<u8>, ImageError> {
    let diff_ids = layers
        .iter()
        .map(|layer| {
            layer
                .annotations
                .get(CONTENT_DIGEST_ANNOTATION)
                .cloned()
                .ok_or_else(|| ImageError::NoDiffId {
                    title: layer.title().unwrap_or("(untitled)").to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let config = ConfigFile {
        created: created.and_then(|text| text.parse().ok()),
        architecture: Architecture::default(),
        os: Os::default(),
        rootfs: Rootfs {
            diff_ids,
            ..Rootfs::default()
        },
        ..ConfigFile::default()
    };
    Ok(serde_json::to_vec(&config)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{directory_descriptor, file_descriptor};

    #[test]
    fn diff_ids_follow_the_layers_and_the_platform_is_this_machines() {
        let layers = [
            directory_descriptor("b", "sha256:b0".into(), 9, "sha256:b1".into()),
            directory_descriptor("a", "sha256:a0".into(), 9, "sha256:a1".into()),
        ];
        let config = config_for(&layers, Some("2026-12-01T11:00:00Z")).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(
            json["rootfs"],
            serde_json::json!({"type": "layers", "diff_ids": ["sha256:b1", "sha256:a1"]})
        );
        assert_eq!(json["os"], "linux");
        let goarch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(json["architecture"], goarch);
        assert_eq!(json["created"], "2026-12-01T11:00:00Z");
    }

    #[test]
    fn a_layer_without_its_uncompressed_digest_is_named() {
        let layers = [file_descriptor("raw.bin", "sha256:00".into(), 1)];
        let err = config_for(&layers, None).unwrap_err().to_string();
        assert!(err.contains("\"raw.bin\""), "{err}");
    }
}
