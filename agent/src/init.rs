//! The `init` role (container `oras-init`): install the agent into the share, pull
//! every input into `inputs/<n>/`, in order, and record what was pulled. With
//! `--memoize`, decide whether the application needs to run at all.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use oras_contract::agent_args::MemoizeKey;

use crate::provenance::memoize::{self, Decision};
use crate::provenance::pinned_input;
use crate::reference::ArtifactRef;
use crate::share::{MemoizedRecord, ShareDir};
use crate::transfer::{self, Connection};

pub struct InitOptions {
    pub share: ShareDir,
    pub inputs: Vec<ArtifactRef>,
    pub unpack: bool,
    pub memoize: Option<MemoizeKey>,
    pub connection: Connection,
}

pub async fn run(options: InitOptions) -> Result<()> {
    let share = &options.share;
    share.create_layout()?;
    install_agent(share)?;
    let mut pinned = Vec::with_capacity(options.inputs.len());
    for (index, input) in options.inputs.iter().enumerate() {
        let number = index + 1;
        let dir = share.input_dir(number);
        let pulled = transfer::pull(input, &dir, options.unpack, &options.connection)
            .await
            .with_context(|| format!("cannot pull input {number} ({input})"))?;
        tracing::info!(
            "input {number}: {input} ({}) in {}",
            pulled.digest,
            dir.display()
        );
        pinned.push(pinned_input(input, &pulled.digest));
    }
    share.write_inputs(&pinned)?;
    if let Some(key) = &options.memoize {
        match memoize::check(key, &pinned, &options.connection).await {
            Decision::Run(reason) => tracing::info!("not memoized: {reason}; the application runs"),
            Decision::Skip {
                digest,
                pod,
                finished,
            } => {
                tracing::info!(
                    "memoized: {} ({digest}) was made by pod {} at {} from the same inputs, image and command",
                    key.output,
                    pod.as_deref().unwrap_or("(unknown)"),
                    finished.as_deref().unwrap_or("(unknown time)")
                );
                share.write_memoized(&MemoizedRecord {
                    output: key.output.clone(),
                    digest,
                    pod,
                    finished,
                })?;
            }
        }
    }
    Ok(())
}

/// Copy the running binary to `bin/oras-agent` in the share.
fn install_agent(share: &ShareDir) -> Result<()> {
    install_self(&share.agent_binary())
}

/// Copy the running binary to `dest` (write, then rename), executable.
pub fn install_self(dest: &Path) -> Result<()> {
    let me = std::env::current_exe().context("cannot find the agent's own binary")?;
    if same_file(&me, dest) {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".oras-agent-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot install the agent into {}", dir.display()))?;
    let install_error = || format!("cannot install {} as {}", me.display(), dest.display());
    fs::copy(&me, temp.path()).with_context(install_error)?;
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755))
        .with_context(install_error)?;
    temp.persist(dest).with_context(install_error)?;
    tracing::debug!("installed {}", dest.display());
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
