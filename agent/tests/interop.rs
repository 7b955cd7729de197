//! Interoperability with both independent ORAS clients: the ORAS Python SDK (`pip
//! install oras`, in a venv the tests make once under the target directory) and the oras
//! Go CLI (built by `make tools`). What the agent pushes, each pulls identical; what each
//! pushes, the agent pulls identical.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::registry::TestRegistry;
use support::*;

const PY_PULL: &str = r#"
import sys, oras.client
client = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
for path in client.pull(target=sys.argv[2], outdir=sys.argv[3]):
    print(path)
"#;

const PY_PUSH: &str = r#"
import sys, oras.client
client = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
response = client.push(target=sys.argv[2], files=sys.argv[3:])
response.raise_for_status()
"#;

/// What the interop tests push, relative to [`sources`]: a tree of the tricky cases, a
/// file and an empty file.
const SOURCES: [&str; 3] = ["result.txt", "empty.txt", "tree"];

fn sources(work: &Path) -> PathBuf {
    let src = work.join("src");
    tricky_tree(&src.join("tree"));
    write(&src.join("result.txt"), b"42\n");
    write(&src.join("empty.txt"), b"");
    src
}

/// [`SOURCES`] pushed by the agent to `name` in a fresh registry, and an empty `out`
/// folder for another client to pull them into.
struct PushedByAgent {
    registry: TestRegistry,
    reference: String,
    work: tempfile::TempDir,
    src: PathBuf,
    out: PathBuf,
}

impl PushedByAgent {
    fn new(name: &str) -> Self {
        let registry = TestRegistry::start();
        let work = tempfile::tempdir().unwrap();
        let src = sources(work.path());
        let reference = registry.reference(name);
        agent_ok(
            &[&["push", "--plain-http", &reference][..], &SOURCES].concat(),
            &src,
        );
        let out = work.path().join("out");
        fs::create_dir_all(&out).unwrap();
        Self {
            registry,
            reference,
            work,
            src,
            out,
        }
    }
}

#[test]
fn what_the_agent_pushes_oras_py_pulls_identical() {
    let pushed = PushedByAgent::new("interop/from-agent:v1");
    python_ok(
        PY_PULL,
        &[
            &pushed.registry.host(),
            &pushed.reference,
            pushed.out.to_str().unwrap(),
        ],
        pushed.work.path(),
    );
    assert_eq!(snapshot(&pushed.out), snapshot(&pushed.src));
}

#[test]
fn what_oras_py_pushes_the_agent_pulls_identical() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    tricky_tree(&src.join("tree"));
    write(&src.join("result.txt"), b"42\n");
    let reference = registry.reference("interop/from-py:v1");
    python_ok(
        PY_PUSH,
        &[&registry.host(), &reference, "result.txt", "tree"],
        &src,
    );
    // oras-py marks the directory only by its media type (no unpack annotation).
    let manifest = registry.manifest("interop/from-py", "v1");
    let layers = manifest["layers"].as_array().unwrap();
    let tree = layers
        .iter()
        .find(|l| l["annotations"]["org.opencontainers.image.title"] == "tree")
        .expect("a layer titled tree");
    assert_eq!(
        tree["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert!(
        tree["annotations"]
            .get("io.deis.oras.content.unpack")
            .is_none()
    );

    let out = work.path().join("out");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &reference,
            "-o",
            out.to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(snapshot(&out), snapshot(&src));
}

/// The oras Go CLI with `args` in `cwd`; panics with its output unless it succeeds.
fn oras_cli_ok(args: &[&str], cwd: &Path) -> String {
    let oras = oras_testkit::tools::tool("oras").unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(&oras)
        .args(args)
        .current_dir(cwd)
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .output()
        .expect("run the oras CLI");
    assert!(
        output.status.success(),
        "oras {args:?} failed with {}:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn what_the_agent_pushes_the_oras_cli_pulls_identical() {
    let pushed = PushedByAgent::new("interop/agent-to-cli:v1");
    oras_cli_ok(&["pull", "--plain-http", &pushed.reference], &pushed.out);
    assert_eq!(snapshot(&pushed.out), snapshot(&pushed.src));
}

#[test]
fn what_the_oras_cli_pushes_the_agent_pulls_identical() {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = sources(work.path());
    let reference = registry.reference("interop/cli-to-agent:v1");
    oras_cli_ok(
        &[&["push", "--plain-http", &reference][..], &SOURCES].concat(),
        &src,
    );
    // The Go CLI marks a directory with the unpack annotation and the digest of its tar.
    let manifest = registry.manifest("interop/cli-to-agent", "v1");
    let tree = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["org.opencontainers.image.title"] == "tree")
        .expect("a layer titled tree");
    assert_eq!(tree["annotations"]["io.deis.oras.content.unpack"], "true");
    assert!(
        tree["annotations"]["io.deis.oras.content.digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:"))
    );

    let out = work.path().join("out");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &reference,
            "-o",
            out.to_str().unwrap(),
        ],
        work.path(),
    );
    assert_eq!(snapshot(&out), snapshot(&src));
}
