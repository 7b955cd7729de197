//! The application of a launcher container without `command`: its image's ENTRYPOINT and
//! CMD, looked up at admission through an injected function (Kubewarden's OCI host
//! capability in the wasm build, anything in tests) and combined by the Kubernetes rules
//! for `command` and `args`.

pub use kubewarden_policy_sdk::host_capabilities::oci::OciManifestAndConfigResponse;
use oci_spec::image::ImageConfiguration;

use crate::names::check_image;
use crate::reference::{Reference, check_registry_host};

/// Registry of image names without one, as the container runtimes read them.
pub const DEFAULT_IMAGE_REGISTRY: &str = "docker.io";
/// Repository namespace of single-component names on the default registry.
const OFFICIAL_IMAGES: &str = "library";

/// What an image runs by default, from its config (`config.Entrypoint`, `config.Cmd`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageEntrypoint {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl From<&ImageConfiguration> for ImageEntrypoint {
    fn from(image: &ImageConfiguration) -> Self {
        let config = image.config().as_ref();
        let list = |items: Option<&Vec<String>>| items.cloned().unwrap_or_default();
        Self {
            entrypoint: list(config.and_then(|c| c.entrypoint().as_ref())),
            cmd: list(config.and_then(|c| c.cmd().as_ref())),
        }
    }
}

/// Looks up a fully qualified image reference in its registry; the error is the
/// registry's (or the host's) answer.
pub type ImageLookup<'a> = &'a dyn Fn(&str) -> Result<ImageEntrypoint, String>;

/// The image reference a container runtime pulls for `image`: `python:3.12` is
/// `docker.io/library/python:3.12`, `foo/bar` is `docker.io/foo/bar:latest`. A first
/// component with a `.` or `:`, or `localhost`, is a registry host.
pub fn qualified_image(image: &str) -> Result<String, String> {
    check_image(image)?;
    let (host, rest) = match image.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            check_registry_host(first)?;
            (first, rest.to_string())
        }
        _ => (DEFAULT_IMAGE_REGISTRY, image.to_string()),
    };
    let host = if host == "index.docker.io" {
        DEFAULT_IMAGE_REGISTRY
    } else {
        host
    };
    let name_end = rest.find(['/', ':', '@']).unwrap_or(rest.len());
    let rest = if host == DEFAULT_IMAGE_REGISTRY && !rest[name_end..].starts_with('/') {
        format!("{OFFICIAL_IMAGES}/{rest}")
    } else {
        rest
    };
    Ok(Reference::parse(&rest)?.qualified(host))
}

/// The application argv of a container that has no `command`, by the Kubernetes rules:
/// with `args`, the image's ENTRYPOINT followed by `args`; without, ENTRYPOINT followed by
/// CMD. An ENTRYPOINT of one empty string (Docker's `ENTRYPOINT [""]`) is none.
///
/// The items taken from the image are escaped (`$` as `$$`): in a container's `command`
/// and `args` the kubelet expands `$(VAR)` and `$$`, which it never does to what the
/// image itself runs.
pub fn application_argv(image: &ImageEntrypoint, args: Vec<String>) -> Vec<String> {
    let escaped = |items: &[String]| -> Vec<String> {
        items.iter().map(|item| item.replace('$', "$$")).collect()
    };
    let entrypoint: &[String] = if image.entrypoint == [""] {
        &[]
    } else {
        &image.entrypoint
    };
    let mut argv = escaped(entrypoint);
    if args.is_empty() {
        argv.extend(escaped(&image.cmd));
    } else {
        argv.extend(args);
    }
    argv
}

