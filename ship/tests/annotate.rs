//! `ship annotate` writes the metadata section Kubewarden reads, and the
//! annotated module still evaluates.

use std::process::Command;

use oras_e2e::policy_host::PolicyHost;
use oras_e2e::workspace;
use serde_json::{Value, json};

#[test]
fn annotate_embeds_metadata_and_usage_and_keeps_the_policy_working() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("annotated.wasm");
    let root = workspace::root();
    let status = Command::new(env!("CARGO_BIN_EXE_ship"))
        .current_dir(&root)
        .args(["annotate", "-m", "metadata.yml", "-u", "README.md", "-o"])
        .arg(&output)
        .arg(workspace::policy_wasm())
        .status()
        .unwrap();
    assert!(status.success());
    let module = std::fs::read(&output).unwrap();
    let section =
        oras_ship::policy::wasm_sections::read_custom(&module, oras_ship::policy::METADATA_SECTION)
            .unwrap()
            .expect("the metadata section is there");
    let text = std::str::from_utf8(&section).unwrap();
    assert!(!text.contains('\n'), "the metadata is compact JSON");
    let metadata: Value = serde_json::from_str(text).unwrap();
    assert_eq!(metadata["protocolVersion"], "v1");
    assert_eq!(metadata["mutating"], true);
    assert_eq!(metadata["executionMode"], "kubewarden-wapc");
    assert_eq!(metadata["rules"][0]["resources"], json!(["pods"]));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert_eq!(
        metadata["annotations"]["io.kubewarden.policy.usage"],
        readme
    );
    assert_eq!(
        metadata["annotations"]["io.kubewarden.policy.title"],
        "oras-operator"
    );

    let host = PolicyHost::from_bytes(&module).unwrap();
    assert_eq!(host.protocol_version().unwrap(), json!("v1"));
}

/// Where kwctl is installed, its annotation and ours carry the same metadata.
#[test]
fn annotate_agrees_with_kwctl_where_kwctl_is_installed() {
    let Ok(version) = Command::new("kwctl").arg("--version").output() else {
        eprintln!(
            "annotate_agrees_with_kwctl_where_kwctl_is_installed: skipped: kwctl is not installed"
        );
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let root = workspace::root();
    let ours = dir.path().join("ours.wasm");
    let theirs = dir.path().join("kwctl.wasm");
    let status = Command::new(env!("CARGO_BIN_EXE_ship"))
        .current_dir(&root)
        .args(["annotate", "-m", "metadata.yml", "-u", "README.md", "-o"])
        .arg(&ours)
        .arg(workspace::policy_wasm())
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("kwctl")
        .current_dir(&root)
        .args(["annotate", "-m", "metadata.yml", "-u", "README.md", "-o"])
        .arg(&theirs)
        .arg(workspace::policy_wasm())
        .status()
        .unwrap();
    assert!(status.success());
    let section = |path: &std::path::Path| -> Value {
        let module = std::fs::read(path).unwrap();
        let bytes = oras_ship::policy::wasm_sections::read_custom(
            &module,
            oras_ship::policy::METADATA_SECTION,
        )
        .unwrap()
        .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    // kwctl also writes the defaults of fields metadata.yml leaves out; every field we
    // write must be what kwctl writes.
    let (ours, theirs) = (section(&ours), section(&theirs));
    for (key, value) in ours.as_object().unwrap() {
        assert_eq!(&theirs[key], value, "field {key}");
    }
}
