//! A fault-injecting front for a test registry on 127.0.0.1. Each request gets a
//! connection of its own (the front rewrites `Connection` to `close`, so clients
//! reconnect), and the first requests that match a [`Rule`] get its [`Fault`] instead of
//! a clean pass-through: an error answer, a connection reset in the middle of the
//! response, or a response that stops half-way and stays silent.
//! Every request is logged with the time it arrived and what was done to it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What happens to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answered with this raw HTTP response; the registry never sees the request.
    Answer(String),
    /// The response is relayed up to this many bytes (head included), then the
    /// connection is reset.
    ResetAfter(usize),
    /// The response is relayed up to this many bytes, then nothing more comes (the
    /// connection stays open until the client gives up).
    StallAfter(usize),
}

impl Fault {
    /// An error answer with `status` (such as `500 Internal Server Error`), extra
    /// header lines, and a body.
    pub fn answer(status: &str, headers: &[&str], body: &str) -> Self {
        let mut response = format!("HTTP/1.1 {status}\r\n");
        for header in headers {
            response.push_str(header);
            response.push_str("\r\n");
        }
        response.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        Fault::Answer(response)
    }

    fn name(&self) -> &'static str {
        match self {
            Fault::Answer(_) => "answer",
            Fault::ResetAfter(_) => "reset",
            Fault::StallAfter(_) => "stall",
        }
    }
}

/// The first `times` requests whose request line starts with `prefix` (such as
/// `GET /v2/app/blobs/`) get `fault`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub prefix: String,
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    pub fn new(prefix: &str, times: usize, fault: Fault) -> Self {
        Self {
            prefix: prefix.to_string(),
            times,
            fault,
        }
    }
}

/// A request the front saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    /// The request line, such as `GET /v2/app/manifests/v1 HTTP/1.1`.
    pub line: String,
    /// The fault it got (`answer`, `reset`, `stall`), or `None`.
    pub fault: Option<&'static str>,
}

struct Shared {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
}

pub struct FaultyFront {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultyFront {
    /// Fronts the registry on `upstream_port` with `rules`, applied in order (the first
    /// matching rule with requests left applies).
    pub fn start(upstream_port: u16, rules: Vec<Rule>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            rules: Mutex::new(rules),
            seen: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(client, upstream_port, &shared));
                }
            })
        };
        Self {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `repository_and_tag` (`team/data:v1`) through the front.
    pub fn reference(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.host())
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests seen so far whose line starts with `prefix`.
    pub fn seen_with(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.line.starts_with(prefix))
            .collect()
    }
}

impl Drop for FaultyFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// The request line and headers, up to the blank line.
fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    seen
}

/// The head with `Connection: close` in place of any `Connection` header.
fn closing(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn fault_for(shared: &Shared, line: &str) -> Option<Fault> {
    let mut rules = shared.rules.lock().unwrap();
    let rule = rules
        .iter_mut()
        .find(|r| r.times > 0 && line.starts_with(&r.prefix))?;
    rule.times -= 1;
    Some(rule.fault.clone())
}

/// Resets the connection (RST, not FIN), as a crashed peer or a middlebox does, once
/// `request_pipe` (the thread that owns the other handle of the socket) has let go.
fn reset(stream: TcpStream, request_pipe: JoinHandle<()>) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    // Ends the pipe's read of the request, so that this handle is the last one.
    let _ = stream.shutdown(Shutdown::Read);
    let _ = request_pipe.join();
    drop(stream);
}

/// Copies at most `limit` bytes; returns whether the source ended first.
fn copy_limited(from: &mut TcpStream, to: &mut TcpStream, limit: usize) -> bool {
    let mut left = limit;
    let mut buffer = [0u8; 16 * 1024];
    while left > 0 {
        let want = left.min(buffer.len());
        match from.read(&mut buffer[..want]) {
            Ok(0) | Err(_) => return true,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    return true;
                }
                left -= n;
            }
        }
    }
    false
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn serve(mut client: TcpStream, upstream_port: u16, shared: &Shared) {
    let head = read_head(&mut client);
    if head.is_empty() {
        return;
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let fault = fault_for(shared, &line);
    shared.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        line,
        fault: fault.as_ref().map(Fault::name),
    });
    if let Some(Fault::Answer(response)) = &fault {
        let _ = client.write_all(response.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
        return;
    };
    if upstream.write_all(&closing(&head)).is_err() {
        return;
    }
    let (Ok(client_reader), Ok(upstream_writer)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    match fault {
        Some(Fault::ResetAfter(limit)) => {
            let request_pipe = std::thread::spawn(move || pipe(client_reader, upstream_writer));
            copy_limited(&mut upstream, &mut client, limit);
            reset(client, request_pipe);
        }
        Some(Fault::StallAfter(limit)) => {
            std::thread::spawn(move || pipe(client_reader, upstream_writer));
            if !copy_limited(&mut upstream, &mut client, limit) {
                // Silent, but open, until the client hangs up or the front stops.
                let _ = client.set_read_timeout(Some(Duration::from_millis(50)));
                let mut byte = [0u8; 1];
                while !shared.stop.load(Ordering::SeqCst) {
                    match client.read(&mut byte) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
            }
        }
        Some(Fault::Answer(_)) | None => {
            std::thread::spawn(move || pipe(client_reader, upstream_writer));
            pipe(upstream, client);
        }
    }
}
