//! The single-pass blob upload: the source is read once, hashed as it streams to the
//! registry in one monolithic upload session (`POST`, one streamed `PATCH`, then
//! `PUT ?digest=` with the digest of what was sent). `oci-client` cannot do this: its
//! streamed pushes want the digest first, or send one `PATCH` per chunk.
//!
//! The source runs on a blocking thread and writes into a [`BlobSink`]; the session is
//! committed only when the source reports that what it read is what it meant to read
//! (a file that changed while it streamed is refused) and, when the digest was known
//! beforehand, that the bytes hash to it. A refused or failed upload is cancelled:
//! the registry holds at most an unreferenced partial upload, never a blob under a
//! digest. A failed attempt restarts from scratch with a new session.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use reqwest::Url;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::request::{Failure, RequestAuth};
use crate::progress::Progress;

/// Size of the blocks the source hands to the network.
const SINK_BLOCK: usize = 1 << 20;
/// Blocks in flight between the source and the network (a few MiB per upload, at most
/// four uploads at a time).
const SINK_DEPTH: usize = 2;

/// Where the source writes its bytes: they are hashed, counted and sent to the
/// registry in blocks.
pub struct BlobSink {
    sender: mpsc::Sender<io::Result<Bytes>>,
    block: BytesMut,
    hasher: Sha256,
    count: u64,
    progress: Option<Arc<Progress>>,
    /// The network side went away (the request failed): the source's write error is
    /// its consequence, not its cause.
    closed: bool,
}

impl BlobSink {
    fn new(sender: mpsc::Sender<io::Result<Bytes>>, progress: Option<Arc<Progress>>) -> Self {
        Self {
            sender,
            block: BytesMut::with_capacity(SINK_BLOCK),
            hasher: Sha256::new(),
            count: 0,
            progress,
            closed: false,
        }
    }

    fn send_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let block = self.block.split().freeze();
        self.block.reserve(SINK_BLOCK);
        if let Some(progress) = &self.progress {
            progress.advance(block.len() as u64);
        }
        if self.sender.blocking_send(Ok(block)).is_err() {
            self.closed = true;
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the upload stopped",
            ));
        }
        Ok(())
    }

    /// Sends what is left; the digest and size of everything written.
    fn finish(mut self) -> io::Result<(String, u64)> {
        self.send_block()?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }

    /// Ends the body with an error, so that the request fails instead of completing.
    fn abort(self, reason: String) {
        let _ = self.sender.blocking_send(Err(io::Error::other(format!(
            "the source failed: {reason}"
        ))));
    }
}

impl Write for BlobSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = SINK_BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.block.len() >= SINK_BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one upload attempt ended with.
pub(super) enum Attempt<T> {
    /// Committed: the blob's digest and size, and what the source returned.
    Done(String, u64, T),
    /// The source failed or changed: nothing committed, not retried.
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// The bytes did not hash to the digest the caller expected: not retried.
    Mismatch { actual: String, size: u64 },
    /// The registry or the network failed: retried from scratch while the budget lasts.
    Retry(Failure),
    /// The registry refused for good.
    Refused(String),
}

