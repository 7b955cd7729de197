//! `oras-agent serve-registry`: the registry container's first process. It runs the
//! registry, serves the maintenance endpoint beside it, passes SIGTERM on, and exits
//! with the registry's status (the kubelet restarts the container if it died).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::collection::Supervised;
use super::process::{RegistryCommand, stop};
use super::server::{MIN_TOKEN_LEN, Maintenance, TOKEN_ENV, serve};

/// Where distribution's images keep their configuration: 3.x, then 2.x.
const CONFIG_PATHS: [&str; 2] = [
    "/etc/distribution/config.yml",
    "/etc/docker/registry/config.yml",
];

#[derive(Debug, Clone)]
pub struct Options {
    pub program: PathBuf,
    pub config: Option<PathBuf>,
    pub probe: Option<SocketAddr>,
    pub maintenance: Option<String>,
    pub grace: Duration,
}

/// The registry's configuration file: the one given, else the image's.
fn config_path(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    CONFIG_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no registry configuration at {}: give --config",
                CONFIG_PATHS.join(" or ")
            )
        })
}

/// Where to probe the registry: `REGISTRY_HTTP_ADDR` (`:5000`, `0.0.0.0:5000`) on
/// loopback, else 127.0.0.1:5000.
fn probe_address(given: Option<SocketAddr>) -> Result<SocketAddr> {
    if let Some(addr) = given {
        return Ok(addr);
    }
    let listen = std::env::var("REGISTRY_HTTP_ADDR").unwrap_or_else(|_| ":5000".into());
    let (host, port) = listen
        .rsplit_once(':')
        .with_context(|| format!("REGISTRY_HTTP_ADDR {listen:?} has no port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("REGISTRY_HTTP_ADDR {listen:?} has no port"))?;
    let host = match host.trim_matches(['[', ']']) {
        "" | "0.0.0.0" | "::" => "127.0.0.1",
        host => host,
    };
    (host, port)
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("REGISTRY_HTTP_ADDR {listen:?} resolves to nothing"))
}

/// Runs until SIGTERM or the registry's end; returns the exit code.
pub fn run(options: Options) -> Result<u8> {
    let command = RegistryCommand {
        program: options.program,
        config: config_path(options.config)?,
        probe: probe_address(options.probe)?,
        grace: options.grace,
        start_timeout: Duration::from_secs(60),
    };
    let token = std::env::var(TOKEN_ENV).unwrap_or_default();
    let server = match &options.maintenance {
        Some(addr) => {
            if token.trim().len() < MIN_TOKEN_LEN {
                bail!(
                    "--maintenance needs {TOKEN_ENV} (at least {MIN_TOKEN_LEN} characters) in the environment"
                );
            }
            let server = tiny_http::Server::http(addr.as_str()).map_err(|e| {
                anyhow::anyhow!("cannot serve the maintenance endpoint on {addr}: {e}")
            })?;
            Some(Arc::new(server))
        }
        None => None,
    };
    let stopping = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stopping.clone()).context("cannot handle SIGTERM")?;
    }
    let child = command.spawn(false)?;
    let registry = Arc::new(Mutex::new(Supervised {
        storage_root: std::env::var_os("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY")
            .map(PathBuf::from),
        command,
        child,
    }));
    if let Some(server) = &server {
        let maintenance = Maintenance {
            registry: registry.clone(),
            token: token.trim().to_string(),
            stopping: stopping.clone(),
        };
        let server = server.clone();
        std::thread::spawn(move || serve(&server, &maintenance));
    }
    loop {
        std::thread::sleep(Duration::from_millis(100));
        // A collection holds the lock; it restarts no registry once `stopping` is set.
        let Ok(mut current) = registry.try_lock() else {
            continue;
        };
        if stopping.load(Ordering::SeqCst) {
            let grace = current.command.grace;
            let status = stop(&mut current.child, grace)?;
            if let Some(server) = &server {
                server.unblock();
            }
            tracing::info!(%status, "registry stopped");
            return Ok(exit_code(status));
        }
        if let Some(status) = current.child.try_wait()? {
            tracing::error!(%status, "the registry exited");
            return Ok(exit_code(status).max(1));
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        // Stopped by our own SIGTERM: a clean stop.
        (None, Some(libc::SIGTERM)) => 0,
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}
