//! What a run needs to know, and how the function reads it from its
//! environment (flags work too, for runs outside Lambda).

use std::time::Duration;

use clap::{Parser, ValueEnum};
use etcd_aws_core::backup::manifest::Compression;
use etcd_aws_core::contract::names::{bucket, env, ports};
use etcd_aws_io::etcd::admin::EtcdTimeouts;
pub use etcd_aws_io::logging::LogFormat;
use etcd_aws_io::logging::{self, LogTarget};
use etcd_aws_io::tls::client_source::{ClientTlsArgs, ClientTlsSource};

use crate::capture::pending::FlushPolicy;
use crate::capture::CaptureSettings;
use crate::maintenance::plan::Thresholds;
use crate::maintenance::MaintenanceSettings;
use crate::retention::RetentionPolicy;

/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Twice the default 15-minute schedule: under the stale-backup alarm's
/// three missed runs.
pub const DEFAULT_REFRESH_AFTER: Duration = Duration::from_secs(30 * 60);

/// Everything one backup run needs besides the AWS configuration.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// The autoscaling group whose instances run the cluster.
    pub group_name: String,
    pub bucket: String,
    /// Key prefix of the backups in the bucket ("" for the bucket's root).
    pub prefix: String,
    /// etcd's client port on every instance.
    pub client_port: u16,
    pub compression: Compression,
    /// zstd level; low levels keep compression faster than the upload.
    pub zstd_level: i32,
    /// Size of every uploaded part but the last; at least [`MIN_PART_SIZE`].
    pub part_size: usize,
    /// Parts uploading at once while the snapshot keeps streaming. Memory is
    /// about `(parts_in_flight + 1) * part_size`.
    pub parts_in_flight: usize,
    pub retention: RetentionPolicy,
    /// Timeouts for the status probes and the quorum check.
    pub etcd_timeouts: EtcdTimeouts,
    /// The client certificate, read at the start of every run (so a
    /// re-issued one is picked up without a redeploy).
    pub tls: ClientTlsSource,
    /// Upper bound on streaming the whole snapshot; keep it under the
    /// function's own timeout so a stuck stream ends in a clean abort.
    pub snapshot_timeout: Duration,
    /// A cluster whose revision has not moved is backed up anew once its
    /// newest backup is this old; keep it under the stale-backup alarm's limit.
    pub refresh_after: Duration,
}

impl BackupConfig {
    /// The defaults, for a group, a bucket and a way to reach etcd.
    pub fn new(group_name: &str, bucket: &str, tls: ClientTlsSource) -> Self {
        Self {
            group_name: group_name.to_owned(),
            bucket: bucket.to_owned(),
            prefix: bucket::BACKUP_PREFIX.to_owned(),
            client_port: ports::CLIENT,
            compression: Compression::Zstd,
            zstd_level: 1,
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: 2,
            retention: RetentionPolicy::default(),
            etcd_timeouts: EtcdTimeouts {
                connect: Duration::from_secs(2),
                request: Duration::from_secs(6),
            },
            snapshot_timeout: Duration::from_secs(540),
            refresh_after: DEFAULT_REFRESH_AFTER,
            tls,
        }
    }

