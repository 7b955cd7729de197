//! Reproducible tar and gzip: the same entries give the same bytes. Every entry is
//! owned by 0:0 with no user names, stamped with one given time, in the order given;
//! gzip carries no name and no time.

use std::io::Write;

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};

/// Operating system byte of a gzip header: "unknown", whatever the build machine.
const GZIP_OS_UNKNOWN: u8 = 255;

/// One archive entry; directory paths end with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Directory {
        path: String,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
}

/// The directories leading to `path` (`usr/`, `usr/local/`, ...), parents first.
pub fn parents(path: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut at = 0;
    while let Some(slash) = path[at..].find('/') {
        at += slash + 1;
        entries.push(Entry::Directory {
            path: path[..at].to_string(),
        });
    }
    entries
}

/// A tar archive of `entries`, each stamped with `mtime` (seconds since the epoch).
pub fn tar(entries: &[Entry], mtime: u64) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        let (path, data): (&str, &[u8]) = match entry {
            Entry::Directory { path } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                (path, &[])
            }
            Entry::File { path, mode, data } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                (path, data)
            }
        };
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, path, data)
            .with_context(|| format!("cannot add {path} to the archive"))?;
    }
    Ok(builder.into_inner()?)
}

/// `data` compressed with gzip (best compression), without name or time.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(Vec::new(), Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries() -> Vec<Entry> {
        let mut entries = parents("usr/local/bin/tool");
        entries.push(Entry::File {
            path: "usr/local/bin/tool".into(),
            mode: 0o755,
            data: b"binary".to_vec(),
        });
        entries
    }

    #[test]
    fn parents_come_first_and_end_with_a_slash() {
        let paths: Vec<String> = parents("usr/local/bin/tool")
            .into_iter()
            .map(|e| match e {
                Entry::Directory { path } => path,
                Entry::File { path, .. } => path,
            })
            .collect();
        assert_eq!(paths, ["usr/", "usr/local/", "usr/local/bin/"]);
        assert!(parents("tool").is_empty());
    }

    #[test]
    fn the_same_entries_give_the_same_bytes_and_read_back() {
        let first = gzip(&tar(&entries(), 1_700_000_000).unwrap()).unwrap();
        let second = gzip(&tar(&entries(), 1_700_000_000).unwrap()).unwrap();
        assert_eq!(first, second);
        assert_ne!(first, gzip(&tar(&entries(), 1).unwrap()).unwrap());
        assert_eq!(&first[4..8], &[0, 0, 0, 0], "no time in the gzip header");

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&first[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.mtime().unwrap(), 1_700_000_000);
            assert_eq!(header.username().unwrap(), Some(""));
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
                data,
            ));
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], ("usr/".to_string(), 0o755, vec![]));
        assert_eq!(
            seen[3],
            ("usr/local/bin/tool".to_string(), 0o755, b"binary".to_vec())
        );
    }
}
