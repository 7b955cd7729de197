//! A whole single-node Kubernetes cluster on this machine (`make cluster-e2e`): the
//! [`ControlPlane`] bound to a private bridge, kube-scheduler, kube-controller-manager,
//! kube-proxy, CoreDNS, and a node (containerd, runc and Debian's CNI plugins under a
//! kubelet). Every state directory is under one directory; [`Node::stop`] (or drop, also
//! when a test panics) kills every process, lets the node's mount namespace go, and
//! removes the bridge, the iptables rules, network namespaces and cgroups the node made.
//! When a test panics the directory with every component's log is kept and its path
//! printed.
//!
//! What this sandbox needs, measured: the kubelet and containerd share one private mount
//! namespace in which three kernel settings the kubelet checks are shadowed by files
//! (the sandbox cannot set them); no negative `oom_score_adj` anywhere; cgroupfs.

mod config;
mod host;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::control_plane::{Component, ControlPlaneError, ControlPlaneOptions};
use crate::images::ContainerImage;
use crate::tools::{ToolMissing, tool};
use crate::{ControlPlane, RegistryError};

pub use host::run;

/// The node's name as the API server knows it.
pub const NODE_NAME: &str = "oras-e2e-node";
/// The bridge pods attach to; the node's address is its gateway.
pub const BRIDGE: &str = "orasbr0";
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 1);
pub const POD_CIDR: &str = "10.213.0.0/24";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// containerd's namespace for the CRI, where the kubelet's images must be.
const K8S_NAMESPACE: &str = "k8s.io";
/// The sandbox ("pause") image, built here from busybox-static.
const PAUSE_IMAGE: (&str, &str) = ("oras-e2e.local/pause", "1");
/// Kernel settings the kubelet checks under `protectKernelDefaults`, shadowed in the
/// node's mount namespace by files holding the values it wants.
const KERNEL_DEFAULTS: [(&str, &str); 3] = [
    ("/proc/sys/vm/overcommit_memory", "1"),
    ("/proc/sys/kernel/panic", "10"),
    ("/proc/sys/kernel/panic_on_oops", "1"),
];
/// What the node needs from the host besides `make tools`.
const HOST_COMMANDS: [&str; 11] = [
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip",
    "unshare",
    "nsenter",
    "busybox",
];
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("the node needs root (it makes a bridge, iptables rules and mounts)")]
    NotRoot,
    #[error(
        "the node needs {0} on PATH (Debian: containerd, runc, containernetworking-plugins, \
         iptables, busybox-static)"
    )]
    MissingCommand(String),
    #[error(
        "the node needs Debian's CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)"
    )]
    MissingCni,
    #[error(transparent)]
    Tool(#[from] ToolMissing),
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    #[error(transparent)]
    Image(#[from] RegistryError),
    #[error("{0}")]
    Leftover(String),
    #[error("/bin/busybox is not a static executable: the images need busybox-static")]
    BusyboxNotStatic,
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} within {} s; logs in {}", READY_TIMEOUT.as_secs(), .dir.display())]
    NotReady { what: String, dir: PathBuf },
    #[error("the teardown left: {}", .0.join("; "))]
    Teardown(Vec<String>),
}

fn io_error(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let action = action.into();
    move |source| NodeError::Io { action, source }
}

pub type Result<T, E = NodeError> = std::result::Result<T, E>;

/// A running single-node cluster.
pub struct Node {
    dir: PathBuf,
    host: Option<host::HostSnapshot>,
    plane: Option<ControlPlane>,
    namespace_holder: Option<Component>,
    containerd: Option<Component>,
    kubelet: Option<Component>,
    dns: Option<Component>,
    scheduler: Option<Component>,
    controller_manager: Option<Component>,
    proxy: Option<Component>,
}

impl Node {
    /// Starts the cluster and waits until the node is Ready and the namespace `default`
    /// has its ServiceAccount.
    pub fn start() -> Result<Self> {
        check_prerequisites()?;
        let host = host::HostSnapshot::take()?;
        let dir = tempfile::Builder::new()
            .prefix("oras-cluster.")
            .tempdir()
            .map_err(io_error("create the node's directory"))?
            .keep();
        // From here on, whatever fails leaves a Node whose drop undoes what was done.
        let mut node = Node {
            dir,
            host: Some(host),
            plane: None,
            namespace_holder: None,
            containerd: None,
            kubelet: None,
            dns: None,
            scheduler: None,
            controller_manager: None,
            proxy: None,
        };
        node.boot()?;
        Ok(node)
    }

