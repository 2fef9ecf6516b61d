//! What the programs print for CloudWatch: log lines (text for a terminal,
//! JSON lines for CloudWatch Logs, levels from `ETCD_AWS_LOG`) and metric
//! lines in the embedded metric format.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use etcd_aws_core::clock;
use etcd_aws_core::contract::metrics::{self, Metric, Property};
use etcd_aws_core::contract::names;

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

/// Prints the metric line ([`metrics::document`]) on stdout, now: printed,
/// not logged, because CloudWatch reads the metrics from the bare JSON line.
/// Returns it.
pub fn print_metrics(group: &str, metrics: &[Metric]) -> String {
    print_metrics_with(group, metrics, &[])
}

/// [`print_metrics`] with properties beside the metrics.
pub fn print_metrics_with(group: &str, metrics: &[Metric], properties: &[Property]) -> String {
    let line = metrics::document(group, metrics, properties, clock::now_unix_millis()).to_string();
    println!("{line}");
    line
}
