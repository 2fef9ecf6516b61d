//! Logs to stderr, as text or as JSON lines for CloudWatch Logs.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// `ETCD_AWS_LOG` (same syntax as `RUST_LOG`) sets levels; `info` by default.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("ETCD_AWS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
