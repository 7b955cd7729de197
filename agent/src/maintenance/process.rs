//! The registry process the supervisor runs: started read-write or read-only, probed
//! until it answers, stopped with SIGTERM (then SIGKILL).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What distribution reads to refuse writes (`storage.maintenance.readonly`).
pub const READ_ONLY_ENV: &str = "REGISTRY_STORAGE_MAINTENANCE_READONLY";
const READ_ONLY_VALUE: &str = r#"{"enabled": true}"#;

/// How the registry is started and reached.
#[derive(Debug, Clone)]
pub struct RegistryCommand {
    /// The registry binary (`registry` in distribution's image).
    pub program: PathBuf,
    /// Its configuration file (the environment overrides it, as in the image).
    pub config: PathBuf,
    /// Where it listens, for the readiness probe.
    pub probe: SocketAddr,
    /// How long a stopping registry may take before SIGKILL.
    pub grace: Duration,
    /// How long a starting registry may take to answer.
    pub start_timeout: Duration,
}

impl RegistryCommand {
    /// Starts `registry serve CONFIG`, read-only or not.
    pub fn spawn(&self, read_only: bool) -> Result<Child> {
        let mut command = Command::new(&self.program);
        command.arg("serve").arg(&self.config);
        if read_only {
            command.env(READ_ONLY_ENV, READ_ONLY_VALUE);
        } else {
            command.env_remove(READ_ONLY_ENV);
        }
        command.spawn().with_context(|| {
            format!(
                "cannot start {} serve {}",
                self.program.display(),
                self.config.display()
            )
        })
    }

    /// Waits until `child` answers HTTP on the probe address.
    pub fn wait_ready(&self, child: &mut Child) -> Result<()> {
        let deadline = Instant::now() + self.start_timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the registry exited while starting: {status}");
            }
            if answers_http(self.probe) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the registry did not answer on {} within {:?}",
                    self.probe,
                    self.start_timeout
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `registry garbage-collect --delete-untagged CONFIG` to its end.
    pub fn collect_garbage(&self) -> Result<Output> {
        Command::new(&self.program)
            .args(["garbage-collect", "--delete-untagged"])
            .arg(&self.config)
            .env_remove(READ_ONLY_ENV)
            .output()
            .with_context(|| format!("cannot run {} garbage-collect", self.program.display()))
    }
}

/// Whether something at `addr` answers `GET /v2/` with an HTTP status line.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// Stops `child`: SIGTERM, then SIGKILL after `grace`.
pub fn stop(child: &mut Child, grace: Duration) -> Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    terminate(child.id());
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            child.kill().context("cannot kill the registry")?;
            return Ok(child.wait()?);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to `pid`.
fn terminate(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid this process started; a stale pid fails harmlessly.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}
