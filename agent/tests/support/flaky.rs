//! A front for a test registry on 127.0.0.1 that answers the first requests (other than
//! the `/v2/` version check) with errors (503, 503, then 429), then passes the traffic
//! through. Each connection's first request decides; the agent's client reconnects after
//! `Connection: close`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

pub struct FlakyFront {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub refused: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

/// The error answers, in order; after them, connections pass through.
pub const ANSWERS: &[&str] = &[
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 68\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"slow down please\"}]}",
];

/// The request line and headers of the first request on a connection.
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

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

impl FlakyFront {
    /// Front `upstream_port`; the first `errors` connections get the error answers
    /// (cycling through [`ANSWERS`]); `usize::MAX` means always.
    pub fn start(upstream_port: u16, errors: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let stop = stop.clone();
            let refused = refused.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut client) = stream else { continue };
                    let head = read_head(&mut client);
                    // The version check stays healthy: the errors hit the real calls.
                    let version_check = head.starts_with(b"GET /v2/ ") && errors != usize::MAX;
                    let count = refused.load(Ordering::SeqCst);
                    if count < errors && !version_check {
                        refused.fetch_add(1, Ordering::SeqCst);
                        let _ = client.write_all(ANSWERS[count % ANSWERS.len()].as_bytes());
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        continue;
                    };
                    if upstream.write_all(&head).is_err() {
                        continue;
                    }
                    let (client2, upstream2) = match (client.try_clone(), upstream.try_clone()) {
                        (Ok(c), Ok(u)) => (c, u),
                        _ => continue,
                    };
                    std::thread::spawn(move || pipe(client, upstream));
                    std::thread::spawn(move || pipe(upstream2, client2));
                }
            })
        };
        Self {
            port,
            stop,
            refused,
            acceptor: Some(acceptor),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FlakyFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
