//! The reference grammar: `registry[:port]/repository[:tag][@digest]`.
//!
//! References are always fully qualified (the policy writes them that way, and a user
//! names the registry as with `oras`). A missing tag means `latest`.

use std::fmt;

use oci_client::Reference;

/// A parsed artifact reference, remembering the text the user wrote for messages.
#[derive(Debug, Clone)]
pub struct ArtifactRef {
    text: String,
    inner: Reference,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "reference {0:?} does not name its registry: write it as host[:port]/repository[:tag], e.g. localhost:5000/hello-world:latest"
    )]
    NoRegistry(String),
    #[error("reference {text:?} cannot be parsed: {reason}")]
    Invalid { text: String, reason: String },
    #[error("repository {0:?} must not carry a tag or digest here")]
    NotARepository(String),
}

/// True when the first path component names a registry host rather than a namespace.
fn names_registry(text: &str) -> bool {
    match text.split_once('/') {
        Some((host, _)) => host.contains('.') || host.contains(':') || host == "localhost",
        None => false,
    }
}

impl ArtifactRef {
    /// Parse a fully qualified reference.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if !names_registry(text) {
            return Err(ReferenceError::NoRegistry(text.to_string()));
        }
        let inner = Reference::try_from(text).map_err(|err| ReferenceError::Invalid {
            text: text.to_string(),
            reason: err.to_string(),
        })?;
        Ok(Self {
            text: text.to_string(),
            inner,
        })
    }

    /// Parse `registry/repository` (no tag, no digest), as `tags` takes.
    pub fn parse_repository(text: &str) -> Result<Self, ReferenceError> {
        let parsed = Self::parse(text)?;
        let last = text.rsplit('/').next().unwrap_or_default();
        if text.contains('@') || last.contains(':') {
            return Err(ReferenceError::NotARepository(text.to_string()));
        }
        Ok(parsed)
    }

    pub fn oci(&self) -> &Reference {
        &self.inner
    }

    /// `host[:port]` of the registry.
    pub fn registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_reference_keeps_its_parts() {
        let r = ArtifactRef::parse("localhost:5000/dinosaur/hello-world:input").unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.oci().repository(), "dinosaur/hello-world");
        assert_eq!(r.oci().tag(), Some("input"));
        assert_eq!(r.to_string(), "localhost:5000/dinosaur/hello-world:input");
    }

    #[test]
    fn missing_tag_means_latest() {
        let r = ArtifactRef::parse("oras.ns.svc.cluster.local:5000/a/b").unwrap();
        assert_eq!(r.oci().tag(), Some("latest"));
        assert_eq!(r.registry(), "oras.ns.svc.cluster.local:5000");
    }

    #[test]
    fn digest_reference_is_accepted() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ArtifactRef::parse(&format!("127.0.0.1:5000/x@{digest}")).unwrap();
        assert_eq!(r.digest(), Some(digest.as_str()));
    }

    #[test]
    fn reference_without_registry_is_refused_with_the_text() {
        let err = ArtifactRef::parse("dinosaur/hello-world:input").unwrap_err();
        assert!(err.to_string().contains("dinosaur/hello-world:input"));
        assert!(ArtifactRef::parse("hello").is_err());
    }

    #[test]
    fn bad_reference_is_refused() {
        assert!(ArtifactRef::parse("localhost:5000/UPPER:tag").is_err());
        assert!(ArtifactRef::parse("localhost:5000/a:b:c").is_err());
    }

    #[test]
    fn repository_form_refuses_a_tag() {
        assert!(ArtifactRef::parse_repository("localhost:5000/a/b").is_ok());
        assert!(ArtifactRef::parse_repository("localhost:5000/a/b:t").is_err());
    }
}
