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
    /// Agent: the port of its own `GET /ready`, which the load balancer's
    /// target group asks (0: not served).
    pub const READY_PORT: &str = "ETCD_AWS_READY_PORT";
    /// Agent: what a restore does with the leases it brings back
    /// (`revoke` or `keep`, [`crate::backup::lease_policy`]).
    pub const RESTORE_LEASES: &str = "ETCD_AWS_RESTORE_LEASES";
    /// Agent and operator tool: the KMS key that signs operators'
    /// instructions in the bucket ([`crate::contract::signed`]).
    pub const ORDER_SIGNING_KEY: &str = "ETCD_AWS_ORDER_SIGNING_KEY";
    /// Agent: the node role's unique id, which with the instance id names
    /// its acknowledgement of a restore ([`crate::contract::restore_order::Acknowledger`]).
    pub const NODE_ROLE_ID: &str = "ETCD_AWS_NODE_ROLE_ID";
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
    /// Agent: the same secret, whose certificate the nodes renew.
    pub const TLS_FUNCTIONS_SECRET: &str = "ETCD_AWS_TLS_FUNCTIONS_SECRET";
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
/// [`crate::backup::manifest::BackupLayout`]'s).
pub mod bucket {
    /// The default key prefix of the backups.
    pub const BACKUP_PREFIX: &str = "backups/";
    /// Under the prefix: an operator's restore order and the nodes'
    /// acknowledgements of it ([`crate::contract::restore_order`]).
    pub const RESTORE_DIR: &str = "restore/";
    /// Under the prefix: the nodes' acknowledgements of a CA rotation's
    /// stages ([`crate::contract::ca_rotation_acks`]).
    pub const CA_ROTATION_DIR: &str = "ca-rotation/";
}

/// etcd's ports.
pub mod ports {
    pub const CLIENT: u16 = 2379;
    pub const PEER: u16 = 2380;
    /// Plain-HTTP `/health` and `/metrics` without a client certificate: what the load
    /// balancer's health check can reach, since the client port requires one.
    pub const METRICS: u16 = 2381;
    /// The agent's `GET /ready` (plain HTTP): whether the node should get
    /// clients; the load balancer's target group asks it.
    pub const READY: u16 = 2382;
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

    /// The tag (`<tag>=<stack>`) on the stack's node role: the secrets'
    /// resource policies refuse their values to any role without it (the
    /// functions' secret also to the functions'), the operators' aside.
    pub const NODE_ROLE_TAG: &str = "etcd-aws-node";
    /// The same tag on the functions' roles, which read their client
    /// certificate and not the CA.
    pub const FUNCTION_ROLE_TAG: &str = "etcd-aws-function";
}
