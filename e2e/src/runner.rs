//! Runs a pod spec on this machine the way the kubelet runs it, with host processes
//! instead of images:
//!
//! 1. regular init containers one after the other; each must exit 0, else the pod fails
//!    and its main containers never start;
//! 2. native sidecars (init containers with `restartPolicy: Always`) started in their
//!    place in that order and kept running;
//! 3. the main containers, all at once;
//! 4. when every main container has exited, the sidecars get SIGTERM in reverse order,
//!    then SIGKILL when the grace period (`terminationGracePeriodSeconds`, 30 s by
//!    default) is over.
//!
//! The pod is `Succeeded` when every main container exited 0, else `Failed`. A container
//! killed by a signal is recorded as 128 + the signal, as Kubernetes reports it. The
//! restart policy is taken as `Never` (nothing is restarted). When a container's main
//! process ends, whatever it left running in its process group is killed, as the end of
//! a container's PID namespace does.
//!
//! A container's command runs as a host process; a command of `oras-agent` (the agent
//! image's) runs the locally built agent. Each container gets its own working
//! directory, `/tmp` and `HOME`, its `env` and `envFrom` (Secrets given to the runner
//! as files), `$(VAR)` in its command and args expanded as the kubelet does, and sees its volume mounts at their `mountPath` (see [`crate::isolation`]).
//! Its stdout and stderr go to one log file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use oras_contract::pod::{AGENT_BINARY, SIDECAR_CONTAINER};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};

use crate::isolation::{Isolation, MountPlan, cstring, reroot, rewrite_paths};
use crate::pod::{
    Container, DEFAULT_GRACE_SECONDS, Pod, Secrets, container_env, expand_references,
};
use crate::timing;

/// Environment variable naming the agent binary to run for `oras-agent`.
pub const AGENT_BIN_ENV: &str = "ORAS_AGENT_BIN";
/// Environment variable turning [`RunnerConfig::run_as_users`] off (`0`).
pub const RUN_AS_USERS_ENV: &str = "ORAS_E2E_RUN_AS_USERS";
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The locally built agent: `$ORAS_AGENT_BIN`, else `oras-agent` in the target
/// directory's `debug/` then `release/` (what `cargo build -p oras-agent` writes).
pub fn find_agent_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(AGENT_BIN_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{AGENT_BIN_ENV}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let target = oras_testkit::oras_py::target_dir();
    for profile in ["debug", "release"] {
        let candidate = target.join(profile).join(AGENT_BINARY);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "the agent is not built: run `cargo build -p oras-agent` (looked in {}/debug and /release), or set {AGENT_BIN_ENV}",
        target.display()
    )
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// What a container command `oras-agent` runs.
    pub agent_binary: PathBuf,
    pub isolation: Isolation,
    /// Secrets for `envFrom.secretRef` and `secretKeyRef`.
    pub secrets: Secrets,
    /// Environment every container gets before its own `envFrom` and `env` (what the
    /// image would set; tests use it for knobs such as `ORAS_AGENT_RETRY_SECONDS`).
    pub node_env: Vec<(String, String)>,
    /// Replaces the pod's `terminationGracePeriodSeconds`.
    pub grace_period: Option<Duration>,
    /// The pod is stopped and failed when it runs longer (`activeDeadlineSeconds`).
    pub deadline: Option<Duration>,
    /// Run containers as their `securityContext` `runAsUser`/`runAsGroup` (needs root
    /// and a mount namespace), as a cluster does. On by default; `$ORAS_E2E_RUN_AS_USERS=0`
    /// runs every container as the runner's own user.
    pub run_as_users: bool,
}

