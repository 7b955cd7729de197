//! A launcher without `command`: the compiled `policy.wasm` asks its host for the image's
//! manifest and config (`kubewarden`/`oci`/`v1/oci_manifest_config`), which the waPC host
//! answers from a real registry on 127.0.0.1 holding real images (config, layer,
//! manifest, an image index over two platforms). The native build, given the same
//! lookups, must answer the same.
//! Needs `make policy.wasm` and Debian's docker-registry.

use std::sync::{Arc, OnceLock};

use oras_e2e::admission::create_request;
use oras_e2e::oci_host::{ImageRegistry, Sources};
use oras_e2e::policy_host::{CompiledPolicy, PolicyHost};
use oras_e2e::workspace;
use oras_testkit::{ContainerImage, Registry};
use serde_json::{Value, json};

const P: &str = "oras.converged-computing.github.io/";

fn compiled() -> &'static CompiledPolicy {
    static COMPILED: OnceLock<CompiledPolicy> = OnceLock::new();
    COMPILED.get_or_init(|| CompiledPolicy::load(&workspace::policy_wasm()).unwrap())
}

/// A registry holding the images of these tests, and the policy answered from it.
struct Images {
    registry: Registry,
    lookups: Arc<ImageRegistry>,
    host: PolicyHost,
}

impl Images {
    fn start() -> Self {
        let registry = Registry::start().unwrap();
        let push = |repository: &str, image: ContainerImage| {
            registry.push_image(repository, "1", &image).unwrap();
        };
        push(
            "tools/app",
            ContainerImage::new(&["/bin/app", "--verbose"], &["serve", "$HOME"]),
        );
        push(
            "tools/cmd-only",
            ContainerImage::new(&[], &["python3", "run.py"]),
        );
        push("tools/nothing", ContainerImage::new(&[], &[]));
        // The arm64 image comes first: the host must choose by platform, not by place.
        registry
            .push_image_index(
                "tools/multi",
                "1",
                &[
                    ContainerImage::new(&["/bin/arm64-app"], &["on-arm64"])
                        .for_platform("linux", "arm64"),
                    ContainerImage::new(&["/bin/amd64-app"], &["on-amd64"]),
                ],
            )
            .unwrap();
        let lookups = Arc::new(ImageRegistry::new(Sources::insecure(&[&registry.host()])).unwrap());
        let host = compiled().instantiate_with(Some(lookups.clone())).unwrap();
        Self {
            registry,
            lookups,
            host,
        }
    }

    fn image(&self, repository_and_tag: &str) -> String {
        self.registry.reference(repository_and_tag)
    }

    /// The policy's answer to creating `object`; the native build must agree.
    fn answer(&self, object: &Value) -> Value {
        let request = create_request(object);
        let answer = self.host.validate(&json!({}), &request).unwrap();
        let payload = serde_json::to_vec(&json!({"settings": {}, "request": request})).unwrap();
        let native =
            oras_policy::validate_with(&payload, &|image| self.lookups.lookup(image)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&native).unwrap(),
            answer,
            "native and wasm builds disagree"
        );
        answer
    }
}

fn annotations() -> Value {
    json!({format!("{P}output-uri"): "runs/out:1", format!("{P}output-path"): "out.txt"})
}

fn pod(container: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "default", "annotations": annotations()},
           "spec": {"containers": [container], "restartPolicy": "Never"}})
}

fn job(container: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "j", "namespace": "default", "annotations": annotations()},
           "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}}})
}

/// The argv the launcher runs after `--`.
fn application(answer: &Value, pointer: &str) -> Vec<String> {
    assert_eq!(answer["accepted"], true, "{answer}");
    let launcher = &answer["mutated_object"].pointer(pointer).unwrap()["containers"][0];
    assert_eq!(launcher["command"], json!(["/mnt/oras/bin/oras-agent"]));
    let args: Vec<String> = serde_json::from_value(launcher["args"].clone()).unwrap();
    let separator = args.iter().position(|a| a == "--").unwrap();
    args[separator + 1..].to_vec()
}

fn rejection(answer: &Value) -> String {
    assert_eq!(answer["accepted"], false, "{answer}");
    answer["message"].as_str().unwrap().to_string()
}

#[test]
fn a_pod_without_command_or_args_runs_entrypoint_then_cmd() {
    let images = Images::start();
    let answer = images.answer(&pod(
        json!({"name": "app", "image": images.image("tools/app:1")}),
    ));
    assert_eq!(
        application(&answer, "/spec"),
        ["/bin/app", "--verbose", "serve", "$$HOME"]
    );
    assert_eq!(images.host.host_calls(), 1);
}

