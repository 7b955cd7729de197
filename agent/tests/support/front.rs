//! A TCP front for a test registry on 127.0.0.1 that passes the traffic through and
//! can get in its way on the upload side (client to registry): hold the connection on
//! which a number of bytes (all connections together) went up, until the test lets it
//! go on; or reset the first connection that carries more than a number of bytes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the front does to the uploads.
#[derive(Debug, Clone, Copy)]
pub enum Hindrance {
    /// Hold the traffic once this many bytes went up, until [`Front::release`]; once.
    HoldAfter(u64),
    /// Reset the first connection once it carried this many bytes up.
    ResetFirstAfter(u64),
}

struct Shared {
    hindrance: Hindrance,
    /// Bytes sent up, all connections together.
    sent: AtomicU64,
    held: Mutex<bool>,
    /// The traffic was held already: it is not held again.
    was_held: AtomicBool,
    released: Condvar,
    resets: AtomicUsize,
    stop: AtomicBool,
}

pub struct Front {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Front {
    pub fn start(upstream_port: u16, hindrance: Hindrance) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            hindrance,
            sent: AtomicU64::new(0),
            held: Mutex::new(false),
            was_held: AtomicBool::new(false),
            released: Condvar::new(),
            resets: AtomicUsize::new(0),
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
                    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        continue;
                    };
                    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone())
                    else {
                        continue;
                    };
                    let up = shared.clone();
                    std::thread::spawn(move || pass_up(client, upstream, &up));
                    std::thread::spawn(move || pass_down(upstream2, client2));
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

    /// Waits until the traffic is held (panics after a minute).
    pub fn wait_until_held(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !*self.shared.held.lock().unwrap() {
            assert!(Instant::now() < deadline, "the front never held the upload");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets held traffic go on.
    pub fn release(&self) {
        *self.shared.held.lock().unwrap() = false;
        self.shared.released.notify_all();
    }

    /// Connections reset so far.
    pub fn resets(&self) -> usize {
        self.shared.resets.load(Ordering::SeqCst)
    }
}

fn pass_up(mut client: TcpStream, mut upstream: TcpStream, shared: &Shared) {
    let mut buffer = vec![0u8; 64 << 10];
    let mut carried = 0u64;
    loop {
        let n = match client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carried += n as u64;
        let sent = shared.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        match shared.hindrance {
            Hindrance::HoldAfter(limit)
                if sent >= limit && !shared.was_held.swap(true, Ordering::SeqCst) =>
            {
                let mut held = shared.held.lock().unwrap();
                *held = true;
                while *held {
                    held = shared.released.wait(held).unwrap();
                }
            }
            Hindrance::ResetFirstAfter(limit)
                if carried >= limit
                    && shared
                        .resets
                        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok() =>
            {
                reset(&client);
                reset(&upstream);
                return;
            }
            _ => {}
        }
        if upstream.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
}

fn pass_down(mut upstream: TcpStream, mut client: TcpStream) {
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(Shutdown::Write);
}

/// Close `stream` with a TCP reset (linger 0), as a network failure would.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket we own, with a correctly sized option.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

impl Drop for Front {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.release();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
