//! The nodes' logs outlive the nodes: every node's agent (and etcd, whose output
//! the agent passes through) writes to a file that the CloudWatch agent from
//! Amazon Linux's repositories ships to one log group of the stack, one stream
//! per instance. The group is encrypted with a key of the stack's own and kept
//! for `NodeLogRetentionDays`; metric filters count the events an operator must
//! hear of (matched on the agent's `event` field, not on wording) and alarm on
//! them; the dashboard shows a Logs Insights query per event kind. One filter
//! takes a measure rather than a count: each node's data disk use, from the
//! agent's periodic report, alarmed on when the fullest node passes
//! [`disk::USED_ALARM_PERCENT`].

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::events;
use crate::names::logical::{ALARM_TOPIC, NODE_LOGS, NODE_LOGS_KEY};
use crate::names::metrics::from_node_logs::DATA_DISK_USED;
use crate::names::parameters::NODE_LOG_RETENTION_DAYS;
use etcd_aws_core::etcd::disk;

/// Where the agent's unit appends its output on the node (user-data).
pub const LOG_FILE: &str = "/var/log/etcd-aws/etcd-aws.log";
/// The retention CloudWatch Logs keeps by default here: three months of
/// nights to look back on.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// The retentions CloudWatch Logs accepts.
const RETENTIONS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// One event kind: its metric, its alarm, and its query.
pub struct EventKind {
    pub event: &'static str,
    pub metric: &'static str,
    pub alarm: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The alarm fires at this many events within `period` seconds.
    pub threshold: f64,
    pub period: u64,
}

pub const EVENT_KINDS: &[EventKind] = &[
    EventKind {
        event: events::GAVE_UP_WAITING,
        metric: "NodeGaveUpWaiting",
        alarm: "NodeGaveUpWaitingAlarm",
        title: "Nodes that gave up waiting",
        description: "A node's agent gave up waiting (--wait-timeout) and runs no etcd",
        threshold: 1.0,
        period: 300,
    },
    EventKind {
        event: events::BACKUP_DAMAGED,
        metric: "BackupDamagedAtRestore",
        alarm: "BackupDamagedAtRestoreAlarm",
        title: "Backups refused as damaged at restore",
        description: "A restore refused a damaged backup",
        threshold: 1.0,
        period: 300,
    },
    EventKind {
        event: events::OLDER_BACKUP_RESTORED,
        metric: "OlderBackupRestored",
        alarm: "OlderBackupRestoredAlarm",
        title: "Restores of an older backup",
        description: "A restore fell back to an older backup: writes after it are lost",
        threshold: 1.0,
        period: 300,
    },
    EventKind {
        event: events::SEGMENTS_UNRECOVERABLE,
        metric: "RevisionsLostAtRestore",
        alarm: "RevisionsLostAtRestoreAlarm",
        title: "Restores that lost captured revisions",
        description: "A restore could not replay a missing or damaged segment: the captured revisions after the last one it proved are lost (the line says which)",
        threshold: 1.0,
        period: 300,
    },
    EventKind {
        event: events::EMPTY_START_REFUSED,
        metric: "EmptyStartRefused",
        alarm: "EmptyStartRefusedAlarm",
        title: "Seeds that would not start empty over a history",
        description: "A seed found no snapshot but an earlier cluster's history in the bucket: put the snapshots back or run etcd-aws-cfn start-empty",
        threshold: 1.0,
        period: 300,
    },
    EventKind {
        event: events::INSTRUCTION_REFUSED,
        metric: "InstructionsRefused",
        alarm: "InstructionRefusedAlarm",
        title: "Restore orders and permits no operator signed",
        description: "A node refused a restore order or start-empty permit in the backup bucket that the order-signing key did not sign: someone who can write to the bucket tried to command the cluster (CloudTrail's S3 data events name them)",
        threshold: 1.0,
        period: 300,
    },
    EventKind {
        event: events::FORCE_NEW_CLUSTER,
        metric: "ForceNewClusterRecoveries",
        alarm: "ForceNewClusterAlarm",
        title: "Survivor recoveries (--force-new-cluster)",
        description: "A survivor recovered the cluster with --force-new-cluster",
        threshold: 1.0,
        period: 300,
    },
    EventKind {
        event: events::ETCD_EXITED,
        metric: "EtcdExits",
        alarm: "RepeatedEtcdExitsAlarm",
        title: "etcd exits",
        description: "etcd exited with a failure 3 times within 15 minutes",
        threshold: 3.0,
        period: 900,
    },
    EventKind {
        event: events::DATA_DIVERGED,
        metric: "DataDiverged",
        alarm: "DataDivergedAlarm",
        title: "Members whose data diverged",
        description: "A member's data diverged from its peers' and was set aside",
        threshold: 1.0,
        period: 300,
    },
];

/// The metric filters' namespace: one per stack, since a filter's metric has no
/// dimension to keep two stacks apart.
pub fn namespace() -> Value {
    sub("EtcdAws/Nodes/${AWS::StackName}")
}

/// The Logs Insights query for one event kind.
pub fn query(kind: &EventKind) -> String {
    format!(
        "fields @timestamp, @logStream as instance, level, message\n| filter {} = \"{}\"\n| sort @timestamp desc\n| limit 100",
        events::FIELD, kind.event
    )
}

