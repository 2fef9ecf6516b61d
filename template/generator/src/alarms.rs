//! Alarms, and the topic that makes sure someone receives them: the e-mail subscription
//! is part of the stack, so there is no alarm without a recipient.

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference};
use crate::names::logical::{
    ALARM_TOPIC, AUTO_SCALING_GROUP, BACKUP_FUNCTION, CAPTURE_FUNCTION, FAILED_INVOCATIONS_QUEUE,
    LIFECYCLE_DEAD_LETTER_QUEUE, LIFECYCLE_FUNCTION, LOAD_BALANCER, MAINTENANCE_FUNCTION,
    TARGET_GROUP,
};
use crate::names::metrics;
use crate::names::parameters::ALARM_EMAIL;
use crate::options::Options;
use crate::suppressions::{metadata, Skip};
use etcd_aws_core::certificates::expiry;

/// Backups count as stopped after this many missed runs.
const MISSED_BACKUPS: u64 = 3;
/// Backup-age limit when the schedule is a cron expression with no fixed interval.
const CRON_BACKUP_AGE_LIMIT: u64 = 2 * 86_400;

#[derive(Default)]
struct Alarm<'a> {
    id: &'a str,
    description: &'a str,
    namespace: &'a str,
    metric: &'a str,
    dimensions: Value,
    statistic: &'a str,
    period: u64,
    evaluation_periods: u32,
    comparison: &'a str,
    threshold: f64,
    /// What no data means: silence from a metric that should report is itself a fault.
    missing_data: &'a str,
}

fn alarm(a: &Alarm) -> (String, Value) {
    (
        a.id.to_string(),
        json!({
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": a.description,
                "Namespace": a.namespace,
                "MetricName": a.metric,
                "Dimensions": a.dimensions,
                "Statistic": a.statistic,
                "Period": a.period,
                "EvaluationPeriods": a.evaluation_periods,
                "ComparisonOperator": a.comparison,
                "Threshold": a.threshold,
                "TreatMissingData": a.missing_data,
                "AlarmActions": [reference(ALARM_TOPIC)],
                "OKActions": [reference(ALARM_TOPIC)],
            },
        }),
    )
}

/// The one dimension of the project's own metrics.
fn group_dimension() -> Value {
    json!([dimension(
        metrics::GROUP_DIMENSION,
        reference(AUTO_SCALING_GROUP)
    )])
}

fn dimension(name: &str, value: Value) -> Value {
    json!({ "Name": name, "Value": value })
}

/// The backup-age limit in seconds for the configured schedule.
pub fn backup_age_limit(options: &Options) -> u64 {
    options
        .backup_schedule
        .interval_seconds()
        .map(|interval| interval.saturating_mul(MISSED_BACKUPS))
        .unwrap_or(CRON_BACKUP_AGE_LIMIT)
}

/// Two alarms per certificate kind: a warning a month ahead, a critical one a
/// week ahead (the core's `certificates::expiry` thresholds). A node's
/// certificate renews itself at two thirds of its life, so either means the
/// renewal has been failing for months; the functions' certificate and the
/// CA need an operator.
fn certificate_expiry() -> Vec<(String, Value)> {
    let kinds = [
        (
            metrics::NODE_CERTIFICATE_DAYS_LEFT,
            "NodeCertificate",
            "A certificate an etcd member serves",
            "its agent renews it at two thirds of its life, so renewals have been failing: see the node's certificate_renewal_failed lines",
        ),
        (
            metrics::FUNCTIONS_CERTIFICATE_DAYS_LEFT,
            "FunctionsCertificate",
            "The functions' client certificate",
            "deploy again (a deploy renews it within 30 days of expiry) or run etcd-aws-cfn with --reissue-functions-certificate",
        ),
        (
            metrics::CA_DAYS_LEFT,
            "ClusterCa",
            "The cluster CA",
            "every certificate stops verifying when it expires: issue a new CA and re-issue every certificate (docs/operations.md, Certificate lifetimes and renewal)",
        ),
    ];
    let severities = [
        ("Expiring", expiry::WARNING_DAYS),
        ("Critical", expiry::CRITICAL_DAYS),
    ];
    let mut alarms = Vec::new();
    for (metric, prefix, what, remedy) in kinds {
        for (severity, days) in severities {
            let id = format!("{prefix}{severity}Alarm");
            let description = format!("{what} expires in less than {days} days; {remedy}");
            alarms.push(alarm(&Alarm {
                id: &id,
                description: &description,
                namespace: metrics::NAMESPACE,
                metric,
                dimensions: group_dimension(),
                statistic: "Minimum",
                period: 300,
                evaluation_periods: 1,
                comparison: "LessThanThreshold",
                threshold: days,
                missing_data: "notBreaching",
            }));
        }
    }
    alarms
}