#[test]
fn a_job_with_args_only_runs_entrypoint_then_its_args() {
    let images = Images::start();
    let answer = images.answer(&job(
        json!({"name": "app", "image": images.image("tools/app:1"),
                                           "args": ["check", "--all"]}),
    ));
    assert_eq!(
        application(&answer, "/spec/template/spec"),
        ["/bin/app", "--verbose", "check", "--all"]
    );
}

#[test]
fn an_image_with_only_cmd_runs_cmd_or_the_args() {
    let images = Images::start();
    let image = images.image("tools/cmd-only:1");
    let answer = images.answer(&job(json!({"name": "app", "image": image})));
    assert_eq!(
        application(&answer, "/spec/template/spec"),
        ["python3", "run.py"]
    );
    let answer = images.answer(&pod(
        json!({"name": "app", "image": image, "args": ["python3", "-V"]}),
    ));
    assert_eq!(application(&answer, "/spec"), ["python3", "-V"]);
}

#[test]
fn an_image_index_is_resolved_to_linux_amd64_by_the_host() {
    let images = Images::start();
    let answer = images.answer(&pod(
        json!({"name": "app", "image": images.image("tools/multi:1")}),
    ));
    assert_eq!(
        application(&answer, "/spec"),
        ["/bin/amd64-app", "on-amd64"]
    );
}

#[test]
fn an_unknown_tag_or_image_is_refused_with_the_registry_answer() {
    let images = Images::start();
    for (missing, answer_part) in [
        ("tools/app:2", "manifest unknown"),
        ("tools/absent:1", "unknown"),
    ] {
        let image = images.image(missing);
        let message = rejection(&images.answer(&job(json!({"name": "worker", "image": image}))));
        println!("{message}");
        let expected_start = format!(
            "container \"worker\" has no command and the entrypoint of its image \"{image}\" cannot be resolved: "
        );
        assert!(message.starts_with(&expected_start), "{message}");
        assert!(message.contains(answer_part), "{message}");
        assert!(
            message.ends_with(
                "; set command (and args) on the container, or let policy-server pull the image"
            ),
            "{message}"
        );
    }
}

#[test]
fn a_registry_that_is_down_means_refusal() {
    let mut images = Images::start();
    let image = images.image("tools/app:1");
    images.registry.stop();
    let message = rejection(&images.answer(&pod(json!({"name": "app", "image": image}))));
    println!("{message}");
    assert!(
        message.contains(&format!("its image \"{image}\" cannot be resolved: ")),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "http://{}/v2/tools/app/manifests/1",
            images.registry.host()
        )),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
}

#[test]
fn a_registry_not_listed_as_insecure_is_asked_over_https_and_refused() {
    let images = Images::start();
    let strict = compiled()
        .instantiate_with(Some(Arc::new(
            ImageRegistry::new(Sources::default()).unwrap(),
        )))
        .unwrap();
    let image = images.image("tools/app:1");
    let answer = strict
        .validate(
            &json!({}),
            &create_request(&pod(json!({"name": "app", "image": image}))),
        )
        .unwrap();
    let message = rejection(&answer);
    assert!(
        message.contains(&format!("https://{}", images.registry.host())),
        "{message}"
    );
}

#[test]
fn an_image_that_runs_nothing_is_refused_naming_it() {
    let images = Images::start();
    let image = images.image("tools/nothing:1");
    let message = rejection(&images.answer(&pod(json!({"name": "app", "image": image}))));
    assert_eq!(
        message,
        format!(
            "container \"app\" has no command and its image \"{image}\" has neither ENTRYPOINT nor CMD: set command (and args) on the container"
        )
    );
}

#[test]
fn a_container_with_a_command_makes_no_host_call() {
    let images = Images::start();
    // Even an image the registry does not have: it is not asked.
    let answer = images.answer(&pod(
        json!({"name": "app", "image": images.image("tools/absent:1"),
                                           "command": ["run"], "args": ["x"]}),
    ));
    assert_eq!(application(&answer, "/spec"), ["run", "x"]);
    let unannotated = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"},
                             "spec": {"containers": [{"name": "app", "image": images.image("tools/app:1")}]}});
    let answer = images.answer(&unannotated);
    assert_eq!(answer["accepted"], true);
    assert!(answer["mutated_object"].is_null());
    assert_eq!(images.host.host_calls(), 0);
}

#[test]
fn without_the_host_capability_the_pod_is_refused_not_guessed() {
    let host = compiled().instantiate().unwrap();
    let answer = host
        .validate(
            &json!({}),
            &create_request(&pod(json!({"name": "app", "image": "python:3.12"}))),
        )
        .unwrap();
    assert_eq!(
        rejection(&answer),
        "container \"app\" has no command and the entrypoint of its image \"docker.io/library/python:3.12\" cannot be resolved: unexpected host call kubewarden/oci/v1/oci_manifest_config; set command (and args) on the container, or let policy-server pull the image"
    );
    assert_eq!(host.host_calls(), 1);
}
