//! `ship push-policy` uploads the annotated policy the way Kubewarden ships policies, to
//! a real registry, and refuses what is not ready to ship.

use std::path::Path;
use std::process::{Command, Output};

use oras_e2e::policy_host::PolicyHost;
use oras_e2e::workspace;
use oras_testkit::registry::Registry;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const REPOSITORY: &str = "policies/oras-operator";

fn policy_tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ship"))
        .current_dir(workspace::root())
        .args(args)
        .env_remove("ORAS_USER")
        .env_remove("ORAS_PUSH_PASS")
        .output()
        .unwrap()
}

fn annotate(dir: &Path) -> std::path::PathBuf {
    let annotated = dir.join("annotated-policy.wasm");
    let wasm = workspace::policy_wasm();
    let output = policy_tool(&[
        "annotate",
        "-m",
        "metadata.yml",
        "-u",
        "README.md",
        "-o",
        annotated.to_str().unwrap(),
        wasm.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    annotated
}

fn blob(registry: &Registry, digest: &str) -> Vec<u8> {
    let (status, _, body) = registry
        .request("GET", &format!("/v2/{REPOSITORY}/blobs/{digest}"), &[], &[])
        .unwrap();
    assert_eq!(status, 200);
    body
}

#[test]
fn push_uploads_the_kubewarden_artifact_and_prints_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let annotated = annotate(dir.path());
    let registry = Registry::start().unwrap();
    let reference = registry.reference(&format!("{REPOSITORY}:v{}", env!("CARGO_PKG_VERSION")));
    let output = policy_tool(&[
        "push-policy",
        "--plain-http",
        annotated.to_str().unwrap(),
        &reference,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let (name, digest) = printed.split_once('@').unwrap();
    assert_eq!(name, registry.reference(REPOSITORY));

    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    let (status, headers, body) = registry
        .request(
            "GET",
            &format!("/v2/{REPOSITORY}/manifests/{digest}"),
            &accept,
            &[],
        )
        .unwrap();
    assert_eq!(status, 200, "the printed digest names the manifest");
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&body))),
        digest
    );
    assert_eq!(
        oras_testkit::registry::header(&headers, "Content-Type").as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v1+json"
    );
    assert_eq!(
        blob(&registry, manifest["config"]["digest"].as_str().unwrap()),
        b"{}"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.wasm.content.layer.v1+wasm"
    );
    let module = blob(&registry, layers[0]["digest"].as_str().unwrap());
    assert_eq!(
        module,
        std::fs::read(&annotated).unwrap(),
        "the layer is the annotated wasm, byte for byte"
    );

    let annotations = &manifest["annotations"];
    assert_eq!(annotations["io.kubewarden.policy.title"], "oras-operator");
    assert_eq!(
        annotations["io.kubewarden.policy.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert!(
        annotations.get("io.kubewarden.policy.usage").is_none(),
        "multi-line annotations stay in the wasm"
    );
    for (key, value) in annotations.as_object().unwrap() {
        assert!(
            !value.as_str().unwrap().contains('\n'),
            "{key} is not single-line"
        );
    }

    let host = PolicyHost::from_bytes(&module).unwrap();
    assert_eq!(host.protocol_version().unwrap(), json!("v1"));
    let case = oras_e2e::fixtures::load_cases(&workspace::requests_dir())
        .unwrap()
        .into_iter()
        .find(|c| c.name == "breakfast-job-output-pipe")
        .unwrap();
    assert_eq!(
        host.validate(&case.settings, case.request()).unwrap(),
        case.expected_response
    );
}

#[test]
fn push_refuses_a_wasm_without_metadata_and_pushes_nothing() {
    let registry = Registry::start().unwrap();
    let reference = registry.reference(&format!("{REPOSITORY}:v0"));
    let wasm = workspace::policy_wasm();
    let output = policy_tool(&[
        "push-policy",
        "--plain-http",
        wasm.to_str().unwrap(),
        &reference,
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to push"), "{stderr}");
    assert!(
        stderr.contains("has no io.kubewarden.metadata section"),
        "{stderr}"
    );
    assert!(
        registry.catalog().unwrap().is_empty(),
        "something was pushed"
    );
}

/// `ship push-policy` of the annotated policy to `reference`, with `--plain-http` or not.
fn push_policy_to(reference: &str, plain_http: bool) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let annotated = annotate(dir.path());
    let mut args = vec!["push-policy"];
    if plain_http {
        args.push("--plain-http");
    }
    args.extend([annotated.to_str().unwrap(), reference]);
    let output = policy_tool(&args);
    assert!(output.stdout.is_empty(), "nothing reported as pushed");
    // One `Error: <causes>` line, as a command-line tool says it.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn push_to_a_plain_http_registry_without_plain_http_names_the_make_variable() {
    let registry = Registry::start().unwrap();
    let (code, stderr) = push_policy_to(&registry.reference(&format!("{REPOSITORY}:v0")), false);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} answers plain HTTP: use --plain-http (make: PLAIN_HTTP=1)",
            registry.host()
        )),
        "{stderr}"
    );
    assert!(
        registry.catalog().unwrap().is_empty(),
        "something was pushed"
    );
}

