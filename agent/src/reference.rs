//! The reference grammar: `registry[:port]/repository[:tag][@digest]`.
//!
//! References are always fully qualified (the policy writes them that way, and a user
//! names the registry as with `oras`). A missing tag means `latest`.

use std::fmt;

use oci_client::Reference;
use oras_contract::reference::{
    check_digest, check_registry_host, is_path_component, is_tag, names_a_registry,
};

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
    text.split_once('/')
        .is_some_and(|(host, _)| names_a_registry(host))
}

impl ArtifactRef {
    /// Parse a fully qualified reference.
    ///
    /// The grammar is checked here rather than by `oci_spec`'s parser, whose regex costs
    /// about 15 MiB of memory to compile: too much for a pod's agent container.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if !names_registry(text) {
            return Err(ReferenceError::NoRegistry(text.to_string()));
        }
        let invalid = |reason: &str| ReferenceError::Invalid {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        let last_slash = name_and_tag.rfind('/').unwrap_or(0);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(colon) => (
                &name_and_tag[..last_slash + colon],
                Some(&name_and_tag[last_slash + colon + 1..]),
            ),
            None => (name_and_tag, None),
        };
        let (host, repository) = name
            .split_once('/')
            .ok_or_else(|| invalid("no repository after the registry"))?;
        check_registry_host(host)
            .map_err(|reason| invalid(&format!("registry {host:?} {reason}")))?;
        if repository.len() > 255 || !repository.split('/').all(is_path_component) {
            return Err(invalid(
                "the repository must be lowercase path components of letters, digits and . _ -",
            ));
        }
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(invalid(
                "the tag must be up to 128 letters, digits, _ . and -",
            ));
        }
        if let Some(digest) = digest {
            check_digest(digest).map_err(|reason| invalid(&format!("it {reason}")))?;
        }
        let (host, repository) = (host.to_string(), repository.to_string());
        let inner = match (tag, digest) {
            (Some(tag), Some(digest)) => {
                Reference::with_tag_and_digest(host, repository, tag.into(), digest.into())
            }
            (None, Some(digest)) => Reference::with_digest(host, repository, digest.into()),
            (Some(tag), None) => Reference::with_tag(host, repository, tag.into()),
            (None, None) => Reference::with_tag(host, repository, "latest".into()),
        };
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
    fn repository_components_follow_the_distribution_grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a0/b-c/d_e.f"] {
            assert!(ArtifactRef::parse(&format!("r.io/{ok}:t")).is_ok(), "{ok}");
        }
        for bad in ["a___b", "a._b", "-a", "a.", "A"] {
            assert!(
                ArtifactRef::parse(&format!("r.io/{bad}:t")).is_err(),
                "{bad}"
            );
        }
        let r = ArtifactRef::parse("r.io/a:t@sha256:".to_string().as_str()).unwrap_err();
        assert!(r.to_string().contains("r.io/a:t@sha256:"));
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
        assert!(ArtifactRef::parse("localhost:5000/a//b").is_err());
        assert!(ArtifactRef::parse("localhost:5000/a-:b").is_err());
        assert!(ArtifactRef::parse("localhost:5000/a:.tag").is_err());
        assert!(ArtifactRef::parse("localhost:x/a").is_err());
        assert!(ArtifactRef::parse("localhost:5000/a@sha256:abc").is_err());
        assert!(ArtifactRef::parse("localhost:5000/").is_err());
    }

    #[test]
    fn repository_form_refuses_a_tag() {
        assert!(ArtifactRef::parse_repository("localhost:5000/a/b").is_ok());
        assert!(ArtifactRef::parse_repository("localhost:5000/a/b:t").is_err());
    }

    /// The grammar the policy checks too: one table, run by both.
    #[test]
    fn registry_hosts_and_digests_follow_the_shared_table() {
        use oras_contract::reference::cases::{DIGESTS, REGISTRY_HOSTS};
        for (host, valid) in REGISTRY_HOSTS {
            // Every host of the table holds a '.' or a ':', so it is read as a registry
            // (not as a namespace of Docker Hub) and its grammar decides.
            let reference = format!("{host}/repo:tag");
            assert_eq!(
                ArtifactRef::parse(&reference).is_ok(),
                *valid,
                "{reference:?}"
            );
        }
        for (digest, valid) in DIGESTS {
            let reference = format!("localhost:5000/repo@{digest}");
            assert_eq!(
                ArtifactRef::parse(&reference).is_ok(),
                *valid,
                "{reference:?}"
            );
        }
    }

    #[test]
    fn bad_registries_and_digests_are_named() {
        let err = ArtifactRef::parse("localhost:70000/a:b")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("registry \"localhost:70000\" has an invalid port \"70000\""),
            "{err}"
        );
        let err = ArtifactRef::parse("localhost:5000/a@sha256:abc")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid digest \"sha256:abc\""), "{err}");
    }
}
