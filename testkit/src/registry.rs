//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8) on
//! 127.0.0.1 with a free port and a temporary storage directory (deletes enabled); or
//! another binary configured by distribution's `REGISTRY_*` variables; or
//! go-containerregistry's registry with its referrers API on
//! ([`Registry::start_with_referrers_api`]).
//!
//! The process is killed when the [`Registry`] is dropped, also when a test panics. It
//! can be stopped and started again on the same port and storage, so tests can make the
//! registry disappear under a client and come back.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `docker-registry` package installs the registry.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// How long a starting registry has to answer `GET /v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{} is missing: install Debian's registry with `apt-get install docker-registry`",
        .binary.display()
    )]
    Missing { binary: PathBuf },
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "docker-registry on port {port} exited with {status} before it answered GET /v2/; its log:\n{log}"
    )]
    Exited {
        port: u16,
        status: ExitStatus,
        log: String,
    },
    #[error("docker-registry did not answer GET /v2/ on 127.0.0.1:{port} within {} s; its log:\n{log}", READY_TIMEOUT.as_secs())]
    NotReady { port: u16, log: String },
    #[error("{method} {path} answered {status}: {body}")]
    Unexpected {
        method: String,
        path: String,
        status: u16,
        body: String,
    },
}

pub(crate) fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> RegistryError {
    let action = action.into();
    move |source| RegistryError::Io { action, source }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A port nobody listens on right now on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("bind 127.0.0.1:0"))?;
    Ok(listener
        .local_addr()
        .map_err(io_error("read the bound address"))?
        .port())
}

pub struct Registry {
    child: Option<Child>,
    binary: PathBuf,
    /// Distribution's `REGISTRY_*` variables, which override the config file.
    env: Vec<(String, String)>,
    port: u16,
    storage: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    /// The serving certificate and key of a registry that speaks HTTPS.
    certificates: Option<tempfile::TempDir>,
}

/// Distribution's variable naming the serving certificate: set, the registry speaks
/// only HTTPS.
const TLS_CERTIFICATE_ENV: &str = "REGISTRY_HTTP_TLS_CERTIFICATE";

impl Registry {
    /// Starts a registry on a free port and waits until it answers.
    pub fn start() -> Result<Self> {
        Self::start_on(free_port()?)
    }

    /// Starts a registry on `port` (127.0.0.1) and waits until it answers.
    pub fn start_on(port: u16) -> Result<Self> {
        Self::start_configured(port, None)
    }

    /// Starts go-containerregistry's registry with the referrers API
    /// (`referrers-registry` from `make tools`) on a free port, since neither
    /// distribution 2.8 nor 3.1 serves `GET /v2/<name>/referrers/<digest>`. It keeps
    /// everything in memory: a restart starts empty.
    pub fn start_with_referrers_api() -> Result<Self> {
        let binary =
            crate::tools::tool("referrers-registry").map_err(|missing| RegistryError::Io {
                action: "find the registry with the referrers API".into(),
                source: io::Error::new(io::ErrorKind::NotFound, missing.to_string()),
            })?;
        Self::start_full(&binary, free_port()?, None, Vec::new())
    }

    /// Starts a registry on a free port that requires HTTP basic authentication with
    /// the given `htpasswd` line (`user:bcrypt-hash`).
    pub fn start_with_htpasswd(htpasswd_line: &str) -> Result<Self> {
        Self::start_configured(free_port()?, Some(htpasswd_line))
    }

    /// Starts `binary` (Debian's `docker-registry`, or distribution v3's `registry` from
    /// `make tools`) on `port` with the base configuration (storage in a temporary
    /// directory, deletes enabled, `127.0.0.1:<port>`) overridden by `env`, distribution's
    /// `REGISTRY_*` variables as a registry container gets them. `env` must keep the
    /// registry on `127.0.0.1:<port>` (`REGISTRY_HTTP_ADDR`), where readiness is checked.
    pub fn start_with_env(binary: &Path, port: u16, env: Vec<(String, String)>) -> Result<Self> {
        Self::start_full(binary, port, None, env)
    }

