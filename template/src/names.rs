//! Names shared with the rest of the project, defined once.
//!
//! The node agent, the two functions and the template meet only through these strings:
//! a typo here would be a cluster that never finds its bucket, so every module of this
//! crate and every test reads them from here.

/// The node agent binary, run by systemd on every instance.
pub const AGENT_BINARY: &str = "etcd-aws";
/// The systemd unit that runs the agent.
pub const AGENT_UNIT: &str = "etcd-aws.service";
/// The systemd unit that signals CloudFormation once the node is a healthy voting member.
pub const READY_UNIT: &str = "etcd-aws-ready.service";
/// Where user-data installs the agent and the etcd binaries (put on the agent's PATH).
pub const INSTALL_DIR: &str = "/opt/etcd-aws/bin";
/// etcd's data directory on the instances.
pub const DATA_DIR: &str = "/var/lib/etcd";
/// Where the agent writes the node's certificate and key.
pub const TLS_DIR: &str = "/var/lib/etcd-aws/tls";
/// The file the agent writes once its node is a healthy voting member (in the agent
/// unit's runtime directory).
pub const READY_FILE: &str = "/run/etcd-aws/ready";
/// Prefix of backup objects in the backup bucket.
pub const BACKUP_PREFIX: &str = "backups/";

/// Environment variables read by the node agent and the functions.
pub mod env {
    pub const BACKUP_BUCKET: &str = "ETCD_BACKUP_BUCKET";
    pub const BACKUP_PREFIX: &str = "ETCD_BACKUP_PREFIX";
    pub const DATA_DIR: &str = "ETCD_DATA_DIR";
    pub const LOG_FORMAT: &str = "ETCD_AWS_LOG_FORMAT";
    pub const REGION: &str = "AWS_REGION";
    pub const GROUP_NAME: &str = "ETCD_AWS_GROUP_NAME";
    /// Where the agent writes its ready file.
    pub const READY_FILE: &str = "ETCD_AWS_READY_FILE";
    /// The secret holding the cluster CA, from which each node issues itself its
    /// certificate at boot (nodes only).
    pub const TLS_CA_SECRET: &str = "ETCD_AWS_TLS_CA_SECRET";
    /// Extra DNS names in each node's certificate (comma-separated), so that clients
    /// reaching a node through the load balancer can verify it by the balancer's name.
    pub const TLS_DNS_NAMES: &str = "ETCD_AWS_TLS_DNS_NAMES";
    /// Where the agent writes the node's certificate and key.
    pub const TLS_DIR: &str = "ETCD_AWS_TLS_DIR";
    /// The port on which etcd serves plain-HTTP `/health` and `/metrics`.
    pub const METRICS_PORT: &str = "ETCD_AWS_METRICS_PORT";
    /// The secret holding the functions' client certificate (functions only).
    pub const TLS_CLIENT_SECRET: &str = "ETCD_AWS_TLS_CLIENT_SECRET";
}

/// The Secrets Manager secrets `etcd-aws-cfn` creates before the stack, named after it.
pub mod secrets {
    /// The cluster CA (certificate and key). Only the nodes may read it: whoever holds
    /// it can issue a peer certificate and join the cluster.
    pub fn cluster_ca(stack: &str) -> String {
        format!("etcd-aws/{stack}/cluster-ca")
    }

    /// The functions' client certificate, issued from the CA (without the CA's key).
    pub fn functions_client(stack: &str) -> String {
        format!("etcd-aws/{stack}/functions-client")
    }

    /// The tag naming the stack a secret belongs to.
    pub const STACK_TAG: &str = "etcd-aws:stack";
}

/// The Lambda functions: cargo package names (what `cargo lambda build` produces a zip
/// for) and how they run.
pub mod functions {
    pub const LIFECYCLE_PACKAGE: &str = "etcd-aws-lifecycle";
    pub const BACKUP_PACKAGE: &str = "etcd-aws-backup";
    pub const RUNTIME: &str = "provided.al2023";
    pub const HANDLER: &str = "bootstrap";
    /// The scheduled event that asks the lifecycle function to reconcile members
    /// against the group instead of handling a queue message.
    pub const RECONCILE_EVENT: &str = r#"{"reconcile": true}"#;
}

/// The backup function's metrics (CloudWatch embedded metric format in its log lines),
/// which the alarms and the dashboard read.
pub mod metrics {
    pub const NAMESPACE: &str = "EtcdAws";
    /// Dimension holding the autoscaling group's name, so two stacks' metrics stay apart.
    pub const GROUP_DIMENSION: &str = "GroupName";
    /// Seconds since the newest backup was confirmed current (uploaded, or found to
    /// match an unchanged revision).
    pub const BACKUP_AGE: &str = "BackupAgeSeconds";
    pub const BACKUP_BYTES: &str = "BackupBytes";
    pub const BACKUP_DURATION: &str = "BackupDurationSeconds";
    pub const BACKUP_REVISION: &str = "BackupRevision";
}