    /// Refuses settings S3 or etcd would refuse later, mid-upload.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.group_name.is_empty() {
            return Err(ConfigError("the group name is empty".into()));
        }
        if self.bucket.is_empty() {
            return Err(ConfigError("the bucket name is empty".into()));
        }
        if self.part_size < MIN_PART_SIZE {
            return Err(ConfigError(format!(
                "part size {} is below S3's minimum of {MIN_PART_SIZE} bytes",
                self.part_size
            )));
        }
        if !(1..=19).contains(&self.zstd_level) {
            return Err(ConfigError(format!(
                "zstd level {} is outside 1..=19",
                self.zstd_level
            )));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid backup configuration: {0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Zstd,
    None,
}

/// The function's environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "etcd-aws-backup",
    about = "Lambda: one job per invocation: a backup (a consistent etcd snapshot streamed to S3, then old backups thinned), with {\"job\": \"capture\"} the continuous backup of every change, with {\"job\": \"maintenance\"} etcd's health as metrics and reclaimed space"
)]
pub struct EnvConfig {
    /// The autoscaling group whose instances run etcd.
    #[arg(long, env = env::GROUP_NAME)]
    pub group_name: String,
    /// The backup bucket.
    #[arg(long, env = env::BACKUP_BUCKET)]
    pub bucket: String,
    /// Key prefix of the backups and segments in the bucket.
    #[arg(long, env = env::BACKUP_PREFIX, default_value = bucket::BACKUP_PREFIX)]
    pub prefix: String,
    /// etcd's client port on the instances.
    #[arg(long, env = env::CLIENT_PORT, default_value_t = ports::CLIENT)]
    pub client_port: u16,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
    /// How the stored snapshots are compressed.
    #[arg(long, env = "ETCD_BACKUP_COMPRESSION", value_enum, default_value_t = CompressionArg::Zstd)]
    pub compression: CompressionArg,
    /// zstd's level, 1 to 19.
    #[arg(long, env = "ETCD_BACKUP_ZSTD_LEVEL", default_value_t = 1)]
    pub zstd_level: i32,
    /// Size of the uploaded parts in MiB (at least 5).
    #[arg(long, env = "ETCD_BACKUP_PART_MIB", default_value_t = 8)]
    pub part_mib: usize,
    /// Backups always kept, newest first (at least one is kept whatever this says).
    #[arg(long, env = "ETCD_BACKUP_KEEP_LAST", default_value_t = 4)]
    pub keep_last: usize,
    /// Of older backups, keep the newest of each hour for this many hours.
    #[arg(long, env = "ETCD_BACKUP_HOURLY_HOURS", default_value_t = 24)]
    pub hourly_hours: u32,
    /// And the newest of each UTC day for this many days.
    #[arg(long, env = "ETCD_BACKUP_DAILY_DAYS", default_value_t = 7)]
    pub daily_days: u32,
    /// Bound on streaming the snapshot; keep it under the function's timeout.
    #[arg(long, env = "ETCD_BACKUP_SNAPSHOT_TIMEOUT", default_value = "9m", value_parser = humantime::parse_duration)]
    pub snapshot_timeout: Duration,
    /// Back up an unchanged cluster anew once its newest backup is this old
    /// (keep it under the stale-backup alarm's limit: three scheduled runs).
    #[arg(long, env = env::BACKUP_REFRESH_AFTER, default_value = "30m", value_parser = humantime::parse_duration)]
    pub refresh_after: Duration,
    /// The backend quota the members run with, in bytes (the agent's
    /// --quota-backend-bytes): the health metrics measure against it, and
    /// NOSPACE is cleared only below it.
    #[arg(long, env = env::QUOTA_BACKEND_BYTES, default_value_t = DEFAULT_QUOTA_BYTES)]
    pub quota_backend_bytes: i64,
    /// Maintenance defragments a member once this many MiB of its file are free.
    #[arg(long, env = "ETCD_MAINTENANCE_DEFRAG_FREE_MIB", default_value_t = 128)]
    pub defrag_free_mib: i64,
    /// Maintenance backs up first when the newest backup is older than this
    /// (the backup schedule's interval).
    #[arg(long, env = env::MAINTENANCE_BACKUP_MAX_AGE, default_value = "15m", value_parser = humantime::parse_duration)]
    pub backup_max_age: Duration,
    /// Bound on one member's defragmentation.
    #[arg(long, env = "ETCD_MAINTENANCE_DEFRAG_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub defrag_timeout: Duration,
    /// How long one capture run (`{"job": "capture"}`) watches etcd's changes;
    /// runs start every minute, so a little over a minute overlaps them.
    #[arg(long, env = "ETCD_CAPTURE_DURATION", default_value = "70s", value_parser = humantime::parse_duration)]
    pub capture_duration: Duration,
    /// A captured change is flushed to the bucket once it has waited this
    /// long: the loss window's share of the capture.
    #[arg(long, env = "ETCD_CAPTURE_FLUSH_DELAY", default_value = "1s", value_parser = humantime::parse_duration)]
    pub capture_flush_delay: Duration,
    /// ...or at once when this many MiB of changes are held.
    #[arg(long, env = "ETCD_CAPTURE_FLUSH_MIB", default_value_t = 4)]
    pub capture_flush_mib: usize,
    /// The capture takes a full snapshot once this many revisions follow the
    /// newest one, so a restore never replays more.
    #[arg(
        long,
        env = "ETCD_CAPTURE_SNAPSHOT_AFTER_REVISIONS",
        default_value_t = 100_000
    )]
    pub capture_snapshot_after_revisions: i64,
    /// JSON lines for CloudWatch Logs, or text for a terminal.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl EnvConfig {
    pub fn backup_config(&self) -> Result<BackupConfig, ConfigError> {
        let config = BackupConfig {
            prefix: self.prefix.clone(),
            client_port: self.client_port,
            compression: match self.compression {
                CompressionArg::Zstd => Compression::Zstd,
                CompressionArg::None => Compression::None,
            },
            zstd_level: self.zstd_level,
            part_size: self.part_mib.saturating_mul(1024 * 1024),
            retention: RetentionPolicy {
                keep_last: self.keep_last,
                hourly_hours: self.hourly_hours,
                daily_days: self.daily_days,
            },
            snapshot_timeout: self.snapshot_timeout,
            refresh_after: self.refresh_after,
            ..BackupConfig::new(&self.group_name, &self.bucket, self.tls.source())
        };
        config.validate()?;
        Ok(config)
    }
}

