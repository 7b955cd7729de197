//! Outputs that know where they came from: the example workflow through the compiled
//! policy and the local runner, against a real registry (Debian's distribution 2.8,
//! which has no referrers API), checked with the oras Go CLI, the ORAS Python SDK and
//! `oras-agent lineage`; and memoized steps.
//! Needs `make policy.wasm`, the agent, Debian's docker-registry and `make tools`.

mod common;

use common::{example, local};
use oras_contract::annotations::key;
use oras_contract::provenance::{command_digest, keys};
use oras_e2e::local::Local;
use oras_e2e::runner::Phase;
use oras_testkit::OrasPy;
use oras_testkit::registry::header;
use oras_testkit::tools::discover_referrers;
use serde_json::Value;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The manifest of `repository:reference` and its digest, as the registry serves them.
fn manifest(local: &Local, repository: &str, reference: &str) -> (Value, String) {
    let (status, headers, body) = local
        .registry
        .request(
            "GET",
            &format!("/v2/{repository}/manifests/{reference}"),
            &[("Accept", MANIFEST)],
            b"",
        )
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let digest = header(&headers, "Docker-Content-Digest").unwrap();
    (serde_json::from_slice(&body).unwrap(), digest)
}

fn blob(local: &Local, repository: &str, digest: &str) -> Vec<u8> {
    let (status, _, body) = local
        .registry
        .request("GET", &format!("/v2/{repository}/blobs/{digest}"), &[], b"")
        .unwrap();
    assert_eq!(status, 200);
    body
}

fn annotation<'a>(manifest: &'a Value, name: &str) -> &'a str {
    manifest["annotations"][key(name)]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} annotation in {manifest}"))
}

