//! What the stack does for a cluster that runs for months: etcd's quota, the
//! maintenance schedule, etcd's health in CloudWatch, and the etcd release the
//! nodes install.

mod common;

use common::*;
use etcd_aws_template::names::{env, logical, metrics, parameters};
use etcd_aws_template::options::{Options, QuotaBytes};
use serde_json::{json, Value};

fn parameter_ref(name: &str) -> Value {
    json!({ "Ref": name })
}

fn environment<'a>(template: &'a Value, function: &str) -> &'a Value {
    &resource(template, function)["Properties"]["Environment"]["Variables"]
}

// The quota.

#[test]
fn quota_is_a_parameter_with_etcds_default_and_its_suggested_maximum() {
    let template = default_template();
    let quota = &template["Parameters"][parameters::QUOTA_BACKEND_BYTES];
    assert_eq!(quota["Type"], "Number");
    assert_eq!(quota["Default"], json!(2u64 * 1024 * 1024 * 1024));
    assert_eq!(quota["MaxValue"], json!(8u64 * 1024 * 1024 * 1024));
    assert_eq!(quota["MinValue"], json!(QuotaBytes::MIN));
}

#[test]
fn the_nodes_and_the_maintenance_function_get_the_same_quota() {
    let template = default_template();
    let script = user_data_script(&template);
    let line = format!(
        "Environment={}=${{{}}}",
        env::QUOTA_BACKEND_BYTES,
        parameters::QUOTA_BACKEND_BYTES
    );
    assert!(script.contains(&line), "user-data lacks {line}");
    assert_eq!(
        environment(&template, logical::MAINTENANCE_FUNCTION)[env::QUOTA_BACKEND_BYTES],
        parameter_ref(parameters::QUOTA_BACKEND_BYTES)
    );
}

#[test]
fn a_quota_past_etcds_suggested_maximum_is_refused_with_the_bounds() {
    let error = "17179869184"
        .parse::<QuotaBytes>()
        .expect_err("16 GiB is refused");
    let text = error.to_string();
    assert!(text.contains(&QuotaBytes::MIN.to_string()), "{text}");
    assert!(text.contains(&QuotaBytes::MAX.to_string()), "{text}");
    assert!("1073741824".parse::<QuotaBytes>().is_ok());
}

// Maintenance.

#[test]
fn maintenance_runs_every_minute_as_its_own_function_from_the_backup_code() {
    let template = default_template();
    let rule = &resource(&template, "MaintenanceSchedule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 minute)");
    let target = &rule["Targets"][0];
    assert_eq!(
        target["Arn"],
        json!({ "Fn::GetAtt": [logical::MAINTENANCE_FUNCTION, "Arn"] })
    );
    let input: Value = serde_json::from_str(target["Input"].as_str().unwrap_or_default())
        .expect("the maintenance input is JSON");
    assert_eq!(input, json!({ "job": "maintenance" }));

    let maintenance = &resource(&template, logical::MAINTENANCE_FUNCTION)["Properties"];
    let backup = &resource(&template, logical::BACKUP_FUNCTION)["Properties"];
    assert_eq!(maintenance["Code"], backup["Code"], "not the backup code");
    // Under a role of its own (tests/backup_roles.rs says what it may do).
    assert_eq!(
        maintenance["Role"],
        json!({ "Fn::GetAtt": [logical::MAINTENANCE_FUNCTION_ROLE, "Arn"] })
    );
    // One run at a time, and never waiting behind a long snapshot.
    assert_eq!(maintenance["ReservedConcurrentExecutions"], 1);
}

#[test]
fn maintenance_backs_up_first_when_the_newest_backup_is_older_than_one_interval() {
    let template = default_template();
    assert_eq!(
        environment(&template, logical::MAINTENANCE_FUNCTION)[env::MAINTENANCE_BACKUP_MAX_AGE],
        "900s"
    );
}

