//! A real Kubernetes control plane for tests, the way envtest makes one: `etcd` and
//! `kube-apiserver` (built by `make tools`) on 127.0.0.1 with free ports, certificates
//! from a throw-away CA, and a kubeconfig for an administrator (a static token in
//! `system:masters`). No scheduler, controller-manager or kubelet: objects are stored and
//! validated, nothing runs. Both processes are killed when the [`ControlPlane`] is dropped,
//! also when a test panics.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::{free_port, http};
use crate::tls::{TestCa, TlsError, public_key_pem, signing_key_pem};
use crate::tools::{ToolMissing, tool};

/// How long etcd and the API server each have to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The administrator's bearer token in the generated kubeconfig.
const ADMIN_TOKEN: &str = "oras-test-admin-token";

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error(transparent)]
    Missing(#[from] ToolMissing),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{component} did not become ready within {} s; the end of its log:\n{log}", READY_TIMEOUT.as_secs())]
    NotReady { component: String, log: String },
    #[error("{component} exited with {status}; the end of its log:\n{log}")]
    Exited {
        component: String,
        status: std::process::ExitStatus,
        log: String,
    },
}

fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlPlaneError {
    let action = action.into();
    move |source| ControlPlaneError::Io { action, source }
}

pub type Result<T, E = ControlPlaneError> = std::result::Result<T, E>;

fn port() -> Result<u16> {
    free_port().map_err(|e| ControlPlaneError::Io {
        action: "find a free port on 127.0.0.1".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// One process of the control plane, with its log file.
struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Component {
    fn spawn(name: &'static str, program: &Path, args: &[String], dir: &Path) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(io_error(format!("create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io_error(format!("open {}", log.display())))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io_error(format!("start {}", program.display())))?;
        Ok(Self { name, child, log })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `ready` until it holds, the process exits, or the time is up.
    fn wait_until(&mut self, mut ready: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ControlPlaneError::Exited {
                    component: self.name.into(),
                    status,
                    log: self.log_tail(),
                });
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ControlPlaneError::NotReady {
                    component: self.name.into(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct ControlPlane {
    // Dropped in order: the API server before etcd, then the directory.
    apiserver: Component,
    _etcd: Component,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    api_port: u16,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd and the API server and waits until the API server reports ready.
    pub fn start() -> Result<Self> {
        let etcd_binary = tool("etcd")?;
        let apiserver_binary = tool("kube-apiserver")?;
        let kubectl = tool("kubectl")?;
        let dir = tempfile::Builder::new()
            .prefix("oras-test-control-plane.")
            .tempdir()
            .map_err(io_error("create the control plane's directory"))?;
        let path = |name: &str| dir.path().join(name);
        let write = |name: &str, text: &str| {
            std::fs::write(path(name), text).map_err(io_error(format!("write {name}")))
        };

        let etcd_port = port()?;
        let peer_port = port()?;
        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Component::spawn(
            "etcd",
            &etcd_binary,
            &[
                format!("--data-dir={}", path("etcd").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync".into(),
            ],
            dir.path(),
        )?;
        etcd.wait_until(|| matches!(http(etcd_port, "GET", "/health", &[], &[]), Ok((200, _, _))))?;

        let ca = TestCa::new("oras-test-cluster-ca")?;
        let serving = ca.serving_cert(
            "kube-apiserver",
            &[
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ],
        )?;
        let service_account_key = signing_key_pem()?;
        write("ca.crt", &ca.cert_pem())?;
        write("apiserver.crt", &serving.cert_pem)?;
        write("apiserver.key", &serving.key_pem)?;
        write("sa.key", &service_account_key)?;
        write("sa.pub", &public_key_pem(&service_account_key)?)?;
        write(
            "tokens.csv",
            &format!("{ADMIN_TOKEN},oras-test-admin,oras-test-admin,\"system:masters\"\n"),
        )?;

        let api_port = port()?;
        let apiserver = Component::spawn(
            "kube-apiserver",
            &apiserver_binary,
            &[
                format!("--etcd-servers={client_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                // A loopback address cannot be the `kubernetes` Service's endpoint.
                "--endpoint-reconciler-type=none".into(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", path("certs").display()),
                format!("--tls-cert-file={}", path("apiserver.crt").display()),
                format!("--tls-private-key-file={}", path("apiserver.key").display()),
                format!("--client-ca-file={}", path("ca.crt").display()),
                format!("--token-auth-file={}", path("tokens.csv").display()),
                format!("--service-account-key-file={}", path("sa.pub").display()),
                format!(
                    "--service-account-signing-key-file={}",
                    path("sa.key").display()
                ),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--service-cluster-ip-range=10.96.0.0/24".into(),
                "--authorization-mode=RBAC".into(),
                "--allow-privileged=true".into(),
            ],
            dir.path(),
        )?;
        let kubeconfig = path("kubeconfig");
        write(
            "kubeconfig",
            &kubeconfig_text(api_port, &path("ca.crt"), ADMIN_TOKEN),
        )?;
        let mut plane = Self {
            apiserver,
            _etcd: etcd,
            kubeconfig,
            kubectl,
            api_port,
            dir,
        };
        let kubectl = plane.kubectl.clone();
        let config = plane.kubeconfig.clone();
        plane.apiserver.wait_until(|| {
            Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&config)
                .args(["get", "--raw", "/readyz"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|out| out.status.success() && out.stdout.starts_with(b"ok"))
        })?;
        Ok(plane)
    }

    /// An administrator's kubeconfig for this control plane.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// Where the logs, certificates and etcd's data are (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `kubectl` with this control plane's kubeconfig and `args`; stdout on success, a
    /// message with stderr otherwise.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn kubeconfig_text(port: u16, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: oras-test\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority: {}\n\
         users:\n- name: oras-test-admin\n  user:\n    token: {token}\n\
         contexts:\n- name: oras-test\n  context:\n    cluster: oras-test\n    user: oras-test-admin\n\
         current-context: oras-test\n",
        ca.display()
    )
}
