//! The CA bundle of the agent image: Mozilla's root certificates from the
//! `webpki-root-certs` crate (pinned by Cargo.lock, so the same commit gives the same
//! bytes), as PEM where Debian keeps its bundle, the first place the agent's TLS stack
//! looks.

use base64::Engine;

/// Where the bundle is in the image, without the leading `/`.
pub const PATH: &str = "etc/ssl/certs/ca-certificates.crt";

/// Every root as a PEM certificate, in the crate's order.
pub fn pem() -> String {
    let mut bundle = String::new();
    for root in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let encoded = base64::engine::general_purpose::STANDARD.encode(root.as_ref());
        bundle.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            // Base64 is ASCII.
            bundle.push_str(std::str::from_utf8(line).unwrap_or_default());
            bundle.push('\n');
        }
        bundle.push_str("-----END CERTIFICATE-----\n");
    }
    bundle
}

/// How many certificates the bundle holds.
pub fn count() -> usize {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_root_is_one_pem_block_of_64_column_lines() {
        let bundle = pem();
        assert!(count() > 100, "Mozilla's roots: {}", count());
        assert_eq!(
            bundle.matches("-----BEGIN CERTIFICATE-----\n").count(),
            count()
        );
        assert_eq!(
            bundle.matches("-----END CERTIFICATE-----\n").count(),
            count()
        );
        assert!(bundle.lines().all(|line| line.len() <= 64));
    }
}