/// Alarms on etcd's own health, from the maintenance function's metrics (one
/// line a minute by default). Missing data breaches where the metric must be
/// there on a healthy cluster: silence means the runs stopped.
fn etcd_health(options: &Options) -> Vec<Alarm<'static>> {
    let minutely = || Alarm {
        namespace: metrics::NAMESPACE,
        dimensions: group_dimension(),
        period: 60,
        missing_data: "notBreaching",
        ..Alarm::default()
    };
    vec![
        Alarm {
            id: "CaptureLossWindowAlarm",
            description: "The continuous backup's loss window above 5 seconds for 5 minutes (or no capture reporting): a total loss now would lose more than the README promises",
            metric: metrics::CAPTURE_LOSS_WINDOW,
            statistic: "Maximum",
            evaluation_periods: 5,
            comparison: "GreaterThanThreshold",
            threshold: 5.0,
            missing_data: "breaching",
            ..minutely()
        },
        Alarm {
            id: "CaptureGapAlarm",
            description: "etcd compacted history before the capture stored it (the capture was stopped for longer than etcd keeps history); a snapshot closed the gap, but writes in it could have been lost in a total loss",
            metric: metrics::CAPTURE_GAPS,
            statistic: "Sum",
            evaluation_periods: 1,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            ..minutely()
        },
        Alarm {
            id: "EtcdQuotaAlarm",
            description: "etcd's database above 80% of its quota for 5 minutes: at 100% writes stop (NOSPACE). Raise EtcdQuotaBackendBytes or delete data",
            metric: metrics::DB_QUOTA_USED,
            statistic: "Maximum",
            evaluation_periods: 5,
            comparison: "GreaterThanThreshold",
            threshold: 80.0,
            ..minutely()
        },
        Alarm {
            id: "EtcdNoLeaderAlarm",
            description: "No etcd leader for 3 minutes (or no health metrics): no writes are served",
            metric: metrics::HAS_LEADER,
            statistic: "Minimum",
            evaluation_periods: 3,
            comparison: "LessThanThreshold",
            threshold: 1.0,
            missing_data: "breaching",
            ..minutely()
        },
        Alarm {
            id: "EtcdCorruptAlarm",
            description: "An etcd member's data differs from its peers' (CORRUPT); see its agent's log",
            metric: metrics::CORRUPT_ALARMS,
            statistic: "Maximum",
            evaluation_periods: 1,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            ..minutely()
        },
        Alarm {
            id: "EtcdNospaceAlarm",
            description: "etcd's NOSPACE alarm raised for 5 minutes: writes are refused",
            metric: metrics::NOSPACE_ALARMS,
            statistic: "Maximum",
            evaluation_periods: 5,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            ..minutely()
        },
        Alarm {
            id: "EtcdNospaceUnrecoveredAlarm",
            description: "Space reclaimed, still above the quota: delete data or raise EtcdQuotaBackendBytes",
            metric: metrics::NOSPACE_UNRECOVERED,
            statistic: "Maximum",
            evaluation_periods: 1,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            ..minutely()
        },
        Alarm {
            id: "EtcdVotersMissingAlarm",
            description: "Fewer voting etcd members than the cluster size for 15 minutes",
            metric: metrics::VOTING_MEMBERS,
            statistic: "Minimum",
            period: 300,
            evaluation_periods: 3,
            comparison: "LessThanThreshold",
            threshold: f64::from(options.cluster_size.count()),
            missing_data: "breaching",
            ..minutely()
        },
    ]
}

