//! What the stack does for the continuous backup: a capture run every minute,
//! from the backup code, overlapping its successor, and the alarms that say
//! when the loss window is not kept.

mod common;

use common::*;
use etcd_aws_template::names::{logical, metrics};
use serde_json::{json, Value};

#[test]
fn a_capture_runs_every_minute_as_its_own_function_from_the_backup_code() {
    let template = default_template();
    let rule = &resource(&template, "CaptureSchedule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 minute)");
    let target = &rule["Targets"][0];
    assert_eq!(
        target["Arn"],
        json!({ "Fn::GetAtt": [logical::CAPTURE_FUNCTION, "Arn"] })
    );
    let input: Value = serde_json::from_str(target["Input"].as_str().unwrap_or_default())
        .expect("the capture input is JSON");
    assert_eq!(input, json!({ "job": "capture" }));

    let capture = &resource(&template, logical::CAPTURE_FUNCTION)["Properties"];
    let backup = &resource(&template, logical::BACKUP_FUNCTION)["Properties"];
    assert_eq!(capture["Code"], backup["Code"], "not the backup code");
    // Under a role of its own (tests/backup_roles.rs says what it may do).
    assert_eq!(
        capture["Role"],
        json!({ "Fn::GetAtt": [logical::CAPTURE_FUNCTION_ROLE, "Arn"] })
    );
}

#[test]
fn two_capture_runs_may_overlap_but_not_three() {
    let template = default_template();
    let capture = &resource(&template, logical::CAPTURE_FUNCTION)["Properties"];
    assert_eq!(capture["ReservedConcurrentExecutions"], 2);
}

#[test]
fn the_capture_refreshes_an_unchanged_clusters_snapshot_like_the_backup_runs() {
    let template = default_template();
    let variables = |id: &str| {
        resource(&template, id)["Properties"]["Environment"]["Variables"]
            [etcd_aws_template::names::env::BACKUP_REFRESH_AFTER]
            .clone()
    };
    assert_eq!(
        variables(logical::CAPTURE_FUNCTION),
        variables(logical::BACKUP_FUNCTION)
    );
}

#[test]
fn a_loss_window_above_five_seconds_for_five_minutes_raises_an_alarm() {
    let template = default_template();
    let p = &resource(&template, "CaptureLossWindowAlarm")["Properties"];
    assert_eq!(p["MetricName"], metrics::CAPTURE_LOSS_WINDOW);
    assert_eq!(p["Statistic"], "Maximum");
    assert_eq!(p["Period"], 60);
    assert_eq!(p["EvaluationPeriods"], 5);
    assert_eq!(p["Threshold"], 5.0);
    // A capture that stopped reporting keeps no window at all.
    assert_eq!(p["TreatMissingData"], "breaching");
}

#[test]
fn a_gap_in_the_captured_history_raises_an_alarm_at_once() {
    let template = default_template();
    let p = &resource(&template, "CaptureGapAlarm")["Properties"];
    assert_eq!(p["MetricName"], metrics::CAPTURE_GAPS);
    assert_eq!(p["EvaluationPeriods"], 1);
    assert_eq!(p["Threshold"], 1.0);
}
