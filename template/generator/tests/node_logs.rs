//! The nodes' logs outlive the nodes: the agent's and etcd's lines reach a log
//! group of the stack, and the events an operator must hear of raise alarms.

mod common;

use common::*;
use etcd_aws_core::etcd::disk;
use etcd_aws_template::names::metrics::from_node_logs::DATA_DISK_USED;
use etcd_aws_template::names::{events, logical, parameters};
use etcd_aws_template::node_logs::{self, DATA_DISK_ALARM, EVENT_KINDS, LOG_FILE};
use serde_json::{json, Value};

#[test]
fn node_logs_go_to_a_group_of_the_stack_encrypted_with_its_own_rotating_key() {
    let template = default_template();
    let group = &resource(&template, logical::NODE_LOGS)["Properties"];
    assert_eq!(
        group["LogGroupName"],
        json!({ "Fn::Sub": "/etcd-aws/${AWS::StackName}/nodes" })
    );
    assert_eq!(
        group["KmsKeyId"],
        json!({ "Fn::GetAtt": [logical::NODE_LOGS_KEY, "Arn"] })
    );
    let key = &resource(&template, logical::NODE_LOGS_KEY)["Properties"];
    assert_eq!(key["EnableKeyRotation"], true);
    let logs_statement = key["KeyPolicy"]["Statement"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["Principal"]["Service"].is_object()))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        logs_statement["Principal"]["Service"],
        json!({ "Fn::Sub": "logs.${AWS::Region}.amazonaws.com" })
    );
    // Only for this stack's node log group.
    assert_eq!(
        logs_statement["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"],
        json!({ "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/etcd-aws/${AWS::StackName}/nodes" })
    );
}

