//! Packing: reading a file layer, and turning a directory into a tar+gzip layer. Both
//! write into any sink (the registry's upload stream, or a temporary file) in one pass;
//! reading and tarring run on one thread, gzip on another, so both cores work, and
//! memory stays at a few MiB of buffers whatever the size.
//!
//! A source that changes while it is read (a file that grows, shrinks or is modified)
//! is refused: what was read would not be what the manifest describes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};

/// Size of the blocks handed from the tar thread to the gzip thread.
const PIPE_BLOCK: usize = 1 << 20;
/// Blocks in flight between the two threads.
const PIPE_DEPTH: usize = 4;
/// Read size when reading a file.
const READ_BLOCK: usize = 1 << 20;
/// The gzip level of directory layers: level 1 (see the README's packing figures: the
/// higher levels cost more time than the smaller upload saves on a local network).
const GZIP_LEVEL: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the archive of {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot pack {path}: it is a {kind}, only files, directories and symlinks are pushed")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("cannot pack {path}: {reason}")]
    Name { path: PathBuf, reason: String },
    #[error("{path} changed while it was read ({what}): refused, nothing published")]
    Changed { path: PathBuf, what: String },
}

/// Copy the file at `path` into `sink` in one pass; refused when the file changes while
/// it is read. Returns its size.
pub fn read_file_into(path: &Path, sink: &mut impl Write) -> Result<u64, PackError> {
    let read_error = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let before = file.metadata().map_err(read_error)?;
    let mut checked = Unchanging::new(file, &before);
    let mut buffer = vec![0u8; READ_BLOCK];
    loop {
        let n = checked
            .read(&mut buffer)
            .map_err(|e| source_error(e, path))?;
        if n == 0 {
            break;
        }
        sink.write_all(&buffer[..n])
            .map_err(|source| PackError::Write {
                path: path.to_path_buf(),
                source,
            })?;
    }
    // The path may now name another file (replaced by a rename): refused as well.
    let now = fs::metadata(path).map_err(read_error)?;
    if now.ino() != before.ino() || now.dev() != before.dev() {
        return Err(PackError::Changed {
            path: path.to_path_buf(),
            what: "it was replaced".into(),
        });
    }
    Ok(before.len())
}

/// A directory packed as tar+gzip in a temporary file (what the unpacking tests read).
#[cfg(test)]
#[derive(Debug)]
pub struct Packed {
    pub file: tempfile::NamedTempFile,
    /// Digest of the uncompressed tar (`io.deis.oras.content.digest`).
    pub content_digest: String,
}

/// Writer that hashes what goes through it and counts it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `sha256:<hex>` and size of what went through.
    fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The tar side of the pipe: collects blocks and sends them to the gzip thread.
struct BlockSender {
    block: Vec<u8>,
    sender: mpsc::SyncSender<Vec<u8>>,
}

impl BlockSender {
    fn send_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(PIPE_BLOCK));
        self.sender
            .send(block)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the gzip writer stopped"))
    }
}

