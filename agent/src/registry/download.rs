//! One blob download: a `GET` of the blob streamed into a file while it is hashed and
//! counted. The caller decides, from the digest and the count, whether the file may be
//! used; nothing here makes it visible.

use std::io;

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::request::{Failure, RequestAuth};
use crate::progress::Progress;

/// Buffer between the network and the file.
const BUFFER_SIZE: usize = 1 << 20;

/// How one download ended.
pub(super) enum Outcome {
    /// Every byte the registry sent: their sha256 (hex) and count.
    Received { sha256_hex: String, bytes: u64 },
    /// The registry sent more than the blob's size: stopped there.
    TooLong { bytes: u64 },
    /// The request or the stream failed.
    Failed(Failure),
    /// The file could not be written.
    Disk(io::Error),
}

/// Downloads `url` (a blob of `size` bytes) into `file`.
pub(super) async fn attempt(
    http: &reqwest::Client,
    auth: &RequestAuth,
    url: &str,
    size: u64,
    file: std::fs::File,
    progress: Option<&Progress>,
) -> Outcome {
    let response = match auth.apply(http.get(url)).send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return Outcome::Failed(Failure::of_answer(response).await),
        Err(err) => return Outcome::Failed(Failure::Network(err)),
    };
    if let Some(progress) = progress {
        progress.restart();
    }
    let mut out = tokio::io::BufWriter::with_capacity(BUFFER_SIZE, tokio::fs::File::from_std(file));
    let mut stream = response.bytes_stream();
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => return Outcome::Failed(Failure::Network(err)),
        };
        bytes += chunk.len() as u64;
        if bytes > size {
            return Outcome::TooLong { bytes };
        }
        hasher.update(&chunk);
        if let Some(progress) = progress {
            progress.advance(chunk.len() as u64);
        }
        if let Err(err) = out.write_all(&chunk).await {
            return Outcome::Disk(err);
        }
    }
    if let Err(err) = out.flush().await {
        return Outcome::Disk(err);
    }
    Outcome::Received {
        sha256_hex: hex::encode(hasher.finalize()),
        bytes,
    }
}
