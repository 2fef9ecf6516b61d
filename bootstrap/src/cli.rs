//! Command-line flags. Every flag has an environment variable, so the same
//! binary is configured by systemd unit, container env or user-data alike.
//!
//! The flags are parsed once, here, and handed on as the parts of
//! [`AgentConfig`]: each part of the agent gets only its own settings, and no
//! module below reads the command line.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_core::contract::names::{bucket, env, paths, ports};
use etcd_aws_core::etcd::disk::PrunePolicy;
use etcd_aws_core::etcd::launch::{AutoCompaction, CompactionMode, Upkeep};
use etcd_aws_io::etcd::admin::EtcdTimeouts;
pub use etcd_aws_io::logging::LogFormat;

use crate::agent::{AgentConfig, IdentityFlags, Supervision};
use crate::etcd_process::EtcdSettings;
use crate::node_tls::{FunctionsCertificate, TlsSettings};
use crate::restore::{BackupSettings, OperatorOrders};
use crate::wait::WaitPolicy;

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

    /// How long to keep asking the instance metadata service (IMDSv2) for the
    /// instance id and private IP before the start fails: at an instance's
    /// first boot it may answer late.
    #[arg(long, env = "ETCD_AWS_IMDS_PATIENCE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub imds_patience: Duration,

    /// The autoscaling group whose instances form the cluster; looked up from
    /// the instance id when not given.
    #[arg(long, env = env::GROUP_NAME)]
    pub group_name: Option<String>,

    /// etcd's data directory.
    #[arg(long, env = env::DATA_DIR, default_value = paths::DATA_DIR)]
    pub data_dir: PathBuf,

    /// How long data directories moved aside (`<data dir>.removed-*`: a stale
    /// member's, a restore's quarantine) are kept for an operator before the
    /// agent deletes them, when it next starts etcd.
    #[arg(long, env = "ETCD_AWS_MOVED_ASIDE_RETENTION", default_value = "7days", value_parser = humantime::parse_duration)]
    pub moved_aside_retention: Duration,

    /// Below this share of the data directory's filesystem free, moved-aside
    /// directories go sooner, oldest first, never the newest.
    #[arg(long, env = "ETCD_AWS_MIN_FREE_DISK_PERCENT", default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=90))]
    pub min_free_disk_percent: u8,

    /// The etcd binary to run (a path, or a name looked up on PATH).
    #[arg(long, env = "ETCD_AWS_ETCD_BINARY", default_value = "etcd")]
    pub etcd_binary: PathBuf,

    /// The etcdutl binary, used to restore a backup into the data directory:
    /// 3.5.13 or later, which bumps revisions (an older one is refused).
    #[arg(long, env = "ETCD_AWS_ETCDUTL_BINARY", default_value = "etcdutl")]
    pub etcdutl_binary: PathBuf,

    /// S3 bucket holding the cluster's backups. The seed of a cluster that
    /// lost every member restores the newest valid one; without a bucket it
    /// forms an empty cluster.
    #[arg(long, env = env::BACKUP_BUCKET)]
    pub backup_bucket: Option<String>,

    /// Key prefix of the backups in the bucket.
    #[arg(long, env = env::BACKUP_PREFIX, default_value = bucket::BACKUP_PREFIX)]
    pub backup_prefix: String,

    /// The KMS key (ARN, id or alias) whose signature makes an instruction in
    /// the bucket an operator's: a restore order (`etcd-aws-cfn restore`) or
    /// a start-empty permit. Only operators may sign with it; this node
    /// verifies with its public key and ignores, logs and alarms on anything
    /// else. Without it no instruction is obeyed.
    #[arg(long, env = env::ORDER_SIGNING_KEY, requires = "node_role_id")]
    pub order_signing_key: Option<String>,

    /// The node role's unique id (`AROA…`; the user data passes the stack's
    /// `NodeRole.RoleId`). With the instance id it names this node's
    /// acknowledgement of a restore, `<role id>:<instance id>`, which is the
    /// IAM user id of the instance's role session: the only acknowledgement
    /// the node role may write, so no node can acknowledge for another.
    /// Needed with --order-signing-key.
    #[arg(long, env = env::NODE_ROLE_ID)]
    pub node_role_id: Option<String>,

    /// What a restore does with the leases it brings back: `revoke` every one
    /// before the cluster serves (their keys vanish; a lock or election holder
    /// is told "lease not found" and acquires afresh, so no holder that had
    /// lost a lock finds it again), or `keep` them as they were.
    #[arg(long, env = env::RESTORE_LEASES, default_value = "revoke")]
    pub restore_leases: LeasePolicy,

    /// etcd's client port on the private IP.
    #[arg(long, env = env::CLIENT_PORT, default_value_t = ports::CLIENT)]
    pub client_port: u16,

    /// etcd's peer port on the private IP.
    #[arg(long, env = env::PEER_PORT, default_value_t = ports::PEER)]
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

    /// How often a running member reads the backup bucket for an operator's
    /// restore order (`etcd-aws-cfn restore`), which stops its etcd until
    /// the cluster is restored. One GET per interval.
    #[arg(long, env = "ETCD_AWS_RESTORE_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub restore_poll_interval: Duration,

    /// How often a running member reads the CA secret for a CA rotation
    /// (`etcd-aws-cfn rotate-ca`), whose stages it follows: its turn to
    /// restart trusting new CAs, or to renew from the new CA. One
    /// GetSecretValue per interval (about 0.32 USD a month for three nodes
    /// at 2m); a rotation takes a few intervals per member.
    #[arg(long, env = "ETCD_AWS_CA_POLL_INTERVAL", default_value = "2m", value_parser = humantime::parse_duration)]
    pub ca_poll_interval: Duration,

    /// Secrets Manager secret (name or ARN) holding the cluster CA. At start
    /// the node issues itself a certificate for its private IP from it, and
    /// etcd requires certificates from that CA of every client and peer.
    #[arg(
        long,
        env = env::TLS_CA_SECRET,
        required_unless_present = "insecure_plaintext"
    )]
    pub tls_ca_secret: Option<String>,

    /// Extra DNS names for this node's certificate, comma-separated (the load
    /// balancer's name, so clients going through it can verify the node).
    #[arg(long, env = env::TLS_DNS_NAMES, value_delimiter = ',')]
    pub tls_dns_names: Vec<String>,

    /// Extra IP addresses for this node's certificate, comma-separated. etcd
    /// checks that a peer connects from an address its certificate names; on
    /// EC2 that is the private IP, already included.
    #[arg(long, env = "ETCD_AWS_TLS_EXTRA_IPS", value_delimiter = ',')]
    pub tls_extra_ips: Vec<IpAddr>,

    /// Where the node's certificate, key and the CA certificate are written for etcd.
    #[arg(long, env = env::TLS_DIR, default_value = paths::TLS_DIR)]
    pub tls_dir: PathBuf,

    /// Lifetime of the certificate the node issues itself at each start; the
    /// agent renews it in place at about two thirds of it.
    #[arg(long, env = "ETCD_AWS_TLS_CERT_VALIDITY", default_value = "365days", value_parser = humantime::parse_duration)]
    pub tls_cert_validity: Duration,

    /// Secrets Manager secret (name or ARN) holding the functions' client
    /// certificate. The node renews it from the cluster CA at about two
    /// thirds of its life (the first node whose turn comes; the others find
    /// it new), so the functions keep working without a deploy. Unset: the
    /// node leaves it alone.
    #[arg(long, env = env::TLS_FUNCTIONS_SECRET, conflicts_with = "insecure_plaintext")]
    pub tls_functions_secret: Option<String>,

    /// Lifetime of each functions' certificate the node issues.
    #[arg(long, env = "ETCD_AWS_TLS_FUNCTIONS_CERT_VALIDITY", default_value = "730days", value_parser = humantime::parse_duration)]
    pub tls_functions_cert_validity: Duration,

    /// Run etcd WITHOUT TLS or client authentication: anyone who reaches the
    /// client or peer port can read and change every key. For labs only.
    #[arg(
        long,
        env = env::INSECURE_PLAINTEXT,
        conflicts_with = "tls_ca_secret"
    )]
    pub insecure_plaintext: bool,

    /// Port on the private IP where etcd serves plain-HTTP /health and
    /// /metrics (no client certificate needed) for load-balancer health checks.
    #[arg(long, env = env::METRICS_PORT, default_value_t = ports::METRICS)]
    pub metrics_port: u16,

    /// Port on the private IP where the agent answers `GET /ready` (plain
    /// HTTP): 200 for a voting member that serves reads, 503 with the reason
    /// for a learner, a joiner still publishing itself, a node a restore
    /// holds out or one whose certificate expired. The load balancer's
    /// target group asks it; 0 serves nothing.
    #[arg(long, env = env::READY_PORT, default_value_t = ports::READY)]
    pub ready_port: u16,

    /// A file written once this node is a healthy voting member (for health
    /// checks and tests); removed at start.
    #[arg(long, env = env::READY_FILE)]
    pub ready_file: Option<PathBuf>,

    /// etcd's backend quota in bytes: past it the cluster refuses writes
    /// (NOSPACE) until the maintenance run reclaims space. etcd suggests at
    /// most 8 GiB; keep it well under the instance's memory (etcd maps the
    /// whole file).
    #[arg(long, env = env::QUOTA_BACKEND_BYTES, default_value_t = 2 * 1024 * 1024 * 1024)]
    pub quota_backend_bytes: u64,

    /// How etcd compacts its history: `periodic` keeps a window of time,
    /// `revision` a number of revisions.
    #[arg(long, env = "ETCD_AWS_AUTO_COMPACTION_MODE", value_enum, default_value_t = CompactionModeArg::Periodic)]
    pub auto_compaction_mode: CompactionModeArg,

    /// What auto-compaction keeps: a duration for `periodic` (watchers and
    /// the backups can resume within it), a revision count for `revision`.
    #[arg(long, env = "ETCD_AWS_AUTO_COMPACTION_RETENTION", default_value = "1h")]
    pub auto_compaction_retention: String,

    /// Log format: `text` for terminals, `json` for CloudWatch Logs.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Flags passed to etcd unchanged, after `--`.
    #[arg(last = true, value_name = "ETCD_FLAGS")]
    pub etcd_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompactionModeArg {
    Periodic,
    Revision,
}

