//! The URI grammar of the annotations: `repository[:tag][@digest]`, relative to a
//! registry, and the `host[:port]` grammar of registries.

use std::fmt;

use oras_contract::reference::{MAX_TAG_LEN, check_digest, is_path_component, is_tag};
pub use oras_contract::reference::{check_reference_registry, check_registry_host};

const MAX_REPOSITORY_LEN: usize = 255;
const DEFAULT_TAG: &str = "latest";

/// A reference without its registry, as users write it in `input-uri` / `output-uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses `dinosaur/hello-world:input`, `data@sha256:...` or `data` (tag `latest`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("is empty".into());
        }
        if text.contains("://") {
            return Err("must not have a scheme: write repository[:tag|@digest]".into());
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        let last_slash = name.rfind('/').map_or(0, |at| at + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(at) => (&name[..last_slash + at], Some(&name[last_slash + at + 1..])),
            None => (name, None),
        };
        check_repository(repository)?;
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        if let Some(digest) = digest {
            check_digest(digest)?;
        }
        Ok(Self {
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The fully qualified reference on `registry` (`host[:port]`); a reference with
    /// neither tag nor digest gets the tag `latest`.
    pub fn qualified(&self, registry: &str) -> String {
        let mut text = format!("{registry}/{}", self.repository);
        match (&self.tag, &self.digest) {
            (Some(tag), _) => {
                text.push(':');
                text.push_str(tag);
            }
            (None, None) => {
                text.push(':');
                text.push_str(DEFAULT_TAG);
            }
            (None, Some(_)) => {}
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("has no repository: write repository[:tag|@digest]".into());
    }
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(format!(
            "has a repository of {} characters; at most {MAX_REPOSITORY_LEN} are allowed",
            repository.len()
        ));
    }
    for component in repository.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "has an invalid repository path component {component:?}: use lowercase letters and digits, separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn check_tag(tag: &str) -> Result<(), String> {
    if is_tag(tag) {
        Ok(())
    } else {
        Err(format!(
            "has an invalid tag {tag:?}: up to {MAX_TAG_LEN} letters, digits, '_', '.' or '-', not starting with '.' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_without_tag_gets_latest() {
        let reference = Reference::parse("dinosaur/hello-world").unwrap();
        assert_eq!(
            reference.qualified("oras.ns.svc.cluster.local:5000"),
            "oras.ns.svc.cluster.local:5000/dinosaur/hello-world:latest"
        );
    }

    #[test]
    fn tags_and_digests_are_kept() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let with_tag = Reference::parse("dinosaur/hello-world:input").unwrap();
        assert_eq!(with_tag.qualified("r:1"), "r:1/dinosaur/hello-world:input");
        let with_digest = Reference::parse(&format!("data@{digest}")).unwrap();
        assert_eq!(with_digest.qualified("r"), format!("r/data@{digest}"));
        let both = Reference::parse(&format!("data:v1@{digest}")).unwrap();
        assert_eq!(both.qualified("r"), format!("r/data:v1@{digest}"));
        assert_eq!(both.to_string(), format!("data:v1@{digest}"));
    }

    #[test]
    fn path_components_follow_the_distribution_grammar() {
        for good in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "metric/lammps",
            "x0/y-1/z.2",
        ] {
            assert!(Reference::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "A", "a..b", "a___b", "-a", "a-", "a//b", "/a", "a/", "a b", "a._b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        assert_eq!(Reference::parse("").unwrap_err(), "is empty");
        assert!(Reference::parse("Dino/x").unwrap_err().contains("\"Dino\""));
        assert!(
            Reference::parse("dino:bad tag")
                .unwrap_err()
                .contains("invalid tag")
        );
        assert!(
            Reference::parse("dino:.x")
                .unwrap_err()
                .contains("invalid tag")
        );
        assert!(
            Reference::parse("dino@sha256:abc")
                .unwrap_err()
                .contains("invalid digest")
        );
        assert!(
            Reference::parse("http://x/y")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            Reference::parse(":tag")
                .unwrap_err()
                .contains("no repository")
        );
        let long = "a".repeat(300);
        assert!(
            Reference::parse(&long)
                .unwrap_err()
                .contains("300 characters")
        );
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(
            Reference::parse(&long_tag)
                .unwrap_err()
                .contains("invalid tag")
        );
    }

    /// The grammar the agent checks too: one table, run by both.
    #[test]
    fn registry_hosts_and_digests_follow_the_shared_table() {
        use oras_contract::reference::cases::{DIGESTS, REGISTRY_HOSTS};
        for (host, valid) in REGISTRY_HOSTS {
            assert_eq!(check_registry_host(host).is_ok(), *valid, "{host:?}");
        }
        for (digest, valid) in DIGESTS {
            let reference = format!("data@{digest}");
            assert_eq!(
                Reference::parse(&reference).is_ok(),
                *valid,
                "{reference:?}"
            );
        }
    }
}
