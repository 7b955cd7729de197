use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use oras_ship::build_info::BuildInfo;
use oras_ship::chart::Chart;
use oras_ship::chart::push::push_chart;
use oras_ship::chart::values::pin_image;
use oras_ship::image::push::{BinaryFile, push_images};
use oras_ship::policy::METADATA_SECTION;
use oras_ship::policy::artifact::{checked_metadata, manifest_annotations};
use oras_ship::policy::metadata::embedded_metadata;
use oras_ship::policy::push::push_policy;
use oras_ship::policy::wasm_sections::replace_custom;

const DEFAULT_SOURCE: &str = env!("CARGO_PKG_REPOSITORY");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Packages and pushes oras-operator: the Kubewarden policy, the images, the Helm chart.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where and when it was built; the version is the crate's.
#[derive(Args)]
struct Build {
    /// The commit built (`org.opencontainers.image.revision`).
    #[arg(long)]
    revision: String,
    /// The commit's time, seconds since the epoch: the only timestamp in what is built.
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    source_date_epoch: i64,
    /// The source repository (`org.opencontainers.image.source`).
    #[arg(long, default_value = DEFAULT_SOURCE)]
    source: String,
}

impl Build {
    fn info(&self) -> Result<BuildInfo> {
        BuildInfo::new(
            &self.source,
            VERSION,
            &self.revision,
            self.source_date_epoch,
        )
    }
}

#[derive(Subcommand)]
enum Command {
    /// Embed metadata.yml in a policy's wasm, as `kwctl annotate` does.
    Annotate {
        /// The policy's metadata file.
        #[arg(short, long)]
        metadata_path: PathBuf,
        /// A Markdown file shown as the policy's usage (`io.kubewarden.policy.usage`).
        #[arg(short, long)]
        usage_path: Option<PathBuf>,
        /// Where to write the annotated module.
        #[arg(short, long)]
        output_path: PathBuf,
        /// The policy's wasm module.
        wasm_path: PathBuf,
    },
    /// Push an annotated policy as a Kubewarden OCI artifact; prints `REF@sha256:...`.
    PushPolicy {
        /// Talk plain HTTP to the registry.
        #[arg(long)]
        plain_http: bool,
        /// Value of the `org.opencontainers.image.source` manifest annotation.
        #[arg(long, default_value = DEFAULT_SOURCE)]
        source: String,
        /// The annotated wasm module.
        wasm_path: PathBuf,
        /// Where to push it: `host[:port]/repository:tag`.
        reference: String,
    },
    /// Push static binaries as images (one per binary name, every platform given, under
    /// an index tagged with the version); prints `REGISTRY/NAME@sha256:...` per image.
    PushImages {
        /// Where the images go: `host[:port]/path` (each image is `path/NAME`).
        #[arg(long)]
        registry: String,
        /// Talk plain HTTP to the registry.
        #[arg(long)]
        plain_http: bool,
        /// `PLATFORM=PATH` (`linux/amd64` or `linux/arm64`); the file's name is the image's.
        #[arg(long = "binary", required = true, value_parser = BinaryFile::parse)]
        binaries: Vec<BinaryFile>,
        #[command(flatten)]
        build: Build,
    },
    /// Push a Helm chart as Helm's OCI artifact (tag: the chart version), its controller
    /// and agent images pinned; prints `DESTINATION/NAME@sha256:...`.
    PushChart {
        /// Talk plain HTTP to the registry.
        #[arg(long)]
        plain_http: bool,
        /// The controller image the chart runs by default: `REPOSITORY@sha256:...`.
        #[arg(long)]
        controller_image: String,
        /// The agent image of the retention CronJobs: `REPOSITORY@sha256:...`.
        #[arg(long)]
        agent_image: String,
        #[command(flatten)]
        build: Build,
        /// The chart directory.
        chart_dir: PathBuf,
        /// Where the chart goes, as for `helm push`: `host[:port]/path` (without `oci://`).
        destination: String,
    },
}

/// Run `future` to completion on a single-threaded runtime.
fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    // The TLS stack is built without a default crypto provider; choose one once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// Results on stdout; a failure on stderr as one `Error: <causes>` line, exit code 1
/// (2 for a wrong command line, from clap).
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::PushPolicy {
            plain_http,
            source,
            wasm_path,
            reference,
        } => {
            let module = std::fs::read(&wasm_path)
                .with_context(|| format!("cannot read {}", wasm_path.display()))?;
            let metadata = checked_metadata(&module, VERSION)
                .with_context(|| format!("refusing to push {}", wasm_path.display()))?;
            let annotations = manifest_annotations(&metadata, &source);
            let pushed = block_on(push_policy(module, &reference, annotations, plain_http))?;
            println!("{pushed}");
        }
        Command::PushImages {
            registry,
            plain_http,
            binaries,
            build,
        } => {
            let info = build.info()?;
            let pushed = block_on(push_images(&binaries, &registry, plain_http, &info))?;
            for reference in pushed {
                println!("{reference}");
            }
        }
        Command::PushChart {
            plain_http,
            controller_image,
            agent_image,
            build,
            chart_dir,
            destination,
        } => {
            let info = build.info()?;
            let mut chart = Chart::load(&chart_dir)?;
            let values = pin_image(&chart.values()?, "image", &controller_image)
                .and_then(|values| pin_image(&values, "agentImage", &agent_image))
                .with_context(|| format!("in {}", chart_dir.join("values.yaml").display()))?;
            chart.set_values(values);
            let pushed = block_on(push_chart(&chart, &destination, plain_http, &info))?;
            println!("{pushed}");
        }
        Command::Annotate {
            metadata_path,
            usage_path,
            output_path,
            wasm_path,
        } => {
            let read_text = |path: &PathBuf| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            };
            let usage = usage_path.as_ref().map(read_text).transpose()?;
            let metadata = embedded_metadata(&read_text(&metadata_path)?, usage.as_deref())
                .with_context(|| format!("in {}", metadata_path.display()))?;
            let module = std::fs::read(&wasm_path)
                .with_context(|| format!("cannot read {}", wasm_path.display()))?;
            let annotated =
                replace_custom(&module, METADATA_SECTION, &serde_json::to_vec(&metadata)?)
                    .with_context(|| format!("in {}", wasm_path.display()))?;
            let partial = output_path.with_extension("wasm.partial");
            std::fs::write(&partial, annotated)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, &output_path)
                .with_context(|| format!("cannot write {}", output_path.display()))?;
        }
    }
    Ok(())
}
