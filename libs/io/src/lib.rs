//! etcd-aws's I/O: everything that talks to AWS, to etcd or to the disk, on
//! top of the pure rules and formats of `etcd-aws-core`. The node agent, the
//! two Lambda functions and the operator tool build on both; the template
//! generator needs none of this.
//!
//! Each module is one outside thing, with errors that say what failed, on
//! what, and what to do, classified by the code the other side sent, never by
//! its wording.
//!
//! # Layout
//! - [`aws`]: the SDK's configuration ([`env`](aws::env)), the one reading of
//!   its errors ([`error`](aws::error)), the autoscaling group's instances
//!   ([`discovery`](aws::discovery)) and this node's own
//!   [`identity`](aws::identity) from IMDSv2.
//! - [`etcd`]: reaching a cluster and administering it ([`admin`](etcd::admin),
//!   its [`error`](etcd::error)s), its history as a watch and a replay
//!   ([`changes`](etcd::changes)), a peer's first answer
//!   ([`peer_probe`](etcd::peer_probe)), the cluster version
//!   ([`version_endpoint`](etcd::version_endpoint)) and what the local etcd
//!   [`binary`](etcd::binary) is.
//! - [`backup_store`]: the backup bucket: snapshots, manifests, segments
//!   (stored by [`segment_codec`](backup_store::segment_codec)) and restore orders.
//! - [`tls`]: the cluster CA, the certificates it issues, checking them, and
//!   where they are kept (Secrets Manager, files for etcd).
//! - [`data_dir`]: the node's etcd data directory.
//! - [`logging`]: log lines and metric lines for CloudWatch.
//! - [`error_chain`]: an error and its causes on one line.

pub mod aws;
pub mod backup_store;
pub mod data_dir;
pub mod error_chain;
pub mod etcd;
pub mod logging;
pub mod tls;
