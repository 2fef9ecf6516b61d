//! The Lambda functions (lifecycle, backup, and the backup code again as the
//! maintenance and the capture function), their roles and log groups, and the
//! queue feeding the lifecycle function. The backup code runs under three
//! roles, one per run, whose bucket grants are [`crate::backup_roles`].
//!
//! Both run in the VPC (they talk to etcd on the nodes' client port) as Rust binaries
//! on the `provided.al2023` runtime; their code comes from the artifact bucket and is
//! replaced later by `cargo lambda deploy` without touching the stack.

use serde_json::{json, Value};

use crate::backup_bucket;
use crate::backup_roles::{self, BackupRun};
use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::lifecycle_queue::LIFECYCLE_FUNCTION_TIMEOUT;
use crate::names::logical::{
    AUTO_SCALING_GROUP, BACKUP_BUCKET, BACKUP_FUNCTION, BACKUP_FUNCTION_ROLE, CAPTURE_FUNCTION,
    CAPTURE_FUNCTION_ROLE, FAILED_INVOCATIONS_QUEUE, FUNCTION_SECURITY_GROUP,
    LIFECYCLE_EVENT_SOURCE, LIFECYCLE_FUNCTION, LIFECYCLE_FUNCTION_ROLE, LIFECYCLE_QUEUE,
    MAINTENANCE_FUNCTION, MAINTENANCE_FUNCTION_ROLE,
};
use crate::names::parameters::{FUNCTIONS_CLIENT_SECRET_ARN, QUOTA_BACKEND_BYTES};
use crate::names::{env, functions, BACKUP_PREFIX};
use crate::network::private_subnets;
use crate::options::{artifacts, Options};
use crate::policy::{allow, inline, managed, trust};
use crate::suppressions::{metadata, Skip};
use crate::tls_secrets::{self, read_secret};

/// The backup function's timeout: a snapshot of a large database takes minutes.
pub const BACKUP_FUNCTION_TIMEOUT: u32 = 600;
/// The maintenance function's timeout: room for a backup first and then each
/// member's defragmentation; the run itself stops before it.
pub const MAINTENANCE_FUNCTION_TIMEOUT: u32 = 900;
/// The capture function's timeout: a run watches for 70 s, and may wait for a
/// snapshot it started past the segment bound.
pub const CAPTURE_FUNCTION_TIMEOUT: u32 = 900;
/// The capture function's memory: Lambda's smallest. It runs all the time,
/// so its size is most of the functions' bill. Measured (`make cost`,
/// docs/benchmarks.md): runs under about 195 writes/s peaked at 26 MiB and
/// used about 2% of a CPU; a snapshot it takes adds its buffers (about 24 MiB
/// with the default parts).
pub const CAPTURE_FUNCTION_MEMORY_MB: u32 = 128;
/// Capture runs start every minute and watch for 70 s: two overlap for ten
/// seconds (harmless: segments are keyed by their revisions), a third would
/// only repeat them.
pub const CAPTURE_CONCURRENCY: u32 = 2;

/// What the backup schedule implies for the backup runs: an unchanged cluster is
/// backed up anew after two intervals, so the age the stale-backup alarm watches
/// stays under its limit of three.
fn backup_environment(options: &Options) -> Vec<(&'static str, Value)> {
    match options.backup_schedule.interval_seconds() {
        Some(interval) => vec![(
            env::BACKUP_REFRESH_AFTER,
            json!(format!("{}s", interval.saturating_mul(2))),
        )],
        None => Vec::new(),
    }
}

/// The maintenance run backs up first when the newest backup is older than one
/// backup interval, and knows the quota the nodes run with.
fn maintenance_environment(options: &Options) -> Vec<(&'static str, Value)> {
    let mut environment = vec![(env::QUOTA_BACKEND_BYTES, reference(QUOTA_BACKEND_BYTES))];
    if let Some(interval) = options.backup_schedule.interval_seconds() {
        environment.push((
            env::MAINTENANCE_BACKUP_MAX_AGE,
            json!(format!("{interval}s")),
        ));
    }
    environment
}
/// Days CloudWatch keeps the functions' logs.
pub const LOG_RETENTION_DAYS: u32 = 365;

fn describe_group() -> Value {
    // Describe calls support no resource-level permissions: "*" is the only resource.
    // The functions are told their group, so unlike the agent they never look up
    // which group an instance is in.
    allow(
        "DescribeGroup",
        &[
            "ec2:DescribeInstances",
            "autoscaling:DescribeAutoScalingGroups",
        ],
        vec![json!("*")],
    )
}

/// Both functions talk to etcd as clients: they read their client certificate, never
/// the CA, which would let them mint peer certificates.
fn read_client_certificate() -> Vec<Value> {
    read_secret("ReadClientCertificate", FUNCTIONS_CLIENT_SECRET_ARN)
}