pub fn fragment(options: &Options) -> Fragment {
    let size = f64::from(options.cluster_size.count());
    let queue = |id: &str| json!([dimension("QueueName", get_att(id, "QueueName"))]);
    let function = |id: &str| json!([dimension("FunctionName", reference(id))]);
    let mut alarms = vec![
        Alarm {
            id: "LifecycleDeadLetterAlarm",
            description: "A lifecycle message failed repeatedly and was moved to the dead-letter queue: a terminated node's member may still count against quorum",
            namespace: "AWS/SQS",
            metric: "ApproximateNumberOfMessagesVisible",
            dimensions: queue(LIFECYCLE_DEAD_LETTER_QUEUE),
            statistic: "Maximum",
            period: 300,
            evaluation_periods: 1,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            missing_data: "notBreaching",
        },
        Alarm {
            id: "FailedInvocationsAlarm",
            description: "A scheduled backup or reconcile failed every retry",
            namespace: "AWS/SQS",
            metric: "ApproximateNumberOfMessagesVisible",
            dimensions: queue(FAILED_INVOCATIONS_QUEUE),
            statistic: "Maximum",
            period: 300,
            evaluation_periods: 1,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            missing_data: "notBreaching",
        },
        Alarm {
            id: "LifecycleFunctionErrorsAlarm",
            description: "The lifecycle function is failing",
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimensions: function(LIFECYCLE_FUNCTION),
            statistic: "Sum",
            period: 300,
            evaluation_periods: 3,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            missing_data: "notBreaching",
        },
        Alarm {
            id: "BackupFunctionErrorsAlarm",
            description: "The backup function is failing",
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimensions: function(BACKUP_FUNCTION),
            statistic: "Sum",
            period: 3_600,
            evaluation_periods: 1,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            missing_data: "notBreaching",
        },
        Alarm {
            id: "BackupStaleAlarm",
            description: "No backup has been confirmed current for several scheduled runs (or the backup function stopped reporting)",
            namespace: metrics::NAMESPACE,
            metric: metrics::BACKUP_AGE,
            dimensions: json!([dimension(metrics::GROUP_DIMENSION, reference(AUTO_SCALING_GROUP))]),
            statistic: "Maximum",
            period: 3_600,
            evaluation_periods: 1,
            comparison: "GreaterThanThreshold",
            threshold: backup_age_limit(options) as f64,
            missing_data: "breaching",
        },
        Alarm {
            id: "UnhealthyNodesAlarm",
            description: "The load balancer finds an etcd node unhealthy",
            namespace: "AWS/NetworkELB",
            metric: "UnHealthyHostCount",
            dimensions: json!([
                dimension("TargetGroup", get_att(TARGET_GROUP, "TargetGroupFullName")),
                dimension("LoadBalancer", get_att(LOAD_BALANCER, "LoadBalancerFullName")),
            ]),
            statistic: "Maximum",
            period: 60,
            evaluation_periods: 5,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            missing_data: "breaching",
        },
        Alarm {
            id: "NodesMissingAlarm",
            description: "Fewer nodes are in service than the cluster size for 15 minutes",
            namespace: "AWS/AutoScaling",
            metric: "GroupInServiceInstances",
            dimensions: json!([dimension("AutoScalingGroupName", reference(AUTO_SCALING_GROUP))]),
            statistic: "Minimum",
            period: 300,
            evaluation_periods: 3,
            comparison: "LessThanThreshold",
            threshold: size,
            missing_data: "breaching",
        },
        Alarm {
            id: "CaptureFunctionErrorsAlarm",
            description: "The continuous backup's capture runs are failing: changes since the last segment are not in the bucket",
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimensions: function(CAPTURE_FUNCTION),
            statistic: "Sum",
            period: 300,
            evaluation_periods: 1,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 2.0,
            missing_data: "notBreaching",
        },
        Alarm {
            id: "MaintenanceFunctionErrorsAlarm",
            description: "The maintenance function is failing",
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimensions: function(MAINTENANCE_FUNCTION),
            statistic: "Sum",
            period: 300,
            evaluation_periods: 3,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: 1.0,
            missing_data: "notBreaching",
        },
    ];
    alarms.extend(etcd_health(options));
    let mut fragment = Fragment::new()
        .resource(
            ALARM_TOPIC,
            json!({
                "Type": "AWS::SNS::Topic",
                "Metadata": metadata(&[Skip {
                    check: "CKV_AWS_26",
                    reason: "Alarm notifications carry alarm names and states only; CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key, and a customer key per stack is not worth it for that",
                }]),
                "Properties": { "DisplayName": "etcd cluster alarms" },
            }),
        )
        .resource(
            "AlarmEmailSubscription",
            json!({
                "Type": "AWS::SNS::Subscription",
                "Properties": {
                    "TopicArn": reference(ALARM_TOPIC),
                    "Protocol": "email",
                    "Endpoint": reference(ALARM_EMAIL),
                },
            }),
        );
    for (id, body) in alarms.iter().map(alarm).chain(certificate_expiry()) {
        fragment = fragment.resource(&id, body);
    }
    fragment
}