impl EnvConfig {
    pub fn maintenance_settings(&self) -> MaintenanceSettings {
        MaintenanceSettings {
            quota_bytes: self.quota_backend_bytes,
            thresholds: Thresholds {
                defrag_free_bytes: self.defrag_free_mib.saturating_mul(1024 * 1024),
                backup_max_age_seconds: i64::try_from(self.backup_max_age.as_secs())
                    .unwrap_or(i64::MAX),
            },
            defrag_timeout: self.defrag_timeout,
            settle_timeout: Duration::from_secs(30),
        }
    }
}

impl EnvConfig {
    pub fn capture_settings(&self) -> Result<CaptureSettings, ConfigError> {
        if self.capture_flush_delay.is_zero() || self.capture_duration.is_zero() {
            return Err(ConfigError(
                "the capture's duration and flush delay must be above zero".into(),
            ));
        }
        if self.capture_snapshot_after_revisions < 1 {
            return Err(ConfigError(format!(
                "ETCD_CAPTURE_SNAPSHOT_AFTER_REVISIONS is {}; it must be at least 1",
                self.capture_snapshot_after_revisions
            )));
        }
        Ok(CaptureSettings {
            duration: self.capture_duration,
            flush: FlushPolicy {
                delay: self.capture_flush_delay,
                max_bytes: self.capture_flush_mib.max(1).saturating_mul(1024 * 1024),
            },
            snapshot_after_revisions: self.capture_snapshot_after_revisions,
        })
    }
}

/// etcd's own default quota (2 GiB).
pub const DEFAULT_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;

/// Logs for CloudWatch Logs (see [`etcd_aws_io::logging`]).
pub fn init_logging(format: LogFormat) {
    logging::init(format, LogTarget::Lambda);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BackupConfig, String> {
        let mut argv = vec![
            "etcd-aws-backup",
            "--group-name",
            "g",
            "--bucket",
            "b",
            "--tls-client-secret",
            "s",
        ];
        argv.extend_from_slice(args);
        EnvConfig::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .backup_config()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_zstd_8_mib_parts_and_a_day_hourly_a_week_daily() {
        let config = parse(&[]);
        assert_eq!(
            config
                .as_ref()
                .map(|c| (c.prefix.as_str(), c.client_port, c.compression, c.part_size)),
            Ok(("backups/", 2379, Compression::Zstd, 8 * 1024 * 1024))
        );
        assert_eq!(
            config.map(|c| c.retention),
            Ok(RetentionPolicy {
                keep_last: 4,
                hourly_hours: 24,
                daily_days: 7
            })
        );
    }

    #[test]
    fn compression_can_be_turned_off() {
        assert_eq!(
            parse(&["--compression", "none"]).map(|c| c.compression),
            Ok(Compression::None)
        );
    }

    #[test]
    fn a_part_size_below_s3s_minimum_is_refused() {
        let error = parse(&["--part-mib", "4"]).err().unwrap_or_default();
        assert!(error.contains("minimum"), "{error}");
    }

    #[test]
    fn tls_is_required_unless_plaintext_is_asked_for() {
        let error =
            EnvConfig::try_parse_from(["etcd-aws-backup", "--group-name", "g", "--bucket", "b"])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(error.contains("--tls-client-secret"), "{error}");
        let plaintext = EnvConfig::try_parse_from([
            "etcd-aws-backup",
            "--group-name",
            "g",
            "--bucket",
            "b",
            "--insecure-plaintext",
        ])
        .map(|c| c.tls.source());
        assert_eq!(plaintext.ok(), Some(ClientTlsSource::Plaintext));
    }

    #[test]
    fn a_missing_bucket_is_refused_with_the_variable_named() {
        let error = EnvConfig::try_parse_from(["etcd-aws-backup", "--group-name", "g"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("--bucket"), "{error}");
    }

    fn capture(args: &[&str]) -> Result<CaptureSettings, String> {
        let mut argv = vec![
            "etcd-aws-backup",
            "--group-name",
            "g",
            "--bucket",
            "b",
            "--insecure-plaintext",
        ];
        argv.extend_from_slice(args);
        EnvConfig::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .capture_settings()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_capture_flushes_after_a_second_and_watches_seventy_seconds_by_default() {
        assert_eq!(capture(&[]), Ok(CaptureSettings::default()));
    }

    #[test]
    fn a_zero_flush_delay_is_refused() {
        let error = capture(&["--capture-flush-delay", "0s"])
            .err()
            .unwrap_or_default();
        assert!(error.contains("flush delay"), "{error}");
    }

    #[test]
    fn an_unknown_compression_is_refused() {
        let error = parse(&["--compression", "gzip"]).err().unwrap_or_default();
        assert!(error.contains("gzip"), "{error}");
    }
}
