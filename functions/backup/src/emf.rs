//! CloudWatch embedded metric format: one JSON line on stdout per run, which
//! CloudWatch Logs turns into metrics without an API call (and without the
//! function needing cloudwatch:PutMetricData or a route to it).
//!
//! The names are the ones the stack's alarms and dashboard read
//! (`template/src/names.rs`, module `metrics`).

use serde_json::{json, Value};

pub const NAMESPACE: &str = "EtcdAws";
pub const GROUP_DIMENSION: &str = "GroupName";
pub const BACKUP_AGE: &str = "BackupAgeSeconds";
pub const BACKUP_BYTES: &str = "BackupBytes";
pub const BACKUP_DURATION: &str = "BackupDurationSeconds";
pub const BACKUP_REVISION: &str = "BackupRevision";

/// The figures of one successful run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackupMetrics {
    /// Seconds since the cluster's data was last confirmed backed up: 0 after
    /// an upload or after finding the revision unchanged.
    pub age_seconds: f64,
    /// Stored size of the newest backup.
    pub bytes: u64,
    pub duration_seconds: f64,
    pub revision: i64,
}

/// The EMF document for one run; `timestamp_ms` is milliseconds since the epoch.
pub fn document(group: &str, metrics: &BackupMetrics, timestamp_ms: i64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[GROUP_DIMENSION]],
                "Metrics": [
                    { "Name": BACKUP_AGE, "Unit": "Seconds" },
                    { "Name": BACKUP_BYTES, "Unit": "Bytes" },
                    { "Name": BACKUP_DURATION, "Unit": "Seconds" },
                    { "Name": BACKUP_REVISION, "Unit": "None" },
                ],
            }],
        },
        GROUP_DIMENSION: group,
        BACKUP_AGE: metrics.age_seconds,
        BACKUP_BYTES: metrics.bytes,
        BACKUP_DURATION: metrics.duration_seconds,
        BACKUP_REVISION: metrics.revision,
    })
}

/// The document as the single line CloudWatch Logs expects.
pub fn line(group: &str, metrics: &BackupMetrics, timestamp_ms: i64) -> String {
    document(group, metrics, timestamp_ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        let metrics = BackupMetrics {
            age_seconds: 0.0,
            bytes: 1_234,
            duration_seconds: 2.5,
            revision: 99,
        };
        let text = line("etcd-group", &metrics, 1_700_000_000_000);
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    #[test]
    fn the_line_declares_namespace_dimension_and_all_four_metrics() {
        let doc = sample();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "EtcdAws");
        assert_eq!(directive["Dimensions"], json!([["GroupName"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .map(|metrics| metrics.iter().filter_map(|m| m["Name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            names,
            vec![
                "BackupAgeSeconds",
                "BackupBytes",
                "BackupDurationSeconds",
                "BackupRevision"
            ]
        );
    }

    #[test]
    fn every_declared_metric_and_the_dimension_have_a_value_at_the_top_level() {
        let doc = sample();
        assert_eq!(doc["GroupName"], "etcd-group");
        assert_eq!(doc["BackupAgeSeconds"], json!(0.0));
        assert_eq!(doc["BackupBytes"], json!(1_234));
        assert_eq!(doc["BackupDurationSeconds"], json!(2.5));
        assert_eq!(doc["BackupRevision"], json!(99));
    }

    #[test]
    fn the_timestamp_is_in_milliseconds() {
        assert_eq!(sample()["_aws"]["Timestamp"], json!(1_700_000_000_000_i64));
    }
}
