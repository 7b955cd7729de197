//! Outputs that are container images too (`oras-agent push --image`): a runtime's view
//! (Debian's skopeo copies the artifact from a real registry into an OCI layout, umoci
//! unpacks it as an image) finds exactly the pushed files, the config's diff IDs are
//! the digests of the uncompressed layers, and the ORAS view is unchanged: oras-py and
//! `oras-agent pull` place the same files as for an ORAS artifact.

mod support;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use support::registry::TestRegistry;
use support::*;

const PY_PULL: &str = r#"
import sys, oras.client
client = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
client.pull(target=sys.argv[2], outdir=sys.argv[3])
"#;

/// A small file, an empty one, a file larger than the agent's small-file limit (it is
/// packed while it streams), a file under a nested title, and a tree of the tricky
/// cases.
const SOURCES: [&str; 5] = ["result.txt", "empty.txt", "big.bin", "logs/run.log", "tree"];

fn sources(work: &Path) -> PathBuf {
    let src = work.join("src");
    tricky_tree(&src.join("tree"));
    write(&src.join("result.txt"), b"42\n");
    write(&src.join("empty.txt"), b"");
    write(&src.join("logs/run.log"), b"step 1 done\n");
    let big: Vec<u8> = (0..(3u32 << 19)).flat_map(|i| i.to_be_bytes()).collect();
    write(&src.join("big.bin"), &big);
    src
}

