//! Command-line arguments. Only parsing: the roles and commands do the work.
//! The pod roles' flag names come from `oras_contract::agent_args`, so the policy and
//! the agent cannot drift apart.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use oras_contract::agent_args::{flags, subcommands};

#[derive(Debug, Parser)]
#[command(
    name = "oras-agent",
    version,
    about = "Push and pull ORAS artifacts; the init, launch and sidecar roles of oras-operator pods",
    after_help = "Credentials: ORAS_USER with ORAS_PUSH_PASS / ORAS_PULL_PASS, else the Docker config \
                  ($DOCKER_CONFIG/config.json or ~/.docker/config.json), else anonymous.\n\
                  ORAS_AGENT_RETRY_SECONDS bounds the retries while a registry is unreachable (default 120).\n\
                  Results go to stdout, a failure to stderr as one `Error: ...` line; --debug, ORAS_AGENT_LOG or \
                  RUST_LOG (a tracing filter) add details.\n\
                  Exit codes: 0 success, 1 failure, 2 the command line is wrong; `launch` exits with the \
                  application's code."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Push files and directories as one artifact; prints the manifest digest.
    Push(PushArgs),
    /// Pull an artifact into a directory: files by their titles, directories unpacked.
    Pull(PullArgs),
    /// List the tags of a repository.
    Tags(TagsArgs),
    /// Delete the tags a retention policy does not keep (and their referrers).
    Prune(PruneArgs),
    /// Print the steps behind an artifact: its provenance, then its inputs', recursively.
    Lineage(LineageArgs),
    /// Ask a registry pod's maintenance endpoint for a garbage collection.
    Collect(CollectArgs),
    /// Pod role: run the registry, and collect its garbage on request while it is
    /// read-only.
    ServeRegistry(ServeRegistryArgs),
    /// Copy this binary into a directory (an init container's job).
    Install(InstallArgs),
    /// Pod role: install the agent into the share and pull the inputs.
    #[command(name = subcommands::INIT)]
    Init(InitArgs),
    /// Pod role: run the application's command around the share protocol.
    #[command(name = subcommands::LAUNCH)]
    Launch(LaunchArgs),
    /// Pod role: wait for the application, push its output.
    #[command(name = subcommands::SIDECAR)]
    Sidecar(SidecarArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TransportArgs {
    /// Talk plain HTTP to the registry instead of HTTPS.
    #[arg(long = flags::PLAIN_HTTP)]
    pub plain_http: bool,
    /// Log every resolved setting and each request.
    #[arg(long = flags::DEBUG)]
    pub debug: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Manifest annotation, repeatable.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Make the artifact a valid container image too (image config, every layer a
    /// tar+gzip), so that Kubernetes image volumes can mount it. Files then reach the
    /// ORAS Go CLI as archives it cannot place; oras-py and `oras-agent pull` place them.
    #[arg(long = "image")]
    pub image: bool,
    /// Reference to push to: host[:port]/repository[:tag].
    pub reference: String,
    /// Files and directories (a directory becomes one tar+gzip layer).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Directory to write into (created if missing).
    #[arg(short = 'o', long = "output", default_value = ".")]
    pub output: PathBuf,
    /// Keep directory archives as <title>.tar.gz instead of unpacking them.
    #[arg(long = flags::NO_UNPACK)]
    pub no_unpack: bool,
    /// Reference to pull: host[:port]/repository[:tag|@digest].
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Repository: host[:port]/repository.
    pub repository: String,
}

/// How `lineage` prints the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LineageFormat {
    /// An indented tree from the artifact down to its inputs.
    Tree,
    /// Graphviz (`dot -Tsvg`), arrows from inputs to what they made.
    Dot,
    /// Nodes and edges as JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Also write the summary as one line of JSON to FILE (the collect CronJob's
    /// termination message).
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// The endpoint: http://HOST:PORT/collect. The token comes from
    /// ORAS_MAINTENANCE_TOKEN.
    pub url: String,
}

#[derive(Debug, Args)]
pub struct ServeRegistryArgs {
    /// The registry binary.
    #[arg(long, value_name = "PATH", default_value = "registry")]
    pub registry: std::path::PathBuf,
    /// The registry's configuration file [default: the image's, 3.x or 2.x].
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Where the registry answers, for the readiness probe [default: from
    /// REGISTRY_HTTP_ADDR, on loopback].
    #[arg(long, value_name = "HOST:PORT")]
    pub probe: Option<std::net::SocketAddr>,
    /// Serve POST /collect here (HOST:PORT); the token comes from ORAS_MAINTENANCE_TOKEN.
    #[arg(long, value_name = "HOST:PORT")]
    pub maintenance: Option<String>,
    /// Seconds a stopping registry may take before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The directory the binary is copied into, as `oras-agent`.
    pub dir: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct LineageArgs {
    #[command(flatten)]
    pub transport: TransportArgs,
    #[arg(long, value_enum, default_value = "tree")]
    pub format: LineageFormat,
    /// Artifact to start from: host[:port]/repository[:tag|@digest].
    pub reference: String,
}

#[derive(Debug, Args)]
#[command(
    after_help = "A tag is dated by its manifest's org.opencontainers.image.created \
    annotation (oras-agent and oras push set it). Undated tags are never deleted by age \
    and count as the oldest for --keep-last. A manifest still tagged by a kept tag is never \
    deleted; referrers (such as provenance attestations) go with their subject. Deleting \
    frees space only once the registry's garbage collector runs."
)]
pub struct PruneArgs {
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Keep the N newest tags of each repository.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Delete tags created longer ago than this: 90s, 30m, 12h, 7d, 2w.
    #[arg(long, value_name = "DURATION", value_parser = crate::prune::policy::parse_age)]
    pub max_age: Option<std::time::Duration>,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A tag never deleted, repeatable.
    #[arg(long, value_name = "TAG")]
    pub protect: Vec<String>,
    /// Also write a one-line JSON summary to FILE (the prune CronJob's termination
    /// message, which the controller reports in the cache's status).
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// The registry, and optionally a repository prefix: host[:port][/prefix].
    pub target: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The share directory (/mnt/oras in a pod).
    #[arg(long = flags::SHARE)]
    pub share: PathBuf,
    /// Input reference, repeatable; input n goes to <share>/inputs/<n>/.
    #[arg(long = flags::INPUT)]
    pub inputs: Vec<String>,
    /// Keep directory archives packed.
    #[arg(long = flags::NO_UNPACK)]
    pub no_unpack: bool,
    /// Skip the application when the output already records the same inputs, image
    /// and command.
    #[arg(long = flags::MEMOIZE, requires_all = ["output", "image", "command_digest"])]
    pub memoize: bool,
    /// With --memoize: the output reference.
    #[arg(long = flags::OUTPUT, requires = "memoize")]
    pub output: Option<String>,
    /// With --memoize: the launcher's image as written in the pod spec.
    #[arg(long = flags::IMAGE, requires = "memoize")]
    pub image: Option<String>,
    /// With --memoize: sha256 of the application's argv as a JSON array.
    #[arg(long = flags::COMMAND_DIGEST, requires = "memoize")]
    pub command_digest: Option<String>,
    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// The share directory (/mnt/oras in a pod).
    #[arg(long = flags::SHARE)]
    pub share: PathBuf,
    /// Where the inputs are placed (default: the working directory).
    #[arg(long = flags::INPUT_PATH)]
    pub input_path: Option<PathBuf>,
    /// The file or directory staged as the output after the command exits.
    #[arg(long = flags::OUTPUT_PATH)]
    pub output_path: Option<PathBuf>,
    /// A file the command's stdout and stderr are also appended to.
    #[arg(long = flags::OUTPUT_PIPE)]
    pub output_pipe: Option<PathBuf>,
    /// Stage the output even when the command fails.
    #[arg(long = flags::PUSH_ON_FAILURE)]
    pub push_on_failure: bool,
    /// Wait for the sidecar's push result before exiting.
    #[arg(long = flags::WAIT_PUSH)]
    pub wait_push: bool,
    /// Log every resolved setting.
    #[arg(long = flags::DEBUG)]
    pub debug: bool,
    /// The application's command and arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// The share directory (/mnt/oras in a pod).
    #[arg(long = flags::SHARE)]
    pub share: PathBuf,
    /// Reference the output is pushed to.
    #[arg(long = flags::OUTPUT)]
    pub output: String,
    /// The launcher's image as written in the pod spec (recorded in the provenance).
    #[arg(long = flags::IMAGE)]
    pub image: Option<String>,
    /// sha256 of the application's argv as a JSON array (recorded in the provenance).
    #[arg(long = flags::COMMAND_DIGEST)]
    pub command_digest: Option<String>,
    /// Push the output even when the application failed.
    #[arg(long = flags::PUSH_ON_FAILURE)]
    pub push_on_failure: bool,
    /// Push the output as a valid OCI image too, so that image volumes can mount it.
    #[arg(long = flags::IMAGE_FORMAT)]
    pub image_format: bool,
    #[command(flatten)]
    pub transport: TransportArgs,
}

impl Command {
    /// The roles of oras-operator pods, which log for `kubectl logs` (timestamps and
    /// levels) rather than speak to a person.
    pub fn is_pod_role(&self) -> bool {
        matches!(
            self,
            Command::Init(_)
                | Command::Launch(_)
                | Command::Sidecar(_)
                | Command::ServeRegistry(_)
                | Command::Install(_)
        )
    }

    /// Whether `--debug` was given.
    pub fn debug(&self) -> bool {
        match self {
            Command::Push(a) => a.transport.debug,
            Command::Pull(a) => a.transport.debug,
            Command::Tags(a) => a.transport.debug,
            Command::Prune(a) => a.transport.debug,
            Command::Lineage(a) => a.transport.debug,
            Command::Init(a) => a.transport.debug,
            Command::Launch(a) => a.debug,
            Command::Sidecar(a) => a.transport.debug,
            Command::Collect(_) | Command::ServeRegistry(_) | Command::Install(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use oras_contract::agent_args::{
        InitCommand, LaunchCommand, MemoizeKey, SidecarCommand, Transport,
    };

    fn parse(argv: Vec<String>) -> Command {
        let mut full = vec!["oras-agent".to_string()];
        full.extend(argv);
        Cli::try_parse_from(full).unwrap().command
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_what_the_policy_writes_for_init() {
        let init = InitCommand {
            share: "/mnt/oras".into(),
            inputs: vec!["r:5000/a:1".into(), "r:5000/b:2".into()],
            unpack: false,
            memoize: None,
            transport: Transport {
                plain_http: true,
                debug: true,
            },
        };
        let Command::Init(args) = parse(init.argv()) else {
            panic!("not init")
        };
        assert_eq!(args.share, PathBuf::from("/mnt/oras"));
        assert_eq!(args.inputs, init.inputs);
        assert!(args.no_unpack);
        assert!(args.transport.plain_http);
        assert!(args.transport.debug);
        assert!(!args.memoize && args.output.is_none());

        let memoized = InitCommand {
            memoize: Some(MemoizeKey {
                output: "r:5000/out:1".into(),
                image: "busybox".into(),
                command_digest: "sha256:cc".into(),
            }),
            ..init
        };
        let Command::Init(args) = parse(memoized.argv()) else {
            panic!("not init")
        };
        assert!(args.memoize);
        assert_eq!(args.output.as_deref(), Some("r:5000/out:1"));
        assert_eq!(args.image.as_deref(), Some("busybox"));
        assert_eq!(args.command_digest.as_deref(), Some("sha256:cc"));
    }

    #[test]
    fn memoize_needs_its_key() {
        let err = Cli::try_parse_from(["oras-agent", "init", "--share", "/s", "--memoize"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--output"), "{err}");
    }

    #[test]
    fn parses_what_the_policy_writes_for_launch() {
        let launch = LaunchCommand {
            share: "/mnt/oras".into(),
            input_path: Some("/data in".into()),
            output_path: Some("out dir".into()),
            output_pipe: Some("/tmp/log".into()),
            push_on_failure: true,
            wait_push: true,
            debug: true,
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo --share; exit 3".into(),
                "--".into(),
            ],
        };
        let Command::Launch(args) = parse(launch.argv()) else {
            panic!("not launch")
        };
        assert_eq!(args.share, PathBuf::from("/mnt/oras"));
        assert_eq!(args.input_path, Some(PathBuf::from("/data in")));
        assert_eq!(args.output_path, Some(PathBuf::from("out dir")));
        assert_eq!(args.output_pipe, Some(PathBuf::from("/tmp/log")));
        assert!(args.push_on_failure && args.wait_push && args.debug);
        assert_eq!(args.command, launch.command);

        let minimal = LaunchCommand {
            share: "/s".into(),
            input_path: None,
            output_path: None,
            output_pipe: None,
            push_on_failure: false,
            wait_push: false,
            debug: false,
            command: vec!["/bin/app".into()],
        };
        let Command::Launch(args) = parse(minimal.argv()) else {
            panic!("not launch")
        };
        assert!(!args.wait_push && !args.push_on_failure && args.input_path.is_none());
        assert_eq!(args.command, ["/bin/app"]);
    }

    #[test]
    fn parses_what_the_policy_writes_for_sidecar() {
        let sidecar = SidecarCommand {
            share: "/mnt/oras".into(),
            output: "r:5000/out:latest".into(),
            image: Some("ghcr.io/x/app:2".into()),
            command_digest: Some("sha256:cd".into()),
            push_on_failure: true,
            image_format: true,
            transport: Transport {
                plain_http: true,
                debug: false,
            },
        };
        let Command::Sidecar(args) = parse(sidecar.argv()) else {
            panic!("not sidecar")
        };
        assert_eq!(args.output, sidecar.output);
        assert_eq!(args.image, sidecar.image);
        assert_eq!(args.command_digest, sidecar.command_digest);
        assert!(args.push_on_failure && args.transport.plain_http && !args.transport.debug);
        assert!(args.image_format);
    }

    #[test]
    fn user_commands_parse() {
        let Command::Push(args) = parse(
            [
                "push",
                "--plain-http",
                "-a",
                "k=v",
                "localhost:5000/x:y",
                "a",
                "b",
            ]
            .map(String::from)
            .to_vec(),
        ) else {
            panic!("not push")
        };
        assert_eq!(args.annotations, ["k=v"]);
        assert_eq!(args.paths.len(), 2);
        let Command::Pull(args) = parse(
            ["pull", "localhost:5000/x:y", "-o", "out"]
                .map(String::from)
                .to_vec(),
        ) else {
            panic!("not pull")
        };
        assert_eq!(args.output, PathBuf::from("out"));
    }
}