#[test]
fn an_unchanged_cluster_is_backed_up_anew_before_the_stale_backup_alarm_fires() {
    let template = default_template();
    // Refreshed after two 15-minute intervals; the alarm fires after three.
    assert_eq!(
        environment(&template, logical::BACKUP_FUNCTION)[env::BACKUP_REFRESH_AFTER],
        "1800s"
    );
    assert_eq!(
        resource(&template, "BackupStaleAlarm")["Properties"]["Threshold"],
        json!(2700.0)
    );
}

// Health in CloudWatch.

/// The alarm `id`'s metric, statistic, comparison, threshold, evaluation window in
/// seconds and treatment of missing data.
fn alarm(template: &Value, id: &str) -> (Value, Value, Value, Value, u64, Value) {
    let p = &resource(template, id)["Properties"];
    let window = p["Period"].as_u64().unwrap_or(0) * p["EvaluationPeriods"].as_u64().unwrap_or(0);
    (
        p["MetricName"].clone(),
        p["Statistic"].clone(),
        p["ComparisonOperator"].clone(),
        p["Threshold"].clone(),
        window,
        p["TreatMissingData"].clone(),
    )
}

#[test]
fn etcd_health_alarms_watch_the_maintenance_metrics() {
    let template = default_template();
    let cases = [
        (
            "EtcdQuotaAlarm",
            metrics::DB_QUOTA_USED,
            "Maximum",
            "GreaterThanThreshold",
            80.0,
            300,
            "notBreaching",
        ),
        (
            "EtcdNoLeaderAlarm",
            metrics::HAS_LEADER,
            "Minimum",
            "LessThanThreshold",
            1.0,
            180,
            "breaching",
        ),
        (
            "EtcdCorruptAlarm",
            metrics::CORRUPT_ALARMS,
            "Maximum",
            "GreaterThanOrEqualToThreshold",
            1.0,
            60,
            "notBreaching",
        ),
        (
            "EtcdNospaceAlarm",
            metrics::NOSPACE_ALARMS,
            "Maximum",
            "GreaterThanOrEqualToThreshold",
            1.0,
            300,
            "notBreaching",
        ),
        (
            "EtcdNospaceUnrecoveredAlarm",
            metrics::NOSPACE_UNRECOVERED,
            "Maximum",
            "GreaterThanOrEqualToThreshold",
            1.0,
            60,
            "notBreaching",
        ),
        (
            "EtcdVotersMissingAlarm",
            metrics::VOTING_MEMBERS,
            "Minimum",
            "LessThanThreshold",
            3.0,
            900,
            "breaching",
        ),
    ];
    for (id, metric, statistic, comparison, threshold, window, missing) in cases {
        assert_eq!(
            alarm(&template, id),
            (
                json!(metric),
                json!(statistic),
                json!(comparison),
                json!(threshold),
                window,
                json!(missing)
            ),
            "{id}"
        );
        let p = &resource(&template, id)["Properties"];
        assert_eq!(p["Namespace"], metrics::NAMESPACE, "{id}");
        assert_eq!(
            p["Dimensions"],
            json!([{ "Name": metrics::GROUP_DIMENSION, "Value": { "Ref": logical::AUTO_SCALING_GROUP } }]),
            "{id}"
        );
    }
}

#[test]
fn five_nodes_alarm_below_five_voters() {
    let template = template_for(&everything_options());
    assert_eq!(
        resource(&template, "EtcdVotersMissingAlarm")["Properties"]["Threshold"],
        json!(5.0)
    );
}

#[test]
fn the_maintenance_function_has_an_error_alarm() {
    let template = default_template();
    let p = &resource(&template, "MaintenanceFunctionErrorsAlarm")["Properties"];
    assert_eq!(p["Namespace"], "AWS/Lambda");
    assert_eq!(
        p["Dimensions"][0]["Value"],
        json!({ "Ref": logical::MAINTENANCE_FUNCTION })
    );
}

