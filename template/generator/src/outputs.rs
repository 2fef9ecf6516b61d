//! What the stack tells its users: where clients connect, and the names the operators
//! and `cargo lambda deploy` need.

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::functions::log_group_id;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::logical::{
    ALARM_TOPIC, AUTO_SCALING_GROUP, BACKUP_BUCKET, BACKUP_FUNCTION, CAPTURE_FUNCTION,
    CLIENT_SECURITY_GROUP, DASHBOARD, LIFECYCLE_DEAD_LETTER_QUEUE, LIFECYCLE_FUNCTION,
    LIFECYCLE_QUEUE, LOAD_BALANCER, MAINTENANCE_FUNCTION, NODE_LOGS, ORDER_SIGNING_KEY,
};
use crate::names::outputs::{
    AUTO_SCALING_GROUP_NAME, BACKUP_BUCKET_NAME, BACKUP_FUNCTION_NAME, FUNCTION_LOG_GROUP_NAMES,
    LIFECYCLE_DEAD_LETTER_QUEUE_URL, LIFECYCLE_QUEUE_URL, ORDER_SIGNING_KEY_ARN,
};
use crate::names::parameters::{CLUSTER_CA_SECRET_ARN, FUNCTIONS_CLIENT_SECRET_ARN};
use crate::names::ports::CLIENT;
use crate::network;
use crate::options::Options;

fn output(description: &str, value: Value) -> Value {
    json!({ "Description": description, "Value": value })
}

pub fn fragment(options: &Options) -> Fragment {
    let function_logs: Vec<String> = [
        LIFECYCLE_FUNCTION,
        BACKUP_FUNCTION,
        MAINTENANCE_FUNCTION,
        CAPTURE_FUNCTION,
    ]
    .iter()
    .map(|function| format!("${{{}}}", log_group_id(function)))
    .collect();
    Fragment::new()
        .output("ClientEndpoint", output(
            "etcd client URL (internal load balancer, TLS passed through to etcd; a client certificate from etcd-aws-cfn issue-client-cert is required); clients then talk to the members it lists",
            sub(&format!("https://${{{LOAD_BALANCER}.DNSName}}:{CLIENT}")),
        ))
        .output("ClusterCaSecretArn", output(
            "Secret holding the cluster CA (nodes only; etcd-aws-cfn issue-client-cert issues client certificates from it)",
            reference(CLUSTER_CA_SECRET_ARN),
        ))
        .output("FunctionsClientSecretArn", output(
            "Secret holding the functions' client certificate",
            reference(FUNCTIONS_CLIENT_SECRET_ARN),
        ))
        .output("ClientSecurityGroupId", output(
            "Security group to attach to etcd clients",
            reference(CLIENT_SECURITY_GROUP),
        ))
        .output(BACKUP_BUCKET_NAME, output("Bucket holding the backups", reference(BACKUP_BUCKET)))
        .output(ORDER_SIGNING_KEY_ARN, output(
            "KMS key the operators sign restore orders and start-empty permits with (etcd-aws-cfn reads it)",
            get_att(ORDER_SIGNING_KEY, "Arn"),
        ))
        .output(LIFECYCLE_QUEUE_URL, output("Queue of terminating-instance notifications", reference(LIFECYCLE_QUEUE)))
        .output(LIFECYCLE_DEAD_LETTER_QUEUE_URL, output("Lifecycle messages that failed repeatedly", reference(LIFECYCLE_DEAD_LETTER_QUEUE)))
        .output("LifecycleFunctionName", output("For cargo lambda deploy", reference(LIFECYCLE_FUNCTION)))
        .output(BACKUP_FUNCTION_NAME, output("For cargo lambda deploy", reference(BACKUP_FUNCTION)))
        .output("MaintenanceFunctionName", output("For cargo lambda deploy (the backup code)", reference(MAINTENANCE_FUNCTION)))
        .output("CaptureFunctionName", output("For cargo lambda deploy (the backup code)", reference(CAPTURE_FUNCTION)))
        .output(FUNCTION_LOG_GROUP_NAMES, output(
            "The functions' log groups, comma-separated, where etcd-aws-cfn status looks for their recent errors",
            sub(&function_logs.join(",")),
        ))
        .output(AUTO_SCALING_GROUP_NAME, output("The etcd nodes' group", reference(AUTO_SCALING_GROUP)))
        .output("AlarmTopicArn", output("Where the alarms go", reference(ALARM_TOPIC)))
        .output("DashboardName", output("CloudWatch dashboard", reference(DASHBOARD)))
        .output("NodeLogGroupName", output("The nodes' agent and etcd logs, one stream per instance", reference(NODE_LOGS)))
        .output("VpcId", output("The cluster's VPC", network::vpc(options)))
        .output("PrivateSubnetIds", output(
            "The private subnets the nodes, the load balancer and the functions are in",
            json!({ "Fn::Join": [",", network::private_subnets(options)] }),
        ))
        .output("BackupBucketArn", output("Bucket ARN", get_att(BACKUP_BUCKET, "Arn")))
}
