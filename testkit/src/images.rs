//! Container images pushed into the test registry the way image builders push them: an
//! OCI image config (`Entrypoint`, `Cmd`, platform, `rootfs.diff_ids`), one gzip tar
//! layer, the image manifest, and for several platforms an image index over them.

use std::io::Write;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::registry::{Registry, Result, io_error};

pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An image to push: what it runs, its platform, and the files of its one layer.
#[derive(Debug, Clone)]
pub struct ContainerImage {
    /// `config.Entrypoint`; `None` leaves the key out, as builders do for an image
    /// without one.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`; `None` leaves the key out.
    pub cmd: Option<Vec<String>>,
    /// Go names, as image configs and indexes spell them: `amd64`, `arm64`.
    pub architecture: String,
    pub os: String,
    /// Path in the image -> content (mode 0644).
    pub files: Vec<(String, Vec<u8>)>,
    /// Path in the image -> content, mode 0755.
    pub executables: Vec<(String, Vec<u8>)>,
    /// Path in the image -> the target of a symbolic link there.
    pub symlinks: Vec<(String, String)>,
    /// `config.Env` after `PATH`: `NAME=value`.
    pub env: Vec<String>,
}

impl ContainerImage {
    /// A linux/amd64 image with `entrypoint` and `cmd` (an empty list leaves the key
    /// out) and one small file.
    pub fn new(entrypoint: &[&str], cmd: &[&str]) -> Self {
        let list = |items: &[&str]| {
            (!items.is_empty()).then(|| items.iter().map(|s| s.to_string()).collect())
        };
        Self {
            entrypoint: list(entrypoint),
            cmd: list(cmd),
            architecture: "amd64".into(),
            os: "linux".into(),
            files: vec![(
                "etc/oras-test-image".into(),
                b"an image of the tests\n".to_vec(),
            )],
            executables: Vec::new(),
            symlinks: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The same image with `NAME=value` in its environment.
    pub fn with_env(mut self, name_and_value: &str) -> Self {
        self.env.push(name_and_value.into());
        self
    }

    /// The same image with a file of mode 0644 at `path`.
    pub fn with_file(mut self, path: &str, content: Vec<u8>) -> Self {
        self.files.push((path.into(), content));
        self
    }

    /// The same image with an executable (mode 0755) at `path`.
    pub fn with_executable(mut self, path: &str, content: Vec<u8>) -> Self {
        self.executables.push((path.into(), content));
        self
    }

    /// The same image with a symbolic link at `path` to `target`.
    pub fn with_symlink(mut self, path: &str, target: &str) -> Self {
        self.symlinks.push((path.into(), target.into()));
        self
    }

    /// The same image for another platform.
    pub fn for_platform(mut self, os: &str, architecture: &str) -> Self {
        self.os = os.into();
        self.architecture = architecture.into();
        self
    }
}

/// Whether `elf` (a 64-bit little-endian ELF executable) names a dynamic loader, a
/// `PT_INTERP` program header: such a binary cannot run alone in an image. `None` when it
/// is not such an ELF file.
pub fn is_dynamically_linked(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return None;
    }
    let bytes = |at: usize, n: usize| elf.get(at..at + n);
    let u16_at = |at| bytes(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let phoff = bytes(0x20, 8).map(|b| {
        let mut word = [0; 8];
        word.copy_from_slice(b);
        u64::from_le_bytes(word) as usize
    })?;
    let (size, count) = (u16_at(0x36)?, u16_at(0x38)?);
    let mut interpreter = false;
    for i in 0..count {
        let header = bytes(phoff + i * size, 4)?;
        interpreter |=
            u32::from_le_bytes([header[0], header[1], header[2], header[3]]) == PT_INTERP;
    }
    Some(interpreter)
}

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> Value {
    json!({"mediaType": media_type, "digest": digest, "size": size})
}

/// The image's one layer: a gzip-compressed tar of its files; returns it and the digest
/// of the uncompressed tar (its diff ID).
fn layer(image: &ContainerImage) -> Result<(Vec<u8>, String)> {
    let mut tar = tar::Builder::new(Vec::new());
    let regular = image.files.iter().map(|(p, c)| (p, c, 0o644));
    let executable = image.executables.iter().map(|(p, c)| (p, c, 0o755));
    for (path, content, mode) in regular.chain(executable) {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, content.as_slice())
            .map_err(io_error("write the image layer"))?;
    }
    for (path, target) in &image.symlinks {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o777);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Symlink);
        tar.append_link(&mut header, path, target)
            .map_err(io_error("write the image layer"))?;
    }
    let tar = tar
        .into_inner()
        .map_err(io_error("finish the image layer"))?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&tar)
        .map_err(io_error("compress the image layer"))?;
    let compressed = gzip
        .finish()
        .map_err(io_error("compress the image layer"))?;
    Ok((compressed, digest_of(&tar)))
}

impl Registry {
    /// Pushes `image` as `repository:tag` (config, layer, image manifest); returns the
    /// manifest's digest.
    pub fn push_image(
        &self,
        repository: &str,
        tag: &str,
        image: &ContainerImage,
    ) -> Result<String> {
        let (manifest, _) = self.push_image_manifest(repository, image)?;
        self.put_manifest_bytes(repository, tag, IMAGE_MANIFEST, &manifest)
    }

