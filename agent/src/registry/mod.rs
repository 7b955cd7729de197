//! The registry client: the only place that talks HTTP.
//!
//! Built on `oci-client`, working around its traps:
//! - large blobs are read once, hashed while they stream in one upload session of our
//!   own ([`upload`]); small in-memory blobs go through one monolithic PUT, never the
//!   crate's chunked upload, which sends one request per stream item;
//! - zero-byte blobs go through the same monolithic PUT, which accepts them;
//! - blobs are pulled by our own `GET` ([`download`]) into a temporary file and
//!   verified here before anyone renames them into place;
//! - on registries without authentication, the client would request `/v2/` before
//!   every call: blob calls then go through a client that never stored credentials,
//!   and the one `GET /v2/` of [`Registry::connect`] is the only one.
//!
//! Connection refused, time-outs, 5xx and 429 are retried with backoff within
//! [`RetryPolicy::budget`] ([`backoff`]), waiting what a `Retry-After` asks for on our
//! own requests ([`request`]; `oci-client` keeps the headers of its answers to
//! itself), then reported with the registry and the reference.
//! A registry that speaks the other protocol (plain HTTP where HTTPS was asked, or the
//! reverse) is named at once and never retried: no retry can change its answer, and
//! no call downgrades or upgrades on its own, not even for a loopback registry.

mod backoff;
mod download;
mod request;
mod upload;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciImageIndex;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};

use crate::credentials::{self, Operation};
use crate::progress::Progress;
use crate::reference::ArtifactRef;
use backoff::Backoff;
use request::RequestAuth;
use upload::Attempt;
pub use upload::BlobSink;

/// Environment variable holding the retry budget in seconds.
pub const RETRY_ENV: &str = "ORAS_AGENT_RETRY_SECONDS";
const DEFAULT_RETRY_SECONDS: u64 = 120;
/// Environment variable holding how long a transfer may go without a byte, in seconds.
pub const STALL_ENV: &str = "ORAS_AGENT_STALL_SECONDS";
const DEFAULT_STALL_SECONDS: u64 = 120;

/// How long transient registry errors are retried before giving up, and how long a
/// silent connection is waited for before it counts as one.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub budget: Duration,
    pub stall: Duration,
}

impl RetryPolicy {
    /// From `ORAS_AGENT_RETRY_SECONDS` and `ORAS_AGENT_STALL_SECONDS`, 120 s each by
    /// default.
    pub fn from_env() -> Self {
        let seconds = |name: &str, default: u64| {
            let value = std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default);
            Duration::from_secs(value)
        };
        Self {
            budget: seconds(RETRY_ENV, DEFAULT_RETRY_SECONDS),
            // Zero would make every read time out at once.
            stall: seconds(STALL_ENV, DEFAULT_STALL_SECONDS).max(Duration::from_secs(1)),
        }
    }

    /// A budget of `budget`, and the default stall time.
    #[cfg(test)]
    pub fn with_budget(budget: Duration) -> Self {
        Self {
            budget,
            stall: Duration::from_secs(DEFAULT_STALL_SECONDS),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {registry} did not answer in {seconds}s of retries while trying to {action} {reference}: {last}"
    )]
    Unavailable {
        registry: String,
        reference: String,
        action: String,
        seconds: u64,
        last: String,
    },
    #[error(
        "cannot {action} {reference} at registry {registry}: it no longer has a blob the manifest names ({reason})"
    )]
    BlobUnknown {
        registry: String,
        reference: String,
        action: String,
        reason: String,
    },
    #[error("cannot {action} {reference} at registry {registry}: {reason}")]
    Failed {
        registry: String,
        reference: String,
        action: String,
        reason: String,
    },
    #[error(
        "blob {expected} of {reference} does not match its digest (received {actual}, {size} bytes): refused, nothing written"
    )]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
        size: u64,
    },
    #[error("{reference}: unsupported digest {digest:?} (only sha256 is supported)")]
    UnsupportedDigest { reference: String, digest: String },
    #[error("cannot push to {reference}: {reason}")]
    Source { reference: String, reason: String },
    #[error("{registry} answers plain HTTP: use --plain-http")]
    AnswersPlainHttp { registry: String },
    #[error("{registry} answers HTTPS: drop --plain-http")]
    AnswersHttps { registry: String },
}

