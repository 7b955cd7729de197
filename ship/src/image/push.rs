//! `push-images`: every binary given becomes its platform's image; each image name gets
//! an index over its platforms, tagged with the version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::build_info::BuildInfo;
use crate::image::platform::Platform;
use crate::image::{self, PlatformImage};
use crate::registry::{Repository, parse_repository};

/// One binary to ship: its platform and file (named after the image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryFile {
    pub platform: Platform,
    pub path: PathBuf,
}

impl BinaryFile {
    /// `PLATFORM=PATH`, as the command line gives it.
    pub fn parse(text: &str) -> Result<Self> {
        let (platform, path) = text
            .split_once('=')
            .with_context(|| format!("--binary {text:?} is not PLATFORM=PATH"))?;
        Ok(Self {
            platform: Platform::parse(platform).with_context(|| format!("in --binary {text:?}"))?,
            path: PathBuf::from(path),
        })
    }

    fn image_name(&self) -> Result<&str> {
        self.path
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("{} names no file", self.path.display()))
    }
}

/// Assemble every image first (so a bad binary stops everything before anything is
/// pushed), then push each image's platforms and its index under `repository/NAME:version`.
/// Returns `REPOSITORY/NAME@sha256:...` of each index, by name.
pub async fn push_images(
    binaries: &[BinaryFile],
    registry: &str,
    plain_http: bool,
    info: &BuildInfo,
) -> Result<Vec<String>> {
    // Checked before the slow part: each image is REGISTRY/NAME.
    parse_repository(&format!("{registry}/{}", image::KINDS[0].name))
        .with_context(|| format!("REGISTRY {registry:?} is not host[:port]/path"))?;
    let mut by_kind: BTreeMap<&str, (image::Kind, Vec<PlatformImage>)> = BTreeMap::new();
    for binary in binaries {
        let name = binary.image_name()?;
        let kind = image::kind(name)?;
        let data = std::fs::read(&binary.path)
            .with_context(|| format!("cannot read {}", binary.path.display()))?;
        let assembled = image::assemble(kind, binary.platform, data, info)
            .with_context(|| format!("{} ({})", binary.path.display(), binary.platform))?;
        by_kind
            .entry(kind.name)
            .or_insert_with(|| (kind, Vec::new()))
            .1
            .push(assembled);
    }
    anyhow::ensure!(!by_kind.is_empty(), "no --binary given: nothing to push");
    let mut indexes = Vec::new();
    for (kind, images) in by_kind.values() {
        indexes.push((*kind, images, image::index(*kind, images, info)?));
    }

    let mut pushed = Vec::new();
    for (kind, images, index) in indexes {
        let repository =
            Repository::connect(&format!("{registry}/{}", kind.name), plain_http).await?;
        for image in images {
            repository.push_blob(&image.layer).await?;
            repository.push_blob(&image.config).await?;
            let manifest = &image.manifest;
            repository
                .push_manifest(
                    manifest.digest(),
                    &manifest.media_type,
                    manifest.data().to_vec(),
                )
                .await?;
        }
        let digest = repository
            .push_manifest(&info.version, &index.media_type, index.data().to_vec())
            .await?;
        pushed.push(format!("{}@{digest}", repository.name()));
    }
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_are_platform_equals_path() {
        let binary = BinaryFile::parse("linux/arm64=target/a/oras-agent").unwrap();
        assert_eq!(binary.platform, Platform::LinuxArm64);
        assert_eq!(binary.image_name().unwrap(), "oras-agent");
        let error = format!("{:#}", BinaryFile::parse("target/oras-agent").unwrap_err());
        assert!(
            error.contains("\"target/oras-agent\" is not PLATFORM=PATH"),
            "{error}"
        );
        let error = format!("{:#}", BinaryFile::parse("arm=x").unwrap_err());
        assert!(error.contains("\"arm\""), "{error}");
    }
}