#[test]
fn the_dashboard_shows_every_health_metric() {
    let template = default_template();
    let body = resource(&template, logical::DASHBOARD)["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("the dashboard body is a Fn::Sub string")
        .to_string();
    for metric in [
        metrics::DB_SIZE,
        metrics::DB_SIZE_IN_USE,
        metrics::DB_QUOTA,
        metrics::HAS_LEADER,
        metrics::RAFT_TERM,
        metrics::VOTING_MEMBERS,
        metrics::LEARNERS,
        metrics::MEMBERS_ANSWERING,
        metrics::NOSPACE_ALARMS,
        metrics::CORRUPT_ALARMS,
        metrics::NOSPACE_UNRECOVERED,
        metrics::DEFRAGMENTED_MEMBERS,
    ] {
        assert!(
            body.contains(&format!("\"{metric}\"")),
            "the dashboard lacks {metric}"
        );
    }
}

// The etcd release.

/// The etcd release `make test` runs (the Makefile's LOCAL_ETCD).
fn tested_etcd() -> String {
    let makefile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Makefile"))
        .expect("the Makefile is readable");
    makefile
        .lines()
        .find_map(|line| line.strip_prefix("LOCAL_ETCD := "))
        .expect("the Makefile sets LOCAL_ETCD")
        .trim()
        .to_string()
}

#[test]
fn the_default_etcd_is_the_release_the_tests_run() {
    assert_eq!(Options::default().etcd_version.as_str(), tested_etcd());
}

#[test]
fn the_default_checksum_is_the_pin_for_the_nodes_architecture() {
    let pins = etcd_aws_template::etcd_archive::pinned();
    for (options, architecture) in [
        (Options::default(), "arm64"),
        (
            Options {
                instance_type: parse("m7i.large"),
                ..Options::default()
            },
            "amd64",
        ),
    ] {
        let template = template_for(&options);
        let pin = pins
            .iter()
            .find(|pin| pin.architecture == architecture && pin.version == tested_etcd())
            .expect("the tested release is pinned");
        assert_eq!(
            template["Parameters"][parameters::ETCD_SHA256]["Default"],
            json!(pin.sha256),
            "{architecture}"
        );
    }
}

#[test]
fn a_given_checksum_wins_over_the_pin() {
    let sha = "ab".repeat(32);
    let template = template_for(&Options {
        etcd_sha256: Some(parse(&sha)),
        ..Options::default()
    });
    assert_eq!(
        template["Parameters"][parameters::ETCD_SHA256]["Default"],
        json!(sha)
    );
}

#[test]
fn a_release_this_project_does_not_build_has_no_default_checksum() {
    let template = template_for(&Options {
        etcd_version: parse("3.5.21"),
        ..Options::default()
    });
    assert!(template["Parameters"][parameters::ETCD_SHA256]
        .get("Default")
        .is_none());
}

// Certificates.

#[test]
fn every_certificate_kind_has_a_warning_a_month_and_a_critical_alarm_a_week_ahead() {
    let template = default_template();
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    for metric in [
        metrics::NODE_CERTIFICATE_DAYS_LEFT,
        metrics::FUNCTIONS_CERTIFICATE_DAYS_LEFT,
        metrics::CA_DAYS_LEFT,
    ] {
        let mut thresholds: Vec<f64> = alarms
            .iter()
            .map(|(_, alarm)| &alarm["Properties"])
            .filter(|p| p["MetricName"] == metric && p["Namespace"] == metrics::NAMESPACE)
            .map(|p| {
                assert_eq!(p["ComparisonOperator"], "LessThanThreshold", "{metric}");
                assert_eq!(p["Statistic"], "Minimum", "{metric}");
                assert_eq!(
                    p["Dimensions"][0]["Name"],
                    metrics::GROUP_DIMENSION,
                    "{metric}"
                );
                p["Threshold"].as_f64().unwrap_or(f64::NAN)
            })
            .collect();
        thresholds.sort_by(f64::total_cmp);
        assert_eq!(thresholds, vec![7.0, 30.0], "{metric}");
    }
}
