//! The command lines the policy writes for the agent roles, and that the agent parses.
//!
//! The policy builds them with [`InitCommand`], [`LaunchCommand`] and [`SidecarCommand`];
//! the agent's argument parser uses the same [`flags`] and [`subcommands`] names and has a
//! test that parses what these builders produce.

/// Subcommand names of `oras-agent`.
pub mod subcommands {
    pub const INIT: &str = "init";
    pub const LAUNCH: &str = "launch";
    pub const SIDECAR: &str = "sidecar";
}

/// Long flag names (without the leading `--`).
pub mod flags {
    pub const SHARE: &str = "share";
    pub const INPUT: &str = "input";
    pub const NO_UNPACK: &str = "no-unpack";
    pub const OUTPUT: &str = "output";
    pub const INPUT_PATH: &str = "input-path";
    pub const OUTPUT_PATH: &str = "output-path";
    pub const OUTPUT_PIPE: &str = "output-pipe";
    pub const PUSH_ON_FAILURE: &str = "push-on-failure";
    pub const WAIT_PUSH: &str = "wait-push";
    pub const IMAGE: &str = "image";
    /// Push the output as a valid OCI image too (the sidecar's spelling; `--image`
    /// already names the launcher's image there).
    pub const IMAGE_FORMAT: &str = "image-format";
    pub const COMMAND_DIGEST: &str = "command-digest";
    pub const MEMOIZE: &str = "memoize";
    pub const PLAIN_HTTP: &str = "plain-http";
    pub const DEBUG: &str = "debug";
}

/// Settings every role that talks to a registry shares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// Talk plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Log every resolved setting.
    pub debug: bool,
}

/// `oras-agent init`: install the agent into the share and pull the inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitCommand {
    pub share: String,
    /// Fully qualified references, in annotation order.
    pub inputs: Vec<String>,
    pub unpack: bool,
    /// Skip the application when the output already records this run's key.
    pub memoize: Option<MemoizeKey>,
    pub transport: Transport,
}

/// What `init --memoize` compares with the existing output's provenance (besides the
/// input digests, which it learns by pulling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoizeKey {
    /// Fully qualified reference of the output.
    pub output: String,
    /// The launcher's image as written in the pod spec.
    pub image: String,
    /// [`crate::provenance::command_digest`] of the application's argv.
    pub command_digest: String,
}

/// `oras-agent launch`: wrap the application's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchCommand {
    pub share: String,
    pub input_path: Option<String>,
    pub output_path: Option<String>,
    pub output_pipe: Option<String>,
    pub push_on_failure: bool,
    /// Wait for the sidecar's push result before exiting (there is an output).
    pub wait_push: bool,
    pub debug: bool,
    /// The application's original command followed by its args, one argv item each.
    pub command: Vec<String>,
}

/// `oras-agent sidecar`: wait for the application, push its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarCommand {
    pub share: String,
    /// Fully qualified reference of the output.
    pub output: String,
    /// The launcher's image as written in the pod spec, recorded in the provenance.
    pub image: Option<String>,
    /// [`crate::provenance::command_digest`] of the application's argv as written in the
    /// pod spec, recorded in the provenance.
    pub command_digest: Option<String>,
    pub push_on_failure: bool,
    /// Push the output as an OCI image as well as an ORAS artifact, so that image
    /// volumes can mount it.
    pub image_format: bool,
    pub transport: Transport,
}

fn flag(name: &str) -> String {
    format!("--{name}")
}

fn push_flag(argv: &mut Vec<String>, name: &str, on: bool) {
    if on {
        argv.push(flag(name));
    }
}

fn push_option(argv: &mut Vec<String>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        argv.push(flag(name));
        argv.push(value.to_string());
    }
}

impl Transport {
    fn append_to(&self, argv: &mut Vec<String>) {
        push_flag(argv, flags::PLAIN_HTTP, self.plain_http);
        push_flag(argv, flags::DEBUG, self.debug);
    }
}

impl InitCommand {
    /// Arguments after the program name.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![subcommands::INIT.to_string()];
        push_option(&mut argv, flags::SHARE, Some(&self.share));
        for input in &self.inputs {
            push_option(&mut argv, flags::INPUT, Some(input));
        }
        push_flag(&mut argv, flags::NO_UNPACK, !self.unpack);
        if let Some(key) = &self.memoize {
            push_flag(&mut argv, flags::MEMOIZE, true);
            push_option(&mut argv, flags::OUTPUT, Some(&key.output));
            push_option(&mut argv, flags::IMAGE, Some(&key.image));
            push_option(&mut argv, flags::COMMAND_DIGEST, Some(&key.command_digest));
        }
        self.transport.append_to(&mut argv);
        argv
    }
}

