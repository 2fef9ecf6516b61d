//! The functions' metrics: their names, which the stack's alarms and
//! dashboard read, and the CloudWatch embedded-metric-format line that
//! carries them: one JSON line on stdout per report, which CloudWatch Logs
//! turns into metrics without an API call (and without the function needing
//! cloudwatch:PutMetricData or a route to it).
//!
//! Every metric of the project is in namespace [`NAMESPACE`] with the group's
//! name as its one dimension.

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "EtcdAws";
/// Dimension holding the autoscaling group's name, so two stacks' metrics stay apart.
pub const GROUP_DIMENSION: &str = "GroupName";
/// Seconds since the newest valid backup was taken.
pub const BACKUP_AGE: &str = "BackupAgeSeconds";
pub const BACKUP_BYTES: &str = "BackupBytes";
pub const BACKUP_DURATION: &str = "BackupDurationSeconds";

/// etcd's own health, published by the maintenance run.
/// The largest member's backend file.
pub const DB_SIZE: &str = "DbSizeBytes";
/// The largest member's bytes in use (the file less its free pages).
pub const DB_SIZE_IN_USE: &str = "DbSizeInUseBytes";
pub const DB_QUOTA: &str = "DbQuotaBytes";
/// The largest member's file in percent of the quota.
pub const DB_QUOTA_USED: &str = "DbQuotaUsedPercent";
/// 1 when the members agree on a leader, else 0.
pub const HAS_LEADER: &str = "HasLeader";
/// Rises by one with every election: its increase is the leader changes.
pub const RAFT_TERM: &str = "RaftTerm";
pub const VOTING_MEMBERS: &str = "VotingMembers";
pub const LEARNERS: &str = "Learners";
pub const MEMBERS_ANSWERING: &str = "MembersAnswering";
pub const NOSPACE_ALARMS: &str = "NospaceAlarms";
pub const CORRUPT_ALARMS: &str = "CorruptAlarms";
/// Members defragmented by a maintenance run.
pub const DEFRAGMENTED_MEMBERS: &str = "DefragmentedMembers";
/// NOSPACE alarms cleared after reclaiming space.
pub const NOSPACE_RECOVERIES: &str = "NospaceRecoveries";
/// 1 when a run reclaimed what it could and a member stayed above its quota.
pub const NOSPACE_UNRECOVERED: &str = "NospaceUnrecovered";
/// The continuous backup: the longest a captured change waited to be
/// flushed during a capture run (what a total loss would have lost).
pub const CAPTURE_LOSS_WINDOW: &str = "CaptureLossWindowSeconds";
/// Revisions captured but not yet flushed when the run ended.
pub const CAPTURE_LAG: &str = "CaptureLagRevisions";
/// History compacted away before it was captured (closed by a snapshot).
pub const CAPTURE_GAPS: &str = "CaptureGaps";
/// Days until the certificates expire (negative once expired), published by
/// the maintenance run: the soonest of the certificates the members serve,
/// the functions' client certificate, and the cluster CA.
pub const NODE_CERTIFICATE_DAYS_LEFT: &str = "NodeCertificateDaysLeft";
pub const FUNCTIONS_CERTIFICATE_DAYS_LEFT: &str = "FunctionsCertificateDaysLeft";
pub const CA_DAYS_LEFT: &str = "CaDaysLeft";

/// Every metric the programs publish. Each is read by an alarm, the dashboard
/// or both (the template's tests hold every one to it): a custom metric costs
/// the same whether anyone reads it.
pub const PUBLISHED: [&str; 23] = [
    BACKUP_AGE,
    BACKUP_BYTES,
    BACKUP_DURATION,
    DB_SIZE,
    DB_SIZE_IN_USE,
    DB_QUOTA,
    DB_QUOTA_USED,
    HAS_LEADER,
    RAFT_TERM,
    VOTING_MEMBERS,
    LEARNERS,
    MEMBERS_ANSWERING,
    NOSPACE_ALARMS,
    CORRUPT_ALARMS,
    DEFRAGMENTED_MEMBERS,
    NOSPACE_RECOVERIES,
    NOSPACE_UNRECOVERED,
    CAPTURE_LOSS_WINDOW,
    CAPTURE_LAG,
    CAPTURE_GAPS,
    NODE_CERTIFICATE_DAYS_LEFT,
    FUNCTIONS_CERTIFICATE_DAYS_LEFT,
    CA_DAYS_LEFT,
];