/// The answer of Kubewarden's `v1/oci_manifest_config` host call, as the policy reads it.
pub fn entrypoint_of(answer: &OciManifestAndConfigResponse) -> ImageEntrypoint {
    ImageEntrypoint::from(&answer.config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_without_a_registry_are_on_docker_hub() {
        for (image, qualified) in [
            ("python:3.12", "docker.io/library/python:3.12"),
            ("python", "docker.io/library/python:latest"),
            ("foo/bar", "docker.io/foo/bar:latest"),
            ("foo/bar/baz:1", "docker.io/foo/bar/baz:1"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/library/busybox:1.36",
                "docker.io/library/busybox:1.36",
            ),
            ("ghcr.io/rse-ops/lammps", "ghcr.io/rse-ops/lammps:latest"),
            ("localhost/app:v1", "localhost/app:v1"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000/a/b:c"),
            ("[::1]:5000/a", "[::1]:5000/a:latest"),
        ] {
            assert_eq!(qualified_image(image).as_deref(), Ok(qualified), "{image}");
        }
    }

    #[test]
    fn digests_are_kept_and_need_no_tag() {
        let digest = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            qualified_image(&format!("python@{digest}")).unwrap(),
            format!("docker.io/library/python@{digest}")
        );
        assert_eq!(
            qualified_image(&format!("r.io/a:1@{digest}")).unwrap(),
            format!("r.io/a:1@{digest}")
        );
    }

    #[test]
    fn bad_image_names_say_what_is_wrong() {
        for (image, problem) in [
            ("", "is empty"),
            ("a b", "must not contain whitespace"),
            ("Python:3", "invalid repository path component \"Python\""),
            ("r.io/a:b:c", "invalid repository path component"),
            ("r.io:99999/a", "invalid port"),
            ("python:bad tag", "whitespace"),
            ("python@sha256:12", "invalid digest"),
        ] {
            let message = qualified_image(image).unwrap_err();
            assert!(message.contains(problem), "{image}: {message}");
        }
    }

    #[test]
    fn the_kubernetes_rules_for_command_and_args() {
        let image = ImageEntrypoint {
            entrypoint: strings(&["/entrypoint.sh", "--quiet"]),
            cmd: strings(&["serve", "--port", "80"]),
        };
        // No command, no args: ENTRYPOINT + CMD.
        assert_eq!(
            application_argv(&image, vec![]),
            ["/entrypoint.sh", "--quiet", "serve", "--port", "80"]
        );
        // Args only: ENTRYPOINT + args, CMD dropped.
        assert_eq!(
            application_argv(&image, strings(&["run", "x y"])),
            ["/entrypoint.sh", "--quiet", "run", "x y"]
        );
        // No ENTRYPOINT: CMD, or the args.
        let cmd_only = ImageEntrypoint {
            entrypoint: vec![],
            cmd: strings(&["python3"]),
        };
        assert_eq!(application_argv(&cmd_only, vec![]), ["python3"]);
        assert_eq!(
            application_argv(&cmd_only, strings(&["-c", "print(1)"])),
            ["-c", "print(1)"]
        );
        // ENTRYPOINT [""] clears the entrypoint.
        let cleared = ImageEntrypoint {
            entrypoint: strings(&[""]),
            cmd: strings(&["sh"]),
        };
        assert_eq!(application_argv(&cleared, vec![]), ["sh"]);
        assert!(application_argv(&ImageEntrypoint::default(), vec![]).is_empty());
    }

    #[test]
    fn what_comes_from_the_image_is_escaped_for_the_kubelet_and_args_are_not() {
        let image = ImageEntrypoint {
            entrypoint: strings(&["sh", "-c"]),
            cmd: strings(&["echo $HOME $(date) $$"]),
        };
        assert_eq!(
            application_argv(&image, vec![]),
            ["sh", "-c", "echo $$HOME $$(date) $$$$"]
        );
        assert_eq!(
            application_argv(&image, strings(&["echo $(NAME)"])),
            ["sh", "-c", "echo $(NAME)"]
        );
    }

    #[test]
    fn the_host_answer_is_read_from_the_image_config() {
        let answer: OciManifestAndConfigResponse = serde_json::from_value(serde_json::json!({
            "manifest": {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": format!("sha256:{}", "a".repeat(64)), "size": 2},
                "layers": []
            },
            "digest": format!("sha256:{}", "b".repeat(64)),
            "config": {
                "architecture": "amd64", "os": "linux",
                "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--help"], "Env": ["A=1"]},
                "rootfs": {"type": "layers", "diff_ids": []}
            }
        }))
        .unwrap();
        assert_eq!(
            entrypoint_of(&answer),
            ImageEntrypoint {
                entrypoint: strings(&["/bin/app"]),
                cmd: strings(&["--help"]),
            }
        );
    }
}
