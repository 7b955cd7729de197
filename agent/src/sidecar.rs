//! The `sidecar` role (native sidecar `oras`): wait for the launcher's exit record, push
//! the staged output unless the application failed, write the push result, then idle
//! until Kubernetes sends SIGTERM, and exit 0. When the launcher container restarts and
//! records a new exit, the sidecar handles that run too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use signal_hook::consts::signal::{SIGINT, SIGTERM};

use crate::reference::ArtifactRef;
use crate::share::{self, PushRecord, ShareDir, Waited};
use crate::transfer::{self, Connection, PushSource};

pub struct SidecarOptions {
    pub share: ShareDir,
    pub output: ArtifactRef,
    pub push_on_failure: bool,
    pub connection: Connection,
}

pub fn run(options: SidecarOptions) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install signal handlers")?;
    }
    let share = &options.share;
    tracing::info!("waiting for the application to end");
    let mut handled = None;
    loop {
        // A new exit record: the first run, or a later one after the launcher
        // container restarted (it removes the previous run's records first).
        let mut current = None;
        let waited = share::wait_until(
            &share.state_dir(),
            || {
                current = share.exit_record_id();
                current.is_some() && current != handled
            },
            None,
            &stop,
        );
        if waited == Waited::Stopped {
            break;
        }
        handled = current;
        let record = decide_and_push(&options);
        // A successful push was logged where it happened.
        if let PushRecord::Failed { message } = &record {
            tracing::warn!("{message}");
        }
        if let Err(err) = share.write_push(&record) {
            tracing::error!("cannot record the push result: {err}");
        }
        tracing::info!("idle until stopped (or until the application runs again)");
    }
    if handled.is_none() {
        tracing::info!("stopped before the application ended: nothing pushed");
    }
    tracing::info!("stopping");
    Ok(())
}

fn decide_and_push(options: &SidecarOptions) -> PushRecord {
    let share = &options.share;
    let code = match share.read_exit() {
        Ok(Some(code)) => code,
        Ok(None) => {
            return PushRecord::Failed {
                message: "the exit record disappeared".into(),
            };
        }
        Err(err) => {
            return PushRecord::Failed {
                message: err.to_string(),
            };
        }
    };
    if code != 0 && !options.push_on_failure {
        return PushRecord::Failed {
            message: format!(
                "not pushed: the application exited with code {code} (push-on-failure is off)"
            ),
        };
    }
    match push_outputs(options) {
        Ok(digest) => PushRecord::Pushed { digest },
        Err(err) => PushRecord::Failed {
            message: format!("cannot push {}: {err:#}", options.output),
        },
    }
}

fn push_outputs(options: &SidecarOptions) -> Result<String> {
    let outputs = options.share.outputs_dir();
    let mut names: Vec<_> = std::fs::read_dir(&outputs)
        .with_context(|| format!("cannot list {}", outputs.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {}", outputs.display()))?;
    names.sort();
    let sources = names
        .into_iter()
        .map(|name| {
            let title = name
                .to_str()
                .with_context(|| format!("output name {name:?} is not UTF-8"))?
                .to_string();
            Ok(PushSource {
                path: outputs.join(&name),
                title,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if sources.is_empty() {
        anyhow::bail!(
            "the launcher staged no output in {} (did the output path exist?)",
            outputs.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(transfer::push(
        &options.output,
        &sources,
        BTreeMap::new(),
        &options.connection,
        &options.share.temp_dir(),
    ))
}
