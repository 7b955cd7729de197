//! The Kubernetes resource quantity grammar (`100m`, `64Mi`, `1.5`, `2e3`).

/// Checks `text` is a quantity the API server accepts.
pub fn check_quantity(text: &str) -> Result<(), String> {
    if is_quantity(text) {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a Kubernetes quantity (examples: 10m, 0.5, 64Mi, 1G)"
        ))
    }
}

fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let digits = number.replace('.', "");
    let valid_number = !digits.is_empty() && number.matches('.').count() <= 1;
    valid_number && is_suffix(suffix)
}

fn is_suffix(suffix: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_kubernetes_accepts() {
        for good in [
            "10m", "0.5", ".5", "1", "64Mi", "1G", "2e3", "1E-2", "+1", "100Ki",
        ] {
            assert!(check_quantity(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn rejects_the_rest_naming_the_value() {
        for bad in ["", "m", "1.2.3", "10 m", "1mi", "1e", "abc", "1KiB"] {
            let message = check_quantity(bad).unwrap_err();
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
    }
}
