//! The `launch` role: wraps the application's command in the launcher container.
//!
//! Places the inputs, runs the command with stdio passed through (and tee-ed to the
//! output pipe), forwards SIGTERM and SIGINT, stages the output, records the run (argv,
//! start, finish) and then the exit code, waits for the sidecar's push result, and exits
//! with the application's code (or non-zero when the application succeeded but its
//! output was not stored). When init memoized the step, the application does not run.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use crate::fsutil;
use crate::layout::now_rfc3339;
use crate::share::{self, PushRecord, RunRecord, ShareDir, Waited};

/// Exit code when the command cannot be started (as a shell does).
const NOT_STARTED: i32 = 127;
/// Exit code when the application succeeded but its output was not stored.
pub const PUSH_FAILED: i32 = 1;
/// Environment variable bounding the wait for the push result, in seconds.
pub const PUSH_WAIT_ENV: &str = "ORAS_AGENT_PUSH_WAIT_SECONDS";
const DEFAULT_PUSH_WAIT: Duration = Duration::from_secs(30 * 60);

pub struct LaunchOptions {
    pub share: ShareDir,
    pub input_path: Option<PathBuf>,
    pub output_path: Option<PathBuf>,
    pub output_pipe: Option<PathBuf>,
    pub push_on_failure: bool,
    pub wait_push: bool,
    pub command: Vec<String>,
}

pub fn push_wait_from_env() -> Duration {
    std::env::var(PUSH_WAIT_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_PUSH_WAIT)
}

/// Run the launcher; returns the code to exit with.
pub fn run(options: LaunchOptions) -> i32 {
    let share = &options.share;
    if let Err(err) = share.clear_run_records() {
        tracing::error!("{err}");
    }
    match share.read_memoized() {
        Ok(Some(memoized)) => {
            tracing::info!(
                "memoized: {} ({}) was made by pod {} at {} from the same inputs, image and command; the application does not run",
                memoized.output,
                memoized.digest,
                memoized.pod.as_deref().unwrap_or("(unknown)"),
                memoized.finished.as_deref().unwrap_or("(unknown time)")
            );
            record_exit(share, 0);
            return if options.wait_push {
                wait_for_push(share, 0, push_wait_from_env())
            } else {
                0
            };
        }
        Ok(None) => {}
        Err(err) => tracing::warn!("{err}: the application runs"),
    }
    if let Err(err) = place_inputs(share, options.input_path.as_deref()) {
        tracing::error!("{err:#}");
        record_exit(share, PUSH_FAILED);
        return PUSH_FAILED;
    }
    let started = now_rfc3339();
    let code = match run_application(&options.command, options.output_pipe.as_deref()) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            NOT_STARTED
        }
    };
    let run = RunRecord {
        argv: options.command.clone(),
        started,
        finished: now_rfc3339(),
    };
    tracing::info!("the application exited with code {code}");
    if let Some(output) = &options.output_path
        && (code == 0 || options.push_on_failure)
        && let Err(err) = stage_output(share, output)
    {
        tracing::error!("{err:#} (exit code {code} kept)");
    }
    if let Err(err) = share.write_run(&run) {
        tracing::error!("cannot record the run for its provenance: {err}");
    }
    record_exit(share, code);
    if !options.wait_push {
        return code;
    }
    wait_for_push(share, code, push_wait_from_env())
}

fn record_exit(share: &ShareDir, code: i32) {
    if let Err(err) = share.write_exit(code) {
        tracing::error!("cannot record the exit code {code}: {err}");
    }
}

