//! Unpacking: placing a verified file blob under its title, and extracting a tar+gzip
//! layer. Extraction happens in a staging directory inside the target and is moved into
//! place only when the whole archive was accepted, so a refused archive leaves nothing.
//! Entries with absolute paths or `..`, links pointing outside, device files and writes
//! through symlinks are refused with the entry's name.
//!
//! Symlinks already in the target directory (see [`super::beneath`]):
//! - a file layer's title is resolved beneath the target: a symlink on the way is
//!   followed when it leads to a place beneath the target and refused, naming the title
//!   and the symlink, when it leads outside; the title itself, when it is a symlink, is
//!   replaced by the file, never written through;
//! - an archive replaces what it holds at its title, whatever that is in the target (a
//!   symlink included), and is never extracted through it; the directories on the way
//!   to a nested title (`out` of `out/analysis`) are kept when they are directories,
//!   and replaced otherwise.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use sha2::{Digest as _, Sha256};

use super::beneath::{Beneath, BeneathError, Symlinks};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("archive {layer}: entry {entry:?} refused: {reason}")]
    Refused {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("archive {layer}: {context}: {source}")]
    Io {
        layer: String,
        context: String,
        source: io::Error,
    },
    #[error(
        "archive {layer}: the uncompressed content is {actual}, the annotation says {expected}: refused, nothing written"
    )]
    ContentDigest {
        layer: String,
        expected: String,
        actual: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("title {title:?} refused: {source}")]
    Refused { title: String, source: BeneathError },
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Checks, writing nothing, that the file titled `title` would land beneath `target`
/// (run for every file layer before any blob is fetched).
pub fn check_title(target: &Path, title: &Path) -> Result<(), PlaceError> {
    let refused = |source| PlaceError::Refused {
        title: title.display().to_string(),
        source,
    };
    Beneath::open(target, Symlinks::StayBeneath)
        .and_then(|beneath| beneath.check_parents(title))
        .map_err(refused)
}

/// Move a verified temporary file to `target/title`, creating parent directories
/// beneath `target`.
pub fn place_file(
    temp: tempfile::NamedTempFile,
    target: &Path,
    title: &Path,
) -> Result<PathBuf, PlaceError> {
    let dest = target.join(title);
    let refused = |source| PlaceError::Refused {
        title: title.display().to_string(),
        source,
    };
    let io_error = |source: io::Error| PlaceError::Io {
        path: dest.clone(),
        source,
    };
    let name = title.file_name().ok_or_else(|| {
        io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the title has no file name",
        ))
    })?;
    let beneath = Beneath::open(target, Symlinks::StayBeneath).map_err(refused)?;
    let parent = beneath
        .create_dir_all(title.parent().unwrap_or(Path::new("")))
        .map_err(refused)?;
    if kind_at(&parent, name) == Some(FileType::Directory) {
        tracing::warn!("replacing directory {} by a file", dest.display());
        // The parents were resolved beneath the target just above, and std's removal
        // does not follow symlinks inside the tree.
        fs::remove_dir_all(&dest).map_err(io_error)?;
    }
    let (file, temp_path) = temp.into_parts();
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(io_error)?;
    // Renaming onto the last component replaces whatever is there, a symlink included.
    rustix::fs::renameat(CWD, &*temp_path, &parent, name)
        .map_err(|errno| io_error(errno.into()))?;
    // Moved: nothing left for the temporary path's guard to delete.
    let _ = temp_path.keep();
    Ok(dest)
}

/// What is at `name` in `dir`, without following a symlink there.
fn kind_at(dir: &OwnedFd, name: &OsStr) -> Option<FileType> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|stat| FileType::from_raw_mode(stat.st_mode))
}

