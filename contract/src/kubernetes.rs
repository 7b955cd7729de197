//! Kubernetes grammars the policy and the controller both check values against before
//! they become names or quantities in objects.

const MAX_LABEL_LEN: usize = 63;
const MAX_SUBDOMAIN_LEN: usize = 253;

/// An RFC 1123 label: lowercase letters, digits and '-', at most 63, starting and
/// ending with a letter or digit.
pub fn is_dns1123_label(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= MAX_LABEL_LEN
        && name.chars().all(|c| alnum(c) || c == '-')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

/// An RFC 1035 label (what a Service may be named): an RFC 1123 label that starts with
/// a letter.
pub fn is_dns1035_label(name: &str) -> bool {
    is_dns1123_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// An RFC 1123 subdomain: dot-separated RFC 1123 labels, at most 253 characters.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= MAX_SUBDOMAIN_LEN && name.split('.').all(is_dns1123_label)
}

/// The resource quantity grammar: a signed decimal number, then an optional binary
/// suffix (Ki..Ei), decimal suffix (n, u, m, k, M..E) or exponent (e3, E-2).
pub fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 16] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let has_digits = number.chars().any(|c| c.is_ascii_digit());
    if !has_digits || number.matches('.').count() > 1 {
        return false;
    }
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e));
    matches!(exponent, Some(e) if !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for good in ["oras", "orascache-sample", "a1", "1a"] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "Oras", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        assert!(is_dns1035_label("oras"));
        assert!(!is_dns1035_label("1oras"));
        assert!(is_dns1123_subdomain("cluster.local"));
        for bad in ["", "a..b", ".a", "A.b", &"a.".repeat(130)] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        for good in [
            "10m", "0.5", ".5", "1", "64Mi", "1G", "2e3", "1E-2", "+1", "100Ki", "-1",
        ] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in [
            "", "m", "Gi", "1.2.3", "1..2", "10 m", "1 Gi", "1mi", "1e", "abc", "ten", "1KiB",
            "1GB", ".",
        ] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
