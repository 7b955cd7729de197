//! The shipping tool's registry client: the only place that talks to a registry. One
//! [`Repository`] pushes blobs and manifests to one repository with `oci-client`
//! (monolithic uploads: our blobs are small enough to hold in memory).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oras_contract::credentials::Operation;
use oras_contract::reference::is_path_component;
use sha2::{Digest, Sha256};

/// Content to push: its bytes, media type and descriptor annotations; the digest is
/// computed once.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub annotations: Option<BTreeMap<String, String>>,
    data: Vec<u8>,
    digest: String,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_string(),
            annotations: None,
            digest: sha256_digest(&data),
            data,
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The descriptor a manifest lists it under.
    pub fn descriptor(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.data.len() as i64,
            annotations: self.annotations.clone(),
            ..OciDescriptor::default()
        }
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Push credentials for `registry`, found as the agent finds them: `ORAS_USER` with
/// `ORAS_PUSH_PASS`, else the Docker config's `auths`, else anonymous.
fn push_auth(registry: &str) -> RegistryAuth {
    let resolved = oras_contract::credentials::resolve(registry, Operation::Push);
    for warning in &resolved.warnings {
        eprintln!("warning: {warning}");
    }
    match resolved.basic {
        Some((user, password)) => RegistryAuth::Basic(user, password),
        None => RegistryAuth::Anonymous,
    }
}

fn client(plain_http: bool) -> Client {
    Client::new(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        use_monolithic_push: true,
        ..ClientConfig::default()
    })
}

/// `host[:port]/path` split into a registry and a repository, refusing what is not one:
/// without a host, `docker.io` would be assumed; a tag or digest has no place here.
pub fn parse_repository(repository: &str) -> Result<Reference> {
    let (host, path) = repository.split_once('/').unwrap_or((repository, ""));
    let looks_like_host = host.contains('.') || host.contains(':') || host == "localhost";
    if !looks_like_host || path.is_empty() {
        bail!(
            "{repository:?} is not host[:port]/path: it must start with a registry host, for example ghcr.io/me/oras-operator or 127.0.0.1:5000/oras"
        );
    }
    if path.contains('@')
        || path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
    {
        bail!("{repository:?} names a tag or digest: give only host[:port]/path");
    }
    if let Some(bad) = path.split('/').find(|part| !is_path_component(part)) {
        bail!(
            "{repository:?}: path component {bad:?} is not lowercase letters and digits separated by '.', '_' or '-'"
        );
    }
    let reference: Reference = format!("{repository}:latest")
        .parse()
        .with_context(|| format!("{repository:?} is not a valid repository"))?;
    Ok(Reference::with_tag(
        reference.registry().to_string(),
        reference.repository().to_string(),
        "latest".to_string(),
    ))
}

/// `host[:port]/path:tag` split into the repository and the tag, each checked.
pub fn split_tag(reference: &str) -> Result<(String, String)> {
    let tagged = reference
        .rsplit_once(':')
        .filter(|(repository, tag)| !tag.contains('/') && repository.contains('/'));
    let Some((repository, tag)) = tagged else {
        bail!("{reference:?} has no tag: give host[:port]/path:tag");
    };
    if !oras_contract::reference::is_tag(tag) {
        bail!("{reference:?}: {tag:?} is not a valid tag");
    }
    parse_repository(repository)?;
    Ok((repository.to_string(), tag.to_string()))
}

/// A repository we push to, authenticated.
pub struct Repository {
    client: Client,
    reference: Reference,
}

impl Repository {
    /// Reach the registry of `repository` (`host[:port]/path`) and authenticate for
    /// pushing. A registry that speaks the other protocol (plain HTTP when HTTPS was
    /// asked, or the reverse) is named as such, with the flag to change.
    pub async fn connect(repository: &str, plain_http: bool) -> Result<Self> {
        let reference = parse_repository(repository)?;
        let registry = reference.registry();
        if plain_http && answers_https(&reference).await {
            bail!("{registry} answers HTTPS: drop --plain-http (make: drop PLAIN_HTTP=1)");
        }
        let client = client(plain_http);
        let auth = push_auth(registry);
        for operation in [RegistryOperation::Pull, RegistryOperation::Push] {
            if let Err(error) = client.auth(&reference, &auth, operation).await {
                if !plain_http && answers_plain_http(&reference).await {
                    bail!("{registry} answers plain HTTP: use --plain-http (make: PLAIN_HTTP=1)");
                }
                return Err(anyhow::Error::new(error))
                    .with_context(|| format!("cannot reach registry {registry}"));
            }
        }
        Ok(Self { client, reference })
    }