/// The protocol a registry answered with when it was not the one asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WrongProtocol {
    /// HTTPS was asked; the TLS handshake got a plain-HTTP answer.
    PlainHttp,
    /// Plain HTTP was asked; the server speaks TLS.
    Https,
}

/// Whether `err` is a TLS handshake that got a plain-HTTP answer: rustls reports it as
/// a record of an invalid content type (the `H` of `HTTP/1.1`), deep in the error's
/// sources.
fn answered_plain_http(err: &OciDistributionError) -> bool {
    let OciDistributionError::RequestError(err) = err else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) =
            rustls_error(cause)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The rustls error `err` is or wraps in (possibly nested) `io::Error`s, whose
/// `source()` skips what they wrap.
fn rustls_error<'a>(mut err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
        err = inner;
    }
}

/// An HTTPS server's answer to a plain-HTTP request: distribution (Go) answers
/// `400 Client sent an HTTP request to an HTTPS server.`, nginx `400 The plain HTTP
/// request was sent to HTTPS port`.
fn is_https_answer(status: u16, body: &str) -> bool {
    status == 400 && body.to_ascii_lowercase().contains("https")
}

/// True for errors that may go away: the registry is starting, overloaded or flaky.
fn is_transient(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::RequestError(e) => {
            e.is_connect()
                || e.is_timeout()
                || e.is_request()
                || e.is_body()
                || broke_mid_body(e)
                || e.status()
                    .is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
        }
        OciDistributionError::ServerError { code, message, .. } => {
            *code >= 500 || *code == 429 || is_read_only(*code, message)
        }
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Toomanyrequests)),
        _ => false,
    }
}

/// A response body cut by the network (a reset, an early close): reqwest reports it as
/// a decoding error whose cause is an I/O error.
fn broke_mid_body(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Distribution's answer to a write while it is read-only
/// (`storage.maintenance.readonly`, during a cache's garbage collection): a plain 405.
/// It ends when the collection does.
fn is_read_only(code: u16, message: &str) -> bool {
    code == 405 && message.trim().eq_ignore_ascii_case("method not allowed")
}

/// A manifest refused because the registry lacks one of its blobs (collected between
/// their upload and the manifest's): `MANIFEST_BLOB_UNKNOWN` in the error envelope,
/// which `oci-client` passes on parsed or as the body of a 400.
fn is_manifest_blob_unknown(err: &OciDistributionError) -> bool {
    let code = "MANIFEST_BLOB_UNKNOWN";
    match err {
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::ManifestBlobUnknown)),
        OciDistributionError::ServerError {
            code: 400, message, ..
        } => serde_json::from_str::<serde_json::Value>(message).is_ok_and(|envelope| {
            envelope["errors"]
                .as_array()
                .is_some_and(|errors| errors.iter().any(|e| e["code"] == code))
        }),
        _ => false,
    }
}

