//! A progress line on a terminal for large transfers; nothing otherwise (the log lines
//! say what is transferred).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Transfers smaller than this get no progress line.
const THRESHOLD: u64 = 8 << 20;
const REDRAW: Duration = Duration::from_millis(200);
const MIB: f64 = (1u64 << 20) as f64;

pub struct Progress {
    label: String,
    total: u64,
    state: Mutex<(u64, Instant)>,
}

impl Progress {
    /// A progress line for `total` bytes, when stderr is a terminal and it is large.
    pub fn start(label: String, total: u64) -> Option<Self> {
        (total >= THRESHOLD && std::io::stderr().is_terminal()).then(|| Self {
            label,
            total,
            state: Mutex::new((0, Instant::now() - REDRAW)),
        })
    }

    pub fn advance(&self, bytes: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.0 += bytes;
        if state.1.elapsed() >= REDRAW || state.0 >= self.total {
            state.1 = Instant::now();
            self.draw(state.0);
        }
    }

    fn draw(&self, done: u64) {
        let percent = if self.total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / self.total as f64
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{}: {:.1} / {:.1} MiB ({percent:.0}%)\x1b[K",
            self.label,
            done as f64 / MIB,
            self.total as f64 / MIB
        );
        let _ = err.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let _ = writeln!(std::io::stderr());
    }
}
