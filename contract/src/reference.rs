//! Parts of the OCI distribution reference grammar that the policy checks at admission
//! and the agent checks before it talks to a registry: one definition, so the policy
//! admits exactly the registry hosts, repositories, tags and digests the agent can use.
//! [`cases`] is the table both crates' tests run.

/// Longest tag the distribution spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// One repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &part[start..i];
        let dashes = separator.bytes().all(|b| b == b'-');
        if !(separator == "." || separator == "_" || separator == "__" || dashes) {
            return false;
        }
    }
    true
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-';
    (1..=MAX_TAG_LEN).contains(&tag.len()) && !tag.starts_with(['.', '-']) && tag.chars().all(ok)
}

/// A digest: `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`. The error
/// completes a sentence about what holds it ("has an invalid digest ...").
pub fn check_digest(digest: &str) -> Result<(), String> {
    let invalid = || {
        format!("has an invalid digest {digest:?}: expected sha256:<64 hex> or sha512:<128 hex>")
    };
    let (algorithm, encoded) = digest.split_once(':').ok_or_else(invalid)?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(invalid()),
    };
    let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if encoded.len() == expected_len && encoded.chars().all(lower_hex) {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// Checks a registry written as `host[:port]` (no scheme, no path): a DNS name or an
/// IPv4 address, or an IPv6 address in brackets, and a port of 1-65535. The error
/// completes a sentence about the host ("has an invalid port ...").
pub fn check_registry_host(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.contains("://") {
        return Err("must not have a scheme: write host[:port]".into());
    }
    if text.contains('/') {
        return Err("must not have a path: write host[:port]".into());
    }
    let port = if let Some(rest) = text.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or("has an unclosed '[' in its IPv6 address")?;
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(format!("has an invalid IPv6 address {address:?}"));
        }
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("has text after its IPv6 address")?,
            ),
        }
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        check_hostname(host)?;
        port
    };
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.chars().all(|c| c.is_ascii_digit()) => {}
            _ => return Err(format!("has an invalid port {port:?}: expected 1-65535")),
        }
    }
    Ok(())
}

/// Whether `host` reads as a registry at the start of a reference rather than as its
/// first repository component (Docker's and ORAS's rule): it has a `.` or a `:`, or is
/// `localhost`. `reg0/team/data` is the repository `reg0/team/data` on no registry.
pub fn names_a_registry(host: &str) -> bool {
    host.contains('.') || host.contains(':') || host == "localhost"
}

/// Checks a registry that will be written in front of a repository: a valid
/// `host[:port]` that also reads as a registry there ([`names_a_registry`]).
pub fn check_reference_registry(text: &str) -> Result<(), String> {
    check_registry_host(text)?;
    if names_a_registry(text) {
        Ok(())
    } else {
        Err(format!(
            "would be read as a repository path, not a registry: a registry needs a `.`, a port or to be localhost (for example {text}:5000)"
        ))
    }
}

fn check_hostname(host: &str) -> Result<(), String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() <= 253 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "has an invalid host name {host:?}: use letters, digits, '-' and '.'"
        ))
    }
}

/// Cases of the grammar, valid or not, that the policy's and the agent's tests both run.
pub mod cases {
    /// Registry hosts, and whether they are valid.
    pub const REGISTRY_HOSTS: &[(&str, bool)] = &[
        ("ghcr.io", true),
        ("localhost:5000", true),
        ("127.0.0.1:5000", true),
        ("oras.team-a.svc.cluster.local:5000", true),
        ("registry-1.docker.io", true),
        ("[::1]:5000", true),
        ("[fe80::1]", true),
        ("host:65535", true),
        ("host:0", false),
        ("host:70000", false),
        ("host:99999", false),
        ("host:", false),
        ("host:5000:1", false),
        ("-h.io", false),
        ("h-.io", false),
        ("a..b.io", false),
        (".a.io", false),
        ("a_b.io", false),
        ("[::1", false),
        ("[::1]x", false),
        ("[zz::1]:5000", false),
    ];

    /// Digests, and whether they are valid.
    pub const DIGESTS: &[(&str, bool)] = &[
        (
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            true,
        ),
        (
            "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            true,
        ),
        ("sha256:abc", false),
        (
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            false,
        ),
        (
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982g",
            false,
        ),
        (
            "md5:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            false,
        ),
        (
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            false,
        ),
        ("sha256:", false),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        for good in ["a", "a.b", "a_b", "a__b", "a---b", "x0", "hello-world"] {
            assert!(is_path_component(good), "{good}");
        }
        for bad in ["", "A", "a..b", "a___b", "-a", "a-", "a b", "a._b", "a/b"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for good in ["latest", "v1.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(is_tag(good), "{good}");
        }
        for bad in ["", ".x", "-x", "a b", "a:b", &"t".repeat(129)] {
            assert!(!is_tag(bad), "{bad}");
        }
    }

    #[test]
    fn the_shared_table() {
        for (host, valid) in cases::REGISTRY_HOSTS {
            assert_eq!(check_registry_host(host).is_ok(), *valid, "{host:?}");
        }
        for (digest, valid) in cases::DIGESTS {
            assert_eq!(check_digest(digest).is_ok(), *valid, "{digest:?}");
        }
    }

    /// Found by fuzzing (fuzz/, target references): the policy took `registry: reg0`
    /// and wrote `reg0/team/data:v1`, which the agent reads as a repository.
    #[test]
    fn a_registry_written_before_a_repository_must_read_as_one() {
        for host in ["reg0", "oras-cache", "a-b"] {
            assert!(check_registry_host(host).is_ok(), "{host}");
            let message = check_reference_registry(host).unwrap_err();
            assert!(message.contains(&format!("{host}:5000")), "{message}");
        }
        for host in [
            "localhost",
            "reg0:5000",
            "oras.svc",
            "[::1]:5000",
            "10.0.0.1",
        ] {
            assert!(check_reference_registry(host).is_ok(), "{host}");
        }
    }

    #[test]
    fn errors_name_the_offending_part() {
        assert!(
            check_registry_host("host:70000")
                .unwrap_err()
                .contains("\"70000\"")
        );
        assert!(
            check_registry_host("a_b.io")
                .unwrap_err()
                .contains("\"a_b.io\"")
        );
        assert!(
            check_digest("sha256:abc")
                .unwrap_err()
                .contains("\"sha256:abc\"")
        );
    }
}
