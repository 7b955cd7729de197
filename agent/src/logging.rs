//! Where the agent's words go. The user commands (`push`, `pull`, `tags`, `lineage`,
//! `prune`, `collect`) speak as a command-line tool: results on stdout, warnings as
//! `warning: ...` and the failure as one `Error: <causes>` line on stderr, no
//! timestamps. The pod roles (`init`, `launch`, `sidecar`, `serve-registry`, `install`)
//! log timestamped lines with their level, for `kubectl logs`.
//!
//! `--debug`, `ORAS_AGENT_LOG` or `RUST_LOG` (a `tracing` filter, in that order) add
//! details to either.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Who reads stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A person at a terminal or a script.
    User,
    /// `kubectl logs` of a pod.
    Pod,
}

/// Environment variables holding a `tracing` filter, the first set one wins.
const FILTER_ENV: [&str; 2] = ["ORAS_AGENT_LOG", "RUST_LOG"];

pub fn init(audience: Audience, debug: bool) {
    let default = match (debug, audience) {
        (true, _) => "oras_agent=debug,oci_client=debug,info",
        (false, Audience::Pod) => "info",
        (false, Audience::User) => "warn",
    };
    let filter = FILTER_ENV
        .iter()
        .find_map(|name| EnvFilter::try_from_env(name).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match audience {
        Audience::Pod => builder
            .with_writer(std::io::stderr)
            .with_target(false)
            .init(),
        Audience::User => builder
            .with_writer(|| crate::progress::AboveBars)
            .event_format(CliFormat)
            .init(),
    }
}

/// The failure of a user command: `Error: ` and its causes on one line.
pub fn error_line(err: &anyhow::Error) -> String {
    format!("Error: {err:#}")
}

/// `warning: message key=value`: the level as a word where it matters, nothing else.
struct CliFormat;

impl<S, N> FormatEvent<S, N> for CliFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => {}
            Level::DEBUG => write!(writer, "debug: ")?,
            Level::TRACE => write!(writer, "trace: ")?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
