//! The ORAS Python SDK (`oras` on PyPI) in a venv under the Cargo target directory,
//! created once (`python3 -m venv`, `pip install oras moto[server]`) and reused by later
//! runs. The same venv holds moto, the S3-compatible server of [`crate::s3`].

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrasPyError {
    #[error("cannot run {program}: {message} (Debian: apt-get install python3 python3-venv)")]
    NoPython { program: String, message: String },
    #[error("{command} failed (is PyPI reachable?):\n{output}")]
    Setup { command: String, output: String },
    #[error("cannot {action}: {message}")]
    Io { action: String, message: String },
    #[error("the Python script failed with {status}:\n{stdout}\n{stderr}")]
    Script {
        status: String,
        stdout: String,
        stderr: String,
    },
}

fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> OrasPyError {
    let action = action.into();
    move |e| OrasPyError::Io {
        action,
        message: e.to_string(),
    }
}

/// The Cargo target directory: `$CARGO_TARGET_DIR`, else the ancestor of the running
/// executable that holds `CACHEDIR.TAG` (what Cargo writes there), else `./target`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|dir| dir.join("CACHEDIR.TAG").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// What the venv installs with pip: the ORAS Python SDK, and moto's S3 server.
pub const PACKAGES: [&str; 2] = ["oras", "moto[server]"];
/// The imports that show the venv is complete.
const READY_CHECK: &str = "import oras.client, moto.server";

/// A Python interpreter that can `import oras.client` and `moto.server`.
#[derive(Debug, Clone)]
pub struct OrasPy {
    python: PathBuf,
}

impl OrasPy {
    /// The venv `oras-py-venv` in the target directory, made on first use in this
    /// process (and by the first process that needs it).
    pub fn shared() -> Result<&'static OrasPy, OrasPyError> {
        static SHARED: OnceLock<Result<OrasPy, OrasPyError>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::in_dir(&target_dir()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The venv `<dir>/oras-py-venv`, made when it is missing or broken. It is built
    /// under another name and renamed into place, so concurrent first runs never see a
    /// half-made venv.
    pub fn in_dir(dir: &Path) -> Result<OrasPy, OrasPyError> {
        let venv = dir.join("oras-py-venv");
        let python = venv.join("bin/python");
        let ready = Command::new(&python)
            .args(["-c", READY_CHECK])
            .output()
            .is_ok_and(|o| o.status.success());
        if ready {
            return Ok(OrasPy { python });
        }
        std::fs::create_dir_all(dir).map_err(io_error(format!("create {}", dir.display())))?;
        let staging = dir.join(format!("oras-py-venv.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let output = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&staging)
            .output()
            .map_err(|e| OrasPyError::NoPython {
                program: "python3".into(),
                message: e.to_string(),
            })?;
        if !output.status.success() {
            return Err(OrasPyError::Setup {
                command: format!("python3 -m venv {}", staging.display()),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        let output = Command::new(staging.join("bin/pip"))
            .args(["install", "--quiet"])
            .args(PACKAGES)
            .output()
            .map_err(io_error("run pip install"))?;
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(OrasPyError::Setup {
                command: format!("pip install {}", PACKAGES.join(" ")),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        let _ = std::fs::remove_dir_all(&venv);
        if std::fs::rename(&staging, &venv).is_err() {
            // Another process put its venv in place first: use that one.
            let _ = std::fs::remove_dir_all(&staging);
        }
        Ok(OrasPy { python })
    }

    /// The venv's interpreter.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Runs a Python snippet in `cwd`; `args` become `sys.argv[1:]`. Returns stdout.
    pub fn run(&self, script: &str, args: &[&str], cwd: &Path) -> Result<String, OrasPyError> {
        let output = Command::new(&self.python)
            .arg("-c")
            .arg(script)
            .args(args)
            .current_dir(cwd)
            .output()
            .map_err(io_error(format!("run {}", self.python.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(OrasPyError::Script {
                status: output.status.to_string(),
                stdout,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(stdout)
    }

    /// Pulls `host[:port]/repository:tag` over plain HTTP into `outdir` with
    /// `OrasClient(hostname=host, insecure=True).pull(...)`; returns the paths the SDK
    /// reports, one a line.
    pub fn pull_plain_http(&self, reference: &str, outdir: &Path) -> Result<String, OrasPyError> {
        const PULL: &str = "import sys, oras.client\n\
            client = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)\n\
            for path in client.pull(target=sys.argv[2], outdir='.'):\n    print(path)\n";
        let host = reference.split('/').next().unwrap_or(reference);
        std::fs::create_dir_all(outdir)
            .map_err(io_error(format!("create {}", outdir.display())))?;
        self.run(PULL, &[host, reference], outdir)
    }
}