impl RunnerConfig {
    /// The agent found by [`find_agent_binary`], the isolation `$ORAS_E2E_ISOLATION`
    /// asks for, no secrets, a 10-minute deadline.
    pub fn detect() -> Result<Self> {
        Ok(Self {
            agent_binary: find_agent_binary()?,
            isolation: Isolation::from_env()?,
            secrets: Secrets::default(),
            node_env: Vec::new(),
            grace_period: None,
            deadline: Some(Duration::from_secs(600)),
            run_as_users: std::env::var(RUN_AS_USERS_ENV)
                .ok()
                .is_none_or(|v| v != "0"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Init,
    Sidecar,
    Main,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Init => "init",
            Role::Sidecar => "sidecar",
            Role::Main => "main",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Succeeded,
    Failed,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        })
    }
}

/// What became of one container.
#[derive(Debug, Clone)]
pub struct ContainerReport {
    pub name: String,
    pub role: Role,
    /// `None`: never started (or still running when the runner gave up on it).
    pub exit_code: Option<i32>,
    /// Why it did not start, or what the runner did to it.
    pub reason: Option<String>,
    pub started: Option<SystemTime>,
    pub finished: Option<SystemTime>,
    pub log_path: PathBuf,
}

impl ContainerReport {
    /// Its stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn started(&self) -> bool {
        self.started.is_some()
    }
}

/// The two figures the runner measures per pod.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Pod start to the application starting (the launcher's start, or the line it logs
    /// when the inputs are in place, when there are inputs).
    pub pod_start_to_app_start: Option<Duration>,
    /// The application's exit (the launcher's log line) to the sidecar starting its push
    /// (its first `pushing` line, or `pushed` when every blob was already there).
    pub app_exit_to_push_start: Option<Duration>,
    /// Pod start to the pod's end.
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct PodReport {
    pub name: String,
    pub phase: Phase,
    /// Why the pod failed, in Kubernetes' words where it has some.
    pub reason: Option<String>,
    pub containers: Vec<ContainerReport>,
    pub timings: Timings,
    /// Where the pod's volumes, container directories and logs are.
    pub root: PathBuf,
}

impl PodReport {
    pub fn container(&self, name: &str) -> Option<&ContainerReport> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The main container that runs `oras-agent launch`.
    pub fn launcher(&self) -> Option<&ContainerReport> {
        self.containers
            .iter()
            .find(|c| c.role == Role::Main && c.log().contains("the application exited"))
            .or_else(|| self.containers.iter().find(|c| c.role == Role::Main))
    }

    /// The directory of volume `name` (an emptyDir).
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    /// A container's own working directory on the host (when it has no `workingDir`,
    /// or in a mount namespace, where `workingDir` is bound to it).
    pub fn workdir(&self, container: &str) -> PathBuf {
        container_dir(&self.root, container).join("workdir")
    }

    /// One line per container and the timings, as `kubectl get pod` and
    /// `kubectl describe` would say it.
    pub fn summary(&self) -> String {
        let mut out = format!("pod {}: {}", self.name, self.phase);
        if let Some(reason) = &self.reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push('\n');
        for c in &self.containers {
            let state = match (c.exit_code, c.started) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(_)) => "did not finish".to_string(),
                (None, None) => "never started".to_string(),
            };
            out.push_str(&format!(
                "  {:<8} {:<16} {state}",
                c.role.to_string(),
                c.name
            ));
            if let Some(reason) = &c.reason {
                out.push_str(&format!(" ({reason})"));
            }
            out.push('\n');
        }
        let show = |d: Option<Duration>| d.map(timing::millis).unwrap_or_else(|| "n/a".into());
        out.push_str(&format!(
            "  timings: pod start -> app start {}, app exit -> push start {}, pod total {}\n",
            show(self.timings.pod_start_to_app_start),
            show(self.timings.app_exit_to_push_start),
            timing::millis(self.timings.total)
        ));
        out
    }
}

fn container_dir(root: &Path, name: &str) -> PathBuf {
    root.join("containers").join(name)
}

struct Slot {
    container: Container,
    role: Role,
    pid: Option<i32>,
    report: ContainerReport,
}

impl Slot {
    fn running(&self) -> bool {
        self.report.started.is_some() && self.report.finished.is_none()
    }
}

struct Exited {
    index: usize,
    status: ExitStatus,
    at: SystemTime,
}

/// Kubernetes' exit code of a container: its code, or 128 + the killing signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 128,
    }
}

