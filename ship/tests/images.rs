//! `ship push-images` against a real registry (Debian's `docker-registry` on 127.0.0.1),
//! read back with the tools a cluster's runtime stack uses (`skopeo`, `umoci`): one
//! index over linux/amd64 and linux/arm64, images that run as their config says, the
//! same digests on every run, and nothing pushed when the input is wrong.
//!
//! The agent pushed is the one `make test-binaries` cross-builds without optimisation;
//! `make push-images` assembles the release build the same way.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use oras_testkit::registry::Registry;
use serde_json::{Value, json};
use support::*;

const PATH: &str = "ship";

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (Debian: apt-get install {program}): {e}")
        });
    assert!(
        output.status.success(),
        "{program} {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every path under `root`, relative and sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Runs `program` with `args` inside `rootfs` (chroot) as `uid`:`gid` with `env` when
/// this process may (root); otherwise straight from the host as the current user.
fn run_in_rootfs(
    rootfs: &Path,
    program: &str,
    args: &[&str],
    uid: u32,
    gid: u32,
    env: &[String],
) -> String {
    let mut command = if unsafe { libc::geteuid() } == 0 {
        let mut command = Command::new(program);
        let rootfs = std::ffi::CString::new(rootfs.as_os_str().as_encoded_bytes()).unwrap();
        // In the child, before exec: enter the rootfs, then drop to the image's user
        // (std would change the user before running this, and chroot needs root).
        unsafe {
            command.pre_exec(move || {
                let failed = libc::chroot(rootfs.as_ptr()) != 0
                    || libc::chdir(c"/".as_ptr()) != 0
                    || libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0;
                if failed {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    } else {
        eprintln!("not root: running {program} from the unpacked rootfs as the current user");
        Command::new(rootfs.join(program.trim_start_matches('/')))
    };
    command.env_clear();
    for pair in env {
        let (key, value) = pair.split_once('=').unwrap();
        command.env(key, value);
    }
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} in the image failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn push_images_makes_an_index_over_both_platforms_whose_images_run_as_their_config_says() {
    let registry = Registry::start().unwrap();
    let printed = push_agent_images(&registry, PATH);
    assert_eq!(printed.lines().count(), 1, "one line per image: {printed}");
    let (repository, digest) = split_pushed(&registry, &printed);
    assert_eq!(repository, "ship/oras-agent");

    // The index, also under the version tag.
    let (index, _) = manifest(&registry, repository, digest, INDEX);
    let (_, tagged) = manifest(&registry, repository, env!("CARGO_PKG_VERSION"), INDEX);
    assert_eq!(tagged, digest, "the version tag names the printed index");
    assert_eq!(index["mediaType"], INDEX);
    assert_eq!(index["schemaVersion"], 2);
    assert_build_annotations(
        &index["annotations"],
        "oras-agent",
        env!("CARGO_PKG_VERSION"),
    );
    let platforms: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["platform"])
        .collect();
    assert_eq!(
        platforms,
        [
            &json!({"architecture": "amd64", "os": "linux"}),
            &json!({"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ]
    );

    // Each platform's image: one gzip layer, the config of an unprivileged static binary.
    for (entry, (architecture, binary, machine)) in
        index["manifests"].as_array().unwrap().iter().zip([
            ("amd64", amd64_agent(), object::Architecture::X86_64),
            ("arm64", arm64_agent(), object::Architecture::Aarch64),
        ])
    {
        assert_eq!(entry["mediaType"], MANIFEST);
        let (image, _) = manifest(
            &registry,
            repository,
            entry["digest"].as_str().unwrap(),
            MANIFEST,
        );
        assert_build_annotations(
            &image["annotations"],
            "oras-agent",
            env!("CARGO_PKG_VERSION"),
        );
        let layer = single_layer(
            &image,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        );
        let config: Value = serde_json::from_slice(&blob(
            &registry,
            repository,
            image["config"]["digest"].as_str().unwrap(),
        ))
        .unwrap();
        assert_eq!(config["architecture"], architecture);
        assert_eq!(config["os"], "linux");
        assert_eq!(config["created"], CREATED);
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(
            config["config"]["Entrypoint"],
            json!(["/usr/local/bin/oras-agent"])
        );
        assert_eq!(config["config"]["Env"], json!(["PATH=/usr/local/bin"]));
        assert_build_annotations(
            &config["config"]["Labels"],
            "oras-agent",
            env!("CARGO_PKG_VERSION"),
        );

        let layer = blob(&registry, repository, layer["digest"].as_str().unwrap());
        let files = tgz_files(&layer);
        let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/ssl/",
                "etc/ssl/certs/",
                "etc/ssl/certs/ca-certificates.crt",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/oras-agent"
            ],
            "no shell, nothing but the binary and a CA bundle"
        );
        let bundle = String::from_utf8(files[3].1.clone()).unwrap();
        assert!(
            bundle.matches("-----BEGIN CERTIFICATE-----").count() > 100,
            "Mozilla's roots"
        );
        let shipped = &files[7].1;
        assert_eq!(
            shipped,
            &std::fs::read(&binary).unwrap(),
            "the binary, byte for byte"
        );
        let elf = object::read::File::parse(&shipped[..]).unwrap();
        use object::Object;
        assert_eq!(
            elf.architecture(),
            machine,
            "{architecture} holds a {machine:?} ELF"
        );
        let uncompressed = {
            use std::io::Read;
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&layer[..])
                .read_to_end(&mut tar)
                .unwrap();
            tar
        };
        assert_eq!(
            config["rootfs"],
            json!({"type": "layers", "diff_ids": [format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&uncompressed)))]})
        );
    }

    // What a node does with it: copy the amd64 image, unpack it into a bundle, run it.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let bundle = dir.path().join("bundle");
    let source = format!("docker://{}/{repository}@{digest}", registry.host());
    let target = format!("oci:{}:agent", layout.display());
    run(
        "skopeo",
        &[
            "--override-os",
            "linux",
            "--override-arch",
            "amd64",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &source,
            &target,
        ],
    );
    run(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:agent", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let runtime: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let process = &runtime["process"];
    assert_eq!(process["user"]["uid"], 65532);
    assert_eq!(process["user"]["gid"], 65532);
    assert_eq!(process["args"], json!(["/usr/local/bin/oras-agent"]));
    let env: Vec<String> = serde_json::from_value(process["env"].clone()).unwrap();
    assert!(env.contains(&"PATH=/usr/local/bin".to_string()), "{env:?}");
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        tree(&rootfs),
        [
            "etc",
            "etc/ssl",
            "etc/ssl/certs",
            "etc/ssl/certs/ca-certificates.crt",
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/oras-agent"
        ]
    );
    let entrypoint = process["args"][0].as_str().unwrap();
    let version = run_in_rootfs(&rootfs, entrypoint, &["--version"], 65532, 65532, &env);
    assert_eq!(
        version.trim(),
        format!("oras-agent {}", env!("CARGO_PKG_VERSION"))
    );
    // A registry client needs root certificates, even for plain HTTP: the image's own.
    let tags = run_in_rootfs(
        &rootfs,
        entrypoint,
        &[
            "tags",
            "--plain-http",
            &format!("{}/{repository}", registry.host()),
        ],
        65532,
        65532,
        &env,
    );
    assert!(
        tags.lines().any(|tag| tag == env!("CARGO_PKG_VERSION")),
        "{tags}"
    );

    // Reproducible: the same binaries and build inputs give the same digests.
    assert_eq!(push_agent_images(&registry, PATH), printed);
}

#[test]
fn a_binary_for_another_platform_is_refused_and_nothing_is_pushed() {
    let registry = Registry::start().unwrap();
    let agent = amd64_agent();
    let output = push_images(
        &registry.reference(PATH),
        true,
        &[("linux/amd64", &agent), ("linux/arm64", &agent)],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("oras-agent is built for X86_64, not for linux/arm64"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing reported as pushed");
    assert!(
        registry.catalog().unwrap().is_empty(),
        "something was pushed"
    );
}

#[test]
fn a_plain_http_registry_without_plain_http_is_named_and_nothing_is_pushed() {
    let registry = Registry::start().unwrap();
    let output = push_images(
        &registry.reference(PATH),
        false,
        &[("linux/amd64", &amd64_agent())],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
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
fn bad_registries_and_binaries_are_named() {
    for (registry, expected) in [
        ("oras", "REGISTRY \"oras\" is not host[:port]/path"),
        ("127.0.0.1:5000/Team", "path component \"Team\""),
    ] {
        let output = push_images(registry, true, &[("linux/amd64", &amd64_agent())]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{registry}: {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("oras");
    std::fs::copy(amd64_agent(), &stranger).unwrap();
    let output = push_images("127.0.0.1:1/x", true, &[("linux/amd64", &stranger)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no image is made of a binary called \"oras\": the images are oras-agent, oras-controller"),
        "{stderr}"
    );
}

#[test]
fn make_push_images_without_registry_says_what_to_set_before_building() {
    let output = Command::new("make")
        .current_dir(oras_e2e::workspace::root())
        .args(["-s", "push-images"])
        .env_remove("REGISTRY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("set REGISTRY=host[:port]/path (add PLAIN_HTTP=1 for a plain-HTTP registry)"),
        "{stderr}"
    );
    assert!(!stderr.contains("Compiling"), "nothing was built: {stderr}");
}
