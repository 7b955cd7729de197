//! Where an output came from, recorded in the output itself: manifest annotations (read
//! back by `lineage` and `memoize`) and an in-toto SLSA provenance attestation attached
//! as a referrer.

pub mod attestation;
pub mod lineage;
pub mod memoize;

use std::collections::BTreeMap;

use oras_contract::annotations::key;
use oras_contract::provenance::{env, keys};
use serde::Serialize;

use crate::reference::ArtifactRef;

/// What the sidecar knows about the run that made an output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// Each input as `reference@digest`, in input order.
    pub inputs: Vec<String>,
    /// `namespace/name`.
    pub pod: Option<String>,
    /// `Job/name`.
    pub workload: Option<String>,
    pub image: Option<String>,
    pub exit_code: Option<i32>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub command_digest: Option<String>,
}

/// `reference@digest` of a pulled input: the reference as written, pinned to what was
/// pulled (a reference that already names a digest is kept as it is).
pub fn pinned_input(reference: &ArtifactRef, digest: &str) -> String {
    if reference.digest().is_some() {
        reference.to_string()
    } else {
        format!("{reference}@{digest}")
    }
}

/// The pod and its Job as the downward API gives them to the sidecar.
pub fn pod_from_env() -> (Option<String>, Option<String>) {
    let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
    let pod = match (var(env::POD_NAMESPACE), var(env::POD_NAME)) {
        (Some(namespace), Some(name)) => Some(format!("{namespace}/{name}")),
        (None, Some(name)) => Some(name),
        _ => None,
    };
    (pod, var(env::JOB_NAME).map(|job| format!("Job/{job}")))
}

impl Provenance {
    /// The manifest annotations (absent values are left out; `inputs` is always there,
    /// empty for a step without inputs, so that its absence means "no provenance").
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([(key(keys::INPUTS), self.inputs.join(" "))]);
        let optional = [
            (keys::POD, self.pod.clone()),
            (keys::WORKLOAD, self.workload.clone()),
            (keys::IMAGE, self.image.clone()),
            (keys::EXIT_CODE, self.exit_code.map(|c| c.to_string())),
            (keys::STARTED, self.started.clone()),
            (keys::FINISHED, self.finished.clone()),
            (keys::COMMAND_DIGEST, self.command_digest.clone()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                out.insert(key(name), value);
            }
        }
        out
    }

    /// Read back from a manifest's annotations; `None` when the artifact carries no
    /// provenance (pushed by another tool).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Self> {
        let get = |name: &str| annotations.get(&key(name)).cloned();
        let inputs = get(keys::INPUTS)?;
        Some(Self {
            inputs: inputs.split_whitespace().map(str::to_string).collect(),
            pod: get(keys::POD),
            workload: get(keys::WORKLOAD),
            image: get(keys::IMAGE),
            exit_code: get(keys::EXIT_CODE).and_then(|c| c.parse().ok()),
            started: get(keys::STARTED),
            finished: get(keys::FINISHED),
            command_digest: get(keys::COMMAND_DIGEST),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_round_trip_under_the_prefix() {
        let provenance = Provenance {
            inputs: vec!["r:5000/a:1@sha256:aa".into(), "r:5000/b@sha256:bb".into()],
            pod: Some("ns/step-1".into()),
            workload: Some("Job/step".into()),
            image: Some("busybox:1.36".into()),
            exit_code: Some(0),
            started: Some("2026-12-01T10:00:00Z".into()),
            finished: Some("2026-12-01T10:00:05Z".into()),
            command_digest: Some("sha256:cc".into()),
        };
        let annotations = provenance.annotations();
        assert_eq!(
            annotations["oras.converged-computing.github.io/inputs"],
            "r:5000/a:1@sha256:aa r:5000/b@sha256:bb"
        );
        assert_eq!(
            annotations["oras.converged-computing.github.io/workload"],
            "Job/step"
        );
        assert_eq!(
            annotations["oras.converged-computing.github.io/exit-code"],
            "0"
        );
        assert_eq!(Provenance::from_annotations(&annotations), Some(provenance));
    }

    #[test]
    fn no_inputs_key_means_no_provenance_but_an_empty_list_is_provenance() {
        assert_eq!(Provenance::from_annotations(&BTreeMap::new()), None);
        let empty = Provenance::default().annotations();
        assert_eq!(empty.len(), 1);
        assert_eq!(
            Provenance::from_annotations(&empty),
            Some(Provenance::default())
        );
    }

    #[test]
    fn inputs_are_pinned_to_the_pulled_digest_once() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let tagged = ArtifactRef::parse("r:5000/in:1").unwrap();
        assert_eq!(
            pinned_input(&tagged, &digest),
            format!("r:5000/in:1@{digest}")
        );
        let pinned = ArtifactRef::parse(&format!("r:5000/in@{digest}")).unwrap();
        assert_eq!(
            pinned_input(&pinned, &digest),
            format!("r:5000/in@{digest}")
        );
    }
}