/// The CloudWatch agent's configuration: the agent's log file, to the stack's
/// group, one stream per instance (`{instance_id}` is the CloudWatch agent's
/// placeholder; `${NodeLogs}` is CloudFormation's, filled by `Fn::Sub`).
pub fn cloudwatch_agent_config() -> String {
    json!({
        "agent": { "run_as_user": "root" },
        "logs": { "logs_collected": { "files": { "collect_list": [{
            "file_path": LOG_FILE,
            "log_group_name": format!("${{{NODE_LOGS}}}"),
            "log_stream_name": "{instance_id}",
            "timezone": "UTC",
        }]}}},
    })
    .to_string()
}

fn key_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": { "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsEncryptsTheNodeLogs",
                "Effect": "Allow",
                "Principal": { "Service": sub("logs.${AWS::Region}.amazonaws.com") },
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": { "ArnEquals": {
                    "kms:EncryptionContext:aws:logs:arn": sub(&format!(
                        "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{}",
                        group_name_pattern()
                    )),
                }},
            },
        ],
    })
}

/// The group's name: the stack's, so two stacks never share one.
fn group_name_pattern() -> &'static str {
    "/etcd-aws/${AWS::StackName}/nodes"
}

fn alarm(kind: &EventKind) -> Value {
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": kind.description,
            "Namespace": namespace(),
            "MetricName": kind.metric,
            "Statistic": "Sum",
            "Period": kind.period,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": kind.threshold,
            // No line is no event.
            "TreatMissingData": "notBreaching",
            "AlarmActions": [reference(ALARM_TOPIC)],
            "OKActions": [reference(ALARM_TOPIC)],
        },
    })
}

fn metric_filter(kind: &EventKind) -> Value {
    json!({
        "Type": "AWS::Logs::MetricFilter",
        "Properties": {
            "LogGroupName": reference(NODE_LOGS),
            "FilterPattern": format!("{{ $.{} = \"{}\" }}", events::FIELD, kind.event),
            "MetricTransformations": [{
                "MetricNamespace": namespace(),
                "MetricName": kind.metric,
                "MetricValue": "1",
            }],
        },
    })
}

/// The alarm on the fullest node's data disk.
pub const DATA_DISK_ALARM: &str = "DataDiskUsedAlarm";

/// The reports' `used_percent` as a metric: one data point a node a report.
fn data_disk_filter() -> Value {
    json!({
        "Type": "AWS::Logs::MetricFilter",
        "Properties": {
            "LogGroupName": reference(NODE_LOGS),
            "FilterPattern": format!("{{ $.{} = \"{}\" }}", events::FIELD, events::DATA_DISK_USE),
            "MetricTransformations": [{
                "MetricNamespace": namespace(),
                "MetricName": DATA_DISK_USED,
                "MetricValue": "$.used_percent",
                "Unit": "Percent",
            }],
        },
    })
}

/// Every node reports into the one metric, so its maximum is the fullest
/// node's disk. Over two report intervals, so that every node's report lands
/// in each period: over one, a late report would leave the fullest node out
/// of a period, and the alarm would flap.
fn data_disk_alarm() -> Value {
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": format!(
                "A node's data disk is more than {}% used: free space on it (moved-aside data directories, old logs) or grow the volume before etcd runs out of room (the node's data_disk_use lines name it)",
                disk::USED_ALARM_PERCENT
            ),
            "Namespace": namespace(),
            "MetricName": DATA_DISK_USED,
            "Statistic": "Maximum",
            "Period": 2 * disk::USE_REPORT_INTERVAL_SECONDS,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": disk::USED_ALARM_PERCENT,
            // No report at all (no node running) says nothing of the disks:
            // keep the state; the cluster's own alarms speak for that.
            "TreatMissingData": "missing",
            "AlarmActions": [reference(ALARM_TOPIC)],
            "OKActions": [reference(ALARM_TOPIC)],
        },
    })
}

pub fn fragment() -> Fragment {
    let mut fragment = Fragment::new()
        .parameter(
            NODE_LOG_RETENTION_DAYS,
            json!({
                "Type": "Number",
                "Description": "Days CloudWatch Logs keeps the nodes' agent and etcd logs",
                "Default": DEFAULT_RETENTION_DAYS,
                "AllowedValues": RETENTIONS,
            }),
        )
        .resource(
            NODE_LOGS_KEY,
            json!({
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "Description": "Encrypts the etcd nodes' logs in CloudWatch Logs",
                    "EnableKeyRotation": true,
                    "KeyPolicy": key_policy(),
                },
            }),
        )
        .resource(
            NODE_LOGS,
            json!({
                "Type": "AWS::Logs::LogGroup",
                "Properties": {
                    "LogGroupName": sub(group_name_pattern()),
                    "RetentionInDays": reference(NODE_LOG_RETENTION_DAYS),
                    "KmsKeyId": get_att(NODE_LOGS_KEY, "Arn"),
                },
            }),
        );
    for kind in EVENT_KINDS {
        fragment = fragment
            .resource(&format!("{}Filter", kind.metric), metric_filter(kind))
            .resource(kind.alarm, alarm(kind));
    }
    fragment
        .resource(&format!("{DATA_DISK_USED}Filter"), data_disk_filter())
        .resource(DATA_DISK_ALARM, data_disk_alarm())
}

/// The dashboard's widgets: one Logs Insights query per event kind.
pub fn widgets(top: u32) -> Vec<Value> {
    EVENT_KINDS
        .iter()
        .enumerate()
        .map(|(index, kind)| {
            let index = u32::try_from(index).unwrap_or(0);
            json!({
                "type": "log",
                "x": (index % 2) * 12,
                "y": top + (index / 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": kind.title,
                    "region": "${AWS::Region}",
                    "view": "table",
                    "query": format!("SOURCE '${{{NODE_LOGS}}}' | {}", query(kind).replace('\n', " ")),
                },
            })
        })
        .collect()
}