fn signal_group(pid: i32, signal: i32) {
    // SAFETY: kill has no memory preconditions; a negative pid names the process
    // group the runner made for the container (process_group(0): pgid = pid).
    unsafe {
        libc::kill(-pid, signal);
    }
}

fn signal_process(pid: i32, signal: i32) {
    // SAFETY: as above, for the container's main process only.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Runs pods; see the module documentation.
pub struct PodRunner {
    config: RunnerConfig,
}

impl PodRunner {
    pub fn new(config: RunnerConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Runs `pod` with its volumes, container directories and logs under `root`
    /// (created if missing). Returns when every container has ended.
    pub fn run(&self, pod: &Pod, root: &Path) -> Result<PodReport> {
        std::fs::create_dir_all(root.join("logs"))
            .with_context(|| format!("cannot create the pod directory {}", root.display()))?;
        let root = std::fs::canonicalize(root)?;
        // Containers running as another user go through it to their directories.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        for volume in &pod.spec.volumes {
            if volume.empty_dir.is_none() {
                bail!(
                    "volume {} of pod {}: only emptyDir volumes are supported by the local runner",
                    volume.name,
                    pod.name
                );
            }
            let dir = root.join("volumes").join(&volume.name);
            std::fs::create_dir_all(&dir)?;
            // An emptyDir is writable by every container, whatever its user.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        }
        let mut slots: Vec<Slot> = Vec::new();
        let all = pod
            .spec
            .init_containers
            .iter()
            .map(|c| {
                (
                    c,
                    if c.is_sidecar() {
                        Role::Sidecar
                    } else {
                        Role::Init
                    },
                )
            })
            .chain(pod.spec.containers.iter().map(|c| (c, Role::Main)));
        for (container, role) in all {
            slots.push(Slot {
                container: container.clone(),
                role,
                pid: None,
                report: ContainerReport {
                    name: container.name.clone(),
                    role,
                    exit_code: None,
                    reason: None,
                    started: None,
                    finished: None,
                    log_path: root.join("logs").join(format!("{}.log", container.name)),
                },
            });
        }
        let grace = self.config.grace_period.unwrap_or_else(|| {
            Duration::from_secs(
                pod.spec
                    .termination_grace_period_seconds
                    .unwrap_or(DEFAULT_GRACE_SECONDS),
            )
        });
        let mut run = Run {
            runner: self,
            pod,
            root: &root,
            slots,
            events: mpsc::channel(),
            pod_start: SystemTime::now(),
            started_at: Instant::now(),
            deadline: self.config.deadline.map(|d| Instant::now() + d),
        };
        let outcome = run.drive(grace);
        run.finish(outcome)
    }
}

struct Run<'a> {
    runner: &'a PodRunner,
    pod: &'a Pod,
    root: &'a Path,
    slots: Vec<Slot>,
    events: (mpsc::Sender<Exited>, mpsc::Receiver<Exited>),
    pod_start: SystemTime,
    started_at: Instant,
    deadline: Option<Instant>,
}

/// How the pod's run ended before its sidecars were stopped.
enum Outcome {
    /// Every main container ran to its end.
    MainsEnded,
    /// An init container failed (or could not start): the pod fails.
    InitFailed(String),
    DeadlineExceeded,
}

impl Run<'_> {
    fn drive(&mut self, grace: Duration) -> Outcome {
        let outcome = self.start_and_wait();
        self.stop_sidecars(grace);
        outcome
    }

    fn start_and_wait(&mut self) -> Outcome {
        let inits: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].role != Role::Main)
            .collect();
        for index in inits {
            if !self.start(index) {
                return Outcome::InitFailed(format!(
                    "init container {} could not start",
                    self.slots[index].container.name
                ));
            }
            if self.slots[index].role == Role::Sidecar {
                continue;
            }
            while self.slots[index].running() {
                if !self.next_event() {
                    return Outcome::DeadlineExceeded;
                }
            }
            let code = self.slots[index].report.exit_code;
            if code != Some(0) {
                return Outcome::InitFailed(format!(
                    "init container {} exited with {}",
                    self.slots[index].container.name,
                    code.unwrap_or(-1)
                ));
            }
        }
        let mains: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].role == Role::Main)
            .collect();
        for &index in &mains {
            self.start(index);
        }
        while mains.iter().any(|&i| self.slots[i].running()) {
            if !self.next_event() {
                return Outcome::DeadlineExceeded;
            }
        }
        Outcome::MainsEnded
    }

    /// Starts container `index`; false (and the container recorded as failed to
    /// start, exit code 128 as the kubelet's StartError) when it cannot.
    fn start(&mut self, index: usize) -> bool {
        match self.spawn(index) {
            Ok(()) => true,
            Err(err) => {
                let slot = &mut self.slots[index];
                let message = format!("{err:#}");
                let _ = std::fs::write(&slot.report.log_path, format!("{message}\n"));
                slot.report.started = Some(SystemTime::now());
                slot.report.finished = slot.report.started;
                slot.report.exit_code = Some(128);
                slot.report.reason = Some(format!("StartError: {message}"));
                false
            }
        }
    }

    fn spawn(&mut self, index: usize) -> Result<()> {
        let mut command = self.command_for(index)?;
        let slot = &mut self.slots[index];
        let log = File::create(&slot.report.log_path)
            .with_context(|| format!("cannot create {}", slot.report.log_path.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let started = SystemTime::now();
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start container {} ({:?})",
                slot.container.name,
                command.get_program()
            )
        })?;
        let pid = child.id() as i32;
        slot.pid = Some(pid);
        slot.report.started = Some(started);
        let sender = self.events.0.clone();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = sender.send(Exited {
                    index,
                    status,
                    at: SystemTime::now(),
                });
            }
        });
        Ok(())
    }

    /// Waits for one container to exit and records it; false when the deadline passed.
    fn next_event(&mut self) -> bool {
        let event = match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.events.1.recv_timeout(left) {
                    Ok(event) => event,
                    Err(_) => return false,
                }
            }
            None => match self.events.1.recv() {
                Ok(event) => event,
                Err(_) => return false,
            },
        };
        self.record(event);
        true
    }

    fn record(&mut self, event: Exited) {
        let slot = &mut self.slots[event.index];
        slot.report.exit_code = Some(exit_code(event.status));
        slot.report.finished = Some(event.at);
        if let Some(pid) = slot.pid {
            // The container's end takes what it left behind with it.
            signal_group(pid, libc::SIGKILL);
        }
    }

    /// SIGTERM to each running container, sidecars last-started first, each given what
    /// is left of the grace period; then SIGKILL to whatever still runs.
    fn stop_sidecars(&mut self, grace: Duration) {
        let grace_end = Instant::now() + grace;
        let mut order: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].role == Role::Main)
            .collect();
        order.extend(
            (0..self.slots.len())
                .rev()
                .filter(|&i| self.slots[i].role != Role::Main),
        );
        for index in order {
            if !self.slots[index].running() {
                continue;
            }
            if let Some(pid) = self.slots[index].pid {
                signal_process(pid, libc::SIGTERM);
                self.slots[index].report.reason = Some("stopped with SIGTERM".into());
            }
            while self.slots[index].running() {
                let left = grace_end.saturating_duration_since(Instant::now());
                match self.events.1.recv_timeout(left) {
                    Ok(event) => self.record(event),
                    Err(_) => break,
                }
            }
        }
        let mut killed = false;
        for slot in &mut self.slots {
            if slot.running()
                && let Some(pid) = slot.pid
            {
                signal_group(pid, libc::SIGKILL);
                slot.report.reason = Some("killed with SIGKILL after the grace period".into());
                killed = true;
            }
        }
        if killed {
            let give_up = Instant::now() + Duration::from_secs(10);
            while self.slots.iter().any(Slot::running) {
                let left = give_up.saturating_duration_since(Instant::now());
                match self.events.1.recv_timeout(left) {
                    Ok(event) => self.record(event),
                    Err(_) => break,
                }
            }
        }
    }

    fn finish(mut self, outcome: Outcome) -> Result<PodReport> {
        let slots = std::mem::take(&mut self.slots);
        let mains_ok = slots
            .iter()
            .filter(|s| s.role == Role::Main)
            .all(|s| s.report.exit_code == Some(0));
        let (phase, reason) = match outcome {
            Outcome::MainsEnded if mains_ok => (Phase::Succeeded, None),
            Outcome::MainsEnded => {
                let failed: Vec<String> = slots
                    .iter()
                    .filter(|s| s.role == Role::Main && s.report.exit_code != Some(0))
                    .map(|s| {
                        format!(
                            "container {} exited with {}",
                            s.container.name,
                            s.report.exit_code.unwrap_or(-1)
                        )
                    })
                    .collect();
                (Phase::Failed, Some(failed.join(", ")))
            }
            Outcome::InitFailed(why) => (Phase::Failed, Some(why)),
            Outcome::DeadlineExceeded => (Phase::Failed, Some("DeadlineExceeded".to_string())),
        };
        let containers: Vec<ContainerReport> = slots.into_iter().map(|slot| slot.report).collect();
        let timings = measure(&containers, self.pod_start, self.started_at.elapsed());
        Ok(PodReport {
            name: self.pod.name.clone(),
            phase,
            reason,
            containers,
            timings,
            root: self.root.to_path_buf(),
        })
    }

    /// The host process for container `index`.
    fn command_for(&self, index: usize) -> Result<Command> {
        let config = &self.runner.config;
        let container = &self.slots[index].container;
        let dir = container_dir(self.root, &container.name);
        let (workdir, tmp, home) = (dir.join("workdir"), dir.join("tmp"), dir.join("home"));
        for d in [&workdir, &tmp, &home] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut argv: Vec<String> = container
            .command
            .iter()
            .chain(container.args.iter())
            .cloned()
            .collect();
        if container.command.is_empty() {
            bail!(
                "container {} has no command: images are not run here, so its entrypoint is unknown",
                container.name
            );
        }
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into()),
            ),
            ("HOME".into(), home.to_string_lossy().into_owned()),
            ("HOSTNAME".into(), self.pod.name.clone()),
        ];
        env.extend(config.node_env.iter().cloned());
        let own_env = container_env(container, self.pod, &config.secrets)?;
        for arg in argv.iter_mut() {
            *arg = expand_references(arg, &own_env);
        }
        env.extend(own_env);

        let mut mounts: Vec<(PathBuf, String)> = Vec::new();
        for mount in &container.volume_mounts {
            if mount.sub_path.is_some() {
                bail!(
                    "container {}: volumeMount subPath is not supported by the local runner",
                    container.name
                );
            }
            if !self.pod.spec.volumes.iter().any(|v| v.name == mount.name) {
                bail!(
                    "container {} mounts volume {}, which the pod does not declare",
                    container.name,
                    mount.name
                );
            }
            mounts.push((
                self.root.join("volumes").join(&mount.name),
                mount.mount_path.clone(),
            ));
        }

        let mut command;
        match config.isolation {
            Isolation::RewritePaths => {
                for (host, mount_path) in &mounts {
                    for arg in argv.iter_mut() {
                        *arg = rewrite_paths(arg, mount_path, host);
                    }
                    for (_, value) in env.iter_mut() {
                        *value = rewrite_paths(value, mount_path, host);
                    }
                }
                command = Command::new(self.program(&argv[0]));
                command.current_dir(&workdir);
            }
            Isolation::MountNamespace => {
                let private_tmp = !mounts
                    .iter()
                    .any(|(_, m)| m.trim_end_matches('/') == "/tmp");
                // Targets under /tmp are made inside the container's own /tmp, which is
                // bound over /tmp last (recursively, so they come along).
                let place = |target: &Path| -> Result<PathBuf> {
                    let target_text = target.to_string_lossy();
                    let placed = if private_tmp {
                        reroot(&target_text, "/tmp", &tmp).unwrap_or_else(|| target.into())
                    } else {
                        target.into()
                    };
                    std::fs::create_dir_all(&placed).with_context(|| {
                        format!("cannot create the mount point {}", placed.display())
                    })?;
                    Ok(placed)
                };
                let mut plan = MountPlan::default();
                for (host, mount_path) in &mounts {
                    let target = place(Path::new(mount_path))?;
                    plan.binds.push((cstring(host)?, cstring(&target)?));
                }
                let program = self.program(&argv[0]);
                if private_tmp
                    && program.is_absolute()
                    && let Some(placed) = reroot(&program.to_string_lossy(), "/tmp", &tmp)
                {
                    // A program built under /tmp (a checkout there) would be hidden by
                    // the container's own /tmp: bind it to the same path inside it.
                    if let Some(parent) = placed.parent() {
                        std::fs::create_dir_all(parent).with_context(|| {
                            format!("cannot create the mount point {}", parent.display())
                        })?;
                    }
                    std::fs::File::create(&placed).with_context(|| {
                        format!("cannot create the mount point {}", placed.display())
                    })?;
                    plan.binds.push((cstring(&program)?, cstring(&placed)?));
                }
                let cwd = match &container.working_dir {
                    Some(dir) => PathBuf::from(dir),
                    None => workdir.clone(),
                };
                if cwd != workdir || (private_tmp && workdir.starts_with("/tmp")) {
                    let target = place(&cwd)?;
                    if target != workdir {
                        plan.binds.push((cstring(&workdir)?, cstring(&target)?));
                    }
                }
                if private_tmp {
                    plan.binds
                        .push((cstring(&tmp)?, cstring(Path::new("/tmp"))?));
                }
                plan.chdir = Some(cstring(&cwd)?);
                if let (true, (Some(uid), gid)) =
                    (config.run_as_users, container.run_as(&self.pod.spec))
                {
                    // SAFETY: geteuid has no preconditions.
                    if unsafe { libc::geteuid() } == 0 {
                        let gid = gid.unwrap_or(uid);
                        for d in [&workdir, &tmp, &home] {
                            std::os::unix::fs::chown(d, Some(uid), Some(gid)).with_context(
                                || format!("cannot give {} to uid {uid}", d.display()),
                            )?;
                        }
                        plan.user = Some((uid, gid));
                    }
                }
                command = Command::new(program);
                plan.apply_to(&mut command);
            }
        }
        command.args(&argv[1..]).env_clear().envs(env);
        Ok(command)
    }

    /// `oras-agent` is the agent image's command: the locally built agent.
    fn program(&self, name: &str) -> PathBuf {
        if name == AGENT_BINARY {
            self.runner.config.agent_binary.clone()
        } else {
            PathBuf::from(name)
        }
    }
}