/// Copy every input's entries into the input path, input 1 first; a later input's
/// entry replaces an earlier one of the same name, with a warning.
///
/// The input path itself is taken as the image resolves it (its symlinks are the
/// application's own layout). Under it, an input's entry replaces whatever the image has
/// at that name, a symlink included, which is removed, never followed; the copy then
/// only creates new entries (see [`fsutil`]), so nothing lands outside the input path.
fn place_inputs(share: &ShareDir, input_path: Option<&Path>) -> Result<()> {
    let inputs = share.present_inputs();
    if inputs.is_empty() {
        return Ok(());
    }
    let target = match input_path {
        Some(path) => path.to_path_buf(),
        None => std::env::current_dir().context("cannot find the working directory")?,
    };
    fs::create_dir_all(&target)
        .with_context(|| format!("cannot create the input path {}", target.display()))?;
    let real = fs::canonicalize(&target)
        .with_context(|| format!("cannot resolve the input path {}", target.display()))?;
    if real == Path::new("/") {
        bail!(
            "refusing to place inputs in / (input path {}): set the input-path annotation to a directory",
            target.display()
        );
    }
    let mut placed: HashSet<OsString> = HashSet::new();
    for (index, dir) in inputs.iter().enumerate() {
        let mut names: Vec<_> = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot list {}", dir.display()))?;
        names.sort();
        for name in names {
            let dest = target.join(&name);
            if fs::symlink_metadata(&dest).is_ok() {
                if placed.contains(&name) {
                    tracing::warn!(
                        "input {}: {} replaces the one of an earlier input",
                        index + 1,
                        dest.display()
                    );
                } else {
                    tracing::warn!("input {}: replacing {}", index + 1, dest.display());
                }
                fsutil::remove_any(&dest)
                    .with_context(|| format!("cannot replace {}", dest.display()))?;
            }
            // Copied, not moved: when the launcher container restarts, its
            // filesystem is new and the inputs must still be in the share.
            fsutil::copy_tree(&dir.join(&name), &dest).with_context(|| {
                format!("cannot place input {} as {}", index + 1, dest.display())
            })?;
            placed.insert(name);
        }
    }
    tracing::info!("inputs placed in {}", target.display());
    Ok(())
}

/// Exit code of a finished child: its code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => PUSH_FAILED,
    }
}

/// Copy `from` to `to` and append it to the pipe file.
fn tee(mut from: impl Read, mut to: impl Write, pipe: Arc<Mutex<File>>) {
    let mut buffer = [0u8; 8192];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = to.write_all(&buffer[..n]);
        let _ = to.flush();
        if let Ok(mut file) = pipe.lock() {
            let _ = file.write_all(&buffer[..n]);
        }
    }
}

fn run_application(command: &[String], output_pipe: Option<&Path>) -> Result<i32> {
    let (program, args) = command
        .split_first()
        .context("no command to run after `--`")?;
    let pipe = match output_pipe {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the output pipe {}", path.display()))?;
            Some(Arc::new(Mutex::new(file)))
        }
        None => None,
    };
    let mut child_command = Command::new(program);
    child_command.args(args).stdin(Stdio::inherit());
    if pipe.is_some() {
        child_command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    // Register before spawning so no signal is lost in between.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
        .context("cannot install signal handlers")?;
    let mut child = child_command
        .spawn()
        .with_context(|| format!("cannot start {program:?}"))?;
    let pid = child.id() as libc::pid_t;
    let finished = Arc::new(AtomicBool::new(false));
    let signal_handle = signals.handle();
    let forwarder = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            for signal in signals.forever() {
                if finished.load(Ordering::SeqCst) {
                    break;
                }
                tracing::info!("forwarding signal {signal} to the application");
                // SAFETY: plain kill(2) on the child's pid, which is not reaped yet
                // (`finished` is set only after wait() returns).
                unsafe {
                    libc::kill(pid, signal);
                }
            }
        })
    };
    let mut tees = Vec::new();
    if let Some(pipe) = &pipe {
        if let Some(out) = child.stdout.take() {
            let pipe = pipe.clone();
            tees.push(std::thread::spawn(move || tee(out, io::stdout(), pipe)));
        }
        if let Some(err) = child.stderr.take() {
            let pipe = pipe.clone();
            tees.push(std::thread::spawn(move || tee(err, io::stderr(), pipe)));
        }
    }
    let status = child.wait();
    finished.store(true, Ordering::SeqCst);
    signal_handle.close();
    let _ = forwarder.join();
    for handle in tees {
        let _ = handle.join();
    }
    let status = status.with_context(|| format!("cannot wait for {program:?}"))?;
    Ok(exit_code(status))
}

