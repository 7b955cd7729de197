//! Copying trees between filesystems (the share is another volume than the
//! application's working directory).
//!
//! A copy never writes through what is already at its destination: every directory,
//! file and symlink it makes is created new (`mkdir`, `O_CREAT | O_EXCL`, `symlink`
//! all fail on an existing name and never follow a symlink there), so a symlink in the
//! application's image cannot redirect the copy. Callers remove what a copy replaces
//! first, without following it ([`remove_any`]).

use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Remove whatever is at `path` (file, symlink or directory tree); fine if missing.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Copy `src` to `dst` (which must not exist), keeping symlinks as symlinks and the
/// permission bits; fails, writing nothing there, when `dst` exists.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)
    } else if file_type.is_dir() {
        fs::create_dir(dst)?;
        let mut names: Vec<_> = fs::read_dir(src)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            copy_tree(&src.join(&name), &dst.join(&name))?;
        }
        fs::set_permissions(dst, meta.permissions())
    } else {
        let mut from = fs::File::open(src)?;
        let mut to = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(meta.permissions().mode())
            .open(dst)?;
        io::copy(&mut from, &mut to)?;
        to.set_permissions(meta.permissions())
    }
}

/// Copy the output `src` to `dst` (which must not exist), following `src` itself when
/// it is a symlink.
pub fn stage_tree(src: &Path, dst: &Path) -> io::Result<()> {
    // Follow a symlink given as the output itself: its target is what the user means.
    let real = fs::canonicalize(src)?;
    copy_tree(&real, dst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copy_tree_keeps_links_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("sub/run.sh", src.join("link")).unwrap();
        let dst = dir.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        assert_eq!(
            fs::metadata(dst.join("sub/run.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert_eq!(
            fs::read_link(dst.join("link")).unwrap(),
            Path::new("sub/run.sh")
        );
    }

    #[test]
    fn a_copy_never_writes_through_a_symlink_at_its_destination() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.txt");
        fs::write(&src, "input").unwrap();
        let elsewhere = dir.path().join("elsewhere.txt");
        fs::write(&elsewhere, "kept").unwrap();
        let dst = dir.path().join("dst.txt");
        std::os::unix::fs::symlink(&elsewhere, &dst).unwrap();
        let err = copy_tree(&src, &dst).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "kept");
    }
}