    /// Pushes one image per platform and an image index over them as `repository:tag`;
    /// returns the index's digest.
    pub fn push_image_index(
        &self,
        repository: &str,
        tag: &str,
        images: &[ContainerImage],
    ) -> Result<String> {
        let mut manifests = Vec::new();
        for image in images {
            let (manifest, digest) = self.push_image_manifest(repository, image)?;
            let mut entry = descriptor(IMAGE_MANIFEST, &digest, manifest.len());
            entry["platform"] = json!({"architecture": image.architecture, "os": image.os});
            manifests.push(entry);
        }
        let index = json!({"schemaVersion": 2, "mediaType": IMAGE_INDEX, "manifests": manifests});
        self.put_manifest_bytes(repository, tag, IMAGE_INDEX, index.to_string().as_bytes())
    }

    /// Uploads the blobs of `image` and stores its manifest by digest; returns the
    /// manifest and its digest.
    fn push_image_manifest(
        &self,
        repository: &str,
        image: &ContainerImage,
    ) -> Result<(Vec<u8>, String)> {
        let blobs = ImageBlobs::of(image)?;
        self.upload_blob(repository, &blobs.layer)?;
        self.upload_blob(repository, &blobs.config)?;
        let digest = digest_of(&blobs.manifest);
        self.put_manifest_bytes(repository, &digest, IMAGE_MANIFEST, &blobs.manifest)?;
        Ok((blobs.manifest, digest))
    }
}

/// The three blobs of a one-layer image.
struct ImageBlobs {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

impl ImageBlobs {
    fn of(image: &ContainerImage) -> Result<Self> {
        let (layer, diff_id) = layer(image)?;
        let mut env =
            vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
        env.extend(image.env.iter().cloned());
        let mut run = json!({"Env": env});
        if let Some(entrypoint) = &image.entrypoint {
            run["Entrypoint"] = json!(entrypoint);
        }
        if let Some(cmd) = &image.cmd {
            run["Cmd"] = json!(cmd);
        }
        let config = json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": image.architecture,
            "os": image.os,
            "config": run,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        })
        .to_string()
        .into_bytes();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "config": descriptor(IMAGE_CONFIG, &digest_of(&config), config.len()),
            "layers": [descriptor(LAYER_TAR_GZIP, &digest_of(&layer), layer.len())],
        })
        .to_string()
        .into_bytes();
        Ok(Self {
            layer,
            config,
            manifest,
        })
    }
}

impl ContainerImage {
    /// Writes the image as an OCI archive (a tar of an OCI image layout, what `skopeo
    /// copy ... oci-archive:PATH:TAG` writes) whose one manifest is named `tag`, the form
    /// `ctr images import --base-name NAME` reads.
    pub fn write_oci_archive(&self, path: &std::path::Path, tag: &str) -> Result<()> {
        let blobs = ImageBlobs::of(self)?;
        let mut manifest = descriptor(
            IMAGE_MANIFEST,
            &digest_of(&blobs.manifest),
            blobs.manifest.len(),
        );
        manifest["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index = json!({"schemaVersion": 2, "mediaType": IMAGE_INDEX, "manifests": [manifest]});
        let file =
            std::fs::File::create(path).map_err(io_error(format!("create {}", path.display())))?;
        let mut tar = tar::Builder::new(file);
        let mut entries = vec![
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_string(), index.to_string().into_bytes()),
        ];
        for blob in [blobs.layer, blobs.config, blobs.manifest] {
            let name = digest_of(&blob).replace("sha256:", "blobs/sha256/");
            entries.push((name, blob));
        }
        for (name, content) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, &name, content.as_slice())
                .map_err(io_error(format!("write {}", path.display())))?;
        }
        tar.into_inner()
            .map_err(io_error(format!("finish {}", path.display())))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_indexes_are_stored_as_pushed() {
        let registry = Registry::start().unwrap();
        let image = ContainerImage::new(&["/bin/sh", "-c"], &["echo hi"]);
        let digest = registry.push_image("tools/sh", "1", &image).unwrap();
        let manifest = registry.manifest("tools/sh", "1").unwrap().unwrap();
        assert_eq!(manifest["config"]["mediaType"], IMAGE_CONFIG);
        assert_eq!(manifest["layers"][0]["mediaType"], LAYER_TAR_GZIP);
        assert_eq!(digest, digest_of(manifest.to_string().as_bytes()));
        let config_path = registry
            .blob_data_path(manifest["config"]["digest"].as_str().unwrap())
            .unwrap();
        let config: Value = serde_json::from_slice(&std::fs::read(config_path).unwrap()).unwrap();
        assert_eq!(config["config"]["Entrypoint"], json!(["/bin/sh", "-c"]));
        assert_eq!(config["config"]["Cmd"], json!(["echo hi"]));
        assert_eq!(config["architecture"], "amd64");

        let arm = ContainerImage::new(&[], &["arm"]).for_platform("linux", "arm64");
        registry
            .push_image_index("tools/multi", "1", &[image, arm])
            .unwrap();
        let (status, _, body) = registry
            .request(
                "GET",
                "/v2/tools/multi/manifests/1",
                &[("Accept", IMAGE_INDEX)],
                &[],
            )
            .unwrap();
        assert_eq!(status, 200);
        let index: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(index["mediaType"], IMAGE_INDEX);
        let platforms: Vec<&Value> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["platform"]["architecture"])
            .collect();
        assert_eq!(platforms, [&json!("amd64"), &json!("arm64")]);
    }
}
