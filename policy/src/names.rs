//! Kubernetes name grammars used to check annotation values before they become names
//! in the pod spec.

use oras_contract::kubernetes::{is_dns1123_label, is_dns1123_subdomain};

const MAX_LABEL_LEN: usize = 63;
const MAX_SUBDOMAIN_LEN: usize = 253;

/// An RFC 1123 label: what a Service (and so an OrasCache) may be named.
pub fn check_dns_label(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!(
            "is not a valid name: at most {MAX_LABEL_LEN} lowercase letters, digits or '-', starting and ending with a letter or digit"
        ))
    }
}

/// An RFC 1123 subdomain: what a Secret may be named, and a cluster domain.
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    if is_dns1123_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "is not a valid name: at most {MAX_SUBDOMAIN_LEN} characters of dot-separated lowercase labels"
        ))
    }
}

/// A container image reference as the kubelet takes it; only what can be checked
/// without a registry (not empty, no whitespace or control characters).
pub fn check_image(image: &str) -> Result<(), String> {
    if image.is_empty() {
        Err("is empty".into())
    } else if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must not contain whitespace".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_dns_label("orascache-sample").is_ok());
        assert!(check_dns_label("oras").is_ok());
        for bad in ["", "Oras", "-a", "a-", "a.b", &"a".repeat(64)] {
            assert!(check_dns_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        assert!(check_dns_subdomain("cluster.local").is_ok());
        assert!(check_dns_subdomain("oras-env").is_ok());
        for bad in ["", "a..b", ".a", "A.b", "a_b"] {
            assert!(check_dns_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        assert!(check_image("ghcr.io/x/y:1.0").is_ok());
        assert!(check_image("").is_err());
        assert!(check_image("a b").is_err());
    }
}