    /// `host[:port]/path` of the repository.
    pub fn name(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    fn at(&self, tag_or_digest: &str) -> Reference {
        let (registry, repository) = (
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
        );
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(registry, repository, tag_or_digest.to_string())
        } else {
            Reference::with_tag(registry, repository, tag_or_digest.to_string())
        }
    }

    /// Push `blob` unless the registry already has it.
    pub async fn push_blob(&self, blob: &Blob) -> Result<()> {
        let digest = blob.digest();
        let error = || format!("cannot push blob {digest} to {}", self.name());
        if self
            .client
            .blob_exists(&self.reference, digest)
            .await
            .with_context(error)?
        {
            return Ok(());
        }
        self.client
            .push_blob(&self.reference, blob.data.clone(), digest)
            .await
            .with_context(error)?;
        Ok(())
    }

    /// Push a manifest (image manifest or index) under `tag_or_digest`; returns its
    /// digest. Pushed under its own digest, it is reachable only through that digest.
    pub async fn push_manifest(
        &self,
        tag_or_digest: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<String> {
        let digest = sha256_digest(&body);
        let target = self.at(tag_or_digest);
        self.client
            .push_manifest_raw(&target, body, media_type.parse()?)
            .await
            .with_context(|| format!("cannot push manifest {}:{tag_or_digest}", self.name()))?;
        Ok(digest)
    }
}

/// Whether the registry of `reference` answers `GET /v2/` over plain HTTP.
async fn answers_plain_http(reference: &Reference) -> bool {
    client(true)
        .auth(reference, &RegistryAuth::Anonymous, RegistryOperation::Pull)
        .await
        .is_ok()
}

/// Whether the registry of `reference` answers a plain-HTTP `GET /v2/` as an HTTPS
/// server does: distribution's (Go's) `400 Client sent an HTTP request to an HTTPS
/// server.`, nginx's `400 The plain HTTP request was sent to HTTPS port`, or no HTTP
/// answer at all (an alert, a hang-up) from a server that completes a TLS handshake.
/// `oci-client` takes the 400 for a registry without authentication.
async fn answers_https(reference: &Reference) -> bool {
    let host = reference.resolve_registry();
    match reqwest::Client::new()
        .get(format!("http://{host}/v2/"))
        .send()
        .await
    {
        Ok(response) => {
            response.status() == reqwest::StatusCode::BAD_REQUEST
                && response
                    .text()
                    .await
                    .is_ok_and(|body| body.to_ascii_lowercase().contains("https"))
        }
        Err(error) if error.is_connect() || error.is_timeout() => false,
        Err(_) => speaks_tls(host).await,
    }
}

/// Whether `host` completes a TLS handshake and answers `GET /v2/` over it. Its
/// certificate is not checked: nothing is sent but this request, and the answer only
/// decides the message of a failure.
async fn speaks_tls(host: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
    else {
        return false;
    };
    client
        .get(format!("https://{host}/v2/"))
        .send()
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_need_a_host_and_a_path() {
        let reference = parse_repository("127.0.0.1:5000/team/oras").unwrap();
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert_eq!(reference.repository(), "team/oras");
        assert_eq!(
            parse_repository("ghcr.io/me/x").unwrap().repository(),
            "me/x"
        );
        for bad in [
            "oras",
            "me/oras",
            "ghcr.io",
            "ghcr.io/",
            "ghcr.io/x:1",
            "ghcr.io/x@sha256:00",
            "ghcr.io/UPPER",
        ] {
            let error = parse_repository(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
    }

    #[test]
    fn tagged_references_split_after_the_last_path_component() {
        assert_eq!(
            split_tag("127.0.0.1:5000/policies/oras:v0.1.0").unwrap(),
            (
                "127.0.0.1:5000/policies/oras".to_string(),
                "v0.1.0".to_string()
            )
        );
        for bad in [
            "127.0.0.1:5000/policies/oras",
            "ghcr.io/x:bad tag",
            "oras:v1",
        ] {
            assert!(split_tag(bad).is_err(), "{bad}");
        }
    }
}