#[test]
fn push_with_plain_http_to_an_https_registry_says_to_drop_it() {
    let ca = oras_testkit::tls::TestCa::new("oras-ship-test-ca").unwrap();
    let cert = ca.serving_cert("127.0.0.1", &["127.0.0.1"]).unwrap();
    let registry = Registry::start_with_tls(&cert).unwrap();
    let (code, stderr) = push_policy_to(&registry.reference(&format!("{REPOSITORY}:v0")), true);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} answers HTTPS: drop --plain-http (make: drop PLAIN_HTTP=1)",
            registry.host()
        )),
        "{stderr}"
    );
}

#[test]
fn push_with_plain_http_to_a_tls_server_that_hangs_up_says_to_drop_it() {
    let ca = oras_testkit::tls::TestCa::new("oras-ship-test-ca").unwrap();
    let server = oras_testkit::tls::OpenSslServer::start(&ca);
    let (code, stderr) = push_policy_to(&format!("{}/{REPOSITORY}:v0", server.host()), true);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} answers HTTPS: drop --plain-http (make: drop PLAIN_HTTP=1)",
            server.host()
        )),
        "{stderr}"
    );
}

/// `tester` / `secret-pw` (bcrypt, cost 5), as in the agent's tests.
const HTPASSWD: &str = "tester:$2a$05$bFEgJ/qAgs4j/2chSV6zn.GO9m7XPu/X/L2xZlVH2XQGFEiYXxafW";

/// `ship push-policy` finds credentials as the agent does (one implementation,
/// `oras_contract::credentials`): none is refused, the Docker config's `auths` entry for
/// the registry works, `ORAS_USER` with `ORAS_PUSH_PASS` works.
#[test]
fn push_reads_the_docker_config_as_the_agent_does() {
    let dir = tempfile::tempdir().unwrap();
    let annotated = annotate(dir.path());
    let registry = Registry::start_with_htpasswd(HTPASSWD).unwrap();
    let reference = registry.reference(&format!("{REPOSITORY}:v1"));
    let push = |env: &[(&str, String)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ship"));
        command
            .current_dir(workspace::root())
            .args([
                "push-policy",
                "--plain-http",
                annotated.to_str().unwrap(),
                &reference,
            ])
            .env_remove("ORAS_USER")
            .env_remove("ORAS_PUSH_PASS")
            .env("DOCKER_CONFIG", dir.path().join("no-docker-config"));
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };

    // The tags, read as `tester` (base64 of `tester:secret-pw`).
    let tags = || {
        let (status, _, body) = registry
            .request(
                "GET",
                &format!("/v2/{REPOSITORY}/tags/list"),
                &[("Authorization", "Basic dGVzdGVyOnNlY3JldC1wdw==")],
                &[],
            )
            .unwrap();
        match status {
            404 => Value::Null,
            200 => serde_json::from_slice::<Value>(&body).unwrap()["tags"].clone(),
            other => panic!("tags: {other}"),
        }
    };

    let anonymous = push(&[]);
    assert!(!anonymous.status.success());
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert_eq!(tags(), Value::Null, "nothing pushed");

    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"username":"tester","password":"secret-pw"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let from_config = push(&[("DOCKER_CONFIG", docker.display().to_string())]);
    assert!(
        from_config.status.success(),
        "{}",
        String::from_utf8_lossy(&from_config.stderr)
    );
    assert_eq!(tags(), json!(["v1"]));

    let from_env = push(&[
        ("ORAS_USER", "tester".to_string()),
        ("ORAS_PUSH_PASS", "secret-pw".to_string()),
    ]);
    assert!(
        from_env.status.success(),
        "{}",
        String::from_utf8_lossy(&from_env.stderr)
    );
}
