//! Moving and copying trees between filesystems (the share is another volume than the
//! application's working directory, so a rename may fail with EXDEV).

use std::fs;
use std::io;
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
/// permission bits.
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
        fs::copy(src, dst).map(|_| ())
    }
}

/// Move `src` to `dst` (which must not exist): a rename, or a copy and a removal when
/// they are on different filesystems.
pub fn move_tree(src: &Path, dst: &Path) -> io::Result<()> {
    match fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_tree(src, dst)?;
            remove_any(src)
        }
        Err(e) => Err(e),
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
        move_tree(&dst, &dir.path().join("moved")).unwrap();
        assert!(!dst.exists());
        assert!(dir.path().join("moved/sub/run.sh").is_file());
    }
}