impl LaunchCommand {
    /// Arguments after the program name; the application's command follows `--`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![subcommands::LAUNCH.to_string()];
        push_option(&mut argv, flags::SHARE, Some(&self.share));
        push_option(&mut argv, flags::INPUT_PATH, self.input_path.as_deref());
        push_option(&mut argv, flags::OUTPUT_PATH, self.output_path.as_deref());
        push_option(&mut argv, flags::OUTPUT_PIPE, self.output_pipe.as_deref());
        push_flag(&mut argv, flags::PUSH_ON_FAILURE, self.push_on_failure);
        push_flag(&mut argv, flags::WAIT_PUSH, self.wait_push);
        push_flag(&mut argv, flags::DEBUG, self.debug);
        argv.push("--".to_string());
        argv.extend(self.command.iter().cloned());
        argv
    }
}

impl SidecarCommand {
    /// Arguments after the program name.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![subcommands::SIDECAR.to_string()];
        push_option(&mut argv, flags::SHARE, Some(&self.share));
        push_option(&mut argv, flags::OUTPUT, Some(&self.output));
        push_option(&mut argv, flags::IMAGE, self.image.as_deref());
        push_option(
            &mut argv,
            flags::COMMAND_DIGEST,
            self.command_digest.as_deref(),
        );
        push_flag(&mut argv, flags::PUSH_ON_FAILURE, self.push_on_failure);
        push_flag(&mut argv, flags::IMAGE_FORMAT, self.image_format);
        self.transport.append_to(&mut argv);
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_lists_every_input_in_order() {
        let init = InitCommand {
            share: "/mnt/oras".into(),
            inputs: vec!["r:5000/a:1".into(), "r:5000/b:2".into()],
            unpack: false,
            memoize: None,
            transport: Transport {
                plain_http: true,
                debug: false,
            },
        };
        assert_eq!(
            init.argv(),
            [
                "init",
                "--share",
                "/mnt/oras",
                "--input",
                "r:5000/a:1",
                "--input",
                "r:5000/b:2",
                "--no-unpack",
                "--plain-http"
            ]
        );
    }

    #[test]
    fn init_with_memoize_names_the_output_image_and_command_digest() {
        let init = InitCommand {
            share: "/s".into(),
            inputs: vec![],
            unpack: true,
            memoize: Some(MemoizeKey {
                output: "r:5000/out:1".into(),
                image: "busybox".into(),
                command_digest: "sha256:00".into(),
            }),
            transport: Transport::default(),
        };
        assert_eq!(
            init.argv(),
            [
                "init",
                "--share",
                "/s",
                "--memoize",
                "--output",
                "r:5000/out:1",
                "--image",
                "busybox",
                "--command-digest",
                "sha256:00"
            ]
        );
    }

    #[test]
    fn launch_keeps_the_command_as_separate_items_after_the_separator() {
        let launch = LaunchCommand {
            share: "/mnt/oras".into(),
            input_path: None,
            output_path: Some("out dir".into()),
            output_pipe: None,
            push_on_failure: false,
            wait_push: true,
            debug: true,
            command: vec!["sh".into(), "-c".into(), "echo a; echo b".into()],
        };
        assert_eq!(
            launch.argv(),
            [
                "launch",
                "--share",
                "/mnt/oras",
                "--output-path",
                "out dir",
                "--wait-push",
                "--debug",
                "--",
                "sh",
                "-c",
                "echo a; echo b"
            ]
        );
    }

    #[test]
    fn sidecar_names_the_output() {
        let sidecar = SidecarCommand {
            share: "/s".into(),
            output: "h/x:y".into(),
            image: Some("busybox:1.36".into()),
            command_digest: Some("sha256:ab".into()),
            push_on_failure: true,
            image_format: true,
            transport: Transport::default(),
        };
        assert_eq!(
            sidecar.argv(),
            [
                "sidecar",
                "--share",
                "/s",
                "--output",
                "h/x:y",
                "--image",
                "busybox:1.36",
                "--command-digest",
                "sha256:ab",
                "--push-on-failure",
                "--image-format"
            ]
        );
    }
}
