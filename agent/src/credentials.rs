//! Registry credentials as `oci-client` takes them, resolved the way `ship` resolves
//! them too (`oras_contract::credentials`: `ORAS_USER` with `ORAS_PUSH_PASS` /
//! `ORAS_PULL_PASS`, else the Docker config file's `auths`, else anonymous).

use oci_client::secrets::RegistryAuth;
pub use oras_contract::credentials::{Operation, Source};

/// Credentials for `registry` and where they came from.
pub fn resolve(registry: &str, op: Operation) -> (RegistryAuth, Source) {
    let resolved = oras_contract::credentials::resolve(registry, op);
    for note in &resolved.notes {
        tracing::debug!("{note}");
    }
    for warning in &resolved.warnings {
        tracing::warn!("{warning}");
    }
    let auth = match resolved.basic {
        Some((user, password)) => RegistryAuth::Basic(user, password),
        None => RegistryAuth::Anonymous,
    };
    (auth, resolved.source)
}
