//! The share protocol: the only place that knows the share's paths and state files.
//!
//! `state/exit` holds the application's exit code, `state/push` holds `ok <digest>` or
//! `error <message>`; both are written atomically (write a temporary file, rename).
//! Waiting for them is event driven (inotify), with a slow poll as fallback.

use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oras_contract::share::{PUSH_ERROR, PUSH_OK, Share};

/// How often a wait re-checks when inotify is unavailable, and how often it looks at
/// its stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// One share directory, as each role sees it.
#[derive(Debug, Clone)]
pub struct ShareDir {
    layout: Share,
}

/// The sidecar's answer in `state/push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushRecord {
    Pushed { digest: String },
    Failed { message: String },
}

/// The application's run, as the launcher saw it (`state/run`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    pub argv: Vec<String>,
    /// RFC 3339, UTC.
    pub started: String,
    pub finished: String,
}

/// The earlier run whose output this step reuses (`state/memoized`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemoizedRecord {
    pub output: String,
    pub digest: String,
    pub pod: Option<String>,
    pub finished: Option<String>,
}

/// Which exit record a sidecar has handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecordId {
    inode: u64,
    changed: (i64, i64),
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    Appeared,
    TimedOut,
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("share {path}: {context}: {source}")]
    Io {
        path: PathBuf,
        context: &'static str,
        source: io::Error,
    },
    #[error("share file {path} holds {content:?}, not {expected}")]
    Malformed {
        path: PathBuf,
        content: String,
        expected: &'static str,
    },
}

fn io_err(path: &Path, context: &'static str) -> impl FnOnce(io::Error) -> ShareError {
    let path = path.to_path_buf();
    move |source| ShareError::Io {
        path,
        context,
        source,
    }
}

impl PushRecord {
    /// What `state/push` holds for this record: one line, the message's line breaks
    /// made spaces.
    pub fn to_text(&self) -> String {
        match self {
            PushRecord::Pushed { digest } => format!("{PUSH_OK} {digest}\n"),
            PushRecord::Failed { message } => {
                format!("{PUSH_ERROR} {}\n", message.replace('\n', " "))
            }
        }
    }

    /// The record in `state/push`'s content; `None` when it is neither form.
    pub fn parse(text: &str) -> Option<Self> {
        let line = text.trim_end();
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            PUSH_OK => Some(PushRecord::Pushed {
                digest: rest.to_string(),
            }),
            PUSH_ERROR => Some(PushRecord::Failed {
                message: rest.to_string(),
            }),
            _ => None,
        }
    }
}

/// The exit code in `state/exit`'s content.
pub fn parse_exit(text: &str) -> Option<i32> {
    text.trim().parse().ok()
}

/// What `state/inputs` holds: one `reference@digest` a line.
pub fn inputs_text(inputs: &[String]) -> String {
    inputs.iter().map(|i| format!("{i}\n")).collect()
}

