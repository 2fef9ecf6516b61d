//! Configuration from the function's environment (flags work too, for runs
//! outside Lambda).

use std::time::Duration;

use clap::Parser;
use etcd_aws_core::contract::names::{env, ports};
use etcd_aws_io::etcd::admin::EtcdTimeouts;
pub use etcd_aws_io::logging::LogFormat;
use etcd_aws_io::logging::{self, LogTarget};
use etcd_aws_io::tls::client_source::ClientTlsArgs;

use crate::handler::Settings;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "etcd-aws-lifecycle",
    about = "Lambda: removes the etcd member of a terminating instance, then completes its lifecycle action"
)]
pub struct Config {
    /// The autoscaling group this function serves. Without it, each message's
    /// AutoScalingGroupName is trusted, and the scheduled reconcile cannot run.
    #[arg(long, env = env::GROUP_NAME)]
    pub group_name: Option<String>,
    /// etcd's client port on every instance.
    #[arg(long, env = env::CLIENT_PORT, default_value_t = ports::CLIENT)]
    pub client_port: u16,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// Heartbeat a lifecycle action this often while its removal runs; keep it
    /// well under the hook's heartbeat timeout.
    #[arg(long, env = "ETCD_AWS_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// How long one message keeps retrying refusals that clear by themselves
    /// before it goes back to the queue; keep it under the function's timeout.
    #[arg(long, env = "ETCD_AWS_RETRY_FOR", default_value = "25s", value_parser = humantime::parse_duration)]
    pub retry_for: Duration,
    /// Timeout for connecting to one etcd member; requests get three times as long.
    #[arg(long, env = "ETCD_AWS_ETCD_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub etcd_timeout: Duration,
    /// JSON lines for CloudWatch Logs, or text for a terminal.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl Config {
    pub fn settings(&self) -> Settings {
        Settings {
            group_name: self.group_name.clone(),
            client_port: self.client_port,
            heartbeat_interval: self.heartbeat_interval,
            retry_for: self.retry_for,
            ..Settings::default()
        }
    }

    pub fn etcd_timeouts(&self) -> EtcdTimeouts {
        EtcdTimeouts {
            connect: self.etcd_timeout,
            request: self.etcd_timeout * 3,
        }
    }
}

/// Logs for CloudWatch Logs (see [`etcd_aws_io::logging`]).
pub fn init_logging(format: LogFormat) {
    logging::init(format, LogTarget::Lambda);
}

#[cfg(test)]
mod tests {
    use etcd_aws_io::tls::ClientTlsSource;

    use super::*;

    #[test]
    fn defaults_match_the_standard_etcd_port_and_a_short_retry() {
        let config = Config::try_parse_from(["etcd-aws-lifecycle", "--tls-client-secret", "s"]);
        let config = config.map_err(|e| e.to_string());
        let settings = config.as_ref().map(Config::settings);
        assert_eq!(settings.as_ref().map(|s| s.client_port), Ok(2379));
        assert_eq!(
            settings.as_ref().map(|s| s.retry_for),
            Ok(Duration::from_secs(25))
        );
    }

    #[test]
    fn durations_are_read_in_human_units() {
        let config = Config::try_parse_from([
            "etcd-aws-lifecycle",
            "--insecure-plaintext",
            "--heartbeat-interval",
            "1500ms",
        ]);
        assert_eq!(
            config
                .map(|c| c.heartbeat_interval)
                .map_err(|e| e.to_string()),
            Ok(Duration::from_millis(1500))
        );
    }

    #[test]
    fn the_client_certificate_secret_is_required_unless_plaintext_is_asked_for() {
        let error = Config::try_parse_from(["etcd-aws-lifecycle"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("--tls-client-secret"), "{error}");
        let source = Config::try_parse_from(["etcd-aws-lifecycle", "--tls-client-secret", "s"])
            .map(|c| c.tls.source());
        assert_eq!(source.ok(), Some(ClientTlsSource::Secret("s".into())));
    }

    #[test]
    fn a_bad_port_is_refused_with_the_flag_named() {
        let error = Config::try_parse_from(["etcd-aws-lifecycle", "--client-port", "99999"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("--client-port"), "{error}");
    }
}