#[test]
fn retention_is_a_parameter_with_a_three_month_default_of_the_values_logs_accepts() {
    let template = default_template();
    let parameter = &template["Parameters"][parameters::NODE_LOG_RETENTION_DAYS];
    assert_eq!(parameter["Default"], 90);
    let allowed = parameter["AllowedValues"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(allowed.contains(&json!(90)) && allowed.contains(&json!(3653)));
    assert_eq!(
        resource(&template, logical::NODE_LOGS)["Properties"]["RetentionInDays"],
        json!({ "Ref": parameters::NODE_LOG_RETENTION_DAYS })
    );
}

#[test]
fn user_data_sends_the_agents_output_to_the_file_the_cloudwatch_agent_ships() {
    let script = user_data_script(&default_template());
    for line in [
        "dnf install -y -q amazon-cloudwatch-agent",
        &format!("StandardOutput=append:{LOG_FILE}"),
        &format!("StandardError=append:{LOG_FILE}"),
        "amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s",
        "/etc/logrotate.d/etcd-aws",
    ] {
        assert!(script.contains(line), "user-data lacks {line:?}");
    }
    // The CloudWatch agent starts before the etcd-aws unit, so its first lines ship.
    let shipper = script
        .find("amazon-cloudwatch-agent-ctl")
        .unwrap_or(usize::MAX);
    let agent = script
        .find("systemctl enable --now etcd-aws.service")
        .unwrap_or(0);
    assert!(shipper < agent);
}

#[test]
fn the_cloudwatch_agent_ships_the_file_to_the_group_one_stream_per_instance() {
    let config: Value =
        serde_json::from_str(&node_logs::cloudwatch_agent_config()).expect("the config is JSON");
    let file = &config["logs"]["logs_collected"]["files"]["collect_list"][0];
    assert_eq!(file["file_path"], LOG_FILE);
    assert_eq!(file["log_group_name"], "${NodeLogs}");
    assert_eq!(file["log_stream_name"], "{instance_id}");
    assert!(user_data_script(&default_template()).contains(&node_logs::cloudwatch_agent_config()));
}

#[test]
fn the_node_role_may_write_to_its_own_log_group_only() {
    let template = default_template();
    let statement = iam_statements(&template)
        .into_iter()
        .find(|(role, s)| role == logical::NODE_ROLE && s["Sid"] == "ShipNodeLogs")
        .map(|(_, s)| s)
        .expect("the node role ships logs");
    assert_eq!(
        statement["Resource"],
        json!([{ "Fn::GetAtt": [logical::NODE_LOGS, "Arn"] }])
    );
    let actions = strings(&statement["Action"]);
    assert!(
        !actions
            .iter()
            .any(|a| a.contains("CreateLogGroup") || a.contains('*')),
        "{actions:?}"
    );
}

#[test]
fn endpoints_mode_reaches_cloudwatch_logs_without_the_internet() {
    let template = template_for(&endpoints_options());
    assert_eq!(
        resource(&template, "LogsEndpoint")["Properties"]["ServiceName"],
        json!({ "Fn::Sub": "com.amazonaws.${AWS::Region}.logs" })
    );
}

#[test]
fn each_event_kind_has_a_filter_on_its_event_field_and_an_alarm_to_the_topic() {
    let template = default_template();
    let expected = [
        events::GAVE_UP_WAITING,
        events::BACKUP_DAMAGED,
        events::OLDER_BACKUP_RESTORED,
        events::SEGMENTS_UNRECOVERABLE,
        events::EMPTY_START_REFUSED,
        events::INSTRUCTION_REFUSED,
        events::FORCE_NEW_CLUSTER,
        events::ETCD_EXITED,
        events::DATA_DIVERGED,
    ];
    assert_eq!(
        EVENT_KINDS.iter().map(|k| k.event).collect::<Vec<_>>(),
        expected
    );
    for kind in EVENT_KINDS {
        let filter = &resource(&template, &format!("{}Filter", kind.metric))["Properties"];
        assert_eq!(filter["LogGroupName"], json!({ "Ref": logical::NODE_LOGS }));
        assert_eq!(
            filter["FilterPattern"],
            format!("{{ $.event = \"{}\" }}", kind.event)
        );
        let transformation = &filter["MetricTransformations"][0];
        assert_eq!(transformation["MetricName"], kind.metric);
        assert_eq!(transformation["MetricValue"], "1");
        let alarm = &resource(&template, kind.alarm)["Properties"];
        assert_eq!(alarm["MetricName"], kind.metric);
        assert_eq!(alarm["Namespace"], transformation["MetricNamespace"]);
        assert_eq!(
            alarm["AlarmActions"],
            json!([{ "Ref": logical::ALARM_TOPIC }])
        );
        assert_eq!(alarm["TreatMissingData"], "notBreaching");
    }
    let exits = &resource(&template, "RepeatedEtcdExitsAlarm")["Properties"];
    assert_eq!(
        (exits["Threshold"].clone(), exits["Period"].clone()),
        (json!(3.0), json!(900))
    );
}

#[test]
fn the_dashboard_has_a_logs_insights_query_per_event_kind() {
    let template = default_template();
    let body = resource(&template, logical::DASHBOARD)["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let dashboard: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
    let queries: Vec<String> = dashboard["widgets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["type"] == "log")
        .filter_map(|w| w["properties"]["query"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(queries.len(), EVENT_KINDS.len());
    for kind in EVENT_KINDS {
        assert!(
            queries.iter().any(|q| q.starts_with("SOURCE '${NodeLogs}'")
                && q.contains(&format!("filter event = \"{}\"", kind.event))),
            "no query for {}: {queries:?}",
            kind.event
        );
    }
}

#[test]
fn the_fullest_nodes_data_disk_past_the_threshold_raises_an_alarm() {
    let template = default_template();
    let filter = &resource(&template, &format!("{DATA_DISK_USED}Filter"))["Properties"];
    assert_eq!(filter["LogGroupName"], json!({ "Ref": logical::NODE_LOGS }));
    assert_eq!(
        filter["FilterPattern"],
        format!("{{ $.{} = \"{}\" }}", events::FIELD, events::DATA_DISK_USE)
    );
    let transformation = &filter["MetricTransformations"][0];
    assert_eq!(transformation["MetricName"], DATA_DISK_USED);
    // The measure itself, not a count of lines.
    assert_eq!(transformation["MetricValue"], "$.used_percent");
    assert_eq!(transformation["Unit"], "Percent");

    let alarm = &resource(&template, DATA_DISK_ALARM)["Properties"];
    assert_eq!(alarm["MetricName"], DATA_DISK_USED);
    assert_eq!(alarm["Namespace"], transformation["MetricNamespace"]);
    // Every node feeds the one metric: its maximum is the fullest node.
    assert_eq!(alarm["Statistic"], "Maximum");
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(alarm["Threshold"], json!(disk::USED_ALARM_PERCENT));
    assert_eq!(alarm["Threshold"], json!(80.0));
    // Each period holds a report of every node.
    let period = alarm["Period"].as_u64().unwrap_or_default();
    assert!(
        period >= 2 * disk::USE_REPORT_INTERVAL_SECONDS && period % 60 == 0,
        "{period}"
    );
    assert_eq!(
        alarm["AlarmActions"],
        json!([{ "Ref": logical::ALARM_TOPIC }])
    );
}
