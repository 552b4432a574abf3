//! Logs: `tracing` events of the CLI and the library, on stderr (stdout is
//! the command's output), as text or JSON lines.
//!
//! The filter is `--log-level` when given, else `RUST_LOG` (any
//! `tracing-subscriber` filter, e.g. `executor_host=debug`), else `warn`.

use std::io::IsTerminal as _;

use anyhow::{Result, anyhow, bail};
use tracing_subscriber::EnvFilter;

/// `--log-level`: the least severe events shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event (colored when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per event and line.
    Json,
}

/// The text format's fields, `name=value` (the message bare), with their
/// control characters escaped: a field may carry a guest's key or error
/// message, or what a stranger sent over NATS, and a newline or an escape
/// sequence in it must not forge a line of the log or command the
/// terminal. (The JSON format escapes them as JSON does.)
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = format!("{value:?}");
        let text = crate::output::printable(&text);
        match field.name() {
            "message" => write!(writer, "{text}"),
            name => write!(writer, "{name}={text}"),
        }
    })
    .delimited(" ")
}

/// Installs the global subscriber writing to stderr.
pub fn init(level: Option<LogLevel>, format: LogFormat) -> Result<()> {
    let filter = match level {
        Some(level) => EnvFilter::new(level.directive()),
        None => match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => {
                EnvFilter::try_new(&spec).map_err(|e| anyhow!("RUST_LOG={spec:?} is not a valid log filter: {e}"))?
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => EnvFilter::new(LogLevel::Warn.directive()),
            Err(std::env::VarError::NotUnicode(_)) => bail!("RUST_LOG is not valid UTF-8"),
        },
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.fmt_fields(escaped_fields()).with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    installed.map_err(|e| anyhow!("could not install the logger: {e}"))
}