    fn boot(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        host::make_bridge()?;
        let plane = ControlPlane::start_with(ControlPlaneOptions {
            address: NODE_IP,
            parent: Some(dir.clone()),
        })?;
        let kubeconfig = plane.kubeconfig().to_path_buf();
        let ca = plane.ca_cert_path();
        let sa_key = plane.service_account_key_path();
        self.plane = Some(plane);

        let pause = format!("{}:{}", PAUSE_IMAGE.0, PAUSE_IMAGE.1);
        write(
            &dir.join("containerd.toml"),
            &config::containerd(&dir, &pause),
        )?;
        write(&dir.join("net.d/10-oras.conflist"), &config::cni(&dir))?;
        write(&dir.join("kubelet.yaml"), &config::kubelet(&dir))?;
        write(&dir.join("resolv.conf"), &format!("nameserver {NODE_IP}\n"))?;
        write(&dir.join("Corefile"), &config::corefile(&kubeconfig))?;

        let holder = self.start_mount_namespace()?;
        let mut containerd = Component::spawn(
            "containerd",
            Path::new("nsenter"),
            &in_namespace(
                holder,
                &[
                    "containerd".into(),
                    "--config".into(),
                    path_arg(&dir.join("containerd.toml")),
                ],
            ),
            &dir,
        )?;
        let socket = self.containerd_socket();
        containerd.wait_until(|| {
            socket.exists()
                && run("ctr", &["--address", &socket.to_string_lossy(), "version"]).is_ok()
        })?;
        self.containerd = Some(containerd);
        let pause_archive = dir.join("pause.tar");
        pause_image()?.write_oci_archive(&pause_archive, PAUSE_IMAGE.1)?;
        self.import_image(&pause_archive, PAUSE_IMAGE.0)?;

        let kubeconfig_arg = format!("--kubeconfig={}", kubeconfig.display());
        self.kubelet = Some(Component::spawn(
            "kubelet",
            Path::new("nsenter"),
            &in_namespace(
                holder,
                &[
                    path_arg(&tool("kubelet")?),
                    format!("--config={}", dir.join("kubelet.yaml").display()),
                    kubeconfig_arg.clone(),
                    format!("--container-runtime-endpoint=unix://{}", socket.display()),
                    format!("--root-dir={}", dir.join("kubelet").display()),
                    format!("--cert-dir={}", dir.join("kubelet-pki").display()),
                    format!("--hostname-override={NODE_NAME}"),
                    format!("--node-ip={NODE_IP}"),
                    format!("--pod-infra-container-image={pause}"),
                    // No negative oom_score_adj in this sandbox.
                    "--oom-score-adj=0".into(),
                ],
            ),
            &dir,
        )?);
        self.dns = Some(Component::spawn(
            "coredns",
            &tool("coredns")?,
            &["-conf".into(), path_arg(&dir.join("Corefile"))],
            &dir,
        )?);
        self.scheduler = Some(Component::spawn(
            "kube-scheduler",
            &tool("kube-scheduler")?,
            &[
                kubeconfig_arg.clone(),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=0".into(),
            ],
            &dir,
        )?);
        self.controller_manager = Some(Component::spawn(
            "kube-controller-manager",
            &tool("kube-controller-manager")?,
            &[
                kubeconfig_arg.clone(),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                "--secure-port=0".into(),
                format!("--service-account-private-key-file={}", sa_key.display()),
                format!("--root-ca-file={}", ca.display()),
                format!("--cluster-cidr={POD_CIDR}"),
                format!(
                    "--service-cluster-ip-range={}",
                    crate::control_plane::SERVICE_CIDR
                ),
            ],
            &dir,
        )?);
        self.proxy = Some(Component::spawn(
            "kube-proxy",
            &tool("kube-proxy")?,
            &[
                kubeconfig_arg,
                format!("--hostname-override={NODE_NAME}"),
                "--proxy-mode=iptables".into(),
                format!("--cluster-cidr={POD_CIDR}"),
                // Pod to Service to a pod on the same bridge: without br_netfilter the
                // answer would bypass the host's NAT, unless every Service connection is
                // masqueraded.
                "--masquerade-all".into(),
                // Leave the kernel's conntrack and localnet settings alone.
                "--conntrack-max-per-core=0".into(),
                "--conntrack-tcp-timeout-established=0".into(),
                "--conntrack-tcp-timeout-close-wait=0".into(),
                format!("--nodeport-addresses={POD_CIDR}"),
                "--oom-score-adj=0".into(),
                // Empty: not served (nothing here asks).
                "--metrics-bind-address=".into(),
                "--healthz-bind-address=".into(),
            ],
            &dir,
        )?);

        self.wait("the node to be Ready", || {
            self.kubectl(&[
                "get",
                "node",
                NODE_NAME,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ])
            .is_ok_and(|status| status == "True")
        })?;
        self.wait("the ServiceAccount default/default", || {
            self.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                .is_ok()
        })?;
        self.check_running()
    }

