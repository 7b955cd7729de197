//! The agent tests' handle on `oras_testkit`'s registry harness (Debian's
//! `docker-registry` on 127.0.0.1, a free port, temporary storage, killed on drop): a
//! registry that cannot start or answer fails the test, naming why.

use std::path::PathBuf;

use oras_testkit::registry::Registry;

pub struct TestRegistry {
    inner: Registry,
    pub port: u16,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    oras_testkit::registry::free_port().expect("a free port on 127.0.0.1")
}

impl TestRegistry {
    fn wrap(started: oras_testkit::registry::Result<Registry>) -> Self {
        let inner = started.unwrap_or_else(|e| panic!("{e}"));
        let port = inner.port();
        Self { inner, port }
    }

    pub fn start() -> Self {
        Self::wrap(Registry::start())
    }

    /// A registry that requires HTTP basic authentication with the `htpasswd` line.
    pub fn start_with_htpasswd(htpasswd_line: &str) -> Self {
        Self::wrap(Registry::start_with_htpasswd(htpasswd_line))
    }

    /// A registry that trusts the tokens of `tokens` (and asks clients for them).
    pub fn start_behind(tokens: &oras_testkit::TokenServer) -> Self {
        Self::wrap(Registry::start_with_env(
            std::path::Path::new(oras_testkit::registry::REGISTRY_BINARY),
            free_port(),
            tokens.registry_env(),
        ))
    }

    /// go-containerregistry's registry with the referrers API (from `make tools`).
    pub fn start_with_referrers_api() -> Self {
        Self::wrap(Registry::start_with_referrers_api())
    }

    /// The tags of `repository`.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        self.inner
            .tags(repository)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stop the registry, run `docker-registry garbage-collect --delete-untagged` on its
    /// storage, start it again.
    pub fn collect_garbage(&mut self) {
        self.inner.stop();
        let output = std::process::Command::new(oras_testkit::registry::REGISTRY_BINARY)
            .args(["garbage-collect", "--delete-untagged"])
            .arg(self.inner.config_path())
            .output()
            .expect("run docker-registry garbage-collect");
        assert!(
            output.status.success(),
            "garbage-collect: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.inner.restart().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Bytes under the registry's storage directory.
    pub fn stored_bytes(&self) -> u64 {
        super::dir_bytes(&self.inner.storage_dir())
    }

    /// A registry that speaks only HTTPS, serving a certificate of a throw-away CA.
    pub fn start_with_tls() -> Self {
        let ca =
            oras_testkit::tls::TestCa::new("oras-agent-test-ca").unwrap_or_else(|e| panic!("{e}"));
        let cert = ca
            .serving_cert("127.0.0.1", &["127.0.0.1"])
            .unwrap_or_else(|e| panic!("{e}"));
        Self::wrap(Registry::start_with_tls(&cert))
    }

    /// A registry that logs each request it answers (its access log).
    pub fn start_with_access_log() -> Self {
        Self::wrap(Registry::start_with_env(
            std::path::Path::new(oras_testkit::registry::REGISTRY_BINARY),
            free_port(),
            vec![("REGISTRY_LOG_ACCESSLOG_DISABLED".into(), "false".into())],
        ))
    }

    /// The requests the agent made, as `METHOD path` in order (from the access log of
    /// [`TestRegistry::start_with_access_log`]).
    pub fn agent_requests(&self) -> Vec<String> {
        self.inner
            .log()
            .lines()
            .filter(|line| line.contains("\"oras-agent/"))
            .filter_map(|line| {
                let request = line.split('"').nth(1)?;
                let mut words = request.split(' ');
                Some(format!("{} {}", words.next()?, words.next()?))
            })
            .collect()
    }

    /// Whether the registry knows the manifest `repository:tag`.
    pub fn has_manifest(&self, repository: &str, tag: &str) -> bool {
        self.inner
            .manifest(repository, tag)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some()
    }

    /// The digests of the blobs the registry stores, each checked against its content:
    /// a blob stored under a digest it does not have fails the test.
    pub fn stored_blobs(&self) -> Vec<String> {
        use sha2::Digest;
        let root = self
            .inner
            .storage_dir()
            .join("docker/registry/v2/blobs/sha256");
        let mut digests = Vec::new();
        for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let hex = blob.file_name().to_string_lossy().into_owned();
                let data = std::fs::read(blob.path().join("data")).unwrap();
                assert_eq!(
                    hex::encode(sha2::Sha256::digest(&data)),
                    hex,
                    "the registry holds a blob under a digest its content does not have"
                );
                digests.push(format!("sha256:{hex}"));
            }
        }
        digests.sort();
        digests
    }

    pub fn start_on(port: u16) -> Self {
        Self::wrap(Registry::start_on(port))
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        self.inner.host()
    }

    /// A reference in this registry.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        self.inner.reference(repository_and_tag)
    }

    /// Where the registry stores the blob `sha256:<hex>`.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        self.inner
            .blob_data_path(digest)
            .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"))
    }

    /// The manifest `repository:tag`, which must exist.
    pub fn manifest(&self, repository: &str, tag: &str) -> serde_json::Value {
        self.inner
            .manifest(repository, tag)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no manifest {repository}:{tag}"))
    }

    /// Uploads a blob; returns its digest.
    pub fn upload_blob(&self, repository: &str, data: &[u8]) -> String {
        self.inner
            .upload_blob(repository, data)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stores an OCI image manifest as `repository:tag`.
    pub fn put_manifest(&self, repository: &str, tag: &str, manifest: &serde_json::Value) {
        self.inner
            .put_manifest(repository, tag, manifest)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}