/// One upload session: `POST` to `uploads` (the repository's `/blobs/uploads/` URL),
/// the source streamed in one `PATCH`, `PUT ?digest=`.
pub(super) async fn attempt<T, E, F>(
    http: &reqwest::Client,
    auth: &RequestAuth,
    uploads: &Url,
    expected: Option<&str>,
    progress: Option<Arc<Progress>>,
    source: Arc<F>,
) -> Attempt<T>
where
    T: Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    F: Fn(&mut BlobSink) -> Result<T, E> + Send + Sync + 'static,
{
    let session = match send(
        auth.apply(http.post(uploads.clone()))
            .header("Content-Length", 0),
    )
    .await
    {
        Ok(response) => match located(uploads, response, StatusCode::ACCEPTED).await {
            Ok(location) => location,
            Err(failure) => return fail(failure),
        },
        Err(failure) => return fail(failure),
    };

    let (sender, receiver) = mpsc::channel(SINK_DEPTH);
    if let Some(progress) = &progress {
        progress.restart();
    }
    let reading = tokio::task::spawn_blocking(move || {
        let mut sink = BlobSink::new(sender, progress);
        match source(&mut sink) {
            Ok(value) => match sink.finish() {
                Ok((digest, size)) => Ok((digest, size, value)),
                Err(_) => Err(None),
            },
            Err(err) => {
                let closed = sink.closed;
                let err: Box<dyn std::error::Error + Send + Sync> = err.into();
                sink.abort(err.to_string());
                // Writing failed because the request did: the request's error says why.
                Err(if closed { None } else { Some(err) })
            }
        }
    });
    let body = reqwest::Body::wrap_stream(tokio_stream_of(receiver));
    let patched = send(
        auth.apply(http.patch(session.clone()))
            .header("Content-Type", "application/octet-stream")
            .body(body),
    )
    .await;
    let read = match reading.await {
        Ok(read) => read,
        Err(join) => Err(Some(format!("the source panicked: {join}").into())),
    };
    let (digest, size, value) = match read {
        Ok(read) => read,
        Err(Some(source_error)) => {
            cancel(http, auth, &session).await;
            return Attempt::Source(source_error);
        }
        Err(None) => {
            return match patched {
                Err(failure) => fail(failure),
                Ok(response) => fail(Failure::Status(
                    response.status(),
                    "the registry answered before the upload's end".into(),
                    None,
                )),
            };
        }
    };
    let committed_at = match patched {
        Ok(response) => {
            let range = response
                .headers()
                .get(http::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            match located(&session, response, StatusCode::ACCEPTED).await {
                Ok(location) => {
                    // `Range: 0-<last byte>`: what the registry received.
                    if let Some(range) = range
                        && size > 0
                        && range != format!("0-{}", size - 1)
                    {
                        cancel(http, auth, &location).await;
                        return Attempt::Retry(Failure::Status(
                            StatusCode::BAD_GATEWAY,
                            format!("the registry received {range} of {size} bytes"),
                            None,
                        ));
                    }
                    location
                }
                Err(failure) => return fail(failure),
            }
        }
        Err(failure) => return fail(failure),
    };
    if let Some(expected) = expected
        && expected != digest
    {
        cancel(http, auth, &committed_at).await;
        return Attempt::Mismatch {
            actual: digest,
            size,
        };
    }
    let mut commit = committed_at;
    commit.query_pairs_mut().append_pair("digest", &digest);
    match send(
        auth.apply(http.put(commit.clone()))
            .header("Content-Length", 0),
    )
    .await
    {
        Ok(response) => match located(&commit, response, StatusCode::CREATED).await {
            Ok(_) => Attempt::Done(digest, size, value),
            Err(failure) => fail(failure),
        },
        Err(failure) => fail(failure),
    }
}

fn fail<T>(failure: Failure) -> Attempt<T> {
    if failure.is_transient() || failure.is_unauthorized() {
        Attempt::Retry(failure)
    } else {
        Attempt::Refused(failure.to_string())
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
    request.send().await.map_err(Failure::Network)
}

/// The `Location` of an answer with status `expected`, resolved against `base`.
async fn located(
    base: &Url,
    response: reqwest::Response,
    expected: StatusCode,
) -> Result<Url, Failure> {
    let status = response.status();
    if status != expected {
        return Err(Failure::of_answer(response).await);
    }
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    match location {
        Some(location) => base.join(&location).map_err(|e| {
            Failure::Status(status, format!("unusable Location {location:?}: {e}"), None)
        }),
        // A completed upload without `Location` (go-containerregistry): the blob's own
        // URL is not needed.
        None if expected == StatusCode::CREATED => Ok(base.clone()),
        None => Err(Failure::Status(
            status,
            "the answer has no Location".into(),
            None,
        )),
    }
}

/// Best effort: drop an upload session that must not be committed.
async fn cancel(http: &reqwest::Client, auth: &RequestAuth, session: &Url) {
    if let Err(err) = auth.apply(http.delete(session.clone())).send().await {
        tracing::debug!(%session, error = %err, "cannot cancel the upload session");
    }
}

/// The receiver as a body stream.
fn tokio_stream_of(
    mut receiver: mpsc::Receiver<io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
