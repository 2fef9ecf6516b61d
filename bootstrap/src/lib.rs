//! `etcd-aws`, the node agent: on each instance of the group it finds its
//! peers, decides (with the core's [`decision`]) whether to form, join,
//! restart, restore or wait, runs etcd as its child, and does what
//! `policy` says about how etcd ended. `main.rs` parses the command line
//! ([`cli`]) and runs [`agent::run`]; [`restore`] is also a library call of
//! its own: the newest valid backup (and the changes captured after it) into
//! a data directory, up to a chosen revision.
//!
//! # Layout
//! - [`agent`]: the loop: observe, decide, act, run etcd, then `policy`.
//! - Before etcd starts: `observe` (the group, the peers' probes, the data
//!   dir), `node_tls` (the node's certificate from the cluster CA),
//!   `join` (a join plan carried out), `peer_check` (whether the peer port
//!   refuses all but node certificates), [`restore`] with [`replay`] (a seed
//!   restoring from the bucket), `order_watch` (the operator's restore
//!   orders), [`instructions`] (only what an operator signed is obeyed), `wait` (every wait through one helper).
//! - While etcd runs: `etcd_process` (the child, its signals and its end),
//!   `readiness` (promotion, then ready), `quorum_watch` (a quorum loss
//!   that will not heal, and when this member recovers the cluster) with
//!   `peer_certificates` beside it (the peers' expired certificates named
//!   while quorum is lost, never in the way of the recovery decision), and
//!   `ca_trust_watch` (a CA rotation's stages: this member's turn to restart
//!   with new trusted CAs, a renewal from the new CA, its acknowledgement).
//! - Throughout: [`ready_endpoint`] (the load balancer's `GET /ready`: a
//!   serving voting member, or the reason it is not), `cert_renewal` (the
//!   node's certificate renewed in place, etcd not restarted) and
//!   `functions_cert_renewal` (the functions' certificate renewed in their
//!   secret).
//! - Before each start of etcd: `housekeeping` (moved-aside data directories
//!   pruned by age and space).
//! - After: `policy` (what to do about how etcd ended) and `exit_status`
//!   (the agent's own exit code); `signals` throughout.
//!
//! [`decision`]: etcd_aws_core::membership::decision

pub mod agent;
mod ca_trust_watch;
mod cert_renewal;
pub mod cli;
mod etcd_process;
mod exit_status;
mod functions_cert_renewal;
mod housekeeping;
pub mod instructions;
mod join;
mod node_tls;
mod observe;
mod order_watch;
mod peer_certificates;
mod peer_check;
mod policy;
mod quorum_watch;
mod readiness;
pub mod ready_endpoint;
pub mod replay;
pub mod restore;
mod signals;
mod wait;
