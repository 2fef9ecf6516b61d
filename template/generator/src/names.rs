//! The names the template uses more than once.
//!
//! What the template shares with the binaries (environment variables, metrics,
//! ports, secrets, paths) is defined once in [`etcd_aws_core::contract`] and
//! re-exported here; what only the template knows (logical ids, parameters,
//! conditions, the install layout) is defined here. Every module of this crate
//! and every test reads them from here.

use etcd_aws_core::contract;
use etcd_aws_core::contract::names as shared;

/// The node agent binary, run by systemd on every instance.
pub const AGENT_BINARY: &str = "etcd-aws";
/// The systemd unit that runs the agent.
pub const AGENT_UNIT: &str = "etcd-aws.service";
/// The systemd unit that signals CloudFormation once the node is a healthy voting member.
pub const READY_UNIT: &str = "etcd-aws-ready.service";
/// Where user-data installs the agent and the etcd binaries (put on the agent's PATH).
pub const INSTALL_DIR: &str = "/opt/etcd-aws/bin";
/// etcd's data directory on the instances.
pub const DATA_DIR: &str = shared::paths::DATA_DIR;
/// Where the agent writes the node's certificate and key.
pub const TLS_DIR: &str = shared::paths::TLS_DIR;
/// The file the agent writes once its node is a healthy voting member (in the agent
/// unit's runtime directory).
pub const READY_FILE: &str = "/run/etcd-aws/ready";
/// Prefix of backup objects in the backup bucket.
pub const BACKUP_PREFIX: &str = shared::bucket::BACKUP_PREFIX;
/// Where a restore order and its acknowledgements live, under the backup prefix.
pub const RESTORE_DIR: &str = shared::bucket::RESTORE_DIR;
/// Where the nodes acknowledge a CA rotation's stages, under the backup prefix.
pub const CA_ROTATION_DIR: &str = shared::bucket::CA_ROTATION_DIR;

/// The names the binaries read: environment variables, secrets, metrics and ports.
pub use contract::{events, metrics};
pub use shared::{env, ports, secrets};

/// The Lambda functions: cargo package names (what `cargo lambda build` produces a zip
/// for) and how they run.
pub mod functions {
    pub const LIFECYCLE_PACKAGE: &str = "etcd-aws-lifecycle";
    pub const BACKUP_PACKAGE: &str = "etcd-aws-backup";
    pub const RUNTIME: &str = "provided.al2023";
    pub const HANDLER: &str = "bootstrap";
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
    /// The backup run's role (and the operator's status job's): writes
    /// snapshots, and alone deletes them (retention).
    pub const BACKUP_FUNCTION_ROLE: &str = "BackupFunctionRole";
    /// The maintenance run's role: may write a snapshot, delete nothing.
    pub const MAINTENANCE_FUNCTION_ROLE: &str = "MaintenanceFunctionRole";
    /// The capture's role: writes segments and snapshots, deletes only
    /// segments.
    pub const CAPTURE_FUNCTION_ROLE: &str = "CaptureFunctionRole";
    /// The backup function's code on its own schedule and concurrency: health
    /// metrics, defragmentation, NOSPACE recovery.
    pub const MAINTENANCE_FUNCTION: &str = "MaintenanceFunction";
    /// The backup function's code once more, every minute: the continuous
    /// backup's capture of every change into segments.
    pub const CAPTURE_FUNCTION: &str = "CaptureFunction";
    pub const BACKUP_BUCKET: &str = "BackupBucket";
    /// The bucket's encryption key: only the cluster and its operators use it.
    pub const BACKUP_KEY: &str = "BackupKey";
    pub const ALARM_TOPIC: &str = "AlarmTopic";
    pub const DASHBOARD: &str = "Dashboard";
    pub const ENCRYPTION_KEY: &str = "EncryptionKey";
    /// The nodes' agent and etcd logs, and the key that encrypts them.
    pub const NODE_LOGS: &str = "NodeLogs";
    pub const NODE_LOGS_KEY: &str = "NodeLogsKey";
    /// The KMS key operators sign their instructions to the nodes with.
    pub const ORDER_SIGNING_KEY: &str = "OrderSigningKey";
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
    /// etcd's backend quota in bytes, for the agent and the maintenance function.
    pub const QUOTA_BACKEND_BYTES: &str = "EtcdQuotaBackendBytes";
    /// An existing VPC the stack deploys into, and its private subnets.
    pub const VPC_ID: &str = "VpcId";
    pub const SUBNET_IDS: &str = "SubnetIds";
    /// What a restore does with the leases it brings back: revoke or keep.
    pub const RESTORE_LEASES: &str = "RestoreLeases";
    /// Days CloudWatch Logs keeps the nodes' logs.
    pub const NODE_LOG_RETENTION_DAYS: &str = "NodeLogRetentionDays";
    /// The IAM roles that may sign restore orders and start-empty permits.
    pub const OPERATOR_ROLE_ARNS: &str = "OperatorRoleArns";
    /// SHA-256 of the `etcd-aws` agent binary: user-data refuses any other.
    pub const AGENT_SHA256: &str = "AgentSha256";
    /// S3 object versions of the functions' zips in the artifact bucket (filled in
    /// by `etcd-aws-cfn`, which uploads them).
    pub const LIFECYCLE_CODE_VERSION: &str = "LifecycleCodeVersion";
    pub const BACKUP_CODE_VERSION: &str = "BackupCodeVersion";
}

/// The stack's outputs that the operator's commands read.
pub mod outputs {
    pub const BACKUP_BUCKET_NAME: &str = "BackupBucketName";
    pub const BACKUP_FUNCTION_NAME: &str = "BackupFunctionName";
    pub const AUTO_SCALING_GROUP_NAME: &str = "AutoScalingGroupName";
    pub const LIFECYCLE_QUEUE_URL: &str = "LifecycleQueueUrl";
    pub const LIFECYCLE_DEAD_LETTER_QUEUE_URL: &str = "LifecycleDeadLetterQueueUrl";
    /// Every function's log group, comma-separated.
    pub const FUNCTION_LOG_GROUP_NAMES: &str = "FunctionLogGroupNames";
    /// The KMS key operators sign their instructions to the nodes with.
    pub const ORDER_SIGNING_KEY_ARN: &str = "OrderSigningKeyArn";
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
