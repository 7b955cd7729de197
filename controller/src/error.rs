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