impl Cli {
    /// The parts of the agent's configuration, each for the part that uses it.
    pub fn into_config(self) -> AgentConfig {
        let tls = self.tls_ca_secret.map(|ca_secret| TlsSettings {
            ca_secret,
            dns_names: self.tls_dns_names,
            extra_ips: self.tls_extra_ips,
            dir: self.tls_dir,
            cert_validity: self.tls_cert_validity,
            functions: self
                .tls_functions_secret
                .map(|secret| FunctionsCertificate {
                    secret,
                    validity: self.tls_functions_cert_validity,
                }),
        });
        let backups = self.backup_bucket.map(|bucket| BackupSettings {
            bucket,
            prefix: self.backup_prefix,
            etcdutl: self.etcdutl_binary,
            lease_policy: self.restore_leases,
            operators: self.order_signing_key.zip(self.node_role_id).map(
                |(signing_key, node_role_id)| OperatorOrders {
                    signing_key,
                    node_role_id,
                },
            ),
        });
        AgentConfig {
            identity: IdentityFlags {
                instance_id: self.instance_id,
                private_ip: self.private_ip,
                imds_patience: self.imds_patience,
                group_name: self.group_name,
            },
            etcd: EtcdSettings {
                binary: self.etcd_binary,
                data_dir: self.data_dir,
                moved_aside: PrunePolicy {
                    keep_for_seconds: i64::try_from(self.moved_aside_retention.as_secs())
                        .unwrap_or(i64::MAX),
                    min_free_percent: self.min_free_disk_percent,
                },
                client_port: self.client_port,
                peer_port: self.peer_port,
                metrics_port: self.metrics_port,
                upkeep: Upkeep {
                    quota_backend_bytes: self.quota_backend_bytes,
                    auto_compaction: AutoCompaction {
                        mode: match self.auto_compaction_mode {
                            CompactionModeArg::Periodic => CompactionMode::Periodic,
                            CompactionModeArg::Revision => CompactionMode::Revision,
                        },
                        retention: self.auto_compaction_retention,
                    },
                },
                extra_args: self.etcd_args,
            },
            tls,
            backups,
            timeouts: EtcdTimeouts {
                connect: self.probe_timeout,
                request: self.probe_timeout * 3,
            },
            wait: WaitPolicy {
                poll_interval: self.poll_interval,
                timeout: self.wait_timeout,
            },
            supervision: Supervision {
                promote_timeout: self.promote_timeout,
                quorum_loss_grace: self.quorum_loss_grace,
                restore_poll_interval: self.restore_poll_interval,
                ca_poll_interval: self.ca_poll_interval,
                ready_file: self.ready_file,
                ready_port: self.ready_port,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_functions_certificate_a_node_issues_lives_as_long_as_the_deploys() {
        let cli = Cli::try_parse_from(["etcd-aws", "--tls-ca-secret", "ca"]).expect("parses");
        assert_eq!(
            cli.tls_functions_cert_validity,
            etcd_aws_core::certificates::functions::VALIDITY
        );
    }

    #[test]
    fn a_plaintext_node_has_no_ca_to_renew_the_functions_certificate_from() {
        let error = Cli::try_parse_from([
            "etcd-aws",
            "--insecure-plaintext",
            "--tls-functions-secret",
            "f",
        ])
        .expect_err("no CA to renew from");
        assert!(
            error.to_string().contains("--insecure-plaintext"),
            "{error}"
        );
    }
}
