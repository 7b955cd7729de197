//! The `sidecar` role (native sidecar `oras`): wait for the launcher's exit record, push
//! the staged output with its provenance (annotations and an attached SLSA attestation)
//! unless the application failed or the step was memoized, write the push result, then
//! idle until Kubernetes sends SIGTERM, and exit 0. When the launcher container restarts
//! and records a new exit, the sidecar handles that run too.
//!
//! The registry is reached (credentials resolved, `/v2/` asked once) while the
//! application runs, and that one connection serves every push of the process: when
//! the exit record appears, the upload starts at once.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use signal_hook::consts::signal::{SIGINT, SIGTERM};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::credentials::Operation;
use crate::provenance::{self, Provenance, attestation};
use crate::reference::ArtifactRef;
use crate::registry::{Registry, RegistryError};
use crate::share::{self, PushRecord, ShareDir, Waited};
use crate::transfer::{self, Connection, PushSource};

pub struct SidecarOptions {
    pub share: ShareDir,
    pub output: ArtifactRef,
    /// The launcher's image as written in the pod spec.
    pub image: Option<String>,
    /// The digest of the application's argv as written in the pod spec.
    pub command_digest: Option<String>,
    pub push_on_failure: bool,
    /// Push the output as an image too, for image volumes.
    pub format: crate::layout::Format,
    pub connection: Connection,
}

pub fn run(options: SidecarOptions) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install signal handlers")?;
    }
    let share = &options.share;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut registry = ReadyRegistry::reach(&runtime, &options);
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
        let record = decide_and_push(&options, &runtime, &mut registry);
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

/// The output's registry, reached in the background while the application runs.
enum ReadyRegistry {
    Reaching(JoinHandle<Result<Registry, RegistryError>>),
    Reached(Arc<Registry>),
}

impl ReadyRegistry {
    fn reach(runtime: &Runtime, options: &SidecarOptions) -> Self {
        let output = options.output.clone();
        let connection = options.connection.clone();
        ReadyRegistry::Reaching(
            runtime.spawn(async move { connection.open(&output, Operation::Push).await }),
        )
    }

    /// The registry; reached again now if reaching it in the background failed.
    async fn get(&mut self, options: &SidecarOptions) -> Result<Arc<Registry>> {
        if let ReadyRegistry::Reaching(handle) = self {
            let reached = match handle.await {
                Ok(Ok(registry)) => registry,
                failed => {
                    match failed {
                        Ok(Err(err)) => tracing::warn!("{err}; trying again"),
                        _ => tracing::warn!("reaching the registry stopped; trying again"),
                    }
                    options
                        .connection
                        .open(&options.output, Operation::Push)
                        .await?
                }
            };
            *self = ReadyRegistry::Reached(Arc::new(reached));
        }
        match self {
            ReadyRegistry::Reached(registry) => Ok(registry.clone()),
            ReadyRegistry::Reaching(_) => unreachable!("reached just above"),
        }
    }
}

fn decide_and_push(
    options: &SidecarOptions,
    runtime: &Runtime,
    registry: &mut ReadyRegistry,
) -> PushRecord {
    let share = &options.share;
    match share.read_memoized() {
        Ok(Some(memoized)) => {
            tracing::info!(
                "memoized: {} already holds this step's output ({}); nothing pushed",
                memoized.output,
                memoized.digest
            );
            return PushRecord::Pushed {
                digest: memoized.digest,
            };
        }
        Ok(None) => {}
        Err(err) => {
            return PushRecord::Failed {
                message: err.to_string(),
            };
        }
    }
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
    match push_outputs(options, code, runtime, registry) {
        Ok(digest) => PushRecord::Pushed { digest },
        Err(err) => PushRecord::Failed {
            message: format!("cannot push {}: {err:#}", options.output),
        },
    }
}

/// What this run records about itself, and the application's argv.
fn provenance(options: &SidecarOptions, code: i32) -> (Provenance, Vec<String>) {
    let share = &options.share;
    let run = share.read_run().unwrap_or_else(|err| {
        tracing::warn!("{err}: the provenance leaves out the command and times");
        None
    });
    let inputs = share.read_inputs().unwrap_or_else(|err| {
        tracing::warn!("{err}: the provenance leaves out the inputs");
        None
    });
    let (pod, workload) = provenance::pod_from_env();
    let argv = run.as_ref().map(|r| r.argv.clone()).unwrap_or_default();
    let provenance = Provenance {
        inputs: inputs.unwrap_or_default(),
        pod,
        workload,
        image: options.image.clone(),
        exit_code: Some(code),
        started: run.as_ref().map(|r| r.started.clone()),
        finished: run.as_ref().map(|r| r.finished.clone()),
        command_digest: options.command_digest.clone(),
    };
    (provenance, argv)
}

fn push_outputs(
    options: &SidecarOptions,
    code: i32,
    runtime: &Runtime,
    registry: &mut ReadyRegistry,
) -> Result<String> {
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
    let (provenance, argv) = provenance(options, code);
    runtime.block_on(async {
        let registry = registry.get(options).await?;
        let pushed = transfer::push_to(
            &registry,
            &sources,
            provenance.annotations(),
            options.format,
        )
        .await?;
        let statement = attestation::statement(
            &options.output.to_string(),
            &pushed.digest,
            &provenance,
            &argv,
        );
        let attached = attestation::attach(&registry, &pushed, &statement)
            .await
            .with_context(|| {
                format!(
                    "pushed as {} but its provenance attestation could not be attached",
                    pushed.digest
                )
            })?;
        tracing::info!("attached the provenance of {} as {attached}", pushed.digest);
        Ok(pushed.digest)
    })
}
