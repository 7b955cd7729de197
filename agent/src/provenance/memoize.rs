//! `memoize`: before the application runs, compare the existing output's provenance
//! with this run. The key is the input digests (in order; not the names they were
//! pulled by), the launcher's image as written in the spec, and the digest of the
//! application's argv; the earlier run must have succeeded. Everything else (the
//! environment, Secrets, the content behind a moving image tag) is not in the key.

use oras_contract::agent_args::MemoizeKey;

use super::Provenance;
use crate::reference::ArtifactRef;
use crate::transfer::{self, Connection};

/// Whether the application runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it, because of this.
    Run(String),
    /// The output at `digest` was made from the same key: skip.
    Skip {
        digest: String,
        pod: Option<String>,
        finished: Option<String>,
    },
}

fn digests(inputs: &[String]) -> Vec<&str> {
    inputs
        .iter()
        .map(|input| input.rsplit_once('@').map_or(input.as_str(), |(_, d)| d))
        .collect()
}

/// Compare the existing output (`digest`, its provenance) with this run's key and
/// pinned inputs.
pub fn decide(
    digest: &str,
    existing: Option<&Provenance>,
    key: &MemoizeKey,
    inputs: &[String],
) -> Decision {
    let Some(earlier) = existing else {
        return Decision::Run(format!(
            "the output {} ({digest}) records no provenance",
            key.output
        ));
    };
    if earlier.exit_code != Some(0) {
        return Decision::Run(format!(
            "the run that made {} did not succeed (exit code {})",
            key.output,
            earlier
                .exit_code
                .map_or_else(|| "unknown".to_string(), |c| c.to_string())
        ));
    }
    if digests(&earlier.inputs) != digests(inputs) {
        return Decision::Run(format!(
            "the inputs differ: {} was made from [{}], this run has [{}]",
            key.output,
            earlier.inputs.join(" "),
            inputs.join(" ")
        ));
    }
    if earlier.image.as_deref() != Some(key.image.as_str()) {
        return Decision::Run(format!(
            "the image differs: {} was made by {:?}, this run uses {:?}",
            key.output,
            earlier.image.as_deref().unwrap_or(""),
            key.image
        ));
    }
    if earlier.command_digest.as_deref() != Some(key.command_digest.as_str()) {
        return Decision::Run(format!(
            "the command differs ({} for {}, {} now)",
            earlier.command_digest.as_deref().unwrap_or("none"),
            key.output,
            key.command_digest
        ));
    }
    Decision::Skip {
        digest: digest.to_string(),
        pod: earlier.pod.clone(),
        finished: earlier.finished.clone(),
    }
}

/// Fetch the existing output and decide; any failure to fetch it means "run".
pub async fn check(key: &MemoizeKey, inputs: &[String], connection: &Connection) -> Decision {
    let output = match ArtifactRef::parse(&key.output) {
        Ok(output) => output,
        Err(err) => return Decision::Run(format!("cannot read the output reference: {err}")),
    };
    let fetched = transfer::manifest_of(&output, connection).await;
    match fetched {
        Ok((digest, manifest)) => decide(
            &digest,
            Provenance::from_annotations(&manifest.annotations).as_ref(),
            key,
            inputs,
        ),
        Err(err) => Decision::Run(format!("no usable output at {output} ({err:#})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MemoizeKey {
        MemoizeKey {
            output: "r/out:1".into(),
            image: "busybox:1.36".into(),
            command_digest: "sha256:cc".into(),
        }
    }

    fn earlier() -> Provenance {
        Provenance {
            inputs: vec!["r/in:1@sha256:aa".into()],
            pod: Some("ns/first".into()),
            image: Some("busybox:1.36".into()),
            exit_code: Some(0),
            finished: Some("2026-12-01T10:00:05Z".into()),
            command_digest: Some("sha256:cc".into()),
            ..Provenance::default()
        }
    }

    #[test]
    fn the_same_key_skips_and_names_the_earlier_pod() {
        // The same digest under another name is the same input.
        let inputs = vec!["r/renamed:2@sha256:aa".to_string()];
        assert_eq!(
            decide("sha256:oo", Some(&earlier()), &key(), &inputs),
            Decision::Skip {
                digest: "sha256:oo".into(),
                pod: Some("ns/first".into()),
                finished: Some("2026-12-01T10:00:05Z".into()),
            }
        );
    }

    #[test]
    fn any_difference_runs_and_says_which() {
        let inputs = vec!["r/in:1@sha256:aa".to_string()];
        let run = |earlier: Provenance, inputs: &[String]| match decide(
            "sha256:oo",
            Some(&earlier),
            &key(),
            inputs,
        ) {
            Decision::Run(reason) => reason,
            other => panic!("expected a run, got {other:?}"),
        };
        assert!(run(earlier(), &["r/in:1@sha256:ab".into()]).contains("inputs differ"));
        assert!(run(earlier(), &[]).contains("inputs differ"));
        let mut other = earlier();
        other.image = Some("busybox:1.37".into());
        assert!(run(other, &inputs).contains("image differs"));
        let mut other = earlier();
        other.command_digest = Some("sha256:dd".into());
        assert!(run(other, &inputs).contains("command differs"));
        let mut other = earlier();
        other.exit_code = Some(3);
        assert!(run(other, &inputs).contains("exit code 3"));
        assert!(matches!(
            decide("sha256:oo", None, &key(), &inputs),
            Decision::Run(reason) if reason.contains("no provenance")
        ));
    }
}