    /// Starts a registry on a free port that speaks only HTTPS, with `cert` (from a
    /// [`crate::tls::TestCa`]) as its serving certificate.
    pub fn start_with_tls(cert: &crate::tls::ServingCert) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("oras-test-registry-tls.")
            .tempdir()
            .map_err(io_error("create the registry's certificate directory"))?;
        let cert_path = dir.path().join("registry.crt");
        let key_path = dir.path().join("registry.key");
        std::fs::write(&cert_path, &cert.cert_pem)
            .map_err(io_error("write the registry's certificate"))?;
        std::fs::write(&key_path, &cert.key_pem).map_err(io_error("write the registry's key"))?;
        let env = vec![
            (
                TLS_CERTIFICATE_ENV.to_string(),
                cert_path.display().to_string(),
            ),
            (
                "REGISTRY_HTTP_TLS_KEY".to_string(),
                key_path.display().to_string(),
            ),
        ];
        let mut registry = Self::start_full(Path::new(REGISTRY_BINARY), free_port()?, None, env)?;
        registry.certificates = Some(dir);
        Ok(registry)
    }

    fn start_configured(port: u16, htpasswd_line: Option<&str>) -> Result<Self> {
        Self::start_full(Path::new(REGISTRY_BINARY), port, htpasswd_line, Vec::new())
    }

    fn start_full(
        binary: &Path,
        port: u16,
        htpasswd_line: Option<&str>,
        env: Vec<(String, String)>,
    ) -> Result<Self> {
        if !binary.exists() {
            return Err(RegistryError::Missing {
                binary: binary.into(),
            });
        }
        let storage = tempfile::Builder::new()
            .prefix("oras-test-registry.")
            .tempdir()
            .map_err(io_error("create the registry's storage directory"))?;
        let config = storage.path().join("config.yml");
        let data = storage.path().join("data");
        let mut text = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        );
        if let Some(line) = htpasswd_line {
            let htpasswd = storage.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{line}\n"))
                .map_err(io_error("write the registry's htpasswd"))?;
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: oras-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, text).map_err(io_error("write the registry's config"))?;
        let log = storage.path().join("registry.log");
        let mut registry = Self {
            child: None,
            binary: binary.into(),
            env,
            port,
            storage,
            config,
            log,
            certificates: None,
        };
        registry.restart()?;
        Ok(registry)
    }

    /// Starts the registry again (same port, same storage) after [`Registry::stop`];
    /// does nothing when it is running. Waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io_error("open the registry's log"))?;
        let log_err = log
            .try_clone()
            .map_err(io_error("open the registry's log"))?;
        let mut command = Command::new(&self.binary);
        // Debian's registry (its AWS SDK) panics at start when AWS_CA_BUNDLE is set, and
        // a registry container never has it.
        command.env_remove("AWS_CA_BUNDLE");
        if self.binary.ends_with("referrers-registry") {
            command.arg(format!("127.0.0.1:{}", self.port));
        } else {
            command
                .arg("serve")
                .arg(&self.config)
                .envs(self.env.iter().map(|(k, v)| (k, v)));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io_error(format!("start {}", self.binary.display())))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(RegistryError::Exited {
                    port: self.port,
                    status,
                    log: self.log(),
                });
            }
            // 401 is the answer of a registry that requires authentication; 400 that of
            // one that speaks only HTTPS to this plain-HTTP request.
            let tls = self.env.iter().any(|(name, _)| name == TLS_CERTIFICATE_ENV);
            match http(self.port, "GET", "/v2/", &[], &[]) {
                Ok((200 | 401, _, _)) if !tls => return Ok(()),
                Ok((400, _, body)) if tls && String::from_utf8_lossy(&body).contains("HTTPS") => {
                    return Ok(());
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(RegistryError::NotReady {
                    port: self.port,
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the registry (SIGKILL) and waits for it; the port and storage are kept for
    /// [`Registry::restart`]. Does nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the registry process is alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `REGISTRY_*` variables it was started with.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A reference in this registry: `127.0.0.1:<port>/<repository_and_tag>`.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.host())
    }

    /// The registry's configuration file (what `docker-registry garbage-collect` reads).
    pub fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    /// The directory the registry stores its data in.
    pub fn storage_dir(&self) -> PathBuf {
        self.storage.path().join("data")
    }

    /// What the registry wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the registry stores the blob `sha256:<hex>`.
    pub fn blob_data_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() < 2 {
            return None;
        }
        Some(
            self.storage_dir()
                .join("docker/registry/v2/blobs/sha256")
                .join(&hex[..2])
                .join(hex)
                .join("data"),
        )
    }

    /// The image manifest `repository:tag` as JSON, or `None` when the registry does not
    /// know it (404).
    pub fn manifest(&self, repository: &str, tag: &str) -> Result<Option<serde_json::Value>> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let accept = [(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )];
        let (status, _, body) = self.request("GET", &path, &accept, &[])?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| RegistryError::Unexpected {
                    method: "GET".into(),
                    path,
                    status,
                    body: format!("not JSON ({e})"),
                }),
            404 => Ok(None),
            _ => Err(unexpected("GET", &path, status, &body)),
        }
    }

    /// The tags of `repository`, empty when the repository does not exist.
    pub fn tags(&self, repository: &str) -> Result<Vec<String>> {
        let path = format!("/v2/{repository}/tags/list");
        let (status, _, body) = self.request("GET", &path, &[], &[])?;
        match status {
            200 => Ok(string_list(&body, "tags")),
            404 => Ok(Vec::new()),
            _ => Err(unexpected("GET", &path, status, &body)),
        }
    }

    /// Every repository the registry holds.
    pub fn catalog(&self) -> Result<Vec<String>> {
        let path = "/v2/_catalog";
        let (status, _, body) = self.request("GET", path, &[], &[])?;
        match status {
            200 => Ok(string_list(&body, "repositories")),
            _ => Err(unexpected("GET", path, status, &body)),
        }
    }

    /// Uploads a blob (monolithic POST then PUT); returns its digest.
    pub fn upload_blob(&self, repository: &str, data: &[u8]) -> Result<String> {
        use sha2::Digest;
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
        let start = format!("/v2/{repository}/blobs/uploads/");
        let (status, headers, body) = self.request("POST", &start, &[], &[])?;
        if status != 202 {
            return Err(unexpected("POST", &start, status, &body));
        }
        let location = header(&headers, "location").ok_or_else(|| {
            unexpected("POST", &start, status, b"no Location header in the answer")
        })?;
        // The Location may be absolute (http://host/v2/...) or a path.
        let path = match location.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
            None => location,
        };
        let separator = if path.contains('?') { '&' } else { '?' };
        let put = format!("{path}{separator}digest={digest}");
        let (status, _, body) = self.request(
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            data,
        )?;
        if status != 201 {
            return Err(unexpected("PUT", &put, status, &body));
        }
        Ok(digest)
    }

    /// Stores an OCI image manifest as `repository:tag`.
    pub fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &serde_json::Value,
    ) -> Result<()> {
        let body = manifest.to_string().into_bytes();
        self.put_manifest_bytes(repository, tag, crate::images::IMAGE_MANIFEST, &body)
            .map(|_| ())
    }

    /// Stores a manifest of `media_type` as `repository:reference` (a tag or its own
    /// digest); returns its digest.
    pub fn put_manifest_bytes(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String> {
        use sha2::Digest;
        let path = format!("/v2/{repository}/manifests/{reference}");
        let (status, _, answer) =
            self.request("PUT", &path, &[("Content-Type", media_type)], body)?;
        if status != 201 {
            return Err(unexpected("PUT", &path, status, &answer));
        }
        Ok(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(body))
        ))
    }

    /// One HTTP request to the registry.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response> {
        http(self.port, method, path, headers, body)
            .map_err(io_error(format!("{method} {path} on {}", self.host())))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unexpected(method: &str, path: &str, status: u16, body: &[u8]) -> RegistryError {
    RegistryError::Unexpected {
        method: method.into(),
        path: path.into(),
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

fn string_list(body: &[u8], key: &str) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v[key].as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Status, headers and body of a response.
pub type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// The value of header `name` (case-insensitive).
pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// A minimal HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("the answer has no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("the answer has no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = response[split + 4..].to_vec();
    if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    }
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::other("malformed chunked body");
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .map_err(|_| bad())?;
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = start + size;
        out.extend_from_slice(data.get(start..end).ok_or_else(bad)?);
        data = data.get(end + 2..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_and_restarts_on_the_same_port_and_storage() {
        let mut registry = Registry::start().unwrap();
        let port = registry.port();
        assert!(registry.catalog().unwrap().is_empty());
        std::fs::create_dir_all(registry.storage_dir().join("marker")).unwrap();
        registry.stop();
        assert!(!registry.is_running());
        assert!(http(port, "GET", "/v2/", &[], &[]).is_err());
        registry.restart().unwrap();
        assert_eq!(registry.port(), port);
        assert!(registry.storage_dir().join("marker").is_dir());
        assert_eq!(registry.manifest("nothing/here", "latest").unwrap(), None);
        assert!(registry.tags("nothing/here").unwrap().is_empty());
    }

    #[test]
    fn uploads_blobs_and_manifests() {
        let registry = Registry::start().unwrap();
        let config = registry.upload_blob("t/r", b"{}").unwrap();
        let layer = registry.upload_blob("t/r", b"hello").unwrap();
        assert!(registry.blob_data_path(&layer).unwrap().is_file());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}]
        });
        registry.put_manifest("t/r", "v1", &manifest).unwrap();
        assert_eq!(registry.manifest("t/r", "v1").unwrap().unwrap(), manifest);
        assert_eq!(registry.tags("t/r").unwrap(), ["v1"]);
        assert_eq!(registry.catalog().unwrap(), ["t/r"]);
    }

    #[test]
    fn dechunks_bodies() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"9\r\nab").is_err());
    }
}
