//! `make release` against a real registry on 127.0.0.1, with the binaries of
//! `make test-binaries` (the release's own recipe, unoptimised, for linux/amd64 only: the
//! two-platform index is `images.rs`'s subject): it pushes both images,
//! the Kubewarden policy whose built-in default agent image is the agent index just
//! pushed, and the Helm chart in Helm's own format whose values run the controller image
//! just pushed.

mod support;

use std::process::Command;

use oras_e2e::policy_host::PolicyHost;
use oras_e2e::workspace;
use oras_testkit::registry::Registry;
use serde_json::{Value, json};
use support::*;

/// What `make release` printed, by label.
fn pushed(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .map(|rest| rest.trim().to_string())
        .unwrap_or_else(|| panic!("make release printed no {label:?}:\n{stdout}"))
}

fn yaml_as_json(bytes: &[u8]) -> Value {
    serde_json::to_value(serde_yaml::from_slice::<serde_yaml::Value>(bytes).unwrap()).unwrap()
}

/// When `make release` says the artifacts were made: `SOURCE_DATE_EPOCH` when set (as
/// `make test` sets it), else the commit's time, as the Makefile reads it. The test leaves
/// it alone so that the C the cross build compiles (cc-rs tracks the variable) is the
/// build `make test-binaries` made.
fn commit_time() -> String {
    let epoch = std::env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| {
        let output = Command::new("git")
            .current_dir(workspace::root())
            .args(["log", "-1", "--format=%ct"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    });
    chrono::DateTime::from_timestamp(epoch.parse().unwrap(), 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[test]
fn release_pushes_images_policy_and_chart_pinned_to_each_other() {
    let registry = Registry::start().unwrap();
    let output = Command::new("make")
        .current_dir(workspace::root())
        .args([
            "-s",
            "--no-print-directory",
            "release",
            "PLAIN_HTTP=1",
            "DIST_PROFILE=dev",
            "DIST_TARGETS=x86_64-unknown-linux-musl",
        ])
        .arg(format!("REGISTRY={}", registry.reference("rel")))
        .arg(format!("REVISION={REVISION}"))
        // The ship binary this test run built: `cargo run -p oras-ship` alone would build
        // its dependencies again with other features.
        .arg(format!("SHIP={}", env!("CARGO_BIN_EXE_ship")))
        // Built as test-binaries built them: with rustc, not the clippy-driver of the
        // tests' own build.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("ORAS_USER")
        .env_remove("ORAS_PUSH_PASS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "make release failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let agent = pushed(&stdout, "agent image");
    let controller = pushed(&stdout, "controller image");
    let policy = pushed(&stdout, "policy");
    let chart = pushed(&stdout, "chart");
    let version = env!("CARGO_PKG_VERSION");

    // Both images are indexes over the platform built.
    for (image, repository) in [
        (&agent, "rel/oras-agent"),
        (&controller, "rel/oras-controller"),
    ] {
        let (name, digest) = split_pushed(&registry, image);
        assert_eq!(name, repository);
        let (index, _) = manifest(&registry, name, digest, INDEX);
        let architectures: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(architectures, ["amd64"], "{image}");
    }

    // The policy: Kubewarden's artifact, its built-in agent image the one just pushed.
    let (name, digest) = split_pushed(&registry, &policy);
    assert_eq!(name, "rel/policies/oras-operator");
    let (_, tagged) = manifest(&registry, name, &format!("v{version}"), MANIFEST);
    assert_eq!(tagged, digest);
    let (artifact, _) = manifest(&registry, name, digest, MANIFEST);
    let layer = single_layer(
        &artifact,
        "application/vnd.wasm.config.v1+json",
        "application/vnd.wasm.content.layer.v1+wasm",
    );
    assert_eq!(
        artifact["annotations"]["io.kubewarden.policy.version"],
        version
    );
    let module = blob(&registry, name, layer["digest"].as_str().unwrap());
    let section =
        oras_ship::policy::wasm_sections::read_custom(&module, oras_ship::policy::METADATA_SECTION)
            .unwrap()
            .expect("the released policy is annotated");
    let metadata: Value = serde_json::from_slice(&section).unwrap();
    assert_eq!(metadata["protocolVersion"], "v1");
    let host = PolicyHost::from_bytes(&module).unwrap();
    assert_eq!(host.validate_settings(&json!({})).unwrap()["valid"], true);
    let case = oras_e2e::fixtures::load_cases(&workspace::requests_dir())
        .unwrap()
        .into_iter()
        .find(|c| c.name == "hello-world-pod")
        .unwrap();
    let answer = host.validate(&json!({}), case.request()).unwrap();
    let init = &answer["mutated_object"]["spec"]["initContainers"];
    let images: Vec<&str> = init
        .as_array()
        .unwrap_or_else(|| panic!("no init containers in {answer}"))
        .iter()
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        [agent.as_str(), agent.as_str()],
        "oras-init and oras run the agent just pushed"
    );

    // The chart: Helm's media types, Chart.yaml as config, values pinned to the controller.
    let (name, digest) = split_pushed(&registry, &chart);
    assert_eq!(name, "rel/charts/oras-operator");
    let (_, tagged) = manifest(&registry, name, version, MANIFEST);
    assert_eq!(tagged, digest, "tagged with the chart version");
    let (artifact, _) = manifest(&registry, name, digest, MANIFEST);
    let layer = single_layer(
        &artifact,
        "application/vnd.cncf.helm.config.v1+json",
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    );
    assert_build_annotations_created(
        &artifact["annotations"],
        "oras-operator",
        version,
        &commit_time(),
    );
    let config: Value = serde_json::from_slice(&blob(
        &registry,
        name,
        artifact["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let chart_dir = workspace::root().join("charts/oras-operator");
    assert_eq!(
        config,
        yaml_as_json(&std::fs::read(chart_dir.join("Chart.yaml")).unwrap())
    );
    let files = tgz_files(&blob(&registry, name, layer["digest"].as_str().unwrap()));
    assert_eq!(
        files[0].0, "oras-operator/Chart.yaml",
        "Chart.yaml first, as helm package writes it"
    );
    assert_eq!(
        yaml_as_json(&files[0].1),
        config,
        "the packaged Chart.yaml is the config"
    );
    for (path, data) in &files {
        let relative = path
            .strip_prefix("oras-operator/")
            .expect("every file under NAME/");
        let original = std::fs::read(chart_dir.join(relative)).unwrap();
        if relative != "values.yaml" {
            assert_eq!(data, &original, "{relative} is packaged as it is");
        }
    }
    let values = &files
        .iter()
        .find(|(p, _)| p == "oras-operator/values.yaml")
        .unwrap()
        .1;
    let mut expected = yaml_as_json(&std::fs::read(chart_dir.join("values.yaml")).unwrap());
    for (parent, image) in [("image", &controller), ("agentImage", &agent)] {
        let (repository, digest) = image.split_once('@').unwrap();
        expected[parent]["repository"] = json!(repository);
        expected[parent]["digest"] = json!(digest);
    }
    assert_eq!(
        yaml_as_json(values),
        expected,
        "only the controller and agent images are pinned"
    );
    let text = String::from_utf8(values.clone()).unwrap();
    assert!(
        text.contains("# Defaults to the chart's appVersion."),
        "comments are kept"
    );

    helm_renders_the_pushed_chart_with_the_pinned_controller(&registry, &controller, &agent);
}

/// The real helm (`make tools`) renders the pushed chart straight from the registry, with
/// the controller pinned by digest.
fn helm_renders_the_pushed_chart_with_the_pinned_controller(
    registry: &Registry,
    controller: &str,
    agent: &str,
) {
    let helm_binary = oras_testkit::tools::tool("helm").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let chart = format!("oci://{}/rel/charts/oras-operator", registry.host());
    let helm = |args: &[&str]| {
        let output = Command::new(&helm_binary)
            .args(args)
            .env("HELM_CACHE_HOME", dir.path().join("cache"))
            .env("HELM_CONFIG_HOME", dir.path().join("config"))
            .env("HELM_DATA_HOME", dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let version = env!("CARGO_PKG_VERSION");
    let rendered = helm(&[
        "template",
        "oras-operator",
        &chart,
        "--version",
        version,
        "--plain-http",
        "--namespace",
        "oras-system",
    ]);
    assert!(
        rendered.contains(&format!("image: \"{controller}\"")),
        "the Deployment runs {controller}:\n{rendered}"
    );
    assert!(
        rendered.contains(&format!("--gate-image={controller}")),
        "the gate of caches with auth runs {controller} too:\n{rendered}"
    );
    assert!(
        rendered.contains(&format!("--agent-image={agent}")),
        "the retention CronJobs run the agent {agent}:\n{rendered}"
    );
}