fn report_failed_invocations() -> Value {
    allow(
        "ReportFailedInvocations",
        &["sqs:SendMessage"],
        vec![get_att(FAILED_INVOCATIONS_QUEUE, "Arn")],
    )
}

/// A function's role; `backup_user`: tagged as a user of the backup
/// bucket's key ([`backup_bucket`]).
fn role(description: &str, statements: Vec<Value>, backup_user: bool) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Tags": if backup_user {
                json!([backup_bucket::backup_user_tag(), tls_secrets::function_role_tag()])
            } else {
                json!([tls_secrets::function_role_tag()])
            },
            "Description": description,
            "AssumeRolePolicyDocument": trust("lambda.amazonaws.com"),
            "ManagedPolicyArns": [
                // Network interfaces in the VPC and the function's own logs.
                managed("service-role/AWSLambdaVPCAccessExecutionRole"),
                managed("AWSXRayDaemonWriteAccess"),
            ],
            "Policies": [inline("function", statements)],
        },
    })
}

/// The logical id of a function's log group.
pub(crate) fn log_group_id(function: &str) -> String {
    format!("{function}Logs")
}

fn log_group(function: &str) -> (String, Value) {
    (
        log_group_id(function),
        json!({
            "Type": "AWS::Logs::LogGroup",
            "Metadata": metadata(&[Skip {
                check: "CKV_AWS_158",
                reason: "CloudWatch Logs encrypts every log group at rest; the functions log member ids and object keys, nothing that needs a key of its own",
            }]),
            "Properties": { "RetentionInDays": LOG_RETENTION_DAYS },
        }),
    )
}

struct Function<'a> {
    id: &'a str,
    role: &'a str,
    description: &'a str,
    zip: &'a str,
    timeout: u32,
    memory: u32,
    /// Invocations at once; one for the lifecycle, backup and maintenance runs
    /// (two concurrent membership changes or snapshots would only race each other).
    concurrency: u32,
    /// Environment beyond what every function gets.
    environment: Vec<(&'a str, Value)>,
}

fn function(options: &Options, f: &Function) -> Value {
    let logs = log_group_id(f.id);
    let mut variables = json!({
        env::GROUP_NAME: reference(AUTO_SCALING_GROUP),
        env::BACKUP_BUCKET: reference(BACKUP_BUCKET),
        env::BACKUP_PREFIX: BACKUP_PREFIX,
        env::TLS_CLIENT_SECRET: reference(FUNCTIONS_CLIENT_SECRET_ARN),
    });
    for (name, value) in &f.environment {
        variables[*name] = value.clone();
    }
    json!({
        "Type": "AWS::Lambda::Function",
        "Metadata": metadata(&[
            Skip {
                check: "CKV_AWS_173",
                reason: "The environment holds only the group and bucket names and the ARN of the client-certificate secret, never a secret itself; Lambda encrypts it at rest with its own key",
            },
            Skip {
                check: "CKV_AWS_272",
                reason: "Code signing would refuse the zips that cargo lambda deploy pushes, which is how new function code is shipped",
            },
        ]),
        "Properties": {
            "Description": f.description,
            "Runtime": functions::RUNTIME,
            "Handler": functions::HANDLER,
            "Architectures": [options.function_architecture.lambda_name()],
            // The object the deploy uploaded, not whatever sits under the key when
            // CloudFormation next touches the function (crate::artifact_pins says why).
            "Code": {
                "S3Bucket": reference(crate::names::parameters::ARTIFACT_BUCKET),
                "S3Key": options.artifact_prefix.key(f.zip),
                "S3ObjectVersion": reference(crate::artifact_pins::code_version_parameter(f.zip)),
            },
            "Role": get_att(f.role, "Arn"),
            "Timeout": f.timeout,
            "MemorySize": f.memory,
            "ReservedConcurrentExecutions": f.concurrency,
            "VpcConfig": {
                "SubnetIds": private_subnets(options),
                "SecurityGroupIds": [reference(FUNCTION_SECURITY_GROUP)],
            },
            "Environment": { "Variables": variables },
            "DeadLetterConfig": { "TargetArn": get_att(FAILED_INVOCATIONS_QUEUE, "Arn") },
            "TracingConfig": { "Mode": "Active" },
            "LoggingConfig": { "LogGroup": reference(&logs), "LogFormat": "Text" },
        },
    })
}