/// The application's argv as the policy wrote it for the launcher (after `--`).
fn application_argv(admitted: &Value) -> Vec<String> {
    let args = admitted["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    let separator = args.iter().position(|a| a == "--").unwrap();
    args[separator + 1..]
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Digests of the in-toto referrers `oras discover` lists for `reference`.
fn attestations(reference: &str) -> Vec<String> {
    discover_referrers(reference)
        .unwrap()
        .iter()
        .filter(|r| r["artifactType"] == IN_TOTO)
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form the agent writes.
fn is_rfc3339(text: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:ddZ";
    text.len() == shape.len()
        && text.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            _ => c == s,
        })
}

#[test]
fn the_workflow_outputs_carry_their_provenance_attestation_and_lineage() {
    let local = local();
    let step1 = common::start_example_workflow(&local);
    let (_, params_digest) = manifest(&local, "workflow/params", "v1");
    let step2 = local
        .run(&example("examples/workflow/step2-summarize.yaml"))
        .unwrap();
    assert_eq!(
        step2.report.phase,
        Phase::Succeeded,
        "{}",
        step2.report.summary()
    );

    // Step 1 has no inputs: its provenance says so.
    let (results, results_digest) = manifest(&local, "workflow/simulate", "results");
    let registry = local.registry.host();
    assert_eq!(annotation(&results, keys::INPUTS), "");
    assert_eq!(annotation(&results, keys::POD), "default/simulate");
    assert_eq!(annotation(&results, keys::WORKLOAD), "Job/simulate");
    assert_eq!(annotation(&results, keys::IMAGE), "debian:bookworm-slim");
    assert_eq!(annotation(&results, keys::EXIT_CODE), "0");
    let (started, finished) = (
        annotation(&results, keys::STARTED),
        annotation(&results, keys::FINISHED),
    );
    assert!(
        is_rfc3339(started) && is_rfc3339(finished),
        "{started} {finished}"
    );
    assert!(started <= finished);
    assert_eq!(
        annotation(&results, keys::COMMAND_DIGEST),
        command_digest(&application_argv(&step1.admitted.object))
    );

    // Step 2 names its inputs, in order, by the digests it pulled.
    let (summary, summary_digest) = manifest(&local, "workflow/summarize", "summary");
    assert_eq!(
        annotation(&summary, keys::INPUTS),
        format!(
            "{registry}/workflow/simulate:results@{results_digest} {registry}/workflow/params:v1@{params_digest}"
        )
    );
    assert_eq!(annotation(&summary, keys::WORKLOAD), "Job/summarize");

    // The attestation is where `oras discover` looks on a registry without the
    // referrers API: the index tagged sha256-<hex> of the subject.
    let reference = local.registry.reference("workflow/summarize:summary");
    let found = attestations(&reference);
    assert_eq!(found.len(), 1, "{found:?}");
    let tags = local.registry.tags("workflow/summarize").unwrap();
    assert!(tags.contains(&summary_digest.replace(':', "-")), "{tags:?}");
    let (referrer, _) = manifest(&local, "workflow/summarize", &found[0]);
    assert_eq!(referrer["artifactType"], IN_TOTO);
    assert_eq!(referrer["subject"]["digest"], summary_digest.as_str());
    let statement: Value = serde_json::from_slice(&blob(
        &local,
        "workflow/summarize",
        referrer["layers"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        summary_digest.trim_start_matches("sha256:")
    );
    let dependencies = &statement["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(
        dependencies[0]["uri"],
        format!("oci://{registry}/workflow/simulate:results")
    );
    assert_eq!(
        dependencies[1]["digest"]["sha256"],
        params_digest.trim_start_matches("sha256:")
    );
    assert_eq!(
        statement["predicate"]["buildDefinition"]["externalParameters"]["argv"],
        serde_json::json!(application_argv(&step2.admitted.object))
    );
    // Step 1's attestation is found the same way.
    let step1_ref = local.registry.reference("workflow/simulate:results");
    assert_eq!(attestations(&step1_ref).len(), 1);

    // The ORAS Python SDK still pulls both outputs as files.
    let oras_py = OrasPy::shared().expect("the ORAS Python SDK");
    for (tag, file) in [
        ("workflow/simulate:results", "results/simulate.log"),
        ("workflow/summarize:summary", "summary.txt"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        oras_py
            .pull_plain_http(&local.registry.reference(tag), dir.path())
            .unwrap();
        assert!(dir.path().join(file).is_file(), "{tag}: no {file}");
    }

    // `lineage` of step 2 shows step 1, the pod that made it, and the parameters.
    let step2_ref = local.registry.reference("workflow/summarize:summary");
    let tree = local
        .agent_ok(
            &["lineage", "--plain-http", &step2_ref],
            std::path::Path::new("/"),
        )
        .unwrap();
    let tree = String::from_utf8(tree.stdout).unwrap();
    println!("{tree}");
    assert!(tree.starts_with(&step2_ref), "{tree}");
    assert!(
        tree.contains("pod default/summarize, Job/summarize"),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("workflow/simulate:results@{results_digest}")),
        "{tree}"
    );
    assert!(
        tree.contains("pod default/simulate, Job/simulate"),
        "{tree}"
    );
    assert!(
        tree.contains(&format!("workflow/params:v1@{params_digest}")),
        "{tree}"
    );
    assert!(
        tree.contains("no provenance (pushed by another tool)"),
        "{tree}"
    );
    let dot = local
        .agent_ok(
            &["lineage", "--plain-http", "--format", "dot", &step2_ref],
            std::path::Path::new("/"),
        )
        .unwrap();
    let dot = String::from_utf8(dot.stdout).unwrap();
    println!("{dot}");
    assert!(dot.starts_with("digraph lineage {"), "{dot}");
    assert!(dot.contains("n1 -> n0;"), "{dot}");
    let json = local
        .agent_ok(
            &["lineage", "--plain-http", "--format", "json", &step2_ref],
            std::path::Path::new("/"),
        )
        .unwrap();
    let graph: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(graph["nodes"][0]["digest"], summary_digest.as_str());
    let nodes = graph["nodes"].as_array().unwrap();
    assert!(
        nodes.iter().any(|n| n["digest"] == results_digest.as_str()
            && n["provenance"]["pod"] == "default/simulate"),
        "{graph}"
    );

    // The example's step 2 is memoized: run again on the same inputs, it does not run.
    let again = local
        .run(&example("examples/workflow/step2-summarize.yaml"))
        .unwrap();
    assert_eq!(
        again.report.phase,
        Phase::Succeeded,
        "{}",
        again.report.summary()
    );
    let launcher = again.report.container("summarize").unwrap().log();
    assert!(
        launcher.contains("memoized: ") && launcher.contains("made by pod default/summarize"),
        "{launcher}"
    );
    assert_eq!(
        manifest(&local, "workflow/summarize", "summary").1,
        summary_digest
    );
}

/// A Job that reads its input, says it ran, and writes an output from the input.
fn memoized_job(name: &str) -> Value {
    common::job(
        name,
        &[
            ("input-uri", "memo/input:1"),
            ("output-uri", "memo/output:1"),
            ("output-path", "out.txt"),
            ("memoize", "true"),
        ],
        "echo APPLICATION RAN; tr a-z A-Z < in.txt > out.txt",
    )
}

#[test]
fn a_memoized_step_runs_once_per_distinct_input() {
    let local = local();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("in.txt"), "first\n").unwrap();
    local
        .push("memo/input:1", &["in.txt"], files.path())
        .unwrap();

    let first = local.run(&memoized_job("memo-a")).unwrap();
    assert_eq!(
        first.report.phase,
        Phase::Succeeded,
        "{}",
        first.report.summary()
    );
    assert!(
        first
            .report
            .container("app")
            .unwrap()
            .log()
            .contains("APPLICATION RAN")
    );
    let (_, made) = manifest(&local, "memo/output", "1");

    // The same inputs, image and command: the application does not run.
    let second = local.run(&memoized_job("memo-b")).unwrap();
    let report = &second.report;
    assert_eq!(report.phase, Phase::Succeeded, "{}", report.summary());
    let launcher = report.container("app").unwrap().log();
    assert!(!launcher.contains("APPLICATION RAN"), "{launcher}");
    assert!(
        launcher.contains("memoized: ") && launcher.contains("made by pod default/memo-a"),
        "{launcher}"
    );
    assert!(
        report
            .container("oras")
            .unwrap()
            .log()
            .contains("nothing pushed"),
        "{}",
        report.container("oras").unwrap().log()
    );
    assert_eq!(manifest(&local, "memo/output", "1").1, made);

    // A new input: the step runs again and its output changes.
    std::fs::write(files.path().join("in.txt"), "second\n").unwrap();
    local
        .push("memo/input:1", &["in.txt"], files.path())
        .unwrap();
    let third = local.run(&memoized_job("memo-c")).unwrap();
    assert_eq!(
        third.report.phase,
        Phase::Succeeded,
        "{}",
        third.report.summary()
    );
    assert!(
        third
            .report
            .container("app")
            .unwrap()
            .log()
            .contains("APPLICATION RAN")
    );
    assert!(
        third
            .report
            .container("oras-init")
            .unwrap()
            .log()
            .contains("inputs differ"),
        "{}",
        third.report.container("oras-init").unwrap().log()
    );
    let (_, remade) = manifest(&local, "memo/output", "1");
    assert_ne!(remade, made);
    let pulled = tempfile::tempdir().unwrap();
    local.pull("memo/output:1", pulled.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(pulled.path().join("out.txt")).unwrap(),
        "SECOND\n"
    );

    // A different command is a different step.
    let mut other = memoized_job("memo-d");
    other["spec"]["template"]["spec"]["containers"][0]["command"][2] =
        Value::from("echo APPLICATION RAN; tr a-z A-Z < in.txt > out.txt; echo again");
    let fourth = local.run(&other).unwrap();
    assert_eq!(
        fourth.report.phase,
        Phase::Succeeded,
        "{}",
        fourth.report.summary()
    );
    assert!(
        fourth
            .report
            .container("app")
            .unwrap()
            .log()
            .contains("APPLICATION RAN")
    );
}