    /// An error naming the first component that exited, with the end of its log.
    pub fn check_running(&mut self) -> Result<()> {
        for component in [
            &mut self.namespace_holder,
            &mut self.containerd,
            &mut self.kubelet,
            &mut self.dns,
            &mut self.scheduler,
            &mut self.controller_manager,
            &mut self.proxy,
        ]
        .into_iter()
        .flatten()
        {
            component.check_running()?;
        }
        Ok(())
    }

    /// A process holding a private mount namespace for containerd and the kubelet, with
    /// the kernel defaults shadowed; returns its pid.
    fn start_mount_namespace(&mut self) -> Result<u32> {
        let holder = Component::spawn(
            "mount-namespace",
            Path::new("unshare"),
            &[
                "--mount".into(),
                "--propagation=private".into(),
                "--".into(),
                "sleep".into(),
                "2147483647".into(),
            ],
            &self.dir,
        )?;
        let pid = holder.pid();
        self.namespace_holder = Some(holder);
        let own = std::fs::read_link("/proc/self/ns/mnt").ok();
        self.wait("the node's mount namespace", || {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            theirs.is_some() && theirs != own
        })?;
        for (setting, value) in KERNEL_DEFAULTS {
            let file = self
                .dir
                .join("kernel-defaults")
                .join(setting.trim_start_matches("/proc/sys/").replace('/', "."));
            write(&file, &format!("{value}\n"))?;
            run(
                "nsenter",
                &[
                    "-t",
                    &pid.to_string(),
                    "-m",
                    "--",
                    "mount",
                    "--bind",
                    &file.to_string_lossy(),
                    setting,
                ],
            )?;
        }
        Ok(pid)
    }

