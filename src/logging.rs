//! Tracing setup. Log lines carry ids and route templates only; handlers never log values.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Lines go to stderr through a background writer thread: a request never waits on the
/// terminal or the log collector (a write system call per request line cost a visible share of
/// the CPU under load). Keep the returned guard until exit; dropping it flushes what is queued.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_env("STEWARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: in a file or a log collector the escape codes
    // are noise that breaks searching.
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}
