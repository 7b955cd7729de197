//! Parts of the OCI distribution reference grammar that the policy checks at admission
//! and the agent checks before it talks to a registry: one definition, so the policy
//! admits exactly the repositories and tags the agent can use.

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
}
