//! Command-line flags. Every flag has an environment variable, so the same
//! binary is configured by systemd unit, container env or user-data alike.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
pub use etcd_aws_cluster::logging::LogFormat;

/// Runs etcd as a member of the cluster formed by this instance's autoscaling group.
///
/// On start it finds the group's instances, probes their etcd, and then forms
/// the cluster (the earliest-launched instance, once every other instance is
/// known to run no etcd), joins it as a learner and is promoted, or restarts on
/// its own data. It then runs etcd as its child: signals are forwarded and
/// etcd's exit status becomes its own. Anything after `--` goes to etcd.
///
/// AWS settings come from the SDK's standard environment (AWS_REGION,
/// AWS_ENDPOINT_URL, credentials); identity from IMDSv2 unless given.
#[derive(Debug, Parser)]
#[command(
    name = "etcd-aws",
    version,
    after_help = "Example: etcd-aws --data-dir /var/lib/etcd -- --quota-backend-bytes=8589934592"
)]
pub struct Cli {
    /// This instance's id; read from IMDSv2 when not given.
    #[arg(long, env = "ETCD_AWS_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// This instance's private IP, where etcd listens; read from IMDSv2 when not given.
    #[arg(long, env = "ETCD_AWS_PRIVATE_IP")]
    pub private_ip: Option<IpAddr>,

    /// The autoscaling group whose instances form the cluster; looked up from
    /// the instance id when not given.
    #[arg(long, env = "ETCD_AWS_GROUP_NAME")]
    pub group_name: Option<String>,

    /// etcd's data directory.
    #[arg(long, env = "ETCD_DATA_DIR", default_value = "/var/lib/etcd")]
    pub data_dir: PathBuf,

    /// The etcd binary to run (a path, or a name looked up on PATH).
    #[arg(long, env = "ETCD_AWS_ETCD_BINARY", default_value = "etcd")]
    pub etcd_binary: PathBuf,

    /// The etcdutl binary, used to restore a backup into the data directory.
    #[arg(long, env = "ETCD_AWS_ETCDUTL_BINARY", default_value = "etcdutl")]
    pub etcdutl_binary: PathBuf,

    /// S3 bucket holding the cluster's backups. The seed of a cluster that
    /// lost every member restores the newest valid one; without a bucket it
    /// forms an empty cluster.
    #[arg(long, env = "ETCD_BACKUP_BUCKET")]
    pub backup_bucket: Option<String>,

    /// Key prefix of the backups in the bucket.
    #[arg(long, env = "ETCD_BACKUP_PREFIX", default_value = "backups/")]
    pub backup_prefix: String,

    /// etcd's client port on the private IP.
    #[arg(long, env = "ETCD_AWS_CLIENT_PORT", default_value_t = 2379)]
    pub client_port: u16,

    /// etcd's peer port on the private IP.
    #[arg(long, env = "ETCD_AWS_PEER_PORT", default_value_t = 2380)]
    pub peer_port: u16,

    /// How long a peer probe may take before the peer counts as silent.
    #[arg(long, env = "ETCD_AWS_PROBE_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub probe_timeout: Duration,

    /// Pause between observations while waiting (for the seed, for quorum, for a learner slot).
    #[arg(long, env = "ETCD_AWS_POLL_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,

    /// Give up with exit status 75 after waiting this long without starting etcd;
    /// by default a node waits as long as it takes (it must never form a
    /// second cluster just because it cannot see the first).
    #[arg(long, env = "ETCD_AWS_WAIT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub wait_timeout: Option<Duration>,

    /// How long a new learner may take to catch up and be promoted before
    /// etcd-aws stops it and exits non-zero.
    #[arg(long, env = "ETCD_AWS_PROMOTE_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub promote_timeout: Duration,

    /// How long this member's cluster must be without quorum before it
    /// considers recovering from its own data (only ever when the lost
    /// members' instances are gone from the group).
    #[arg(long, env = "ETCD_AWS_QUORUM_LOSS_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub quorum_loss_grace: Duration,

    /// Secrets Manager secret (name or ARN) holding the cluster CA. At start
    /// the node issues itself a certificate for its private IP from it, and
    /// etcd requires certificates from that CA of every client and peer.
    #[arg(
        long,
        env = "ETCD_AWS_TLS_CA_SECRET",
        required_unless_present = "insecure_plaintext"
    )]
    pub tls_ca_secret: Option<String>,

    /// Extra DNS names for this node's certificate, comma-separated (the load
    /// balancer's name, so clients going through it can verify the node).
    #[arg(long, env = "ETCD_AWS_TLS_DNS_NAMES", value_delimiter = ',')]
    pub tls_dns_names: Vec<String>,

    /// Extra IP addresses for this node's certificate, comma-separated. etcd
    /// checks that a peer connects from an address its certificate names; on
    /// EC2 that is the private IP, already included.
    #[arg(long, env = "ETCD_AWS_TLS_EXTRA_IPS", value_delimiter = ',')]
    pub tls_extra_ips: Vec<IpAddr>,

    /// Where the node's certificate, key and the CA certificate are written for etcd.
    #[arg(
        long,
        env = "ETCD_AWS_TLS_DIR",
        default_value = "/var/lib/etcd-aws/tls"
    )]
    pub tls_dir: PathBuf,

    /// Lifetime of the certificate the node issues itself at each start.
    #[arg(long, env = "ETCD_AWS_TLS_CERT_VALIDITY", default_value = "365days", value_parser = humantime::parse_duration)]
    pub tls_cert_validity: Duration,

    /// Run etcd WITHOUT TLS or client authentication: anyone who reaches the
    /// client or peer port can read and change every key. For labs only.
    #[arg(
        long,
        env = "ETCD_AWS_INSECURE_PLAINTEXT",
        conflicts_with = "tls_ca_secret"
    )]
    pub insecure_plaintext: bool,

    /// Port on the private IP where etcd serves plain-HTTP /health and
    /// /metrics (no client certificate needed) for load-balancer health checks.
    #[arg(long, env = "ETCD_AWS_METRICS_PORT", default_value_t = 2381)]
    pub metrics_port: u16,

    /// A file written once this node is a healthy voting member (for health
    /// checks and tests); removed at start.
    #[arg(long, env = "ETCD_AWS_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    /// Log format: `text` for terminals, `json` for CloudWatch Logs.
    #[arg(long, env = "ETCD_AWS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Flags passed to etcd unchanged, after `--`.
    #[arg(last = true, value_name = "ETCD_FLAGS")]
    pub etcd_args: Vec<String>,
}
