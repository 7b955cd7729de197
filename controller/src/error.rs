//! The crate's one error type.

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object lacks a field the API server always sets (a test fixture or a bug
    /// upstream): retrying cannot help, so the controller waits for a change.
    #[error("OrasCache {name} has no {field}")]
    MissingObjectKey { name: String, field: &'static str },

    /// The operating system's random generator failed (new passwords).
    #[error("generating passwords: {0}")]
    Random(String),

    /// Hashing the passwords for the registry's htpasswd failed.
    #[error("hashing the passwords for htpasswd: {0}")]
    Hash(String),

    /// A request to the API server failed.
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Short label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingObjectKey { .. } => "malformed",
            Error::Random(_) | Error::Hash(_) => "credentials",
            Error::Kube { action, .. } if *action == "write status" => "write_status",
            Error::Kube { action, .. } => action,
        }
    }

    /// What went wrong underneath, for the failures metric: `conflict` (409),
    /// `not_found` (404), `refused` (another 4xx), `server_error` (5xx), `unreachable`
    /// (no answer: the connection failed or broke), `other`.
    pub fn metric_cause(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) => match status.code {
                    409 => "conflict",
                    404 => "not_found",
                    500..=599 => "server_error",
                    _ => "refused",
                },
                kube::Error::HyperError(_)
                | kube::Error::Service(_)
                | kube::Error::ReadEvents(_) => "unreachable",
                _ => "other",
            },
            _ => "other",
        }
    }

    /// Whether another writer changed the object first (409): a fresh read resolves it.
    pub fn is_conflict(&self) -> bool {
        self.api_status() == Some(409)
    }

    /// Whether retrying can succeed without the object changing.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Error::MissingObjectKey { .. })
    }

    /// The HTTP status of an API error, when there was one.
    pub fn api_status(&self) -> Option<u16> {
        match self {
            Error::Kube {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }
}
