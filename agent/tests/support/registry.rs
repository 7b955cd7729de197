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
