//! Paths beneath a directory, resolved by the kernel: `openat2(2)` with
//! `RESOLVE_BENEATH` refuses any resolution that leaves the directory, whether through
//! `..`, an absolute path or a symlink, including one that was already there.
//!
//! Two rules, one per caller:
//! - [`Symlinks::StayBeneath`] (a pull's target directory, which is the user's or the
//!   image's): a symlink is followed when where it leads is beneath the directory, and
//!   the path is refused when it leads outside. An absolute symlink is always refused,
//!   even one naming a place inside: in a pod it would mean another filesystem.
//! - [`Symlinks::Refuse`] (an archive's staging directory): no symlink is followed at
//!   all; an archive that writes through its own symlinks is refused.
//!
//! Only the parents of a path are resolved here; callers create or replace its last
//! component relative to the parent's descriptor, which never follows a symlink there.
//! Without `openat2` (Linux before 5.6) nothing is written: the error says why.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How symlinks met on the way are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    StayBeneath,
    Refuse,
}

#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("{path} leads outside {root} (through a symlink or `..`)")]
    Escapes { path: PathBuf, root: PathBuf },
    #[error("{path} goes through a symlink")]
    ThroughSymlink { path: PathBuf },
    #[error("{path}: a part of it is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "cannot resolve {path} safely beneath {root}: this kernel has no openat2 (Linux 5.6 or later is needed), so nothing is written"
    )]
    Unsupported { path: PathBuf, root: PathBuf },
    #[error("{path} beneath {root}: {source}")]
    Io {
        path: PathBuf,
        root: PathBuf,
        source: io::Error,
    },
}

/// A directory whose paths are resolved beneath it.
pub struct Beneath {
    root: OwnedFd,
    root_path: PathBuf,
    symlinks: Symlinks,
}

/// Attempts when the kernel answers EAGAIN (a rename raced with the resolution).
const RETRIES: usize = 8;

impl Beneath {
    pub fn open(root: &Path, symlinks: Symlinks) -> Result<Self, BeneathError> {
        let fd = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| BeneathError::Io {
            path: root.to_path_buf(),
            root: root.to_path_buf(),
            source: errno.into(),
        })?;
        Ok(Self {
            root: fd,
            root_path: root.to_path_buf(),
            symlinks,
        })
    }

    pub fn root_path(&self) -> &Path {
        &self.root_path
    }

    /// The directory `relative` (a clean relative path; empty means the root), created
    /// with its missing parents (mode 0755 before the umask).
    pub fn create_dir_all(&self, relative: &Path) -> Result<OwnedFd, BeneathError> {
        let mut current = PathBuf::new();
        let mut dir = self.open_dir(&current)?;
        for part in normal_parts(relative) {
            current.push(part);
            dir = match self.open_dir(&current) {
                Ok(next) => next,
                Err(BeneathError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    match rustix::fs::mkdirat(&dir, part, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(errno) => return Err(self.error(&current, errno)),
                    }
                    self.open_dir(&current)?
                }
                Err(other) => return Err(other),
            };
        }
        Ok(dir)
    }

    /// Checks, creating nothing, that the parents of `relative` which exist already
    /// resolve beneath the root (what does not exist yet cannot lead anywhere).
    pub fn check_parents(&self, relative: &Path) -> Result<(), BeneathError> {
        let Some(parent) = relative.parent() else {
            return Ok(());
        };
        let mut current = PathBuf::new();
        for part in normal_parts(parent) {
            current.push(part);
            match self.open_dir(&current) {
                Ok(_) => {}
                Err(BeneathError::Io { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    return Ok(());
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    /// Opens the existing directory `relative`, resolved beneath the root.
    fn open_dir(&self, relative: &Path) -> Result<OwnedFd, BeneathError> {
        let path = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let resolve = match self.symlinks {
            Symlinks::StayBeneath => ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            Symlinks::Refuse => ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        };
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let mut attempt = 0;
        loop {
            match rustix::fs::openat2(&self.root, path, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if attempt < RETRIES => attempt += 1,
                Ok(fd) => return Ok(fd),
                Err(errno) => return Err(self.error(relative, errno)),
            }
        }
    }

    fn error(&self, relative: &Path, errno: Errno) -> BeneathError {
        let path = relative.to_path_buf();
        let root = self.root_path.clone();
        match errno {
            Errno::XDEV => BeneathError::Escapes { path, root },
            Errno::LOOP if self.symlinks == Symlinks::Refuse => {
                BeneathError::ThroughSymlink { path }
            }
            Errno::NOTDIR => BeneathError::NotADirectory { path },
            Errno::NOSYS => BeneathError::Unsupported { path, root },
            errno => BeneathError::Io {
                path,
                root,
                source: errno.into(),
            },
        }
    }
}

/// The normal components of a path already made clean (no root, no `..`).
fn normal_parts(path: &Path) -> impl Iterator<Item = &std::ffi::OsStr> {
    path.components().filter_map(|component| match component {
        Component::Normal(part) => Some(part),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlink_leading_outside_is_refused_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let (target, outside) = (dir.path().join("target"), dir.path().join("outside"));
        fs::create_dir_all(&target).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink(&outside, target.join("abs")).unwrap();
        symlink("../outside", target.join("up")).unwrap();
        let beneath = Beneath::open(&target, Symlinks::StayBeneath).unwrap();
        for link in ["abs", "up"] {
            let relative = Path::new(link).join("new/file");
            let err = beneath.create_dir_all(relative.parent().unwrap());
            assert!(
                matches!(&err, Err(BeneathError::Escapes { path, .. }) if path == Path::new(link)),
                "{link}: {:?}",
                err.err()
            );
            assert!(beneath.check_parents(&relative).is_err(), "{link}");
        }
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_symlink_staying_inside_is_followed_unless_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("real")).unwrap();
        symlink("real", dir.path().join("link")).unwrap();
        let beneath = Beneath::open(dir.path(), Symlinks::StayBeneath).unwrap();
        beneath.create_dir_all(Path::new("link/sub")).unwrap();
        assert!(dir.path().join("real/sub").is_dir());
        beneath.check_parents(Path::new("link/sub/x")).unwrap();

        let strict = Beneath::open(dir.path(), Symlinks::Refuse).unwrap();
        let err = strict.create_dir_all(Path::new("link/other")).unwrap_err();
        assert!(matches!(err, BeneathError::ThroughSymlink { .. }), "{err}");
        assert!(!dir.path().join("real/other").exists());
    }

    #[test]
    fn a_file_on_the_way_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "x").unwrap();
        let beneath = Beneath::open(dir.path(), Symlinks::StayBeneath).unwrap();
        let err = beneath.create_dir_all(Path::new("file/sub")).unwrap_err();
        assert!(matches!(err, BeneathError::NotADirectory { .. }), "{err}");
        assert!(err.to_string().contains("file"), "{err}");
    }
}
