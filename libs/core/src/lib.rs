//! etcd-aws's pure core: the rules every program of the project follows and
//! the formats they exchange, as plain data in and plain data out.
//!
//! Nothing here talks to AWS, to etcd or to the network, and the crate's
//! dependencies keep it so (no tokio, no AWS SDK, no etcd client, no TLS
//! stack): the node agent, the two Lambda functions, the operator tool and the
//! template generator all build on it, and every rule is a table test.
//! The I/O that feeds these rules is `etcd-aws-io`'s.
//!
//! # Layout
//! - [`membership`]: who is in the cluster and what a node does about it.
//!   The group's [`instance`](membership::instance)s and etcd's
//!   [`member`](membership::member)s with the one rule for which instance runs
//!   which member ([`Standing`](membership::member::Standing)), the
//!   [`decision`](membership::decision) a booting node takes (form, join,
//!   restart, wait) and the [`recovery`](membership::recovery) of a quorum lost.
//! - [`etcd`]: the etcd a node runs: which [`release`](etcd::release)s may run
//!   and join (one rule for the agent and the template), its
//!   [`launch`](etcd::launch) flags, the [`status`](etcd::status) members
//!   report, and the [`disk`](etcd::disk) under it (which moved-aside data
//!   goes, whether a restore fits).
//! - [`backup`]: the backup formats in S3: snapshot
//!   [`manifest`](backup::manifest)s and the bucket's layout, the continuous
//!   backup's [`segment`](backup::segment)s and the [`replay`](backup::replay)
//!   plan of a restore (one cluster's segments only), how far a restore bumps
//!   the [`revisions`](backup::revisions) so they only ever go up, and
//!   whether a seed may form an empty cluster over a bucket without
//!   snapshots ([`empty_start`](backup::empty_start)).
//! - [`contract`]: what crosses a program boundary, one type each: the backup
//!   function's [`jobs`](contract::jobs) and their answers, the
//!   [`cluster_report`](contract::cluster_report) they give the operator, the
//!   [`restore_order`](contract::restore_order) nodes obey, the
//!   [`metrics`](contract::metrics) and log [`events`](contract::events) the
//!   stack's alarms read, and the [`names`](contract::names) (environment,
//!   ports, paths, secrets) the template and the binaries share.
//! - [`certificates`]: when a node [`renew`](certificates::renewal)s its
//!   certificate and the [`functions`](certificates::functions)' while it
//!   runs, the days left before each certificate's
//!   [`expiry`](certificates::expiry), the
//!   [`peer_name`](certificates::peer_name) that keeps clients off raft, and
//!   the stages and turns of a [`ca_rotation`](certificates::ca_rotation).
//! - [`clock`]: seconds since the epoch and the UTC stamp in object keys.
//! - [`test_support`]: plain-data builders for the table tests.

pub mod backup;
pub mod certificates;
pub mod clock;
pub mod contract;
pub mod etcd;
pub mod membership;
pub mod test_support;
