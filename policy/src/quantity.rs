//! The Kubernetes resource quantity grammar (`100m`, `64Mi`, `1.5`, `2e3`), with a message
//! naming the value.

use oras_contract::kubernetes::is_quantity;

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