fn client_config(plain_http: bool, stall: Duration) -> ClientConfig {
    ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        use_monolithic_push: true,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(stall),
        max_concurrent_upload: 4,
        max_concurrent_download: 4,
        user_agent: concat!("oras-agent/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }
}

/// The client of our own requests (the version check, streamed uploads, deletes), set
/// up as `oci-client` sets up its own from [`client_config`].
fn http_client(stall: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(stall)
        .user_agent(concat!("oras-agent/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Which client serves which call, after probing how the registry authenticates.
enum Mode {
    /// The registry hands out tokens (or takes basic auth): the probing client has
    /// them cached, it serves every call.
    Tokens(Client),
    /// The registry wants no authentication: `blobs` never stored credentials, so it
    /// never probes `/v2/`; the few manifest and tag calls (which store credentials
    /// first) go through `probe`, at the cost of one `/v2/` request each.
    Open { probe: Client, blobs: Client },
}

/// A connection to one registry for one artifact.
pub struct Registry {
    reference: ArtifactRef,
    auth: RegistryAuth,
    mode: Mode,
    retry: RetryPolicy,
    plain_http: bool,
    http: reqwest::Client,
    /// How our own requests (streamed uploads, blob downloads) authenticate; a bearer
    /// token is renewed on a 401.
    request_auth: Mutex<RequestAuth>,
}

impl Registry {
    /// Reach the registry of `reference` (retrying while it is not up) and authenticate.
    pub async fn connect(
        reference: &ArtifactRef,
        op: Operation,
        plain_http: bool,
        retry: RetryPolicy,
    ) -> Result<Self, RegistryError> {
        let (auth, source) = credentials::resolve(reference.registry(), op);
        tracing::debug!(
            registry = reference.registry(),
            reference = %reference,
            ?op,
            plain_http,
            retry_budget = ?retry.budget,
            credentials = ?source,
            "connecting"
        );
        let probe = Client::new(client_config(plain_http, retry.stall));
        let http = http_client(retry.stall).map_err(|e| RegistryError::Failed {
            registry: reference.registry().to_string(),
            reference: reference.to_string(),
            action: "reach".into(),
            reason: error_chain(&e),
        })?;
        let request_auth = match &auth {
            RegistryAuth::Basic(user, password) => {
                RequestAuth::Basic(user.clone(), password.clone())
            }
            RegistryAuth::Bearer(token) => RequestAuth::Bearer(token.clone()),
            _ => RequestAuth::Anonymous,
        };
        let mut registry = Self {
            reference: reference.clone(),
            auth,
            mode: Mode::Tokens(probe.clone()),
            retry,
            plain_http,
            http,
            request_auth: Mutex::new(request_auth),
        };
        let challenged = registry.check_version().await?;
        if !challenged && matches!(registry.auth, RegistryAuth::Anonymous) {
            // An open registry: nothing more to ask it before the real calls.
            registry.mode = Mode::Open {
                probe,
                blobs: Client::new(client_config(plain_http, retry.stall)),
            };
            registry.set_request_auth(RequestAuth::Anonymous);
            return Ok(registry);
        }
        let ops: &[RegistryOperation] = match op {
            Operation::Pull => &[RegistryOperation::Pull],
            Operation::Push => &[RegistryOperation::Pull, RegistryOperation::Push],
        };
        let mut token = false;
        for registry_op in ops {
            let auth = registry.auth.clone();
            let oci = reference.oci().clone();
            let got = registry
                .with_retry("reach", || probe.auth(&oci, &auth, *registry_op))
                .await?;
            token |= got.is_some();
            // The last operation's token (push, when pushing) covers every request.
            if let Some(token) = got {
                registry.set_request_auth(RequestAuth::Bearer(token));
            }
        }
        if !token && matches!(registry.auth, RegistryAuth::Anonymous) {
            registry.mode = Mode::Open {
                probe,
                blobs: Client::new(client_config(plain_http, retry.stall)),
            };
        }
        Ok(registry)
    }

    fn set_request_auth(&self, auth: RequestAuth) {
        // A poisoned lock only means another upload panicked while renewing.
        *self
            .request_auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = auth;
    }

    fn request_auth(&self) -> RequestAuth {
        self.request_auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn reference(&self) -> &ArtifactRef {
        &self.reference
    }

    /// Ask `/v2/` once ourselves: whether the registry asks for credentials (an open
    /// registry needs nothing more before the real calls) and, with `--plain-http`,
    /// whether it answers HTTPS instead: `oci-client` takes an HTTPS server's 400 to a
    /// plain-HTTP request for a registry without authentication, and some TLS servers
    /// answer it with an alert or by closing the connection. An answer that is not HTTP
    /// is told apart from a registry going down by a TLS handshake.
    async fn check_version(&self) -> Result<bool, RegistryError> {
        let url = format!(
            "{}://{}/v2/",
            if self.plain_http { "http" } else { "https" },
            self.reference.oci().resolve_registry()
        );
        let plain_http = self.plain_http;
        let answer = self
            .with_retry("reach", || async {
                match self.http.get(&url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let challenged = response
                            .headers()
                            .contains_key(http::header::WWW_AUTHENTICATE);
                        Ok(Some((
                            status,
                            challenged,
                            response.text().await.unwrap_or_default(),
                        )))
                    }
                    // Not up (yet): retried.
                    Err(err) if err.is_connect() || err.is_timeout() || !plain_http => {
                        Err(err.into())
                    }
                    Err(err) => {
                        tracing::debug!(error = %error_chain(&err), "no HTTP answer to GET /v2/");
                        Ok(None)
                    }
                }
            })
            .await?;
        match answer {
            Some((status, _, body)) if plain_http && is_https_answer(status, &body) => {
                Err(self.wrong_protocol(WrongProtocol::Https))
            }
            Some((_, challenged, _)) => Ok(challenged),
            None if self.speaks_tls().await => Err(self.wrong_protocol(WrongProtocol::Https)),
            None => Ok(true),
        }
    }

    /// Whether the registry completes a TLS handshake and answers `GET /v2/` over it.
    /// Its certificate is not checked: nothing is sent but that request, and the answer
    /// only decides the message of a failure.
    async fn speaks_tls(&self) -> bool {
        let url = format!("https://{}/v2/", self.reference.oci().resolve_registry());
        let Ok(client) = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
        else {
            return false;
        };
        client.get(&url).send().await.is_ok()
    }

    fn wrong_protocol(&self, answered: WrongProtocol) -> RegistryError {
        let registry = self.reference.registry().to_string();
        match answered {
            WrongProtocol::PlainHttp => RegistryError::AnswersPlainHttp { registry },
            WrongProtocol::Https => RegistryError::AnswersHttps { registry },
        }
    }

    fn blob_client(&self) -> &Client {
        match &self.mode {
            Mode::Tokens(client) => client,
            Mode::Open { blobs, .. } => blobs,
        }
    }

    /// The client for calls that store credentials before they run.
    fn manifest_client(&self) -> &Client {
        match &self.mode {
            Mode::Tokens(client) => client,
            Mode::Open { probe, .. } => probe,
        }
    }

    /// The URL of `path` under this repository's `/v2/<name>/`, for our own requests.
    fn repository_url(&self, path: &str) -> String {
        let oci = self.reference.oci();
        format!(
            "{}://{}/v2/{}/{path}",
            if self.plain_http { "http" } else { "https" },
            oci.resolve_registry(),
            oci.repository()
        )
    }

    fn failed(&self, action: &str, reason: impl ToString) -> RegistryError {
        RegistryError::Failed {
            registry: self.reference.registry().to_string(),
            reference: self.reference.to_string(),
            action: action.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The error of a call whose retries ended (`last`: its last failure).
    fn unavailable(
        &self,
        action: &str,
        last: String,
        exhausted: backoff::Exhausted,
    ) -> RegistryError {
        RegistryError::Unavailable {
            registry: self.reference.registry().to_string(),
            reference: self.reference.to_string(),
            action: action.to_string(),
            seconds: self.retry.budget.as_secs(),
            last: format!("{last}{}", exhausted.note()),
        }
    }

    /// After a failed request of our own: the error when it cannot be retried (not
    /// transient, or no wait left in the budget), else the wait before the next try
    /// (`again` says what comes then, in the log).
    async fn wait_to_retry(
        &self,
        backoff: &mut Backoff,
        action: &str,
        failure: &request::Failure,
        again: &str,
    ) -> Result<(), RegistryError> {
        if !failure.is_transient() {
            return Err(self.failed(action, failure));
        }
        let delay = backoff
            .next_wait(failure.requested_wait())
            .map_err(|exhausted| self.unavailable(action, failure.to_string(), exhausted))?;
        tracing::warn!(
            registry = self.reference.registry(),
            "cannot {action} {} yet ({failure}); {again} in {delay:?}",
            self.reference,
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Run `call` until it succeeds, fails for good, or the retry budget is spent.
    async fn with_retry<T, F, Fut>(&self, action: &str, mut call: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, OciDistributionError>>,
    {
        let mut backoff = Backoff::new(self.retry.budget);
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) if answered_plain_http(&err) => {
                    tracing::debug!(error = %error_chain(&err), "the registry speaks plain HTTP");
                    return Err(self.wrong_protocol(WrongProtocol::PlainHttp));
                }
                Err(err) if is_transient(&err) => {
                    // `oci-client` keeps the answer's headers to itself: no Retry-After.
                    let delay = backoff.next_wait(None).map_err(|exhausted| {
                        self.unavailable(action, error_chain(&err), exhausted)
                    })?;
                    tracing::warn!(
                        registry = self.reference.registry(),
                        "cannot {action} {} yet ({}); retrying in {:?}",
                        self.reference,
                        error_chain(&err),
                        delay
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(err) if is_manifest_blob_unknown(&err) => {
                    return Err(RegistryError::BlobUnknown {
                        registry: self.reference.registry().to_string(),
                        reference: self.reference.to_string(),
                        action: action.to_string(),
                        reason: error_chain(&err),
                    });
                }
                Err(err) => return Err(self.failed(action, error_chain(&err))),
            }
        }
    }

    /// Whether the registry already has the blob (then it need not be pushed).
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RegistryError> {
        let oci = self.reference.oci();
        self.with_retry("check blob of", || {
            self.blob_client().blob_exists(oci, digest)
        })
        .await
    }

    /// Push the blob `source` writes, read once: hashed while it streams in one
    /// upload session, committed under the digest of what was sent only when `source`
    /// succeeds (it refuses a file that changed while it was read) and, if `expected`
    /// is given, the bytes hash to it. Each retry starts a new session and runs
    /// `source` again from the start. Returns the blob's digest, its size and what
    /// `source` returned. `label` names the source on the progress line and in errors;
    /// `size` (when known) sizes the progress line.
    pub async fn push_blob_streamed<T, E, F>(
        &self,
        label: &str,
        size: Option<u64>,
        expected: Option<&str>,
        source: F,
    ) -> Result<(String, u64, T), RegistryError>
    where
        T: Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
        F: Fn(&mut BlobSink) -> Result<T, E> + Send + Sync + 'static,
    {
        let uploads = reqwest::Url::parse(&self.repository_url("blobs/uploads/"))
            .map_err(|e| self.failed(&format!("push {label} to"), e))?;
        let progress = size
            .and_then(|size| Progress::start(format!("pushing {label}"), size))
            .map(Arc::new);
        let source = Arc::new(source);
        let mut backoff = Backoff::new(self.retry.budget);
        let mut renewed = false;
        loop {
            let attempt = upload::attempt(
                &self.http,
                &self.request_auth(),
                &uploads,
                expected,
                progress.clone(),
                source.clone(),
            )
            .await;
            let failure = match attempt {
                Attempt::Done(digest, size, value) => return Ok((digest, size, value)),
                Attempt::Source(err) => {
                    return Err(RegistryError::Source {
                        reference: self.reference.to_string(),
                        reason: error_chain(err.as_ref()),
                    });
                }
                Attempt::Mismatch { actual, size } => {
                    return Err(RegistryError::Source {
                        reference: self.reference.to_string(),
                        reason: format!(
                            "{label} no longer hashes to {} (read {actual}, {size} bytes): it changed since it was first read; refused, nothing published",
                            expected.unwrap_or_default()
                        ),
                    });
                }
                Attempt::Refused(reason) => {
                    return Err(self.failed(&format!("push {label} to"), reason));
                }
                Attempt::Retry(failure) => failure,
            };
            if failure.is_unauthorized() {
                // A bearer token expired: renew it once, then the 401 is final.
                if !renewed && self.renew_token(RegistryOperation::Push).await {
                    renewed = true;
                    continue;
                }
                return Err(self.failed(&format!("push {label} to"), failure));
            }
            self.wait_to_retry(
                &mut backoff,
                &format!("push {label} to"),
                &failure,
                "starting its upload again",
            )
            .await?;
        }
    }

    /// Some registries (go-containerregistry's, ECR for manifests) answer a completed
    /// upload with 201 but no `Location`, which the client reports as an error. The
    /// blob counts as stored only when the registry then says it has it (it checked the
    /// digest when the upload completed).
    async fn confirm_without_location(
        &self,
        pushed: Result<String, OciDistributionError>,
        digest: &str,
    ) -> Result<String, OciDistributionError> {
        match pushed {
            Err(OciDistributionError::RegistryNoLocationError) => {
                if self
                    .blob_client()
                    .blob_exists(self.reference.oci(), digest)
                    .await?
                {
                    tracing::debug!(%digest, "upload answered without Location; the registry has the blob");
                    Ok(String::new())
                } else {
                    Err(OciDistributionError::RegistryNoLocationError)
                }
            }
            other => other,
        }
    }

    /// Push a small in-memory blob unless the registry has it already.
    pub async fn push_blob_if_missing(
        &self,
        data: bytes::Bytes,
        digest: &str,
    ) -> Result<(), RegistryError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        self.push_blob_bytes(data, digest).await
    }

    /// Push a small in-memory blob (a config, an attestation).
    pub async fn push_blob_bytes(
        &self,
        data: bytes::Bytes,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let oci = self.reference.oci();
        let size = data.len() as u64;
        self.with_retry(&format!("push blob {digest} to"), || async {
            let stream = futures_util::stream::iter([Ok(data.clone())]);
            let pushed = self
                .blob_client()
                .push_blob_stream(oci, stream, digest, Some(size))
                .await;
            self.confirm_without_location(pushed, digest).await
        })
        .await?;
        Ok(())
    }

    /// Push the manifest under the reference's tag; returns its digest.
    pub async fn push_manifest(
        &self,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<String, RegistryError> {
        self.push_manifest_at(self.reference.oci().clone(), body, media_type)
            .await
    }

    /// Push a manifest of this repository under `tag`; returns its digest.
    pub async fn push_manifest_tagged(
        &self,
        tag: &str,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let target = self.in_repository(|registry, repository| {
            Reference::with_tag(registry, repository, tag.to_string())
        });
        self.push_manifest_at(target, body, media_type).await
    }

    /// Push a manifest of this repository by its digest only (no tag); returns it.
    pub async fn push_manifest_untagged(
        &self,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let digest = sha256_digest(&body);
        // The digest doubles as the tag: when a registry answers without `Location`,
        // the client rebuilds the URL by stripping the tag from it, and panics when
        // there is no tag at its end.
        let target = self.in_repository(|registry, repository| {
            Reference::with_tag_and_digest(registry, repository, digest.clone(), digest.clone())
        });
        self.push_manifest_at(target, body, media_type).await
    }

    fn in_repository(&self, make: impl FnOnce(String, String) -> Reference) -> Reference {
        let oci = self.reference.oci();
        make(
            oci.resolve_registry().to_string(),
            oci.repository().to_string(),
        )
    }

    async fn push_manifest_at(
        &self,
        target: Reference,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let digest = sha256_digest(&body);
        let content_type = http::HeaderValue::from_str(media_type)
            .map_err(|e| self.failed("push manifest of", e))?;
        let body = bytes::Bytes::from(body);
        self.with_retry("push manifest of", || {
            self.blob_client()
                .push_manifest_raw(&target, body.clone(), content_type.clone())
        })
        .await?;
        Ok(digest)
    }

    /// The manifests whose `subject` is the manifest `digest` of this repository: the
    /// registry's referrers API, else the referrers tag schema (`sha256-<hex>`); empty
    /// when there are none.
    pub async fn referrers(&self, digest: &str) -> Result<OciImageIndex, RegistryError> {
        let subject = self.in_repository(|registry, repository| {
            Reference::with_digest(registry, repository, digest.to_string())
        });
        self.with_retry("list the referrers of", || {
            self.blob_client().pull_referrers(&subject, None)
        })
        .await
    }

    /// Fetch the raw manifest and its digest.
    pub async fn pull_manifest(
        &self,
        accepted: &[&str],
    ) -> Result<(bytes::Bytes, String), RegistryError> {
        let oci = self.reference.oci();
        let (body, digest) = self
            .with_retry("pull manifest of", || async {
                self.manifest_client()
                    .pull_manifest_raw(oci, &self.auth, accepted)
                    .await
            })
            .await?;
        let actual = sha256_digest(&body);
        if let Some(expected) = self.reference.digest()
            && expected != actual
        {
            return Err(RegistryError::DigestMismatch {
                reference: self.reference.to_string(),
                expected: expected.to_string(),
                actual,
                size: body.len() as u64,
            });
        }
        if digest != actual {
            tracing::debug!(reported = %digest, %actual, "registry reported another manifest digest");
        }
        Ok((body, actual))
    }

    /// The manifest of this repository under `tag` (or digest): its raw body and digest.
    pub async fn pull_manifest_of(
        &self,
        tag_or_digest: &str,
        accepted: &[&str],
    ) -> Result<(bytes::Bytes, String), RegistryError> {
        let target = self.in_repository(|registry, repository| {
            if tag_or_digest.contains(':') {
                Reference::with_digest(registry, repository, tag_or_digest.to_string())
            } else {
                Reference::with_tag(registry, repository, tag_or_digest.to_string())
            }
        });
        let (body, _) = self
            .with_retry("pull manifest of", || async {
                self.manifest_client()
                    .pull_manifest_raw(&target, &self.auth, accepted)
                    .await
            })
            .await?;
        let digest = sha256_digest(&body);
        if tag_or_digest.contains(':') && tag_or_digest != digest {
            return Err(RegistryError::DigestMismatch {
                reference: format!("{}@{tag_or_digest}", self.reference),
                expected: tag_or_digest.to_string(),
                actual: digest,
                size: body.len() as u64,
            });
        }
        Ok((body, digest))
    }

    /// Every repository of the registry (`/v2/_catalog`, all pages).
    pub async fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        let oci = self.reference.oci();
        let mut repositories: Vec<String> = Vec::new();
        loop {
            let last = repositories.last().cloned();
            let page = self
                .with_retry("list the repositories of", || async {
                    self.manifest_client()
                        .catalog(oci, &self.auth, Some(1000), last.as_deref())
                        .await
                })
                .await?;
            let full = page.repositories.len() == 1000;
            repositories.extend(page.repositories);
            if !full {
                return Ok(repositories);
            }
        }
    }

    /// Delete the manifest `digest` of this repository (and so every tag on it).
    /// Our own request (`oci-client` has no delete), with the connection's credentials
    /// or token.
    pub async fn delete_manifest(&self, digest: &str) -> Result<(), RegistryError> {
        let url = self.repository_url(&format!("manifests/{digest}"));
        let action = format!("delete manifest {digest} of");
        let mut backoff = Backoff::new(self.retry.budget);
        loop {
            let sent = self
                .request_auth()
                .apply(self.http.delete(&url))
                .send()
                .await;
            let failure = match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if response.status() == http::StatusCode::NOT_FOUND => return Ok(()),
                Ok(response) if response.status() == http::StatusCode::METHOD_NOT_ALLOWED => {
                    return Err(self.failed(
                        &action,
                        "the registry does not allow deletes (405; distribution needs storage.delete.enabled)",
                    ));
                }
                Ok(response) => request::Failure::of_answer(response).await,
                Err(err) => request::Failure::Network(err),
            };
            self.wait_to_retry(&mut backoff, &action, &failure, "retrying")
                .await?;
        }
    }

    /// List the repository's tags.
    pub async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        let oci = self.reference.oci();
        let response = self
            .with_retry("list tags of", || async {
                self.manifest_client()
                    .list_tags(oci, &self.auth, None, None)
                    .await
            })
            .await?;
        Ok(response.tags)
    }

    /// Download the blob `digest` of `size` bytes into a temporary file in `dir`
    /// (`label` names it on the progress line), verified against its digest and size.
    /// A download cut or stalled starts again from its first byte into a fresh file;
    /// nothing is left in `dir` on failure.
    pub async fn pull_blob_to_temp(
        &self,
        digest: &str,
        size: u64,
        dir: &Path,
        label: &str,
    ) -> Result<tempfile::NamedTempFile, RegistryError> {
        let expected_hex = digest
            .strip_prefix("sha256:")
            .filter(|hex| hex.len() == 64)
            .ok_or_else(|| RegistryError::UnsupportedDigest {
                reference: self.reference.to_string(),
                digest: digest.to_string(),
            })?;
        let url = self.repository_url(&format!("blobs/{digest}"));
        let action = format!("pull blob {digest} of");
        let progress = Progress::start(format!("pulling {label}"), size);
        let mut backoff = Backoff::new(self.retry.budget);
        let mut renewed = false;
        loop {
            let temp = tempfile::Builder::new()
                .prefix(".oras-agent-")
                .tempfile_in(dir)
                .and_then(|temp| Ok((temp.as_file().try_clone()?, temp)))
                .map_err(|e| self.failed(&action, format!("{}: {e}", dir.display())))?;
            let (file, temp) = temp;
            let outcome = download::attempt(
                &self.http,
                &self.request_auth(),
                &url,
                size,
                file,
                progress.as_ref(),
            )
            .await;
            let failure = match outcome {
                download::Outcome::Received { sha256_hex, bytes }
                    if sha256_hex == expected_hex && bytes == size =>
                {
                    return Ok(temp);
                }
                download::Outcome::Received { sha256_hex, bytes } => {
                    return Err(self.digest_mismatch(
                        digest,
                        format!("sha256:{sha256_hex}"),
                        bytes,
                    ));
                }
                download::Outcome::TooLong { bytes } => {
                    return Err(self.digest_mismatch(
                        digest,
                        format!("more than its {size} bytes"),
                        bytes,
                    ));
                }
                download::Outcome::Disk(err) => {
                    return Err(self.failed(&action, format!("{}: {err}", dir.display())));
                }
                download::Outcome::Failed(failure) => failure,
            };
            // The temporary file of the failed try goes now, before the next one.
            drop(temp);
            if failure.is_unauthorized()
                && !renewed
                && self.renew_token(RegistryOperation::Pull).await
            {
                renewed = true;
                continue;
            }
            self.wait_to_retry(&mut backoff, &action, &failure, "retrying")
                .await?;
        }
    }

    fn digest_mismatch(&self, expected: &str, actual: String, size: u64) -> RegistryError {
        RegistryError::DigestMismatch {
            reference: self.reference.to_string(),
            expected: expected.to_string(),
            actual,
            size,
        }
    }

    /// Asks the registry for a new bearer token (one expired); whether one came.
    async fn renew_token(&self, op: RegistryOperation) -> bool {
        let Mode::Tokens(client) = &self.mode else {
            return false;
        };
        match client.auth(self.reference.oci(), &self.auth, op).await {
            Ok(Some(token)) => {
                self.set_request_auth(RequestAuth::Bearer(token));
                true
            }
            _ => false,
        }
    }
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An error with its causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