    fn wait(&self, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !ready() {
            if Instant::now() >= deadline {
                return Err(NodeError::NotReady {
                    what: format!("{what} did not happen"),
                    dir: self.dir.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(())
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Imports an OCI archive into the node's containerd, where the kubelet finds it:
    /// its manifest named `TAG` becomes `base_name:TAG`.
    pub fn import_image(&self, archive: &Path, base_name: &str) -> Result<()> {
        run(
            "ctr",
            &[
                "--address",
                &self.containerd_socket().to_string_lossy(),
                "-n",
                K8S_NAMESPACE,
                "images",
                "import",
                "--base-name",
                base_name,
                &archive.to_string_lossy(),
            ],
        )?;
        Ok(())
    }

    /// `kubectl` as the cluster's administrator; stdout, or a message with stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        match &self.plane {
            Some(plane) => plane.kubectl(args),
            None => Err("the control plane is not running".into()),
        }
    }

    /// The administrator's kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("control-plane").join("kubeconfig")
    }

    /// The node's directory: every component's `<name>.log`, configs and state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Tears the cluster down; an error lists what could not be undone.
    pub fn stop(mut self) -> Result<()> {
        let problems = self.teardown();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(NodeError::Teardown(problems))
        }
    }

    /// Every step runs whatever the previous ones did; returns what is left.
    fn teardown(&mut self) -> Vec<String> {
        let Some(host) = self.host.take() else {
            return Vec::new();
        };
        if std::thread::panicking() {
            // The kubelet removes them with the pods.
            let _ = run(
                "cp",
                &[
                    "-rL",
                    "/var/log/pods",
                    &self.dir.join("pod-logs").to_string_lossy(),
                ],
            );
        }
        // Nothing may recreate the pods that are deleted next.
        self.controller_manager.take();
        self.scheduler.take();
        if self.kubelet.is_some() {
            // The kubelet stops each pod through the CRI: containers, then the sandbox
            // and its network (CNI DEL).
            let _ = self.kubectl(&[
                "delete",
                "pods",
                "--all",
                "--all-namespaces",
                "--grace-period=1",
                "--timeout=90s",
            ]);
        }
        self.proxy.take();
        self.kubelet.take();
        self.remove_containers();
        self.containerd.take();
        kill_container_processes();
        self.namespace_holder.take();
        self.dns.take();
        self.plane.take();
        // Processes killed with SIGKILL leave their cgroups an instant later.
        std::thread::sleep(Duration::from_millis(500));
        let problems = host.restore();
        let keep = std::thread::panicking() || !problems.is_empty();
        if keep {
            eprintln!("the node's logs are kept in {}", self.dir.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cannot remove {}: {e}", self.dir.display());
        }
        problems
    }

    /// Whatever containerd still runs (the kubelet may have died before stopping it).
    fn remove_containers(&self) {
        if self.containerd.is_none() {
            return;
        }
        let socket = self.containerd_socket().to_string_lossy().into_owned();
        let ctr = |args: &[&str]| {
            let mut all = vec!["--address", socket.as_str(), "-n", K8S_NAMESPACE];
            all.extend_from_slice(args);
            run("ctr", &all)
        };
        let ids = |kind: &str| {
            ctr(&[kind, "ls", "-q"])
                .map(|out| out.lines().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        for task in ids("tasks") {
            let _ = ctr(&["tasks", "kill", "--signal", "SIGKILL", &task]);
        }
        std::thread::sleep(Duration::from_millis(500));
        for task in ids("tasks") {
            let _ = ctr(&["tasks", "delete", "--force", &task]);
        }
        for container in ids("containers") {
            let _ = ctr(&["containers", "delete", &container]);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for problem in self.teardown() {
            eprintln!("the node's teardown: {problem}");
        }
    }
}

/// Processes left in the kubelet's cgroups (containers whose shim died first).
fn kill_container_processes() {
    let mut dirs = Vec::new();
    collect_cgroups(Path::new("/sys/fs/cgroup/pids/kubepods"), &mut dirs);
    for dir in dirs {
        let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
            continue;
        };
        for pid in procs.lines() {
            let _ = run("kill", &["-KILL", pid]);
        }
    }
}

fn collect_cgroups(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_cgroups(&entry.path(), out);
            }
        }
    }
}

/// An image of Debian's busybox-static with a link per applet in `/bin`, running
/// `entrypoint`.
pub fn busybox_image(entrypoint: &[&str]) -> Result<ContainerImage> {
    let busybox = std::fs::read("/bin/busybox").map_err(io_error("read /bin/busybox"))?;
    if crate::images::is_dynamically_linked(&busybox) != Some(false) {
        return Err(NodeError::BusyboxNotStatic);
    }
    let applets = run("busybox", &["--list"])?;
    let mut image = ContainerImage::new(entrypoint, &[]).with_executable("bin/busybox", busybox);
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        image = image.with_symlink(&format!("bin/{applet}"), "busybox");
    }
    Ok(image)
}

/// The sandbox image: a shell that sleeps until it is told to stop.
fn pause_image() -> Result<ContainerImage> {
    busybox_image(&[
        "/bin/sh",
        "-c",
        "trap 'exit 0' TERM INT; while true; do sleep 3600 & wait $!; done",
    ])
}

fn check_prerequisites() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Err(NodeError::NotRoot);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for command in HOST_COMMANDS {
        if !std::env::split_paths(&path).any(|dir| dir.join(command).is_file()) {
            return Err(NodeError::MissingCommand(command.into()));
        }
    }
    if !Path::new("/usr/lib/cni/bridge").is_file() {
        return Err(NodeError::MissingCni);
    }
    for name in [
        "kube-apiserver",
        "kube-scheduler",
        "kube-controller-manager",
        "kube-proxy",
        "kubelet",
        "kubectl",
        "etcd",
        "coredns",
    ] {
        tool(name)?;
    }
    Ok(())
}

fn in_namespace(holder: u32, command: &[String]) -> Vec<String> {
    let mut args = vec!["-t".into(), holder.to_string(), "-m".into(), "--".into()];
    args.extend_from_slice(command);
    args
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io_error(format!("create {}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(io_error(format!("write {}", path.display())))
}