/// Reader that hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Extract the tar+gzip `archive` titled `title` into `target`. `layer` names the layer
/// in messages; `content_digest` is the expected digest of the uncompressed tar when
/// known. Returns the paths placed, relative to `target`: the title's, for an archive
/// whose entries all lie under its title, as ORAS tools write them.
pub fn extract_archive(
    archive: &File,
    target: &Path,
    title: &Path,
    layer: &str,
    content_digest: Option<&str>,
) -> Result<Vec<PathBuf>, UnpackError> {
    let io_error = |context: String| io_failure(layer, context);
    let staging = tempfile::Builder::new()
        .prefix(".oras-agent-unpack-")
        .tempdir_in(target)
        .map_err(io_error(format!(
            "cannot create a staging directory in {}",
            target.display()
        )))?;
    // A clone shares the file offset with the writer's: start from the beginning.
    let mut reader = archive
        .try_clone()
        .map_err(io_error("cannot read the downloaded blob".into()))?;
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io_error("cannot read the downloaded blob".into()))?;
    let mut hashing = Hashing {
        inner: GzDecoder::new(BufReader::with_capacity(1 << 20, reader)),
        hasher: Sha256::new(),
    };
    let staging_dir = Beneath::open(staging.path(), Symlinks::Refuse).map_err(|e| {
        io_error(format!("cannot open {}", staging.path().display()))(io::Error::other(e))
    })?;
    let mut directory_modes = Vec::new();
    {
        let mut tar = tar::Archive::new(&mut hashing);
        let entries = tar
            .entries()
            .map_err(io_error("cannot read the archive".into()))?;
        for entry in entries {
            let mut entry = entry.map_err(io_error("cannot read the archive".into()))?;
            extract_entry(&mut entry, &staging_dir, layer, &mut directory_modes)?;
        }
    }
    // Read the end of the tar (zero blocks and padding) so the digest covers it all.
    io::copy(&mut hashing, &mut io::sink()).map_err(io_error("cannot read the archive".into()))?;
    let actual = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    if let Some(expected) = content_digest
        && expected != actual
    {
        return Err(UnpackError::ContentDigest {
            layer: layer.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    // Deepest first, so a read-only parent does not stop its children.
    for (path, mode) in directory_modes.iter().rev() {
        // A later entry may have replaced the directory by a symlink: never chmod through it.
        if !fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir()) {
            continue;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(io_error(format!(
            "cannot set the mode of {}",
            path.display()
        )))?;
    }
    let mut placed = Vec::new();
    let title: Vec<&OsStr> = title.iter().collect();
    move_into_place(
        staging.path(),
        target,
        &title,
        Path::new(""),
        layer,
        &mut placed,
    )?;
    Ok(placed)
}

/// Move what `staging` holds into `target`, replacing what is there, except along the
/// way to the title: a directory of the target the title goes through (`out` for the
/// title `out/analysis`) is kept and entered, so that what else it holds (another
/// layer's `out/a.txt`) stays. Anything else in the way is replaced, never entered: a
/// symlink of the target is not followed. Records the paths placed, relative to the
/// target of the pull.
fn move_into_place(
    staging: &Path,
    target: &Path,
    title: &[&OsStr],
    relative: &Path,
    layer: &str,
    placed: &mut Vec<PathBuf>,
) -> Result<(), UnpackError> {
    let io_error = |context: String| io_failure(layer, context);
    let mut entries: Vec<_> = fs::read_dir(staging)
        .map_err(io_error("cannot list the staging directory".into()))?
        .collect::<Result<_, _>>()
        .map_err(io_error("cannot list the staging directory".into()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let (source, dest) = (entry.path(), target.join(&name));
        let relative = relative.join(&name);
        let on_the_way = title.len() > 1
            && title[0] == name.as_os_str()
            && fs::symlink_metadata(&source).is_ok_and(|meta| meta.is_dir());
        let real_dir = |path: &Path| fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir());
        if on_the_way && real_dir(&dest) {
            move_into_place(&source, &dest, &title[1..], &relative, layer, placed)?;
            continue;
        }
        if let Ok(meta) = fs::symlink_metadata(&dest) {
            tracing::warn!("replacing {} with the content of {layer}", dest.display());
            let removed = if meta.is_dir() {
                fs::remove_dir_all(&dest)
            } else {
                fs::remove_file(&dest)
            };
            removed.map_err(io_error(format!("cannot replace {}", dest.display())))?;
        }
        match fs::rename(&source, &dest) {
            // Another layer, placed at the same time, made the directory meanwhile.
            Err(err)
                if on_the_way
                    && matches!(
                        err.kind(),
                        io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists
                    )
                    && real_dir(&dest) =>
            {
                move_into_place(&source, &dest, &title[1..], &relative, layer, placed)?;
            }
            moved => {
                moved.map_err(io_error(format!("cannot move into {}", dest.display())))?;
                placed.push(relative);
            }
        }
    }
    Ok(())
}

/// The error of an I/O step of unpacking `layer`, described by `context`.
fn io_failure(layer: &str, context: String) -> impl FnOnce(io::Error) -> UnpackError {
    let layer = layer.to_string();
    move |source| UnpackError::Io {
        layer,
        context,
        source,
    }
}

/// Lexically clean relative path of an entry, or why it is refused.
fn entry_path(raw: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("it contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("it is an absolute path"),
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

/// Whether a symlink at `entry` (relative) pointing to `target` stays inside the root.
fn symlink_stays_inside(entry: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: usize = entry.components().count().saturating_sub(1);
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The directory holding `relative`'s last component, created beneath the staging
/// directory without following any symlink, and that component's name.
fn parent_of<'a>(staging: &Beneath, relative: &'a Path) -> Result<(OwnedFd, &'a OsStr), String> {
    let name = relative
        .file_name()
        .ok_or_else(|| "it has no name".to_string())?;
    let parent = staging
        .create_dir_all(relative.parent().unwrap_or(Path::new("")))
        .map_err(|e| match e {
            BeneathError::ThroughSymlink { path } => {
                format!("it would be written through the symlink {}", path.display())
            }
            BeneathError::NotADirectory { path } => {
                format!("its parent {} is not a directory", path.display())
            }
            other => other.to_string(),
        })?;
    Ok((parent, name))
}

/// Remove whatever is at `name` in `dir` (never following a symlink there) unless it is
/// a directory and `keep_dir`. Returns whether a directory is left there.
fn clear(dir: &OwnedFd, name: &OsStr, path: &Path, keep_dir: bool) -> io::Result<bool> {
    match kind_at(dir, name) {
        Some(FileType::Directory) if keep_dir => Ok(true),
        // The parents were resolved without symlinks, and std's removal does not follow
        // symlinks inside the tree.
        Some(FileType::Directory) => fs::remove_dir_all(path).map(|()| false),
        Some(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .map(|()| false)
            .map_err(io::Error::from),
        None => Ok(false),
    }
}

fn extract_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    staging: &Beneath,
    layer: &str,
    directory_modes: &mut Vec<(PathBuf, u32)>,
) -> Result<(), UnpackError> {
    let raw = entry
        .path()
        .map_err(|e| UnpackError::Io {
            layer: layer.to_string(),
            context: "cannot read an entry name".into(),
            source: e,
        })?
        .into_owned();
    let name = raw.display().to_string();
    let refuse = |reason: String| UnpackError::Refused {
        layer: layer.to_string(),
        entry: name.clone(),
        reason,
    };
    let entry_type = entry.header().entry_type();
    if matches!(
        entry_type,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    ) {
        return Ok(());
    }
    let Some(relative) = entry_path(&raw).map_err(|r| refuse(r.to_string()))? else {
        return Ok(()); // "./": the root itself
    };
    let dest = staging.root_path().join(&relative);
    let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
    let io_refuse = |e: io::Error| refuse(e.to_string());
    let errno_refuse = |e: rustix::io::Errno| refuse(io::Error::from(e).to_string());
    match entry_type {
        tar::EntryType::Directory => {
            let (parent, last) = parent_of(staging, &relative).map_err(refuse)?;
            if !clear(&parent, last, &dest, true).map_err(io_refuse)? {
                rustix::fs::mkdirat(&parent, last, Mode::from_bits_truncate(0o755))
                    .map_err(errno_refuse)?;
            }
            directory_modes.push((dest, mode));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let (parent, last) = parent_of(staging, &relative).map_err(refuse)?;
            clear(&parent, last, &dest, false).map_err(io_refuse)?;
            // O_EXCL and O_NOFOLLOW: a new file, never one reached through a symlink.
            let fd = rustix::fs::openat(
                &parent,
                last,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(errno_refuse)?;
            let mut file = File::from(fd);
            io::copy(entry, &mut file).map_err(io_refuse)?;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_refuse)?;
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()
                .map_err(io_refuse)?
                .ok_or_else(|| refuse("a symlink without a target".into()))?
                .into_owned();
            if !symlink_stays_inside(&relative, &target) {
                return Err(refuse(format!(
                    "the symlink points to {} outside the target directory",
                    target.display()
                )));
            }
            let (parent, last) = parent_of(staging, &relative).map_err(refuse)?;
            clear(&parent, last, &dest, false).map_err(io_refuse)?;
            rustix::fs::symlinkat(&target, &parent, last).map_err(errno_refuse)?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name()
                .map_err(io_refuse)?
                .ok_or_else(|| refuse("a hard link without a target".into()))?
                .into_owned();
            let target_relative = match entry_path(&target) {
                Ok(Some(path)) => path,
                _ => {
                    return Err(refuse(format!(
                        "the hard link points to {} outside the target directory",
                        target.display()
                    )));
                }
            };
            let not_extracted = || {
                refuse(format!(
                    "the hard link points to {}, which is not a file extracted before it",
                    target.display()
                ))
            };
            let (source_parent, source_name) =
                parent_of(staging, &target_relative).map_err(|_| not_extracted())?;
            if kind_at(&source_parent, source_name) != Some(FileType::RegularFile) {
                return Err(not_extracted());
            }
            let (parent, last) = parent_of(staging, &relative).map_err(refuse)?;
            clear(&parent, last, &dest, false).map_err(io_refuse)?;
            rustix::fs::linkat(
                source_parent.as_fd(),
                source_name,
                &parent,
                last,
                AtFlags::empty(),
            )
            .map_err(errno_refuse)?;
        }
        tar::EntryType::Char | tar::EntryType::Block => {
            return Err(refuse("device files are not extracted".into()));
        }
        tar::EntryType::Fifo => return Err(refuse("named pipes are not extracted".into())),
        other => return Err(refuse(format!("unsupported entry type {other:?}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_are_checked_lexically() {
        assert!(symlink_stays_inside(
            Path::new("a/b/link"),
            Path::new("../c")
        ));
        assert!(symlink_stays_inside(Path::new("a/link"), Path::new("../x")));
        assert!(!symlink_stays_inside(
            Path::new("a/link"),
            Path::new("../../x")
        ));
        assert!(!symlink_stays_inside(
            Path::new("link"),
            Path::new("/etc/passwd")
        ));
        assert!(symlink_stays_inside(
            Path::new("a/link"),
            Path::new("./b/../c")
        ));
    }

    #[test]
    fn packed_directory_unpacks_identical() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src/results");
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(src.join("zero"), "").unwrap();
        std::os::unix::fs::symlink("sub/run.sh", src.join("link")).unwrap();
        let long = "n".repeat(180);
        fs::write(src.join(&long), "long").unwrap();

        let packed = crate::layout::pack::pack_directory(&src, "results", dir.path()).unwrap();
        let target = dir.path().join("target");
        fs::create_dir_all(&target).unwrap();
        let placed = extract_archive(
            packed.file.as_file(),
            &target,
            Path::new("results"),
            "results",
            Some(&packed.content_digest),
        )
        .unwrap();
        assert_eq!(placed, [PathBuf::from("results")]);
        let out = target.join("results");
        assert!(out.join("empty").is_dir());
        assert_eq!(fs::read(out.join("zero")).unwrap(), b"");
        assert_eq!(fs::read_to_string(out.join(&long)).unwrap(), "long");
        assert_eq!(
            fs::read_link(out.join("link")).unwrap(),
            Path::new("sub/run.sh")
        );
        let mode = fs::metadata(out.join("sub/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        // Only the result is left: no staging directory.
        assert_eq!(fs::read_dir(&target).unwrap().count(), 1);
    }

    #[test]
    fn a_nested_title_replaces_only_itself_and_never_goes_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("analysis");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("new.txt"), "new").unwrap();
        let packed = crate::layout::pack::pack_directory(&src, "out/analysis", dir.path()).unwrap();
        let extract = |target: &Path| {
            extract_archive(
                packed.file.as_file(),
                target,
                Path::new("out/analysis"),
                "out/analysis",
                Some(&packed.content_digest),
            )
            .unwrap()
        };

        // Another layer's file beside the title stays; the title's old content goes.
        let target = dir.path().join("target");
        fs::create_dir_all(target.join("out/analysis")).unwrap();
        fs::write(target.join("out/a.txt"), "a").unwrap();
        fs::write(target.join("out/analysis/old.txt"), "old").unwrap();
        assert_eq!(extract(&target), [PathBuf::from("out/analysis")]);
        assert_eq!(fs::read_to_string(target.join("out/a.txt")).unwrap(), "a");
        assert_eq!(
            fs::read_to_string(target.join("out/analysis/new.txt")).unwrap(),
            "new"
        );
        assert!(!target.join("out/analysis/old.txt").exists());

        // A symlink on the way is replaced, not followed.
        let (target, outside) = (dir.path().join("target2"), dir.path().join("outside"));
        fs::create_dir_all(&target).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("out")).unwrap();
        assert_eq!(extract(&target), [PathBuf::from("out")]);
        assert!(fs::symlink_metadata(target.join("out")).unwrap().is_dir());
        assert!(target.join("out/analysis/new.txt").is_file());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn entry_paths_refuse_escapes() {
        assert!(entry_path(Path::new("../x")).is_err());
        assert!(entry_path(Path::new("/x")).is_err());
        assert_eq!(entry_path(Path::new("./")).unwrap(), None);
        assert_eq!(
            entry_path(Path::new("./a/b")).unwrap(),
            Some(PathBuf::from("a/b"))
        );
    }
}