/// etcd's ports.
pub mod ports {
    pub const CLIENT: u16 = 2379;
    pub const PEER: u16 = 2380;
    /// Plain-HTTP `/health` and `/metrics` without a client certificate: what the load
    /// balancer's health check can reach, since the client port requires one.
    pub const METRICS: u16 = 2381;
}

/// Logical ids that more than one module refers to.
pub mod logical {
    pub const VPC: &str = "Vpc";
    pub const PRIVATE_ROUTE_TABLE: &str = "PrivateRouteTable";
    pub const NODE_SECURITY_GROUP: &str = "NodeSecurityGroup";
    pub const FUNCTION_SECURITY_GROUP: &str = "FunctionSecurityGroup";
    pub const LOAD_BALANCER_SECURITY_GROUP: &str = "LoadBalancerSecurityGroup";
    pub const CLIENT_SECURITY_GROUP: &str = "ClientSecurityGroup";
    pub const ENDPOINT_SECURITY_GROUP: &str = "EndpointSecurityGroup";
    pub const NODE_ROLE: &str = "NodeRole";
    pub const NODE_INSTANCE_PROFILE: &str = "NodeInstanceProfile";
    pub const LAUNCH_TEMPLATE: &str = "NodeLaunchTemplate";
    pub const AUTO_SCALING_GROUP: &str = "EtcdAutoScalingGroup";
    pub const LIFECYCLE_HOOK_NAME: &str = "etcd-member-removal";
    pub const LIFECYCLE_QUEUE: &str = "LifecycleQueue";
    pub const LIFECYCLE_DEAD_LETTER_QUEUE: &str = "LifecycleDeadLetterQueue";
    pub const LIFECYCLE_HOOK_ROLE: &str = "LifecycleHookRole";
    pub const FAILED_INVOCATIONS_QUEUE: &str = "FailedInvocationsQueue";
    pub const LOAD_BALANCER: &str = "ClientLoadBalancer";
    pub const TARGET_GROUP: &str = "ClientTargetGroup";
    pub const LIFECYCLE_FUNCTION: &str = "LifecycleFunction";
    pub const LIFECYCLE_FUNCTION_ROLE: &str = "LifecycleFunctionRole";
    pub const LIFECYCLE_EVENT_SOURCE: &str = "LifecycleQueueEventSource";
    pub const BACKUP_FUNCTION: &str = "BackupFunction";
    pub const BACKUP_FUNCTION_ROLE: &str = "BackupFunctionRole";
    pub const BACKUP_BUCKET: &str = "BackupBucket";
    pub const ALARM_TOPIC: &str = "AlarmTopic";
    pub const DASHBOARD: &str = "Dashboard";
    pub const ENCRYPTION_KEY: &str = "EncryptionKey";
}

/// Template parameters: values the deployer may set at stack creation without
/// regenerating the template.
pub mod parameters {
    pub const IMAGE_ID: &str = "ImageId";
    pub const ALARM_EMAIL: &str = "AlarmEmail";
    pub const ARTIFACT_BUCKET: &str = "ArtifactBucket";
    pub const ETCD_SHA256: &str = "EtcdSha256";
    /// ARN of the secret holding the cluster CA (filled in by `etcd-aws-cfn`).
    pub const CLUSTER_CA_SECRET_ARN: &str = "ClusterCaSecretArn";
    /// ARN of the secret holding the functions' client certificate.
    pub const FUNCTIONS_CLIENT_SECRET_ARN: &str = "FunctionsClientSecretArn";
    /// ARN of the customer managed KMS key encrypting both secrets; empty for the AWS
    /// managed key `aws/secretsmanager`.
    pub const SECRETS_KMS_KEY_ARN: &str = "SecretsKmsKeyArn";
}

/// Template conditions that more than one module refers to.
pub mod conditions {
    /// The secrets are encrypted with a customer managed key, so the roles reading them
    /// need `kms:Decrypt` on it.
    pub const SECRETS_USE_CUSTOMER_KEY: &str = "SecretsUseCustomerKey";
}

/// Private subnets by index; one per availability zone.
pub fn private_subnet(index: usize) -> String {
    format!("PrivateSubnet{}", index + 1)
}

/// Public subnets by index; they exist only in NAT mode, for the NAT gateway.
pub fn public_subnet(index: usize) -> String {
    format!("PublicSubnet{}", index + 1)
}

/// How many availability zones the stack spreads over.
pub const ZONES: usize = 3;
