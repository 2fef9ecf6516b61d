//! One CloudWatch dashboard with what an operator looks at first: nodes in service and
//! healthy, backup age and size, the functions' errors, the lifecycle queues, and
//! etcd's own health from the maintenance runs (database against its quota,
//! members, leader, alarms).

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::sub;
use crate::names::logical::{
    AUTO_SCALING_GROUP, BACKUP_FUNCTION, CAPTURE_FUNCTION, DASHBOARD, LIFECYCLE_DEAD_LETTER_QUEUE,
    LIFECYCLE_FUNCTION, LIFECYCLE_QUEUE, LOAD_BALANCER, MAINTENANCE_FUNCTION, TARGET_GROUP,
};
use crate::names::metrics;
use crate::node_logs;

fn widget(title: &str, position: (u32, u32), metrics: Vec<Value>) -> Value {
    json!({
        "type": "metric",
        "x": position.0, "y": position.1, "width": 12, "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "view": "timeSeries",
            "stat": "Maximum",
            "period": 300,
            "metrics": metrics,
        },
    })
}

/// The dashboard body. It is a `Fn::Sub` string, so `${Resource}` placeholders in it
/// become the stack's physical names.
pub fn body() -> Value {
    let group = format!("${{{AUTO_SCALING_GROUP}}}");
    let target_group = format!("${{{TARGET_GROUP}.TargetGroupFullName}}");
    let load_balancer = format!("${{{LOAD_BALANCER}.LoadBalancerFullName}}");
    let elb = |metric: &str| {
        json!([
            "AWS/NetworkELB",
            metric,
            "TargetGroup",
            target_group,
            "LoadBalancer",
            load_balancer
        ])
    };
    let backup =
        |metric: &str| json!([metrics::NAMESPACE, metric, metrics::GROUP_DIMENSION, group]);
    let etcd = backup;
    let lambda = |metric: &str, function: &str| json!(["AWS/Lambda", metric, "FunctionName", format!("${{{function}}}"), { "stat": "Sum" }]);
    let queue = |queue: &str| {
        json!([
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            format!("${{{queue}.QueueName}}")
        ])
    };
    let mut widgets = vec![
        widget(
            "Nodes",
            (0, 0),
            vec![
                json!([
                    "AWS/AutoScaling",
                    "GroupInServiceInstances",
                    "AutoScalingGroupName",
                    group
                ]),
                elb("HealthyHostCount"),
                elb("UnHealthyHostCount"),
            ],
        ),
        widget(
            "Backups",
            (12, 0),
            vec![
                backup(metrics::BACKUP_AGE),
                backup(metrics::BACKUP_BYTES),
                backup(metrics::BACKUP_DURATION),
                backup(metrics::CAPTURE_LOSS_WINDOW),
                backup(metrics::CAPTURE_LAG),
            ],
        ),
        widget(
            "Functions",
            (0, 6),
            vec![
                lambda("Invocations", LIFECYCLE_FUNCTION),
                lambda("Errors", LIFECYCLE_FUNCTION),
                lambda("Invocations", BACKUP_FUNCTION),
                lambda("Errors", BACKUP_FUNCTION),
                lambda("Errors", MAINTENANCE_FUNCTION),
                lambda("Errors", CAPTURE_FUNCTION),
            ],
        ),
        widget(
            "Lifecycle queues",
            (12, 6),
            vec![queue(LIFECYCLE_QUEUE), queue(LIFECYCLE_DEAD_LETTER_QUEUE)],
        ),
        widget(
            "etcd database against its quota",
            (0, 12),
            vec![
                etcd(metrics::DB_SIZE),
                etcd(metrics::DB_SIZE_IN_USE),
                etcd(metrics::DB_QUOTA),
            ],
        ),
        widget(
            "etcd members and leader",
            (12, 12),
            vec![
                etcd(metrics::VOTING_MEMBERS),
                etcd(metrics::LEARNERS),
                etcd(metrics::MEMBERS_ANSWERING),
                etcd(metrics::HAS_LEADER),
            ],
        ),
        widget(
            "etcd alarms and space reclaimed",
            (0, 18),
            vec![
                etcd(metrics::NOSPACE_ALARMS),
                etcd(metrics::CORRUPT_ALARMS),
                etcd(metrics::NOSPACE_UNRECOVERED),
                etcd(metrics::NOSPACE_RECOVERIES),
                etcd(metrics::DEFRAGMENTED_MEMBERS),
            ],
        ),
        // The term rises by one with every election: its steps are leader changes.
        widget("etcd raft term", (12, 18), vec![etcd(metrics::RAFT_TERM)]),
    ];
    // Below the graphs: a Logs Insights query per event kind of the nodes' logs.
    widgets.extend(node_logs::widgets(24));
    json!({ "widgets": widgets })
}

pub fn fragment() -> Fragment {
    Fragment::new().resource(
        DASHBOARD,
        json!({
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": { "DashboardBody": sub(&body().to_string()) },
        }),
    )
}