fn run_ok(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (apt-get install {program}): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `sha256:<hex>` of the gunzipped `blob`.
fn uncompressed_digest(blob: &[u8]) -> String {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .read_to_end(&mut tar)
        .unwrap();
    format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
}

fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

struct PushedImage {
    registry: TestRegistry,
    reference: String,
    work: tempfile::TempDir,
    src: PathBuf,
}

fn push_image(repository_and_tag: &str) -> PushedImage {
    let registry = TestRegistry::start();
    let work = tempfile::tempdir().unwrap();
    let src = sources(work.path());
    let reference = registry.reference(repository_and_tag);
    agent_ok(
        &[
            &["push", "--image", "--plain-http", &reference][..],
            &SOURCES,
        ]
        .concat(),
        &src,
    );
    PushedImage {
        registry,
        reference,
        work,
        src,
    }
}

#[test]
fn skopeo_and_umoci_unpack_an_image_output_to_exactly_its_files() {
    let pushed = push_image("steps/simulate:v1");
    let layout = pushed.work.path().join("layout");
    let bundle = pushed.work.path().join("bundle");
    run_ok(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}", pushed.reference),
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    run_ok(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(
        snapshot_without_modes(&bundle.join("rootfs")),
        snapshot_without_modes(&pushed.src)
    );
    // Modes of files survive; umoci's rootless unpack makes directories it creates
    // for a file's parent (logs/) its own way.
    let file_modes = |tree: std::collections::BTreeMap<PathBuf, String>| {
        tree.into_iter()
            .filter(|(_, description)| !description.starts_with("dir"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        file_modes(snapshot(&bundle.join("rootfs"))),
        file_modes(snapshot(&pushed.src))
    );

    // The config's diff IDs are the uncompressed layers, in order, as copied.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&layout_blob(&layout, manifest_digest)).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&layout_blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let uncompressed: Vec<String> = layers
        .iter()
        .map(|layer| uncompressed_digest(&layout_blob(&layout, layer["digest"].as_str().unwrap())))
        .collect();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    assert_eq!(diff_ids, uncompressed);
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["os"], "linux");
    assert!(config["architecture"].is_string(), "{config}");
}

#[test]
fn an_image_output_keeps_the_oras_view_of_its_layers() {
    let pushed = push_image("steps/simulate:v2");
    let manifest = pushed.registry.manifest("steps/simulate", "v2");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert!(manifest.get("artifactType").is_none(), "{manifest}");
    let layers = manifest["layers"].as_array().unwrap();
    let titles: Vec<&str> = layers
        .iter()
        .map(|l| {
            l["annotations"]["org.opencontainers.image.title"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(titles, SOURCES);
    for layer in layers {
        assert_eq!(
            layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
            "{layer}"
        );
        let annotations = &layer["annotations"];
        assert_eq!(annotations["io.deis.oras.content.unpack"], "true");
        let stored = fs::read(
            pushed
                .registry
                .blob_data_path(layer["digest"].as_str().unwrap()),
        )
        .unwrap();
        assert_eq!(
            annotations["io.deis.oras.content.digest"],
            uncompressed_digest(&stored).as_str()
        );
        let is_tree = annotations["org.opencontainers.image.title"] == "tree";
        assert_eq!(
            annotations
                .get("oras.converged-computing.github.io/packed-file")
                .is_some(),
            !is_tree,
            "{layer}"
        );
    }

    // The ORAS Python SDK places the files, the tree unpacked. A nested title is the
    // exception: it extracts an archive under the title's parent (logs/logs/run.log),
    // which outputs, titled by their names alone, never meet.
    let by_python = pushed.work.path().join("by-python");
    fs::create_dir_all(&by_python).unwrap();
    python_ok(
        PY_PULL,
        &[
            &pushed.registry.host(),
            &pushed.reference,
            by_python.to_str().unwrap(),
        ],
        pushed.work.path(),
    );
    let mut by_python = snapshot(&by_python);
    let mut expected = snapshot(&pushed.src);
    for tree in [&mut by_python, &mut expected] {
        tree.retain(|path, _| !path.starts_with("logs"));
    }
    assert_eq!(by_python, expected);

    // So does the agent, and with --no-unpack only the directory stays an archive.
    let by_agent = pushed.work.path().join("by-agent");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            &pushed.reference,
            "-o",
            by_agent.to_str().unwrap(),
        ],
        pushed.work.path(),
    );
    assert_eq!(snapshot(&by_agent), snapshot(&pushed.src));
    let packed = pushed.work.path().join("packed");
    agent_ok(
        &[
            "pull",
            "--plain-http",
            "--no-unpack",
            &pushed.reference,
            "-o",
            packed.to_str().unwrap(),
        ],
        pushed.work.path(),
    );
    let mut without_tree = snapshot(&pushed.src);
    without_tree.retain(|path, _| !path.starts_with("tree"));
    let mut placed = snapshot(&packed);
    let archive = placed
        .remove(Path::new("tree.tar.gz"))
        .expect("the tree kept as an archive");
    assert!(archive.starts_with("file "), "{archive}");
    assert_eq!(placed, without_tree);
}

#[test]
fn small_files_pushed_again_as_images_are_not_uploaded_again() {
    let registry = TestRegistry::start_with_access_log();
    let work = tempfile::tempdir().unwrap();
    let src = sources(work.path());
    let push = |tag: &str| {
        let reference = registry.reference(&format!("steps/again:{tag}"));
        agent_ok(
            &[
                &["push", "--image", "--plain-http", &reference][..],
                &SOURCES[..2],
            ]
            .concat(),
            &src,
        );
    };
    push("v1");
    let first = registry.agent_requests();
    push("v2");
    let second = registry.agent_requests()[first.len()..].to_vec();
    let before = registry.manifest("steps/again", "v1");
    let after = registry.manifest("steps/again", "v2");
    // A small file packs the same way every time: the same blob, found by its digest.
    for n in 0..2 {
        let digest = after["layers"][n]["digest"].as_str().unwrap();
        assert_eq!(before["layers"][n]["digest"], digest);
        let head = format!("HEAD /v2/steps/again/blobs/{digest}");
        assert!(second.contains(&head), "{second:#?}");
        assert!(
            !second
                .iter()
                .any(|r| r.starts_with("PUT ") && r.contains(digest)),
            "{digest} uploaded again: {second:#?}"
        );
    }
}
