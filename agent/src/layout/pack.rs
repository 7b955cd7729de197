//! Packing: hashing a file layer, and turning a directory into a tar+gzip layer in a
//! temporary file. Reading and tarring run on one thread, gzip on another, so both
//! cores work; memory stays at a few MiB of buffers whatever the size.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
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
/// Read size when hashing a file.
const HASH_READ: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the archive of {path} to {temp_dir}: {source}")]
    Write {
        path: PathBuf,
        temp_dir: PathBuf,
        source: io::Error,
    },
    #[error("cannot pack {path}: it is a {kind}, only files, directories and symlinks are pushed")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("cannot pack {path}: {reason}")]
    Name { path: PathBuf, reason: String },
}

/// `sha256:<hex>` and size of a file, read in large blocks.
pub fn hash_file(path: &Path) -> Result<(String, u64), PackError> {
    let read_error = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_READ];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

/// A directory packed as tar+gzip in a temporary file.
#[derive(Debug)]
pub struct Packed {
    pub file: tempfile::NamedTempFile,
    /// Digest of the compressed blob.
    pub digest: String,
    pub size: u64,
    /// Digest of the uncompressed tar (`io.deis.oras.content.digest`).
    pub content_digest: String,
}

/// Writer that hashes what goes through it and counts it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
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
pub fn pack_directory(dir: &Path, title: &str, temp_dir: &Path) -> Result<Packed, PackError> {
    let write_error = |source| PackError::Write {
        path: dir.to_path_buf(),
        temp_dir: temp_dir.to_path_buf(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix(".oras-agent-pack-")
        .tempfile_in(temp_dir)
        .map_err(write_error)?;
    let out = temp.as_file().try_clone().map_err(write_error)?;
    let (sender, receiver) = mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);

    let (tar_result, gzip_result) = std::thread::scope(|scope| {
        let gzip = scope.spawn(move || -> io::Result<(String, u64)> {
            let hashed = Hashing {
                inner: BufWriter::with_capacity(PIPE_BLOCK, out),
                hasher: Sha256::new(),
                count: 0,
            };
            let mut encoder = GzEncoder::new(hashed, Compression::fast());
            for block in receiver {
                encoder.write_all(&block)?;
            }
            let mut hashed = encoder.finish()?;
            hashed.flush()?;
            Ok((
                format!("sha256:{}", hex::encode(hashed.hasher.finalize())),
                hashed.count,
            ))
        });
        let tar_result = (|| {
            let sink = Hashing {
                inner: BlockSender {
                    block: Vec::with_capacity(PIPE_BLOCK),
                    sender,
                },
                hasher: Sha256::new(),
                count: 0,
            };
            let mut builder = tar::Builder::new(sink);
            builder.mode(tar::HeaderMode::Complete);
            append_tree(&mut builder, dir, Path::new(title))?;
            let mut sink = builder.into_inner().map_err(|source| PackError::Write {
                path: dir.to_path_buf(),
                temp_dir: temp_dir.to_path_buf(),
                source,
            })?;
            sink.inner.send_block().map_err(write_error)?;
            Ok::<_, PackError>(format!("sha256:{}", hex::encode(sink.hasher.finalize())))
            // `sink` drops here, closing the channel so the gzip thread finishes.
        })();
        // A join error means the gzip thread panicked: report it as a write error.
        let gzip_result = gzip
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the gzip thread panicked")));
        (tar_result, gzip_result)
    });
    let content_digest = tar_result?;
    let (digest, size) = gzip_result.map_err(write_error)?;
    Ok(Packed {
        file: temp,
        digest,
        size,
        content_digest,
    })
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
            let mut header = header_for(&meta, tar::EntryType::Regular);
            header.set_size(meta.len());
            let file = File::open(&child_path).map_err(read_error(&child_path))?;
            append(builder, &mut header, &child_name, file, &child_path)?;
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

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &Path,
    data: impl Read,
    source: &Path,
) -> Result<(), PackError> {
    builder
        .append_data(header, name, data)
        .map_err(|e| PackError::Read {
            path: source.to_path_buf(),
            source: e,
        })
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
