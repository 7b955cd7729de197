//! Every image the cluster runs, built here and imported into the node's containerd
//! (nothing can be pulled from the internet): the agent and controller images as the
//! project ships them (`ship push-images` into a throw-away registry, then `skopeo copy`
//! to an OCI archive), a registry image around the registry binary of `make tools`, and
//! the application image from Debian's busybox-static.

use std::path::{Path, PathBuf};
use std::process::Command;

use oras_testkit::images::is_dynamically_linked;
use oras_testkit::node::busybox_image;
use oras_testkit::tools::tool;
use oras_testkit::{ContainerImage, Node, Registry};

pub const AGENT: &str = "oras-e2e.local/oras-agent";
pub const CONTROLLER: &str = "oras-e2e.local/oras-controller";
pub const REGISTRY: &str = "oras-e2e.local/registry";
pub const REGISTRY_TAG: &str = "v3.1.2";
pub const APP: &str = "oras-e2e.local/busybox";
pub const APP_TAG: &str = "1.35";

/// What `make cluster-e2e` passes: an environment variable that must be set.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this test through `make cluster-e2e`, which sets it")
    })
}

/// The static musl binaries `make cluster-e2e` built.
pub fn binaries() -> PathBuf {
    PathBuf::from(required_env("ORAS_CLUSTER_BINARIES"))
}

/// The version the ship tool tags images with (the workspace's).
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Builds and imports every image; returns the agent image's full name.
pub fn import_all(node: &Node, work: &Path) -> String {
    let version = version();
    let scratch = Registry::start().unwrap_or_else(|e| panic!("{e}"));
    push_shipped_images(&scratch);
    for (name, base) in [("oras-agent", AGENT), ("oras-controller", CONTROLLER)] {
        let archive = work.join(format!("{name}.tar"));
        let source = format!("docker://{}/oras-e2e/{name}:{version}", scratch.host());
        run(Command::new("skopeo").args([
            "copy",
            "--src-tls-verify=false",
            "--override-os=linux",
            "--override-arch=amd64",
            &source,
            &format!("oci-archive:{}:{version}", archive.display()),
        ]));
        import(node, &archive, base);
    }

    let archive = work.join("registry.tar");
    registry_image()
        .write_oci_archive(&archive, REGISTRY_TAG)
        .unwrap_or_else(|e| panic!("{e}"));
    import(node, &archive, REGISTRY);

    let archive = work.join("busybox.tar");
    busybox_image(&[])
        .unwrap_or_else(|e| panic!("{e}"))
        .write_oci_archive(&archive, APP_TAG)
        .unwrap_or_else(|e| panic!("{e}"));
    import(node, &archive, APP);

    format!("{AGENT}:{version}")
}

fn import(node: &Node, archive: &Path, base_name: &str) {
    node.import_image(archive, base_name)
        .unwrap_or_else(|e| panic!("importing {}: {e}", archive.display()));
}

/// `ship push-images` of the amd64 agent and controller, as `make push-images` runs it.
fn push_shipped_images(scratch: &Registry) {
    let binaries = binaries();
    let mut command = Command::new(required_env("ORAS_SHIP"));
    command.args([
        "push-images",
        "--registry",
        &format!("{}/oras-e2e", scratch.host()),
        "--plain-http",
        "--revision",
        &required_env("ORAS_REVISION"),
    ]);
    for name in ["oras-agent", "oras-controller"] {
        let binary = binaries.join(name);
        assert!(
            binary.is_file(),
            "{} is missing: `make cluster-e2e` builds it",
            binary.display()
        );
        command.arg("--binary");
        command.arg(format!("linux/amd64={}", binary.display()));
    }
    run(&mut command);
}

/// The registry binary of `make tools` (static: it runs alone in the image) with the
/// configuration the distribution project's own image has, tracing off.
fn registry_image() -> ContainerImage {
    let binary_path = tool("registry").unwrap_or_else(|e| panic!("{e}"));
    let binary = std::fs::read(&binary_path).unwrap();
    assert_eq!(
        is_dynamically_linked(&binary),
        Some(false),
        "{} must be a static executable: the registry image holds nothing else",
        binary_path.display()
    );
    let config = "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    \
                  rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\nhttp:\n  \
                  addr: :5000\n";
    ContainerImage::new(
        &["/bin/registry", "serve"],
        &["/etc/distribution/config.yml"],
    )
    .with_executable("bin/registry", binary)
    .with_file("etc/distribution/config.yml", config.as_bytes().to_vec())
    .with_env("OTEL_TRACES_EXPORTER=none")
}

/// Runs `command`; panics with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