/// The inputs in `state/inputs`' content.
pub fn parse_inputs(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

impl ShareDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            layout: Share::new(root),
        }
    }

    pub fn agent_binary(&self) -> PathBuf {
        self.layout.agent_binary()
    }

    pub fn input_dir(&self, number: usize) -> PathBuf {
        self.layout.input_dir(number)
    }

    /// Input directories present, in input order (1, 2, ...).
    pub fn present_inputs(&self) -> Vec<PathBuf> {
        (1..)
            .map(|n| self.layout.input_dir(n))
            .take_while(|dir| dir.is_dir())
            .collect()
    }

    pub fn outputs_dir(&self) -> PathBuf {
        self.layout.outputs_dir()
    }

    pub fn exit_file(&self) -> PathBuf {
        self.layout.exit_file()
    }

    pub fn push_file(&self) -> PathBuf {
        self.layout.push_file()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.layout.state_dir()
    }

    /// Record the inputs as pulled (`reference@digest`, in order).
    pub fn write_inputs(&self, inputs: &[String]) -> Result<(), ShareError> {
        write_atomically(&self.layout.inputs_file(), &inputs_text(inputs))
    }

    /// The inputs as pulled; `None` when init recorded none.
    pub fn read_inputs(&self) -> Result<Option<Vec<String>>, ShareError> {
        Ok(read_if_present(&self.layout.inputs_file())?.map(|text| parse_inputs(&text)))
    }

    pub fn write_run(&self, record: &RunRecord) -> Result<(), ShareError> {
        write_json(&self.layout.run_file(), record)
    }

    pub fn read_run(&self) -> Result<Option<RunRecord>, ShareError> {
        read_json(&self.layout.run_file(), "the launcher's run record")
    }

    pub fn write_memoized(&self, record: &MemoizedRecord) -> Result<(), ShareError> {
        write_json(&self.layout.memoized_file(), record)
    }

    pub fn read_memoized(&self) -> Result<Option<MemoizedRecord>, ShareError> {
        read_json(&self.layout.memoized_file(), "init's memoization record")
    }

    /// Create the share's directories.
    ///
    /// `oras-init` and the sidecar run as the agent's own user while the launcher runs
    /// as whatever user the application's image has, so the directories both sides
    /// write to (`outputs/`, `state/`) are writable by everyone, as an emptyDir's root is.
    pub fn create_layout(&self) -> Result<(), ShareError> {
        for (dir, mode) in [
            (self.layout.bin_dir(), 0o755),
            (self.layout.inputs_dir(), 0o755),
            (self.layout.outputs_dir(), 0o777),
            (self.layout.state_dir(), 0o777),
        ] {
            fs::create_dir_all(&dir).map_err(io_err(&dir, "cannot create the directory"))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(io_err(&dir, "cannot set the permissions of"))?;
        }
        Ok(())
    }

    /// Forget the records of a previous run of the application (the launcher container
    /// restarted): the sidecar then waits for, and pushes after, this run.
    pub fn clear_run_records(&self) -> Result<(), ShareError> {
        for path in [self.exit_file(), self.push_file(), self.layout.run_file()] {
            match fs::remove_file(&path) {
                Ok(()) => tracing::info!("removed {} of a previous run", path.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, "cannot remove")(e)),
            }
        }
        Ok(())
    }

    /// Identity of the current exit record (inode and change time), to tell a new run's
    /// record from one already handled.
    pub fn exit_record_id(&self) -> Option<ExitRecordId> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(self.exit_file()).ok()?;
        Some(ExitRecordId {
            inode: meta.ino(),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// Record the application's exit code.
    pub fn write_exit(&self, code: i32) -> Result<(), ShareError> {
        write_atomically(&self.exit_file(), &format!("{code}\n"))
    }

    /// The recorded exit code, if any.
    pub fn read_exit(&self) -> Result<Option<i32>, ShareError> {
        let path = self.exit_file();
        let Some(text) = read_if_present(&path)? else {
            return Ok(None);
        };
        match parse_exit(&text) {
            Some(code) => Ok(Some(code)),
            None => Err(ShareError::Malformed {
                path,
                content: text,
                expected: "an exit code",
            }),
        }
    }

    pub fn write_push(&self, record: &PushRecord) -> Result<(), ShareError> {
        write_atomically(&self.push_file(), &record.to_text())
    }

    pub fn read_push(&self) -> Result<Option<PushRecord>, ShareError> {
        let path = self.push_file();
        let Some(text) = read_if_present(&path)? else {
            return Ok(None);
        };
        match PushRecord::parse(&text) {
            Some(record) => Ok(Some(record)),
            None => Err(ShareError::Malformed {
                path,
                content: text,
                expected: "\"ok <digest>\" or \"error <message>\"",
            }),
        }
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), ShareError> {
    let text = serde_json::to_string(value).map_err(|e| ShareError::Io {
        path: path.to_path_buf(),
        context: "cannot serialize",
        source: io::Error::other(e),
    })?;
    write_atomically(path, &text)
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    expected: &'static str,
) -> Result<Option<T>, ShareError> {
    let Some(text) = read_if_present(path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|_| ShareError::Malformed {
            path: path.to_path_buf(),
            content: text,
            expected,
        })
}

fn read_if_present(path: &Path) -> Result<Option<String>, ShareError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "cannot read")(e)),
    }
}

/// Write `text` to a temporary file beside `path`, then rename it over `path`.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), ShareError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir, "cannot create the directory"))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".oras-agent-")
        .tempfile_in(dir)
        .map_err(io_err(dir, "cannot create a temporary file"))?;
    // The launcher and the sidecar run as different users and read each other's records.
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_err(path, "cannot set the permissions of"))?;
    temp.write_all(text.as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(io_err(path, "cannot write"))?;
    temp.persist(path)
        .map_err(|e| io_err(path, "cannot rename into place")(e.error))?;
    Ok(())
}

/// Wait until `path` exists, `timeout` passed, or `stop` was set.
pub fn wait_for_file(path: &Path, timeout: Option<Duration>, stop: &AtomicBool) -> Waited {
    let dir = path.parent().unwrap_or(Path::new("."));
    wait_until(dir, || path.exists(), timeout, stop)
}