/// Stage the output path as `outputs/<its name>`.
fn stage_output(share: &ShareDir, output: &Path) -> Result<()> {
    if fs::symlink_metadata(output).is_err() {
        bail!(
            "the output path {} does not exist after the application ran: nothing to push",
            output.display()
        );
    }
    let real = fs::canonicalize(output)
        .with_context(|| format!("cannot resolve the output path {}", output.display()))?;
    let name = real
        .file_name()
        .with_context(|| format!("the output path {} has no name", output.display()))?;
    let outputs = share.outputs_dir();
    fs::create_dir_all(&outputs).with_context(|| format!("cannot create {}", outputs.display()))?;
    let dest = outputs.join(name);
    fsutil::remove_any(&dest).with_context(|| format!("cannot replace {}", dest.display()))?;
    fsutil::stage_tree(&real, &dest).with_context(|| {
        format!(
            "cannot stage the output {} as {}",
            output.display(),
            dest.display()
        )
    })?;
    tracing::info!("staged {} as {}", output.display(), dest.display());
    Ok(())
}

/// Wait for `state/push` and decide the exit code.
fn wait_for_push(share: &ShareDir, code: i32, bound: Duration) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        if let Err(err) = signal_hook::flag::register(signal, stop.clone()) {
            tracing::warn!("cannot watch signal {signal}: {err}");
        }
    }
    let failed = |reason: String| {
        if code == 0 {
            tracing::error!("the application succeeded but its output was not stored: {reason}");
            PUSH_FAILED
        } else {
            tracing::warn!("output not stored: {reason}");
            code
        }
    };
    match share::wait_for_file(&share.push_file(), Some(bound), &stop) {
        Waited::Appeared => match share.read_push() {
            Ok(Some(PushRecord::Pushed { digest })) => {
                tracing::info!("output stored as {digest}");
                code
            }
            Ok(Some(PushRecord::Failed { message })) => failed(message),
            Ok(None) => failed("the push result disappeared".into()),
            Err(err) => failed(err.to_string()),
        },
        Waited::TimedOut => failed(format!(
            "no push result from the sidecar within {}s ({} sets the bound)",
            bound.as_secs(),
            PUSH_WAIT_ENV
        )),
        Waited::Stopped => failed("stopped by a signal while waiting for the push".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_deaths_are_recorded_as_128_plus_signal() {
        let status = Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .unwrap();
        assert_eq!(exit_code(status), 128 + 15);
        let status = Command::new("sh").args(["-c", "exit 7"]).status().unwrap();
        assert_eq!(exit_code(status), 7);
    }

    #[test]
    fn inputs_are_placed_in_order_later_ones_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let share = ShareDir::new(dir.path().join("share"));
        share.create_layout().unwrap();
        for (n, content) in [(1, "first"), (2, "second")] {
            let input = share.input_dir(n);
            fs::create_dir_all(input.join("d")).unwrap();
            fs::write(input.join("same.txt"), content).unwrap();
            fs::write(input.join(format!("only{n}.txt")), content).unwrap();
        }
        let target = dir.path().join("work");
        place_inputs(&share, Some(&target)).unwrap();
        assert_eq!(
            fs::read_to_string(target.join("same.txt")).unwrap(),
            "second"
        );
        assert_eq!(
            fs::read_to_string(target.join("only1.txt")).unwrap(),
            "first"
        );
        assert_eq!(
            fs::read_to_string(target.join("only2.txt")).unwrap(),
            "second"
        );
        assert!(target.join("d").is_dir());
    }

    #[test]
    fn root_is_refused_as_input_path() {
        let dir = tempfile::tempdir().unwrap();
        let share = ShareDir::new(dir.path());
        share.create_layout().unwrap();
        fs::create_dir_all(share.input_dir(1)).unwrap();
        fs::write(share.input_dir(1).join("x"), "x").unwrap();
        let err = place_inputs(&share, Some(Path::new("/"))).unwrap_err();
        assert!(format!("{err:#}").contains("refusing to place inputs in /"));
        assert!(share.input_dir(1).join("x").exists());
    }
}