pub fn fragment(options: &Options) -> Fragment {
    let group_arn = sub(&format!(
        "arn:${{AWS::Partition}}:autoscaling:${{AWS::Region}}:${{AWS::AccountId}}:autoScalingGroup:*:autoScalingGroupName/${{{AUTO_SCALING_GROUP}}}"
    ));
    let mut lifecycle_statements = vec![
        allow(
            "ConsumeLifecycleQueue",
            &[
                // What Lambda's event source mapping polls with, in the function's
                // role; a failed message waits out its visibility timeout instead
                // of being handed back early.
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
            ],
            vec![get_att(LIFECYCLE_QUEUE, "Arn")],
        ),
        allow(
            "CompleteLifecycleActions",
            &[
                "autoscaling:CompleteLifecycleAction",
                "autoscaling:RecordLifecycleActionHeartbeat",
            ],
            vec![group_arn],
        ),
        describe_group(),
        report_failed_invocations(),
    ];
    lifecycle_statements.extend(read_client_certificate());
    // The same code under three roles, each with only its run's objects
    // (crate::backup_roles), and each a user of the bucket's key.
    let backup_code_statements = |run: BackupRun| {
        let mut statements = backup_roles::bucket_statements(run);
        statements.extend([
            describe_group(),
            report_failed_invocations(),
            backup_bucket::use_backup_key("UseBackupKey"),
        ]);
        statements.extend(read_client_certificate());
        statements
    };
    let lifecycle = Function {
        id: LIFECYCLE_FUNCTION,
        role: LIFECYCLE_FUNCTION_ROLE,
        description:
            "Removes the etcd member of a terminating instance, then completes its lifecycle action",
        zip: artifacts::LIFECYCLE_ZIP,
        timeout: LIFECYCLE_FUNCTION_TIMEOUT,
        memory: 256,
        concurrency: 1,
        environment: Vec::new(),
    };
    let backup = Function {
        id: BACKUP_FUNCTION,
        role: BACKUP_FUNCTION_ROLE,
        description: "Streams a consistent etcd snapshot to the backup bucket",
        zip: artifacts::BACKUP_ZIP,
        timeout: BACKUP_FUNCTION_TIMEOUT,
        memory: 512,
        concurrency: 1,
        environment: backup_environment(options),
    };
    // The backup code on its own schedule and concurrency, so a long snapshot never
    // holds back the health metrics, and a defragmentation never a backup.
    let maintenance = Function {
        id: MAINTENANCE_FUNCTION,
        role: MAINTENANCE_FUNCTION_ROLE,
        description: "etcd health metrics, defragmentation, NOSPACE recovery",
        zip: artifacts::BACKUP_ZIP,
        timeout: MAINTENANCE_FUNCTION_TIMEOUT,
        memory: 256,
        concurrency: 1,
        environment: maintenance_environment(options),
    };
    // And once more for the continuous backup, which snapshots too (a new
    // cluster, a gap, past the segment bound): the backup runs' refresh.
    let capture = Function {
        id: CAPTURE_FUNCTION,
        role: CAPTURE_FUNCTION_ROLE,
        description:
            "Continuous backup: every etcd change flushed to the backup bucket within seconds",
        zip: artifacts::BACKUP_ZIP,
        timeout: CAPTURE_FUNCTION_TIMEOUT,
        memory: CAPTURE_FUNCTION_MEMORY_MB,
        concurrency: CAPTURE_CONCURRENCY,
        environment: backup_environment(options),
    };
    let (lifecycle_logs_id, lifecycle_logs) = log_group(LIFECYCLE_FUNCTION);
    let (backup_logs_id, backup_logs) = log_group(BACKUP_FUNCTION);
    let (maintenance_logs_id, maintenance_logs) = log_group(MAINTENANCE_FUNCTION);
    let (capture_logs_id, capture_logs) = log_group(CAPTURE_FUNCTION);
    Fragment::new()
        .resource(
            LIFECYCLE_FUNCTION_ROLE,
            role("etcd-aws lifecycle function", lifecycle_statements, false),
        )
        .resource(
            BACKUP_FUNCTION_ROLE,
            role(
                "etcd-aws backup function: snapshots, and retention",
                backup_code_statements(BackupRun::Backup),
                true,
            ),
        )
        .resource(
            MAINTENANCE_FUNCTION_ROLE,
            role(
                "etcd-aws maintenance function: may add a snapshot, delete nothing",
                backup_code_statements(BackupRun::Maintenance),
                true,
            ),
        )
        .resource(
            CAPTURE_FUNCTION_ROLE,
            role(
                "etcd-aws capture function: segments and snapshots, deletes only segments",
                backup_code_statements(BackupRun::Capture),
                true,
            ),
        )
        .resource(&lifecycle_logs_id, lifecycle_logs)
        .resource(&backup_logs_id, backup_logs)
        .resource(&maintenance_logs_id, maintenance_logs)
        .resource(&capture_logs_id, capture_logs)
        .resource(LIFECYCLE_FUNCTION, function(options, &lifecycle))
        .resource(BACKUP_FUNCTION, function(options, &backup))
        .resource(MAINTENANCE_FUNCTION, function(options, &maintenance))
        .resource(CAPTURE_FUNCTION, function(options, &capture))
        .resource(
            LIFECYCLE_EVENT_SOURCE,
            json!({
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": get_att(LIFECYCLE_QUEUE, "Arn"),
                    "FunctionName": reference(LIFECYCLE_FUNCTION),
                    "BatchSize": 10,
                    // One bad message must not send its whole batch back to the queue.
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    "Enabled": true,
                },
            }),
        )
}
