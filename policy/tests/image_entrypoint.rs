//! A launcher without `command` runs what its image would have run: the lookup is an
//! injected function here, so every rule and refusal is checked without a registry.

mod common;

use std::cell::RefCell;

use common::{OUTPUT, annotations};
use oras_policy::evaluate::{AdmissionRequest, Outcome, evaluate};
use oras_policy::image::ImageEntrypoint;
use oras_policy::settings::Settings;
use serde_json::{Value, json};

/// A lookup that answers from a table and records every image it was asked for.
struct Registry {
    images: Vec<(&'static str, Result<ImageEntrypoint, String>)>,
    asked: RefCell<Vec<String>>,
}

impl Registry {
    fn new(images: Vec<(&'static str, Result<ImageEntrypoint, String>)>) -> Self {
        Self {
            images,
            asked: RefCell::new(Vec::new()),
        }
    }

    fn lookup(&self, image: &str) -> Result<ImageEntrypoint, String> {
        self.asked.borrow_mut().push(image.to_string());
        self.images
            .iter()
            .find(|(name, _)| *name == image)
            .map(|(_, answer)| answer.clone())
            .unwrap_or_else(|| Err(format!("manifest unknown: {image}")))
    }

    fn evaluate(&self, kind: &str, operation: &str, object: Value) -> Outcome {
        let request: AdmissionRequest = serde_json::from_value(json!({
            "kind": {"kind": kind}, "operation": operation, "namespace": "team", "object": object,
        }))
        .unwrap();
        evaluate(request, &Settings::default(), &|image| self.lookup(image))
    }

    fn asked(&self) -> Vec<String> {
        self.asked.borrow().clone()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn image(entrypoint: &[&str], cmd: &[&str]) -> Result<ImageEntrypoint, String> {
    Ok(ImageEntrypoint {
        entrypoint: strings(entrypoint),
        cmd: strings(cmd),
    })
}

/// The images of these tests, as fully qualified references.
fn registry() -> Registry {
    Registry::new(vec![
        (
            "ghcr.io/rse-ops/lammps:stable",
            image(&["mpirun", "--allow-run-as-root"], &["lmp", "-help"]),
        ),
        ("docker.io/library/python:3.12", image(&[], &["python3"])),
        ("docker.io/library/empty:latest", image(&[], &[])),
        (
            "docker.io/library/cleared:latest",
            image(&[""], &["sh", "-c", "echo $HOME"]),
        ),
    ])
}

fn pod_with(container: Value, pairs: &[(&str, &str)]) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": annotations(pairs)},
           "spec": {"containers": [container], "restartPolicy": "Never"}})
}

fn job_with(container: Value, pairs: &[(&str, &str)]) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "j", "annotations": annotations(pairs)},
           "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}}})
}

/// What the launcher runs after `--`, and the launcher as a whole.
fn application(outcome: Outcome, pointer: &str) -> Vec<String> {
    let object = match outcome {
        Outcome::Mutate { object, .. } => object,
        other => panic!("expected a mutation, got {other:?}"),
    };
    let launcher = &object.pointer(pointer).unwrap()["containers"][0];
    assert_eq!(launcher["command"], json!(["/mnt/oras/bin/oras-agent"]));
    let args: Vec<String> = serde_json::from_value(launcher["args"].clone()).unwrap();
    let separator = args.iter().position(|a| a == "--").unwrap();
    args[separator + 1..].to_vec()
}

