//! Where an output came from: the manifest annotations the sidecar writes on every
//! output, the environment the policy gives the agent containers through the downward
//! API, and the digest of the application's argv that memoization compares.

use sha2::{Digest, Sha256};

/// Manifest annotation keys (each under [`crate::annotations::PREFIX`]).
pub mod keys {
    /// Each input as `reference@sha256:...`, space-separated, in input order.
    pub const INPUTS: &str = "inputs";
    /// `namespace/name` of the pod that made the output.
    pub const POD: &str = "pod";
    /// `Job/name` when the pod belongs to a Job.
    pub const WORKLOAD: &str = "workload";
    /// The launcher's image as written in the pod spec.
    pub const IMAGE: &str = "image";
    /// The application's exit code.
    pub const EXIT_CODE: &str = "exit-code";
    /// When the application started and finished (RFC 3339, UTC).
    pub const STARTED: &str = "started";
    pub const FINISHED: &str = "finished";
    /// [`command_digest`](super::command_digest) of the application's argv.
    pub const COMMAND_DIGEST: &str = "command-digest";
}

/// Environment of the sidecar, filled by the kubelet from the pod (downward API).
pub mod env {
    /// `fieldRef: metadata.name`.
    pub const POD_NAME: &str = "ORAS_POD_NAME";
    /// `fieldRef: metadata.namespace`.
    pub const POD_NAMESPACE: &str = "ORAS_POD_NAMESPACE";
    /// `fieldRef: metadata.labels['batch.kubernetes.io/job-name']`: empty outside a Job.
    pub const JOB_NAME: &str = "ORAS_JOB_NAME";
    /// The label the Job controller puts on its pods.
    pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

    /// `(variable, fieldPath)` of every variable, in the order the policy adds them.
    pub fn field_refs() -> [(&'static str, String); 3] {
        [
            (POD_NAME, "metadata.name".to_string()),
            (POD_NAMESPACE, "metadata.namespace".to_string()),
            (JOB_NAME, format!("metadata.labels['{JOB_NAME_LABEL}']")),
        ]
    }
}

/// `sha256:<hex>` of the argv as a compact JSON array of strings: the same command line
/// always has the same digest, and any change to an item, or to where items split, changes it.
/// The policy computes it over the argv as written in the pod spec, before the kubelet
/// expands `$(VAR)` references, so that every run of the same spec has the same digest.
pub fn command_digest(argv: &[String]) -> String {
    let json = serde_json::to_string(argv).unwrap_or_default();
    format!("sha256:{:x}", Sha256::digest(json.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_digest_is_the_sha256_of_the_compact_json_array() {
        // printf '["sh","-c","echo hi"]' | sha256sum
        assert_eq!(
            command_digest(&argv(&["sh", "-c", "echo hi"])),
            format!(
                "sha256:{:x}",
                Sha256::digest(br#"["sh","-c","echo hi"]"#.as_slice())
            )
        );
    }

    #[test]
    fn command_digest_tells_apart_where_items_split() {
        assert_ne!(
            command_digest(&argv(&["echo", "a b"])),
            command_digest(&argv(&["echo", "a", "b"]))
        );
        assert_eq!(
            command_digest(&argv(&["echo", "a b"])),
            command_digest(&argv(&["echo", "a b"]))
        );
    }
}
