//! How a container's filesystem view is made on the host.
//!
//! [`Isolation::MountNamespace`] (the default, needs root or CAP_SYS_ADMIN): every
//! container runs in its own private mount namespace (`unshare(CLONE_NEWNS)`, propagation
//! private) where each volume is bind-mounted at its `mountPath`, its `workingDir` is a
//! directory of its own, and `/tmp` is a directory of its own, as in a container.
//! Mount points that do not exist on the host (`/mnt/oras`, a `workingDir`) are created
//! there as empty directories; nothing is ever mounted outside the namespace.
//!
//! [`Isolation::RewritePaths`] (explicit fallback, any user): no namespace; a volume's
//! `mountPath` is replaced by the volume's directory wherever it begins a word of the
//! command, args or env values, and `workingDir` is the container's own directory. `/tmp`
//! is the host's. Less faithful: a program that builds share paths itself would miss.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Environment variable choosing the isolation: `namespace` (default) or `rewrite-paths`.
pub const ISOLATION_ENV: &str = "ORAS_E2E_ISOLATION";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    MountNamespace,
    RewritePaths,
}

impl Isolation {
    /// The isolation `$ORAS_E2E_ISOLATION` asks for (default: a mount namespace), after
    /// checking that this machine allows it; an error says what to do otherwise.
    pub fn from_env() -> Result<Self> {
        match std::env::var(ISOLATION_ENV).as_deref() {
            Ok("rewrite-paths") => Ok(Isolation::RewritePaths),
            Ok("namespace") | Err(_) => {
                probe_mount_namespace()?;
                Ok(Isolation::MountNamespace)
            }
            Ok(other) => bail!("{ISOLATION_ENV}={other}: expected `namespace` or `rewrite-paths`"),
        }
    }
}

/// Checks that a child can enter a private mount namespace and bind-mount there.
pub fn probe_mount_namespace() -> Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let source = dir.path().join("source");
    let target = dir.path().join("target");
    std::fs::create_dir_all(&source)?;
    std::fs::create_dir_all(&target)?;
    std::fs::write(source.join("seen"), b"")?;
    let plan = MountPlan {
        binds: vec![(cstring(&source)?, cstring(&target)?)],
        user: None,
        chdir: None,
    };
    let mut command = Command::new("test");
    command
        .arg("-e")
        .arg(target.join("seen"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    plan.apply_to(&mut command);
    let status = command.status();
    let visible_outside = target.join("seen").exists();
    match status {
        Ok(status) if status.success() && !visible_outside => Ok(()),
        Ok(_) | Err(_) => bail!(
            "this machine does not let the runner make a private mount namespace with bind mounts \
             (unshare(CLONE_NEWNS) + mount --bind need root or CAP_SYS_ADMIN; running as uid {}). \
             Run as root, or set {ISOLATION_ENV}=rewrite-paths to run without namespaces: volume \
             mount paths are then rewritten to host directories in the command, args and env, and \
             /tmp is shared with the host",
            // SAFETY: getuid has no preconditions and cannot fail.
            unsafe { libc::getuid() }
        ),
    }
}

pub(crate) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other(format!("{} contains a NUL byte", path.display())))
}

/// Bind mounts to make in a child's new mount namespace, in order, then the directory to
/// change to. Prepared in the parent: the child only makes system calls.
#[derive(Debug, Default)]
pub struct MountPlan {
    /// (source, target): existing directories, or a file bound onto an empty file.
    pub binds: Vec<(CString, CString)>,
    /// Switch to this user and group after mounting (`runAsUser`, `runAsGroup`).
    pub user: Option<(u32, u32)>,
    pub chdir: Option<CString>,
}

impl MountPlan {
    /// Makes `command`'s child enter a private mount namespace and apply the plan
    /// before it executes the program.
    pub fn apply_to(self, command: &mut Command) {
        // SAFETY: the closure runs in the forked child before exec; it only calls
        // async-signal-safe system calls on data prepared before the fork, and
        // allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(io::Error::last_os_error());
                }
                let root = c"/";
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                for (source, target) in &self.binds {
                    if libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some((uid, gid)) = self.user
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(io::Error::last_os_error());
                }
                if let Some(dir) = &self.chdir
                    && libc::chdir(dir.as_ptr()) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// `path` with its leading `prefix` directory replaced by `replacement`, when `path` is
/// `prefix` or lies under it.
pub fn reroot(path: &str, prefix: &str, replacement: &Path) -> Option<PathBuf> {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        return Some(replacement.to_path_buf());
    }
    let rest = rest.strip_prefix('/')?;
    Some(replacement.join(rest))
}

/// `text` with every occurrence of `mount_path` that starts a path (at the beginning or
/// after a space, `=`, `:` or quote, and followed by `/`, a separator or the end)
/// replaced by `host`: what [`Isolation::RewritePaths`] does to commands and env values.
pub fn rewrite_paths(text: &str, mount_path: &str, host: &Path) -> String {
    let mount_path = mount_path.trim_end_matches('/');
    let host = host.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(at) = rest.find(mount_path) {
        let before = rest[..at].chars().last().or(previous);
        let after = rest[at + mount_path.len()..].chars().next();
        let starts = before.is_none_or(|c| matches!(c, ' ' | '=' | ':' | '"' | '\'' | '\n'));
        let ends = after.is_none_or(|c| matches!(c, '/' | ' ' | ':' | '"' | '\'' | '\n' | ';'));
        out.push_str(&rest[..at]);
        if starts && ends {
            out.push_str(&host);
        } else {
            out.push_str(mount_path);
        }
        previous = mount_path.chars().last();
        rest = &rest[at + mount_path.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reroot_moves_paths_under_a_prefix() {
        let to = Path::new("/pod/c/tmp");
        assert_eq!(reroot("/tmp/in", "/tmp", to), Some(to.join("in")));
        assert_eq!(reroot("/tmp", "/tmp/", to), Some(to.to_path_buf()));
        assert_eq!(reroot("/tmpfoo", "/tmp", to), None);
        assert_eq!(reroot("/work", "/tmp", to), None);
    }

    #[test]
    fn rewrites_only_whole_path_prefixes() {
        let host = Path::new("/h/share");
        assert_eq!(
            rewrite_paths("/mnt/oras/bin/oras-agent", "/mnt/oras", host),
            "/h/share/bin/oras-agent"
        );
        assert_eq!(rewrite_paths("/mnt/oras", "/mnt/oras", host), "/h/share");
        assert_eq!(
            rewrite_paths("ls /mnt/oras/x; cat /mnt/orasx", "/mnt/oras", host),
            "ls /h/share/x; cat /mnt/orasx"
        );
        assert_eq!(
            rewrite_paths("X=/mnt/oras", "/mnt/oras", host),
            "X=/h/share"
        );
        assert_eq!(
            rewrite_paths("/a/mnt/oras", "/mnt/oras", host),
            "/a/mnt/oras"
        );
    }
}
