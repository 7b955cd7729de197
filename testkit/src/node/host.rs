//! What the node changes on the host outside its own directory, and how it is put back:
//! the bridge, the iptables rules (kube-proxy's, the kubelet's, the CNI plugins'),
//! network namespace files and the kubelet's cgroups.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{BRIDGE, NODE_IP, NodeError, POD_CIDR};

/// Runs `program` with `args`; its stdout, or an error naming the command and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, NodeError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NodeError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NodeError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
        })
    }
}

const TABLES: [&str; 4] = ["filter", "nat", "mangle", "raw"];
/// Where containerd and the kubelet write outside the node's directory (paths they do
/// not let us choose): network namespace files, the pods' and containers' logs.
const SHARED_DIRS: [&str; 3] = ["/var/run/netns", "/var/log/pods", "/var/log/containers"];

/// The host as it was before the node started.
pub struct HostSnapshot {
    iptables: String,
    entries: Vec<BTreeSet<String>>,
}

impl HostSnapshot {
    /// Records the host's state; refuses when a previous node left its bridge.
    pub fn take() -> Result<Self, NodeError> {
        if Path::new("/sys/class/net").join(BRIDGE).exists() {
            return Err(NodeError::Leftover(format!(
                "the bridge {BRIDGE} exists: a previous run did not tear down \
                 (`ip link del {BRIDGE}`)"
            )));
        }
        Ok(Self {
            iptables: run("iptables-save", &[])?,
            entries: SHARED_DIRS.iter().map(|dir| entries(dir)).collect(),
        })
    }

    /// Puts the host back, as far as it can; returns what it could not undo.
    pub fn restore(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if Path::new("/sys/class/net").join(BRIDGE).exists()
            && let Err(e) = run("ip", &["link", "del", BRIDGE])
        {
            problems.push(e.to_string());
        }
        for (dir, before) in SHARED_DIRS.iter().zip(&self.entries) {
            for name in entries(dir).difference(before) {
                let path = Path::new(dir).join(name);
                // A network namespace file is a mount point while its namespace lives.
                let _ = run("umount", &[&path.to_string_lossy()]);
                let removed = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if let Err(e) = removed {
                    problems.push(format!("cannot remove {}: {e}", path.display()));
                }
            }
        }
        if let Err(e) = restore_iptables(&self.iptables) {
            problems.push(e.to_string());
        }
        remove_kubelet_cgroups(&mut problems);
        problems
    }
}

/// The bridge pods attach to, with the node's address: made before the API server,
/// which binds to that address.
pub fn make_bridge() -> Result<(), NodeError> {
    let prefix = POD_CIDR.split('/').nth(1).unwrap_or("24");
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run(
        "ip",
        &["addr", "add", &format!("{NODE_IP}/{prefix}"), "dev", BRIDGE],
    )?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    Ok(())
}

fn entries(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every table the snapshot does not hold is emptied (a table that did not exist before
/// holds only what the node added), then the snapshot is loaded, which replaces each
/// table it holds.
fn restore_iptables(snapshot: &str) -> Result<(), NodeError> {
    let mut rules = String::new();
    for table in TABLES {
        if !snapshot.contains(&format!("*{table}\n")) {
            rules.push_str(&format!("*{table}\nCOMMIT\n"));
        }
    }
    rules.push_str(snapshot);
    let mut child = Command::new("iptables-restore")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NodeError::Command {
            command: "iptables-restore".into(),
            message: e.to_string(),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(rules.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| NodeError::Command {
        command: "iptables-restore".into(),
        message: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NodeError::Command {
            command: "iptables-restore".into(),
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The kubelet's `kubepods` hierarchy in every cgroup v1 controller (and the v2 one
/// beside them), deepest first; only empty cgroups can go, which they are once every
/// container has stopped.
fn remove_kubelet_cgroups(problems: &mut Vec<String>) {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for controller in controllers.filter_map(|e| e.ok()) {
        let root = controller.path().join("kubepods");
        if root.is_dir() {
            let mut dirs = Vec::new();
            collect_dirs(&root, &mut dirs);
            for dir in dirs.iter().rev() {
                if let Err(e) = std::fs::remove_dir(dir) {
                    problems.push(format!("cannot remove the cgroup {}: {e}", dir.display()));
                }
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}
