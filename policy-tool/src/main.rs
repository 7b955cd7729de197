use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use oras_policy_tool::METADATA_SECTION;
use oras_policy_tool::metadata::embedded_metadata;
use oras_policy_tool::wasm_sections::replace_custom;

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
}

fn main() -> Result<()> {
    match Cli::parse().command {
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
