//! Kubewarden's OCI host capability, `kubewarden`/`oci`/`v1/oci_manifest_config`, as
//! policy-server and `kwctl run` answer it: the payload is the image reference as a JSON
//! string; the answer is `{"manifest", "digest", "config"}` (the image manifest, its
//! digest and the image config), fetched with `oci-client` as they fetch it. An image
//! index is resolved to its linux/amd64 manifest, what policy-server on an amd64 node
//! picks. A failure is answered with the client's error, which the policy quotes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use oci_client::client::{ClientConfig, ClientProtocol, linux_amd64_resolver};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oras_policy::image::{ImageEntrypoint, OciManifestAndConfigResponse, entrypoint_of};
use serde::{Deserialize, Serialize};

/// Where images may be fetched from, in the shape of kwctl's `--sources-path` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sources {
    /// `host[:port]` of registries reached over plain HTTP.
    pub insecure_sources: Vec<String>,
    /// Registry host -> `host[:port]` of a registry that serves its images instead (a
    /// test stand-in: the fixtures name `ghcr.io` images that a local registry holds).
    /// Not a kwctl setting.
    #[serde(skip)]
    pub mirrors: BTreeMap<String, String>,
}

impl Sources {
    /// Plain HTTP to `hosts`.
    pub fn insecure(hosts: &[impl AsRef<str>]) -> Self {
        Self {
            insecure_sources: hosts.iter().map(|h| h.as_ref().to_string()).collect(),
            mirrors: BTreeMap::new(),
        }
    }

    /// Reads a kwctl sources file (YAML).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a sources file", path.display()))
    }

    /// The registry that serves `registry`'s images, and whether it is plain HTTP.
    fn serving(&self, registry: &str) -> (String, bool) {
        let host = self
            .mirrors
            .get(registry)
            .cloned()
            .unwrap_or_else(|| registry.to_string());
        let insecure = self.insecure_sources.contains(&host);
        (host, insecure)
    }
}

/// What policy-server answers (its `ManifestAndConfigResponse`).
#[derive(Serialize)]
struct ManifestAndConfig {
    manifest: OciImageManifest,
    digest: String,
    config: serde_json::Value,
}

/// Answers image lookups from registries.
pub struct ImageRegistry {
    sources: Sources,
    runtime: tokio::runtime::Runtime,
    http: Client,
    https: Client,
}

impl ImageRegistry {
    pub fn new(sources: Sources) -> Result<Self> {
        // HTTPS needs a process-wide crypto provider; another part may have set one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the runtime of the image lookups")?;
        let client = |protocol| {
            Client::new(ClientConfig {
                protocol,
                platform_resolver: Some(Box::new(linux_amd64_resolver)),
                connect_timeout: Some(Duration::from_secs(5)),
                read_timeout: Some(Duration::from_secs(30)),
                ..Default::default()
            })
        };
        Ok(Self {
            sources,
            http: client(ClientProtocol::Http),
            https: client(ClientProtocol::Https),
            runtime,
        })
    }

    /// The `v1/oci_manifest_config` answer for `image` (JSON), or the error text.
    pub fn manifest_and_config(&self, image: &str) -> Result<Vec<u8>, String> {
        let reference: Reference = image
            .parse()
            .map_err(|e| format!("cannot parse image reference {image:?}: {e}"))?;
        let (host, insecure) = self.sources.serving(reference.registry());
        let reference = match (reference.tag(), reference.digest()) {
            (Some(tag), Some(digest)) => Reference::with_tag_and_digest(
                host,
                reference.repository().into(),
                tag.into(),
                digest.into(),
            ),
            (None, Some(digest)) => {
                Reference::with_digest(host, reference.repository().into(), digest.into())
            }
            (tag, None) => Reference::with_tag(
                host,
                reference.repository().into(),
                tag.unwrap_or("latest").into(),
            ),
        };
        let client = if insecure { &self.http } else { &self.https };
        let (manifest, digest, config) = self
            .runtime
            .block_on(client.pull_manifest_and_config(&reference, &RegistryAuth::Anonymous))
            // The error and its causes on one line: reqwest keeps "connection refused"
            // in a cause.
            .map_err(|error| format!("{:#}", anyhow::Error::new(error)))?;
        let config = serde_json::from_str(&config)
            .map_err(|e| format!("the config of {image} is not JSON: {e}"))?;
        serde_json::to_vec(&ManifestAndConfig {
            manifest,
            digest,
            config,
        })
        .map_err(|e| e.to_string())
    }

    /// Answers one host call, whose payload is the image as a JSON string.
    pub fn answer(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let image: String = serde_json::from_slice(payload)
            .map_err(|e| format!("the request is not an image reference in JSON: {e}"))?;
        self.manifest_and_config(&image)
    }

    /// The lookup the policy's native build is given: the same answer, read as the
    /// wasm build reads it.
    pub fn lookup(&self, image: &str) -> Result<ImageEntrypoint, String> {
        let answer = self.manifest_and_config(image)?;
        let answer: OciManifestAndConfigResponse = serde_json::from_slice(&answer)
            .map_err(|e| format!("the host's answer cannot be read: {e}"))?;
        Ok(entrypoint_of(&answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kwctl_sources_file_names_the_plain_http_registries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.yaml");
        std::fs::write(&path, "insecure_sources:\n  - \"127.0.0.1:5000\"\n").unwrap();
        let sources = Sources::read(&path).unwrap();
        assert_eq!(
            sources.serving("127.0.0.1:5000"),
            ("127.0.0.1:5000".into(), true)
        );
        assert_eq!(sources.serving("ghcr.io"), ("ghcr.io".into(), false));
    }

    #[test]
    fn a_mirror_serves_a_registry_with_its_own_scheme() {
        let mut sources = Sources::insecure(&["127.0.0.1:5000"]);
        sources
            .mirrors
            .insert("ghcr.io".into(), "127.0.0.1:5000".into());
        assert_eq!(sources.serving("ghcr.io"), ("127.0.0.1:5000".into(), true));
    }
}