/// Wait until `ready()` holds, `timeout` passed, or `stop` was set; `ready` is checked
/// whenever something is created, moved into or written in `dir` (inotify), and every
/// [`POLL_INTERVAL`] (the only check when inotify is unavailable).
pub fn wait_until(
    dir: &Path,
    mut ready: impl FnMut() -> bool,
    timeout: Option<Duration>,
    stop: &AtomicBool,
) -> Waited {
    let deadline = timeout.map(|t| Instant::now() + t);
    let _ = fs::create_dir_all(dir);
    let watch = inotify::Inotify::init().and_then(|inotify| {
        inotify.watches().add(
            dir,
            inotify::WatchMask::CREATE
                | inotify::WatchMask::MOVED_TO
                | inotify::WatchMask::CLOSE_WRITE,
        )?;
        Ok(inotify)
    });
    let mut watch = match watch {
        Ok(inotify) => Some(inotify),
        Err(e) => {
            tracing::debug!("inotify unavailable ({e}): polling {}", dir.display());
            None
        }
    };
    let mut buffer = [0u8; 4096];
    loop {
        if ready() {
            return Waited::Appeared;
        }
        if stop.load(Ordering::SeqCst) {
            return Waited::Stopped;
        }
        let now = Instant::now();
        let slice = match deadline {
            Some(deadline) if now >= deadline => return Waited::TimedOut,
            Some(deadline) => (deadline - now).min(POLL_INTERVAL),
            None => POLL_INTERVAL,
        };
        match watch.as_mut() {
            Some(inotify) => {
                let mut fds = libc::pollfd {
                    fd: inotify.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let millis = i32::try_from(slice.as_millis()).unwrap_or(i32::MAX);
                // SAFETY: `fds` is one valid pollfd that lives for the whole call.
                let ready = unsafe { libc::poll(&mut fds, 1, millis) };
                if ready > 0 {
                    // Drain the events; which file changed is checked above.
                    let _ = inotify.read_events(&mut buffer);
                }
            }
            None => std::thread::sleep(slice),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_directories_the_launcher_writes_are_writable_by_any_user() {
        let dir = tempfile::tempdir().unwrap();
        let share = ShareDir::new(dir.path());
        share.create_layout().unwrap();
        let mode = |path: PathBuf| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(share.layout.outputs_dir()), 0o777);
        assert_eq!(mode(share.layout.state_dir()), 0o777);
        assert_eq!(mode(share.layout.bin_dir()), 0o755);
        assert_eq!(mode(share.layout.inputs_dir()), 0o755);
        share.write_exit(0).unwrap();
        assert_eq!(mode(share.exit_file()), 0o644);
    }

    #[test]
    fn exit_and_push_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let share = ShareDir::new(dir.path());
        share.create_layout().unwrap();
        assert_eq!(share.read_exit().unwrap(), None);
        share.write_exit(137).unwrap();
        assert_eq!(share.read_exit().unwrap(), Some(137));
        let record = PushRecord::Failed {
            message: "two\nlines".into(),
        };
        share.write_push(&record).unwrap();
        assert_eq!(
            share.read_push().unwrap(),
            Some(PushRecord::Failed {
                message: "two lines".into()
            })
        );
        share
            .write_push(&PushRecord::Pushed {
                digest: "sha256:ab".into(),
            })
            .unwrap();
        assert_eq!(
            fs::read_to_string(share.push_file()).unwrap(),
            "ok sha256:ab\n"
        );
        // Nothing but the two records is left in state/.
        let names: Vec<_> = fs::read_dir(share.state_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn inputs_run_and_memoized_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let share = ShareDir::new(dir.path());
        share.create_layout().unwrap();
        assert_eq!(share.read_inputs().unwrap(), None);
        share.write_inputs(&[]).unwrap();
        assert_eq!(share.read_inputs().unwrap(), Some(vec![]));
        let inputs = vec!["r/a:1@sha256:aa".to_string(), "r/b@sha256:bb".to_string()];
        share.write_inputs(&inputs).unwrap();
        assert_eq!(share.read_inputs().unwrap(), Some(inputs));
        let run = RunRecord {
            argv: vec!["sh".into(), "-c".into(), "a b".into()],
            started: "2026-12-01T10:00:00Z".into(),
            finished: "2026-12-01T10:00:01Z".into(),
        };
        share.write_run(&run).unwrap();
        assert_eq!(share.read_run().unwrap(), Some(run));
        let memoized = MemoizedRecord {
            output: "r/out:1".into(),
            digest: "sha256:cc".into(),
            pod: Some("ns/p".into()),
            finished: None,
        };
        share.write_memoized(&memoized).unwrap();
        assert_eq!(share.read_memoized().unwrap(), Some(memoized));
        // A restarted launcher forgets the run, not what init decided.
        share.clear_run_records().unwrap();
        assert_eq!(share.read_run().unwrap(), None);
        assert!(share.read_memoized().unwrap().is_some());
        fs::write(share.layout.run_file(), "not json").unwrap();
        assert!(
            share
                .read_run()
                .unwrap_err()
                .to_string()
                .contains("run record")
        );
    }

    #[test]
    fn wait_sees_a_file_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let share = ShareDir::new(dir.path());
        share.create_layout().unwrap();
        let writer = share.clone();
        let stop = AtomicBool::new(false);
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.write_exit(3).unwrap();
        });
        assert_eq!(
            wait_for_file(&share.exit_file(), None, &stop),
            Waited::Appeared
        );
        handle.join().unwrap();
        assert_eq!(share.read_exit().unwrap(), Some(3));
    }

    #[test]
    fn wait_stops_on_flag_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("never");
        let stop = Arc::new(AtomicBool::new(true));
        assert_eq!(wait_for_file(&path, None, &stop), Waited::Stopped);
        stop.store(false, Ordering::SeqCst);
        assert_eq!(
            wait_for_file(&path, Some(Duration::from_millis(10)), &stop),
            Waited::TimedOut
        );
    }
}
