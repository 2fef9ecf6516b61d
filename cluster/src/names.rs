//! The names the programs and the template share, defined once.
//!
//! The node agent, the two functions, the deploy command and the generated stack
//! meet only through these strings: the template sets an environment variable that
//! a binary reads, the backup function prints a metric that an alarm watches, the
//! agent listens on a port that a security group opens. A name written twice is a
//! cluster that never finds its bucket, so the `#[arg(env = ...)]` attributes, the
//! metric lines and the template all read them from here.

/// Environment variables, each read by the program named in its comment and set by
/// the template (user data for the agent, function configuration for the functions).
pub mod env {
    /// Agent and both functions: the autoscaling group whose instances run etcd.
    pub const GROUP_NAME: &str = "ETCD_AWS_GROUP_NAME";
    /// Agent and backup function: the backup bucket.
    pub const BACKUP_BUCKET: &str = "ETCD_BACKUP_BUCKET";
    /// Agent and backup function: the key prefix of the backups in the bucket.
    pub const BACKUP_PREFIX: &str = "ETCD_BACKUP_PREFIX";
    /// Agent: etcd's data directory.
    pub const DATA_DIR: &str = "ETCD_DATA_DIR";
    /// Every program: `text` or `json`.
    pub const LOG_FORMAT: &str = "ETCD_AWS_LOG_FORMAT";
    /// Every program: the log filter, in `RUST_LOG` syntax.
    pub const LOG_FILTER: &str = "ETCD_AWS_LOG";
    /// The AWS SDK's own region variable.
    pub const REGION: &str = "AWS_REGION";
    /// Agent and functions: etcd's client port on the instances.
    pub const CLIENT_PORT: &str = "ETCD_AWS_CLIENT_PORT";
    /// Agent: etcd's peer port.
    pub const PEER_PORT: &str = "ETCD_AWS_PEER_PORT";
    /// Agent: the port of etcd's plain-HTTP `/health` and `/metrics`.
    pub const METRICS_PORT: &str = "ETCD_AWS_METRICS_PORT";
    /// Agent: where it writes its ready file.
    pub const READY_FILE: &str = "ETCD_AWS_READY_FILE";
    /// Agent: the secret holding the cluster CA, from which each node issues itself
    /// its certificate at boot.
    pub const TLS_CA_SECRET: &str = "ETCD_AWS_TLS_CA_SECRET";
    /// Agent: extra DNS names in the node's certificate (comma-separated), so that
    /// clients reaching a node through the load balancer can verify it by its name.
    pub const TLS_DNS_NAMES: &str = "ETCD_AWS_TLS_DNS_NAMES";
    /// Agent: where it writes the node's certificate and key.
    pub const TLS_DIR: &str = "ETCD_AWS_TLS_DIR";
    /// Functions: the secret holding their client certificate.
    pub const TLS_CLIENT_SECRET: &str = "ETCD_AWS_TLS_CLIENT_SECRET";
    /// Agent and backup function: the backend quota etcd runs with, in bytes.
    pub const QUOTA_BACKEND_BYTES: &str = "ETCD_AWS_QUOTA_BACKEND_BYTES";
    /// Backup function: an unchanged cluster is backed up anew once its newest
    /// backup is this old (a duration such as `30m`).
    pub const BACKUP_REFRESH_AFTER: &str = "ETCD_BACKUP_REFRESH_AFTER";
    /// Backup function (maintenance run): take a backup before defragmenting when
    /// the newest is older than this.
    pub const MAINTENANCE_BACKUP_MAX_AGE: &str = "ETCD_MAINTENANCE_BACKUP_MAX_AGE";
    /// Agent and functions: run without TLS (labs only).
    pub const INSECURE_PLAINTEXT: &str = "ETCD_AWS_INSECURE_PLAINTEXT";
}

/// Defaults that the agent's flags and the template's user data must agree on.
pub mod paths {
    /// etcd's data directory on the instances.
    pub const DATA_DIR: &str = "/var/lib/etcd";
    /// Where the agent writes the node's certificate and key.
    pub const TLS_DIR: &str = "/var/lib/etcd-aws/tls";
}

/// Where backups live in the bucket (the layout under the prefix is
/// [`crate::backup::BackupLayout`]'s).
pub mod bucket {
    /// The default key prefix of the backups.
    pub const BACKUP_PREFIX: &str = "backups/";
    /// Under the prefix: an operator's restore order and the nodes'
    /// acknowledgements of it ([`crate::restore_order`]).
    pub const RESTORE_DIR: &str = "restore/";
}

/// etcd's ports.
pub mod ports {
    pub const CLIENT: u16 = 2379;
    pub const PEER: u16 = 2380;
    /// Plain-HTTP `/health` and `/metrics` without a client certificate: what the load
    /// balancer's health check can reach, since the client port requires one.
    pub const METRICS: u16 = 2381;
}

