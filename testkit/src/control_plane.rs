//! A real Kubernetes control plane for tests, the way envtest makes one: `etcd` and
//! `kube-apiserver` (built by `make tools`) on 127.0.0.1 with free ports, certificates
//! from a throw-away CA, and a kubeconfig for an administrator (a static token in
//! `system:masters`). No scheduler, controller-manager or kubelet: objects are stored and
//! validated, nothing runs. Both processes are killed when the [`ControlPlane`] is dropped,
//! also when a test panics. [`crate::node`] adds the rest of a cluster around one started
//! on a node's address ([`ControlPlaneOptions`]).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
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

/// One process of the cluster, with its log file `<dir>/<name>.log`; killed on drop.
pub(crate) struct Component {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Component {
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<Self> {
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// An error with the end of its log when the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(ControlPlaneError::Exited {
                component: self.name.into(),
                status,
                log: self.log_tail(),
            }),
            _ => Ok(()),
        }
    }

    /// Polls `ready` until it holds, the process exits, or the time is up.
    pub(crate) fn wait_until(&mut self, mut ready: impl FnMut() -> bool) -> Result<()> {
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

/// Where and how the API server runs.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// The address the API server binds to and advertises. Not loopback: it becomes the
    /// endpoint of the `kubernetes` Service, so pods reach the API server there.
    pub address: Ipv4Addr,
    /// Make the control plane's directory here, left for the owner of `parent` to
    /// remove; `None`: a temporary directory removed on drop.
    pub parent: Option<PathBuf>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            address: Ipv4Addr::LOCALHOST,
            parent: None,
        }
    }
}

/// The Service range; its first address is the `kubernetes` Service.
pub const SERVICE_CIDR: &str = "10.96.0.0/24";
const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";

enum Dir {
    Temporary(tempfile::TempDir),
    Within(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temporary(dir) => dir.path(),
            Dir::Within(path) => path,
        }
    }
}

pub struct ControlPlane {
    // Dropped in order: the API server before etcd, then the directory.
    apiserver: Component,
    _etcd: Component,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    address: Ipv4Addr,
    api_port: u16,
    dir: Dir,
}

impl ControlPlane {
    /// Starts etcd and the API server on 127.0.0.1 and waits until the API server
    /// reports ready.
    pub fn start() -> Result<Self> {
        Self::start_with(ControlPlaneOptions::default())
    }

    /// Starts etcd (always on 127.0.0.1) and the API server as `options` say.
    pub fn start_with(options: ControlPlaneOptions) -> Result<Self> {
        let etcd_binary = tool("etcd")?;
        let apiserver_binary = tool("kube-apiserver")?;
        let kubectl = tool("kubectl")?;
        let dir = match &options.parent {
            None => Dir::Temporary(
                tempfile::Builder::new()
                    .prefix("oras-test-control-plane.")
                    .tempdir()
                    .map_err(io_error("create the control plane's directory"))?,
            ),
            Some(parent) => {
                let path = parent.join("control-plane");
                std::fs::create_dir_all(&path)
                    .map_err(io_error(format!("create {}", path.display())))?;
                Dir::Within(path)
            }
        };
        let address = options.address;
        let loopback = address.is_loopback();
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
        let address_text = address.to_string();
        let mut names = vec![
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            KUBERNETES_SERVICE_IP,
        ];
        if !loopback {
            names.push(&address_text);
        }
        let serving = ca.serving_cert("kube-apiserver", &names)?;
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
        let mut args = vec![
            format!("--etcd-servers={client_url}"),
            format!("--bind-address={address}"),
            format!("--advertise-address={address}"),
        ];
        if loopback {
            // A loopback address cannot be the `kubernetes` Service's endpoint.
            args.push("--endpoint-reconciler-type=none".into());
        } else {
            // `kubectl logs`, `exec` and `port-forward` reach the kubelet at the node's
            // address, which is the only one it has.
            args.push("--kubelet-preferred-address-types=InternalIP".into());
        }
        args.extend([
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
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
        ]);
        let apiserver = Component::spawn("kube-apiserver", &apiserver_binary, &args, dir.path())?;
        let kubeconfig = path("kubeconfig");
        write(
            "kubeconfig",
            &kubeconfig_text(
                &format!("{address}:{api_port}"),
                &path("ca.crt"),
                ADMIN_TOKEN,
            ),
        )?;
        let mut plane = Self {
            apiserver,
            _etcd: etcd,
            kubeconfig,
            kubectl,
            address,
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

    /// `https://ADDRESS:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://{}:{}", IpAddr::V4(self.address), self.api_port)
    }

    /// The CA that signed the API server's certificate (PEM file).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The key that signs service account tokens (PEM file).
    pub fn service_account_key_path(&self) -> PathBuf {
        self.dir.path().join("sa.key")
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

fn kubeconfig_text(server: &str, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: oras-test\n  cluster:\n    server: https://{server}\n    certificate-authority: {}\n\
         users:\n- name: oras-test-admin\n  user:\n    token: {token}\n\
         contexts:\n- name: oras-test\n  context:\n    cluster: oras-test\n    user: oras-test-admin\n\
         current-context: oras-test\n",
        ca.display()
    )
}
