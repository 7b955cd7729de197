use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use oras_policy_tool::METADATA_SECTION;
use oras_policy_tool::artifact::{checked_metadata, manifest_annotations};
use oras_policy_tool::metadata::embedded_metadata;
use oras_policy_tool::push::push_policy;
use oras_policy_tool::wasm_sections::replace_custom;

const DEFAULT_SOURCE: &str = env!("CARGO_PKG_REPOSITORY");

/// Kubewarden packaging of the oras-operator policy, where kwctl is not installed.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    Push {
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
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Push {
            plain_http,
            source,
            wasm_path,
            reference,
        } => {
            let module = std::fs::read(&wasm_path)
                .with_context(|| format!("cannot read {}", wasm_path.display()))?;
            let metadata = checked_metadata(&module, env!("CARGO_PKG_VERSION"))
                .with_context(|| format!("refusing to push {}", wasm_path.display()))?;
            let annotations = manifest_annotations(&metadata, &source);
            // The TLS stack is built without a default crypto provider; choose one once.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let pushed =
                runtime.block_on(push_policy(module, &reference, annotations, plain_http))?;
            println!("{pushed}");
            Ok(())
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
            Ok(())
        }
    }
}