/// Made by the stack's metric filters from the nodes' log lines, in the
/// nodes' own namespace (per stack, without dimensions), not published by a
/// program.
pub mod from_node_logs {
    /// A node's data disk in use, in percent: the `used_percent` field of
    /// its [`crate::contract::events::DATA_DISK_USE`] lines.
    pub const DATA_DISK_USED: &str = "DataDiskUsedPercent";
}

/// Fields of the metric lines that are not metrics: they cost nothing beyond
/// their bytes in the log, and Logs Insights reads them.
pub mod fields {
    /// The revision the newest backup holds.
    pub const BACKUP_REVISION: &str = "BackupRevision";
    /// The bytes a maintenance run's defragmentations gave back.
    pub const RECLAIMED_BYTES: &str = "ReclaimedBytes";
    /// What a capture run stored.
    pub const CAPTURE_SEGMENTS: &str = "CaptureSegments";
    pub const CAPTURE_REVISIONS: &str = "CaptureRevisions";
    /// The leader's member id, in hex as etcdctl prints it (an identifier, not
    /// a quantity: a metric would round it).
    pub const LEADER_ID: &str = "LeaderId";
}

/// The units the project's metrics use (CloudWatch's names for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Bytes,
    Count,
    Percent,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Seconds => "Seconds",
            Self::Bytes => "Bytes",
            Self::Count => "Count",
            Self::Percent => "Percent",
            Self::None => "None",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: Value,
}

impl Metric {
    pub fn new(name: &'static str, unit: Unit, value: impl Into<Value>) -> Self {
        Self {
            name,
            unit,
            value: value.into(),
        }
    }
}

/// A value the line carries for Logs Insights without declaring it a metric
/// (an identifier, a name): CloudWatch keeps it as a field of the log event.
pub type Property = (&'static str, Value);

/// The EMF document for `metrics` of `group`, with `properties` beside them;
/// `timestamp_ms` is milliseconds since the epoch.
pub fn document(
    group: &str,
    metrics: &[Metric],
    properties: &[Property],
    timestamp_ms: i64,
) -> Value {
    let declared: Vec<Value> = metrics
        .iter()
        .map(|m| json!({ "Name": m.name, "Unit": m.unit.as_str() }))
        .collect();
    let mut document = Map::new();
    document.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[GROUP_DIMENSION]],
                "Metrics": declared,
            }],
        }),
    );
    document.insert(GROUP_DIMENSION.to_owned(), Value::from(group));
    for (name, value) in properties {
        document.insert((*name).to_owned(), value.clone());
    }
    for metric in metrics {
        document.insert(metric.name.to_owned(), metric.value.clone());
    }
    Value::Object(document)
}

/// The document as the single line CloudWatch Logs expects.
pub fn line(group: &str, metrics: &[Metric], timestamp_ms: i64) -> String {
    document(group, metrics, &[], timestamp_ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        let text = line(
            "etcd-group",
            &[
                Metric::new("Bytes", Unit::Bytes, 1_234),
                Metric::new("Age", Unit::Seconds, 2.5),
            ],
            1_700_000_000_000,
        );
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    #[test]
    fn the_line_declares_namespace_dimension_and_each_metric_with_its_unit() {
        let doc = sample();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "EtcdAws");
        assert_eq!(directive["Dimensions"], json!([["GroupName"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Bytes", "Unit": "Bytes"}, {"Name": "Age", "Unit": "Seconds"}])
        );
    }

    #[test]
    fn every_declared_metric_and_the_dimension_have_a_value_at_the_top_level() {
        let doc = sample();
        assert_eq!(doc["GroupName"], "etcd-group");
        assert_eq!(doc["Bytes"], json!(1_234));
        assert_eq!(doc["Age"], json!(2.5));
    }

    #[test]
    fn a_property_is_a_field_of_the_line_but_not_a_declared_metric() {
        let doc = document(
            "etcd-group",
            &[Metric::new("Bytes", Unit::Bytes, 1)],
            &[("LeaderId", json!("8e9e05c52164694d"))],
            1,
        );
        assert_eq!(doc["LeaderId"], "8e9e05c52164694d");
        let declared = &doc["_aws"]["CloudWatchMetrics"][0]["Metrics"];
        assert_eq!(declared, &json!([{"Name": "Bytes", "Unit": "Bytes"}]));
    }

    #[test]
    fn the_timestamp_is_in_milliseconds() {
        assert_eq!(sample()["_aws"]["Timestamp"], json!(1_700_000_000_000_i64));
    }
}
