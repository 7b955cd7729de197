//! Annotation keys of the original converged-computing/oras-operator, plus the few this
//! project adds. Every key lives under [`PREFIX`].

/// The prefix every key of the contract starts with.
pub const PREFIX: &str = "oras.converged-computing.github.io/";

/// The value that means "unset", as in the original project.
pub const UNSET: &str = "NA";

/// Name of the OrasCache in the pod's namespace.
pub const ORAS_CACHE: &str = "oras-cache";
/// Input reference; the list form is `input-uri_1`, `input-uri_2`, ...
pub const INPUT_URI: &str = "input-uri";
/// Separator between a list key and its numeric suffix (`input-uri_2`).
pub const LIST_SEPARATOR: char = '_';
/// Output reference.
pub const OUTPUT_URI: &str = "output-uri";
/// Where inputs are placed in the launcher container.
pub const INPUT_PATH: &str = "input-path";
/// The file or directory the launcher stages as the output.
pub const OUTPUT_PATH: &str = "output-path";
/// A file the application's stdout and stderr are also appended to.
pub const OUTPUT_PIPE: &str = "output-pipe";
/// Name of the launcher container.
pub const CONTAINER: &str = "container";
/// A registry host[:port] used instead of the in-namespace cache.
pub const REGISTRY: &str = "registry";
/// A Secret whose keys become environment of the agent containers.
pub const ORAS_ENV: &str = "oras-env";
/// Image of the agent containers.
pub const ORAS_CONTAINER: &str = "oras-container";
/// Whether directory archives are unpacked on pull ("true" by default).
pub const UNPACK: &str = "unpack";
/// Whether the agent logs every resolved setting.
pub const DEBUG: &str = "debug";
/// Push the output even when the application failed (added by this project).
pub const PUSH_ON_FAILURE: &str = "push-on-failure";
/// Skip the application when the existing output was made from the same inputs, image
/// and command (added by this project).
pub const MEMOIZE: &str = "memoize";
/// Push the output as a valid OCI image as well as an ORAS artifact, so that image
/// volumes (KEP-4639) can mount it (added by this project).
pub const IMAGE_FORMAT: &str = "image-format";
/// URL of the original's application entrypoint script: accepted, ignored.
pub const ENTRYPOINT: &str = "entrypoint";
/// URL of the original's sidecar entrypoint script: accepted, ignored.
pub const ORAS_ENTRYPOINT: &str = "oras-entrypoint";
/// Marker the policy puts on what it mutated, so nothing is mutated twice.
pub const INJECTED: &str = "injected";

/// Every single-valued key of the contract, without the prefix.
pub const SINGLE_KEYS: &[&str] = &[
    ORAS_CACHE,
    INPUT_URI,
    OUTPUT_URI,
    INPUT_PATH,
    OUTPUT_PATH,
    OUTPUT_PIPE,
    CONTAINER,
    REGISTRY,
    ORAS_ENV,
    ORAS_CONTAINER,
    UNPACK,
    DEBUG,
    PUSH_ON_FAILURE,
    MEMOIZE,
    IMAGE_FORMAT,
    ENTRYPOINT,
    ORAS_ENTRYPOINT,
    INJECTED,
];

/// The full annotation key for a short name: `key("output-uri")`.
pub fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Credentials the agent reads from its environment (the keys of the `oras-env` Secret).
pub mod credentials {
    /// User name for the registry.
    pub const USER: &str = "ORAS_USER";
    /// Password used when pushing.
    pub const PUSH_PASSWORD: &str = "ORAS_PUSH_PASS";
    /// Password used when pulling.
    pub const PULL_PASSWORD: &str = "ORAS_PULL_PASS";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_joins_prefix_and_name() {
        assert_eq!(
            key(OUTPUT_URI),
            "oras.converged-computing.github.io/output-uri"
        );
    }

    #[test]
    fn single_keys_are_unique() {
        let mut keys = SINGLE_KEYS.to_vec();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SINGLE_KEYS.len());
    }
}