impl Write for BlockSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = PIPE_BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() >= PIPE_BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Pack `dir` as a tar+gzip layer whose entries are prefixed by `title`, into a
/// temporary file in `temp_dir`.
#[cfg(test)]
pub fn pack_directory(dir: &Path, title: &str, temp_dir: &Path) -> Result<Packed, PackError> {
    let write_error = |source| PackError::Write {
        path: temp_dir.to_path_buf(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix(".oras-agent-pack-")
        .tempfile_in(temp_dir)
        .map_err(write_error)?;
    let out = temp.as_file().try_clone().map_err(write_error)?;
    let mut out = io::BufWriter::with_capacity(PIPE_BLOCK, out);
    let content_digest = pack_directory_into(dir, title, &mut out)?;
    out.flush().map_err(write_error)?;
    Ok(Packed {
        file: temp,
        content_digest,
    })
}

/// Pack `dir` as a tar+gzip stream whose entries are prefixed by `title`, written into
/// `sink` (from a second thread); returns the digest of the uncompressed tar.
pub fn pack_directory_into<W: Write + Send>(
    dir: &Path,
    title: &str,
    sink: W,
) -> Result<String, PackError> {
    pack_into(dir, sink, |builder| {
        append_tree(builder, dir, Path::new(title))
    })
}

/// Pack the file at `path` as a tar+gzip stream holding one entry named `title` (what
/// an image layer needs to carry a file), written into `sink`; returns the digest of
/// the uncompressed tar. Refused when the file changes while it is read.
pub fn pack_file_into<W: Write + Send>(
    path: &Path,
    title: &str,
    sink: W,
) -> Result<String, PackError> {
    pack_into(path, sink, |builder| {
        // Followed, as a file layer's source is: a symlink given as the output is its file.
        let meta = fs::metadata(path).map_err(|source| PackError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        append_file(builder, path, Path::new(title), &meta)
    })
}

/// The tar+gzip pipeline: `fill` appends the entries on this thread while a second
/// thread compresses into `sink`. Returns the digest of the uncompressed tar.
fn pack_into<W: Write + Send>(
    source: &Path,
    sink: W,
    fill: impl FnOnce(&mut tar::Builder<Hashing<BlockSender>>) -> Result<(), PackError>,
) -> Result<String, PackError> {
    let write_error = |source_error| PackError::Write {
        path: source.to_path_buf(),
        source: source_error,
    };
    let (sender, receiver) = mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);

    let (tar_result, gzip_result) = std::thread::scope(|scope| {
        let gzip = scope.spawn(move || -> io::Result<()> {
            let mut encoder = GzEncoder::new(sink, Compression::new(GZIP_LEVEL));
            for block in receiver {
                encoder.write_all(&block)?;
            }
            encoder.finish()?.flush()
        });
        let tar_result = (|| {
            let sink = Hashing::new(BlockSender {
                block: Vec::with_capacity(PIPE_BLOCK),
                sender,
            });
            let mut builder = tar::Builder::new(sink);
            builder.mode(tar::HeaderMode::Complete);
            fill(&mut builder)?;
            let mut sink = builder.into_inner().map_err(write_error)?;
            sink.inner.send_block().map_err(write_error)?;
            Ok::<_, PackError>(sink.finish().0)
            // `sink` drops here, closing the channel so the gzip thread finishes.
        })();
        // A join error means the gzip thread panicked: report it as a write error.
        let gzip_result = gzip
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the gzip thread panicked")));
        (tar_result, gzip_result)
    });
    // The sink's own error (the upload stopped) explains a tar side that found the
    // pipe closed.
    match (tar_result, gzip_result) {
        (Ok(content_digest), Ok(())) => Ok(content_digest),
        (Err(err @ (PackError::Changed { .. } | PackError::Read { .. })), _) => Err(err),
        (_, Err(source)) => Err(write_error(source)),
        (Err(err), Ok(())) => Err(err),
    }
}

/// A file being read that must stay what its metadata said: exactly `expected` bytes,
/// and not modified until its end was read.
struct Unchanging {
    file: File,
    expected: u64,
    modified: (i64, i64),
    read: u64,
}

/// The marker inside an `io::Error` that a source changed while it was read.
#[derive(Debug)]
struct ChangedWhileRead(String);

impl std::fmt::Display for ChangedWhileRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChangedWhileRead {}

impl Unchanging {
    fn new(file: File, meta: &fs::Metadata) -> Self {
        Self {
            file,
            expected: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            read: 0,
        }
    }

    fn changed(what: String) -> io::Error {
        io::Error::other(ChangedWhileRead(what))
    }
}

impl Read for Unchanging {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than expected may be asked for, to see a file that grew.
        let room = (self.expected - self.read + 1).min(buf.len() as u64) as usize;
        let n = self.file.read(&mut buf[..room])?;
        self.read += n as u64;
        if self.read > self.expected {
            return Err(Self::changed(format!(
                "it grew beyond its {} bytes",
                self.expected
            )));
        }
        if n == 0 || self.read == self.expected {
            let meta = self.file.metadata()?;
            if self.read < self.expected {
                return Err(Self::changed(format!(
                    "it ended after {} of its {} bytes",
                    self.read, self.expected
                )));
            }
            if meta.len() != self.expected || (meta.mtime(), meta.mtime_nsec()) != self.modified {
                return Err(Self::changed("it was modified".into()));
            }
        }
        Ok(n)
    }
}

/// A read error, or the file changing while read.
fn source_error(err: io::Error, path: &Path) -> PackError {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ChangedWhileRead>())
    {
        Some(changed) => PackError::Changed {
            path: path.to_path_buf(),
            what: changed.0.clone(),
        },
        None => PackError::Read {
            path: path.to_path_buf(),
            source: err,
        },
    }
}

fn header_for(meta: &fs::Metadata, entry_type: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(meta.permissions().mode() & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    header
}

/// Append `path` (a directory) as `name/` and then its contents, sorted by name,
/// parents before their contents.
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
) -> Result<(), PackError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackError::Read { path, source }
    };
    let meta = fs::symlink_metadata(path).map_err(read_error(path))?;
    let mut header = header_for(&meta, tar::EntryType::Directory);
    let mut dir_name = name.as_os_str().to_owned();
    dir_name.push("/");
    append(
        builder,
        &mut header,
        Path::new(&dir_name),
        io::empty(),
        path,
    )?;

    let mut children: Vec<_> = fs::read_dir(path)
        .map_err(read_error(path))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read_error(path))?;
    children.sort();
    for child in children {
        let child_path = path.join(&child);
        let child_name = name.join(&child);
        let meta = fs::symlink_metadata(&child_path).map_err(read_error(&child_path))?;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            append_tree(builder, &child_path, &child_name)?;
        } else if file_type.is_file() {
            append_file(builder, &child_path, &child_name, &meta)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&child_path).map_err(read_error(&child_path))?;
            let mut header = header_for(&meta, tar::EntryType::Symlink);
            builder
                .append_link(&mut header, &child_name, &target)
                .map_err(|e| PackError::Name {
                    path: child_path.clone(),
                    reason: e.to_string(),
                })?;
        } else {
            return Err(PackError::Unsupported {
                path: child_path,
                kind: kind_of(&file_type),
            });
        }
    }
    Ok(())
}

/// Append the regular file at `path` (whose metadata was `meta` when it was listed) as
/// `name`; refused when it was replaced since, or changes while it is read.
fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    meta: &fs::Metadata,
) -> Result<(), PackError> {
    if !meta.is_file() {
        return Err(PackError::Unsupported {
            path: path.to_path_buf(),
            kind: kind_of(&meta.file_type()),
        });
    }
    let read_error = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut header = header_for(meta, tar::EntryType::Regular);
    header.set_size(meta.len());
    let file = File::open(path).map_err(read_error)?;
    let opened = file.metadata().map_err(read_error)?;
    if opened.ino() != meta.ino() || opened.len() != meta.len() {
        return Err(PackError::Changed {
            path: path.to_path_buf(),
            what: "it was replaced while it was packed".into(),
        });
    }
    let data = Unchanging::new(file, meta);
    append(builder, &mut header, name, data, path)
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &Path,
    data: impl Read,
    source: &Path,
) -> Result<(), PackError> {
    builder
        .append_data(header, name, data)
        .map_err(|e| source_error(e, source))
}

fn kind_of(file_type: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "named pipe"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device file"
    } else {
        "special file"
    }
}
