//! Logging set-up shared by the agent and the functions: text for a
//! terminal, JSON lines for CloudWatch Logs, levels from `ETCD_AWS_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where a binary runs, which decides where its logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// stderr with timestamps: systemd's journal, a container, a terminal.
    Process,
    /// stdout without timestamps or colours: Lambda forwards stdout to
    /// CloudWatch Logs, which timestamps every line itself.
    Lambda,
}

/// `ETCD_AWS_LOG` (same syntax as `RUST_LOG`) sets levels; `info` by default.
pub fn init(format: LogFormat, target: LogTarget) {
    let filter =
        EnvFilter::try_from_env(names::env::LOG_FILTER).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match (target, format) {
        // Colour codes only where a person reads them: a log file or a pipe
        // (journald, `> out.log`) would keep them as escape sequences.
        (LogTarget::Process, LogFormat::Text) => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        (LogTarget::Process, LogFormat::Json) => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        (LogTarget::Lambda, LogFormat::Text) => builder.with_ansi(false).without_time().init(),
        (LogTarget::Lambda, LogFormat::Json) => builder
            .with_ansi(false)
            .without_time()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