/// The functions' metrics (CloudWatch embedded metric format in their log lines),
/// which the stack's alarms and dashboard read.
pub mod metrics {
    pub const NAMESPACE: &str = "EtcdAws";
    /// Dimension holding the autoscaling group's name, so two stacks' metrics stay apart.
    pub const GROUP_DIMENSION: &str = "GroupName";
    /// Seconds since the newest valid backup was taken.
    pub const BACKUP_AGE: &str = "BackupAgeSeconds";
    pub const BACKUP_BYTES: &str = "BackupBytes";
    pub const BACKUP_DURATION: &str = "BackupDurationSeconds";
    pub const BACKUP_REVISION: &str = "BackupRevision";
    /// Lifecycle notices for another autoscaling group, acknowledged without
    /// action (a hook of another stack pointed at this queue).
    pub const FOREIGN_LIFECYCLE_NOTICES: &str = "ForeignLifecycleNotices";

    /// etcd's own health, published by the maintenance run.
    /// The largest member's backend file.
    pub const DB_SIZE: &str = "DbSizeBytes";
    /// The largest member's bytes in use (the file less its free pages).
    pub const DB_SIZE_IN_USE: &str = "DbSizeInUseBytes";
    pub const DB_QUOTA: &str = "DbQuotaBytes";
    /// The largest member's file in percent of the quota.
    pub const DB_QUOTA_USED: &str = "DbQuotaUsedPercent";
    /// 1 when the members agree on a leader, else 0.
    pub const HAS_LEADER: &str = "HasLeader";
    /// Rises by one with every election: its increase is the leader changes.
    pub const RAFT_TERM: &str = "RaftTerm";
    pub const VOTING_MEMBERS: &str = "VotingMembers";
    pub const LEARNERS: &str = "Learners";
    pub const MEMBERS_ANSWERING: &str = "MembersAnswering";
    pub const NOSPACE_ALARMS: &str = "NospaceAlarms";
    pub const CORRUPT_ALARMS: &str = "CorruptAlarms";
    /// Members defragmented by a maintenance run, and the bytes given back.
    pub const DEFRAGMENTED_MEMBERS: &str = "DefragmentedMembers";
    pub const RECLAIMED_BYTES: &str = "ReclaimedBytes";
    /// NOSPACE alarms cleared after reclaiming space.
    pub const NOSPACE_RECOVERIES: &str = "NospaceRecoveries";
    /// 1 when a run reclaimed what it could and a member stayed above its quota.
    pub const NOSPACE_UNRECOVERED: &str = "NospaceUnrecovered";
    /// The continuous backup: the longest a captured change waited to be
    /// flushed during a capture run (what a total loss would have lost).
    pub const CAPTURE_LOSS_WINDOW: &str = "CaptureLossWindowSeconds";
    /// Revisions captured but not yet flushed when the run ended.
    pub const CAPTURE_LAG: &str = "CaptureLagRevisions";
    /// History compacted away before it was captured (closed by a snapshot).
    pub const CAPTURE_GAPS: &str = "CaptureGaps";
    pub const CAPTURE_SEGMENTS: &str = "CaptureSegments";
    pub const CAPTURE_REVISIONS: &str = "CaptureRevisions";
}

/// The `event` field of the agent's log lines that an operator must hear of
/// after the fact: the stack's metric filters match it (`{ $.event = "..." }`)
/// rather than the wording of the message, which may change. Every line keeps
/// its message for people.
pub mod events {
    /// The field's name in the JSON line (the tracing field `event`).
    pub const FIELD: &str = "event";
    /// The agent stopped because a wait passed `--wait-timeout`.
    pub const GAVE_UP_WAITING: &str = "gave_up_waiting";
    /// A backup failed its checks at restore and was refused.
    pub const BACKUP_DAMAGED: &str = "backup_damaged";
    /// The restore fell back to an older backup: writes after it are lost.
    pub const OLDER_BACKUP_RESTORED: &str = "older_backup_restored";
    /// A survivor restarted etcd with `--force-new-cluster`.
    pub const FORCE_NEW_CLUSTER: &str = "force_new_cluster";
    /// etcd ended on its own (not stopped by the agent).
    pub const ETCD_EXITED: &str = "etcd_exited";
    /// etcd's corruption check refused this member's data, set aside.
    pub const DATA_DIVERGED: &str = "data_diverged";
    /// A restore could not replay every captured segment (one is missing or
    /// damaged): the revisions after the last one it proved are lost.
    pub const SEGMENTS_UNRECOVERABLE: &str = "segments_unrecoverable";
    /// The capture found etcd's history compacted past what it had stored.
    pub const CAPTURE_GAP: &str = "capture_gap";
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

/// The lifecycle function's scheduled input: reconcile members against the group
/// instead of handling a queue message.
pub const RECONCILE_EVENT: &str = r#"{"reconcile": true}"#;

/// The backup function's scheduled input for a maintenance run instead of a backup.
pub const MAINTENANCE_EVENT: &str = r#"{"job": "maintenance"}"#;

/// The capture schedule's input: watch and flush the changes for a while.
pub const CAPTURE_EVENT: &str = r#"{"job": "capture"}"#;