fn rejection(outcome: Outcome) -> String {
    match outcome {
        Outcome::Reject(message) => message,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_pod_without_command_or_args_runs_entrypoint_then_cmd() {
    let registry = registry();
    let container = json!({"name": "app", "image": "ghcr.io/rse-ops/lammps:stable"});
    let outcome = registry.evaluate("Pod", "CREATE", pod_with(container, OUTPUT));
    assert_eq!(
        application(outcome, "/spec"),
        ["mpirun", "--allow-run-as-root", "lmp", "-help"]
    );
    assert_eq!(registry.asked(), ["ghcr.io/rse-ops/lammps:stable"]);
}

#[test]
fn a_job_with_args_only_runs_entrypoint_then_its_args() {
    let registry = registry();
    let container = json!({"name": "app", "image": "ghcr.io/rse-ops/lammps:stable",
                           "args": ["lmp", "-in", "in.reaxc hns"]});
    let outcome = registry.evaluate("Job", "CREATE", job_with(container, OUTPUT));
    assert_eq!(
        application(outcome, "/spec/template/spec"),
        [
            "mpirun",
            "--allow-run-as-root",
            "lmp",
            "-in",
            "in.reaxc hns"
        ]
    );
}

#[test]
fn an_image_with_only_cmd_runs_cmd_or_the_args() {
    let registry = registry();
    let container = json!({"name": "app", "image": "python:3.12"});
    let outcome = registry.evaluate("Pod", "CREATE", pod_with(container, OUTPUT));
    assert_eq!(application(outcome, "/spec"), ["python3"]);
    let container = json!({"name": "app", "image": "python:3.12", "args": ["run.py"]});
    let outcome = registry.evaluate("Pod", "CREATE", pod_with(container, OUTPUT));
    assert_eq!(application(outcome, "/spec"), ["run.py"]);
    // The short name reached the lookup qualified, as a container runtime reads it.
    assert_eq!(
        registry.asked(),
        [
            "docker.io/library/python:3.12",
            "docker.io/library/python:3.12"
        ]
    );
}

#[test]
fn an_empty_command_list_is_no_command() {
    let registry = registry();
    let container = json!({"name": "app", "image": "python:3.12", "command": [], "args": null});
    let outcome = registry.evaluate("Pod", "CREATE", pod_with(container, OUTPUT));
    assert_eq!(application(outcome, "/spec"), ["python3"]);
}

#[test]
fn a_cleared_entrypoint_runs_cmd_escaped_for_the_kubelet() {
    let registry = registry();
    let container = json!({"name": "app", "image": "cleared"});
    let outcome = registry.evaluate("Pod", "CREATE", pod_with(container, OUTPUT));
    assert_eq!(application(outcome, "/spec"), ["sh", "-c", "echo $$HOME"]);
}

#[test]
fn an_unresolvable_image_is_refused_with_the_registry_answer() {
    let registry = Registry::new(vec![(
        "registry.example:5000/team/app:v2",
        Err("Registry error: url http://registry.example:5000/v2/team/app/manifests/v2, envelope: OCI API errors: [OCI API error: manifest unknown]".into()),
    )]);
    let container = json!({"name": "worker", "image": "registry.example:5000/team/app:v2"});
    let message = rejection(registry.evaluate("Job", "CREATE", job_with(container, OUTPUT)));
    assert_eq!(
        message,
        "container \"worker\" has no command and the entrypoint of its image \"registry.example:5000/team/app:v2\" cannot be resolved: Registry error: url http://registry.example:5000/v2/team/app/manifests/v2, envelope: OCI API errors: [OCI API error: manifest unknown]; set command (and args) on the container, or let policy-server pull the image"
    );
}

#[test]
fn an_image_that_runs_nothing_is_refused_naming_it() {
    let registry = registry();
    let container = json!({"name": "app", "image": "empty"});
    let message = rejection(registry.evaluate("Pod", "CREATE", pod_with(container, OUTPUT)));
    assert_eq!(
        message,
        "container \"app\" has no command and its image \"docker.io/library/empty:latest\" has neither ENTRYPOINT nor CMD: set command (and args) on the container"
    );
}

#[test]
fn images_that_cannot_be_named_are_refused_without_a_lookup() {
    let registry = registry();
    let cases = [
        (
            json!({"name": "app", "image": "Python:3"}),
            "container \"app\" has image \"Python:3\", which has an invalid repository path component \"Python\"",
        ),
        (
            json!({"name": "app"}),
            "container \"app\" has neither command nor image",
        ),
        (
            json!({"name": "app", "image": ""}),
            "container \"app\" has image \"\", which is empty",
        ),
        (
            json!({"name": "app", "image": ["x"]}),
            "container \"app\" has an image that is not a string",
        ),
    ];
    for (container, expected) in cases {
        let message = rejection(registry.evaluate("Pod", "CREATE", pod_with(container, OUTPUT)));
        assert!(message.starts_with(expected), "{message}");
    }
    assert!(registry.asked().is_empty(), "{:?}", registry.asked());
}

#[test]
fn the_registry_is_asked_only_for_a_launcher_without_command_being_rewritten() {
    let registry = registry();
    let no_command = || json!({"name": "app", "image": "python:3.12"});
    let injected = [("injected", "true"), ("input-uri", "a/b")];
    let not_rewritten = [
        // A command: the common case.
        pod_with(
            json!({"name": "app", "image": "python:3.12", "command": ["python3"]}),
            OUTPUT,
        ),
        // Not ours, nothing asked for, already rewritten.
        pod_with(no_command(), &[]),
        pod_with(
            no_command(),
            &[
                ("input-uri", "NA"),
                ("output-uri", "NA"),
                ("output-path", "NA"),
            ],
        ),
        pod_with(no_command(), &injected),
        // Refused for another reason first.
        pod_with(no_command(), &[("input-uri", "a/b"), ("input-path", "/")]),
        pod_with(no_command(), &[("input-uri", "Bad/Ref")]),
    ];
    for object in not_rewritten {
        registry.evaluate("Pod", "CREATE", object);
    }
    registry.evaluate("Pod", "DELETE", pod_with(no_command(), OUTPUT));
    registry.evaluate("Pod", "UPDATE", pod_with(no_command(), OUTPUT));
    assert!(registry.asked().is_empty(), "{:?}", registry.asked());

    // Only the launcher counts: a sidecar without command is not looked up.
    let two = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations(&[("input-uri", "a/b"), ("container", "app")])},
        "spec": {"containers": [{"name": "app", "image": "i", "command": ["run"]}, {"name": "helper", "image": "python:3.12"}]}});
    assert!(matches!(
        registry.evaluate("Pod", "CREATE", two),
        Outcome::Mutate { .. }
    ));
    assert!(registry.asked().is_empty(), "{:?}", registry.asked());
}
