//! Progress bars on a terminal for large transfers (bytes, rate, time left), one per
//! blob in flight (`indicatif`); nothing when stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Transfers smaller than this get no bar.
const THRESHOLD: u64 = 8 << 20;
const TEMPLATE: &str = "{msg:24!} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:10} {binary_bytes_per_sec:>12} eta {eta}";

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// The bars of the blobs in flight, drawn together below each other.
fn bars() -> &'static MultiProgress {
    BARS.get_or_init(MultiProgress::new)
}

/// Stderr for log lines: each is written above the bars, which are drawn again below
/// it, instead of through them.
pub struct AboveBars;

impl std::io::Write for AboveBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar labelled `label` for `total` bytes, when stderr is a terminal and the
    /// transfer is large.
    pub fn start(label: String, total: u64) -> Option<Self> {
        if total < THRESHOLD || !std::io::stderr().is_terminal() {
            return None;
        }
        // The template is a constant: a mistake in it shows as indicatif's plain bar.
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = bars().add(
            ProgressBar::new(total)
                .with_style(style)
                .with_message(label),
        );
        Some(Self { bar })
    }

    /// Back to zero, when a transfer starts again after a transient error.
    pub fn restart(&self) {
        self.bar.reset();
    }

    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

impl Drop for Progress {
    /// A finished transfer's bar goes away: the bars left are the transfers in flight,
    /// and the command's results (on stdout, the same terminal) start on a clean line.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
