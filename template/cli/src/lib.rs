//! # etcd-aws-cfn
//!
//! The operator's tool for a self-healing etcd cluster on AWS: it deploys the
//! stack that [`etcd_aws_template`] generates and operates the running
//! cluster. The binary keeps the 2016 tool's name and usage: with no command
//! it deploys.
//!
//! ```text
//! etcd-aws-cfn --dry-run > etcd.template               # JSON; --format yaml for YAML
//! etcd-aws-cfn --stack-name etcd --alarm-email ops@example.com \
//!     --artifact-bucket my-artifacts --etcd-sha256 <sha256 of the etcd archive>
//! etcd-aws-cfn status                                  # exit 1 when not healthy
//! etcd-aws-cfn backups list --verify
//! etcd-aws-cfn backup
//! etcd-aws-cfn restore --to-time 2026-12-01T09:59:00Z
//! etcd-aws-cfn issue-client-cert --name alice --out DIR
//! ```
//!
//! Every flag has an environment variable (`etcd-aws-cfn <command> --help`
//! lists them).
//!
//! # Layout
//! - [`cli`]: the commands, what the operator commands share, and the rule that
//!   makes deploy the default command.
//! - [`commands`]: one file per command, holding its arguments, its run and its
//!   output: [`deploy`](commands::deploy), [`status`](commands::status),
//!   [`backups`](commands::backups) (list), [`backup`](commands::backup),
//!   [`restore`](commands::restore),
//!   [`issue_client_cert`](commands::issue_client_cert).
//! - [`deploy`]: what a deploy does besides generating the template: the
//!   cluster's secrets before the stack ([`cluster_secrets`](deploy::cluster_secrets)),
//!   the change set and its progress ([`change_set`](deploy::change_set),
//!   [`stack_events`](deploy::stack_events)), a large template staged in S3
//!   ([`staging`](deploy::staging)).
//! - [`operate`]: what the operator commands go through, since the operator's
//!   machine usually cannot reach the members: the backup function
//!   ([`function`](operate::function)), the stack's parts
//!   ([`stack`](operate::stack)), the restore's run
//!   ([`restore`](operate::restore)), and the pure judgements of `status`
//!   ([`status_view`](operate::status_view)) and `backups`
//!   ([`backups`](operate::backups)).
//! - [`client_certificate`]: a client certificate from the cluster CA.

pub mod cli;
pub mod client_certificate;
pub mod commands;
pub mod deploy;
pub mod operate;
