//! The EventBridge schedules: periodic backups, the continuous backup's capture
//! runs, the maintenance runs (health metrics, defragmentation, NOSPACE), and the
//! lifecycle function's reconcile that removes members whose instances vanished
//! without a queue message.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference};
use crate::names::logical::{
    BACKUP_FUNCTION, CAPTURE_FUNCTION, LIFECYCLE_FUNCTION, MAINTENANCE_FUNCTION,
};
use crate::options::Options;
use etcd_aws_core::contract::jobs::{Job, RECONCILE_PAYLOAD};

pub const BACKUP_RULE: &str = "BackupSchedule";
pub const RECONCILE_RULE: &str = "ReconcileSchedule";
pub const MAINTENANCE_RULE: &str = "MaintenanceSchedule";
pub const CAPTURE_RULE: &str = "CaptureSchedule";
/// Every minute, EventBridge's finest schedule: each run watches a little longer.
pub const CAPTURE_SCHEDULE: &str = "rate(1 minute)";

pub fn fragment(options: &Options) -> Fragment {
    Fragment::new()
        .resource(
            BACKUP_RULE,
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Description": "Periodic etcd snapshot to the backup bucket",
                    "ScheduleExpression": options.backup_schedule.as_str(),
                    "State": "ENABLED",
                    "Targets": [{ "Id": "backup", "Arn": get_att(BACKUP_FUNCTION, "Arn") }],
                },
            }),
        )
        .resource(
            RECONCILE_RULE,
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Description": "Removes etcd members whose instances left the group without a lifecycle message",
                    "ScheduleExpression": options.reconcile_schedule.as_str(),
                    "State": "ENABLED",
                    "Targets": [{
                        "Id": "reconcile",
                        "Arn": get_att(LIFECYCLE_FUNCTION, "Arn"),
                        "Input": RECONCILE_PAYLOAD,
                    }],
                },
            }),
        )
        .resource(
            MAINTENANCE_RULE,
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Description": "etcd health metrics, defragmentation and NOSPACE recovery",
                    "ScheduleExpression": options.maintenance_schedule.as_str(),
                    "State": "ENABLED",
                    "Targets": [{
                        "Id": "maintenance",
                        "Arn": get_att(MAINTENANCE_FUNCTION, "Arn"),
                        "Input": Job::Maintenance.payload().to_string(),
                    }],
                },
            }),
        )
        .resource(
            CAPTURE_RULE,
            json!({
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Description": "Continuous backup: a capture run every minute",
                    "ScheduleExpression": CAPTURE_SCHEDULE,
                    "State": "ENABLED",
                    "Targets": [{
                        "Id": "capture",
                        "Arn": get_att(CAPTURE_FUNCTION, "Arn"),
                        "Input": Job::Capture.payload().to_string(),
                    }],
                },
            }),
        )
        .resource(
            "CaptureSchedulePermission",
            json!({
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": reference(CAPTURE_FUNCTION),
                    "Principal": "events.amazonaws.com",
                    "SourceArn": get_att(CAPTURE_RULE, "Arn"),
                },
            }),
        )
        .resource(
            "MaintenanceSchedulePermission",
            json!({
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": reference(MAINTENANCE_FUNCTION),
                    "Principal": "events.amazonaws.com",
                    "SourceArn": get_att(MAINTENANCE_RULE, "Arn"),
                },
            }),
        )
        .resource(
            "BackupSchedulePermission",
            json!({
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": reference(BACKUP_FUNCTION),
                    "Principal": "events.amazonaws.com",
                    "SourceArn": get_att(BACKUP_RULE, "Arn"),
                },
            }),
        )
        .resource(
            "ReconcileSchedulePermission",
            json!({
                "Type": "AWS::Lambda::Permission",
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": reference(LIFECYCLE_FUNCTION),
                    "Principal": "events.amazonaws.com",
                    "SourceArn": get_att(RECONCILE_RULE, "Arn"),
                },
            }),
        )
}
