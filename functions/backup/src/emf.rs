//! The backup run's metrics, one embedded-metric-format line per run
//! ([`etcd_aws_core::contract::metrics`]); the names are the ones the stack's alarms and
//! dashboard read ([`etcd_aws_core::contract::metrics`]).

use etcd_aws_core::contract::metrics;
use etcd_aws_core::contract::metrics::{fields, Metric, Property, Unit};

/// The figures of one successful run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackupMetrics {
    /// Seconds since the newest valid backup was taken (a run that finds the
    /// revision unchanged keeps that backup, and its age).
    pub age_seconds: f64,
    /// Stored size of the newest backup.
    pub bytes: u64,
    pub duration_seconds: f64,
    pub revision: i64,
}

impl BackupMetrics {
    pub fn metrics(&self) -> [Metric; 3] {
        [
            Metric::new(metrics::BACKUP_AGE, Unit::Seconds, self.age_seconds),
            Metric::new(metrics::BACKUP_BYTES, Unit::Bytes, self.bytes),
            Metric::new(
                metrics::BACKUP_DURATION,
                Unit::Seconds,
                self.duration_seconds,
            ),
        ]
    }

    /// What the line carries beside the metrics.
    pub fn fields(&self) -> [Property; 1] {
        [(fields::BACKUP_REVISION, self.revision.into())]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn sample() -> Value {
        let metrics = BackupMetrics {
            age_seconds: 12.0,
            bytes: 1_234,
            duration_seconds: 2.5,
            revision: 99,
        };
        let line = etcd_aws_core::contract::metrics::document(
            "etcd-group",
            &metrics.metrics(),
            &metrics.fields(),
            1,
        );
        serde_json::from_str(&line.to_string()).unwrap_or(Value::Null)
    }

    #[test]
    fn the_line_declares_the_three_backup_metrics() {
        let doc = sample();
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|metrics| metrics.iter().filter_map(|m| m["Name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            names,
            vec!["BackupAgeSeconds", "BackupBytes", "BackupDurationSeconds"]
        );
    }

    #[test]
    fn each_backup_metric_has_its_value() {
        let doc = sample();
        assert_eq!(doc["BackupAgeSeconds"], json!(12.0));
        assert_eq!(doc["BackupBytes"], json!(1_234));
        assert_eq!(doc["BackupDurationSeconds"], json!(2.5));
        assert_eq!(doc["BackupRevision"], json!(99), "a field, not a metric");
    }
}