impl Drop for Run<'_> {
    /// A runner that fails or panics half way leaves no container running.
    fn drop(&mut self) {
        for slot in &self.slots {
            if slot.running()
                && let Some(pid) = slot.pid
            {
                signal_group(pid, libc::SIGKILL);
            }
        }
    }
}

/// Reads [`Timings`] from the containers' logs and start times.
fn measure(containers: &[ContainerReport], pod_start: SystemTime, total: Duration) -> Timings {
    let launcher = containers
        .iter()
        .find(|c| c.role == Role::Main && c.log().contains("the application exited"));
    let sidecar = containers
        .iter()
        .find(|c| c.role == Role::Sidecar && c.name == SIDECAR_CONTAINER);
    let mut timings = Timings {
        total,
        ..Timings::default()
    };
    if let Some(launcher) = launcher {
        let log = launcher.log();
        let app_start = timing::first_line_with(&log, "inputs placed in").or(launcher.started);
        timings.pod_start_to_app_start = app_start.and_then(|t| timing::between(pod_start, t));
        let app_exit = timing::first_line_with(&log, "the application exited");
        if let (Some(exit), Some(sidecar)) = (app_exit, sidecar) {
            let sidecar_log = sidecar.log();
            let push = timing::first_line_with(&sidecar_log, " pushing ")
                .or_else(|| timing::first_line_with(&sidecar_log, " pushed "));
            timings.app_exit_to_push_start = push.and_then(|p| timing::between(exit, p));
        }
    } else if let Some(first_main) = containers.iter().find(|c| c.role == Role::Main) {
        timings.pod_start_to_app_start = first_main
            .started
            .and_then(|t| timing::between(pod_start, t));
    }
    timings
}
