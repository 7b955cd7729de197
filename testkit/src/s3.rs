//! An S3-compatible server for tests: moto's server (`moto[server]`, in the venv of
//! [`crate::oras_py`]) on 127.0.0.1 with a free port, keeping its buckets in memory. It
//! accepts any access key; the process is killed when the [`S3Server`] is dropped, also
//! when a test panics.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::oras_py::OrasPy;
use crate::registry::{free_port, http};

/// How long a starting server has to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("the venv with moto: {0}")]
    Venv(#[from] crate::oras_py::OrasPyError),
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("moto on 127.0.0.1:{port} did not answer within {} s; its log:\n{log}", READY_TIMEOUT.as_secs())]
    NotReady { port: u16, log: String },
    #[error("{what} answered {status}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
}

/// A running moto server, killed on drop.
pub struct S3Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts moto's server on a free port of 127.0.0.1 and waits until it answers.
    pub fn start() -> Result<Self, S3Error> {
        let python = OrasPy::shared()?.python().to_path_buf();
        let port = free_port().map_err(|e| S3Error::Io {
            action: "find a free port".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let dir = tempfile::Builder::new()
            .prefix("oras-test-s3.")
            .tempdir()
            .map_err(|source| S3Error::Io {
                action: "create the server's folder".into(),
                source,
            })?;
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).map_err(|source| S3Error::Io {
            action: "create the server's log".into(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| S3Error::Io {
            action: "open the server's log".into(),
            source,
        })?;
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| S3Error::Io {
                action: "start moto.server".into(),
                source,
            })?;
        let server = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while !matches!(http(port, "GET", "/", &[], &[]), Ok((200, _, _))) {
            if Instant::now() >= deadline {
                return Err(S3Error::NotReady {
                    port,
                    log: server.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the bucket `name` (path-style `PUT /<name>`).
    pub fn create_bucket(&self, name: &str) -> Result<(), S3Error> {
        let (status, _, body) =
            http(self.port, "PUT", &format!("/{name}"), &[], &[]).map_err(|source| {
                S3Error::Io {
                    action: format!("create the bucket {name}"),
                    source,
                }
            })?;
        if status != 200 {
            return Err(S3Error::Refused {
                what: format!("PUT /{name}"),
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        Ok(())
    }

    /// The keys in `bucket` under `prefix` (the first 1,000, path-style ListObjectsV2).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
        let path = format!("/{bucket}?list-type=2&prefix={prefix}");
        let (status, _, body) =
            http(self.port, "GET", &path, &[], &[]).map_err(|source| S3Error::Io {
                action: format!("list {bucket}"),
                source,
            })?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status != 200 {
            return Err(S3Error::Refused {
                what: format!("GET {path}"),
                status,
                body: text,
            });
        }
        Ok(text
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
