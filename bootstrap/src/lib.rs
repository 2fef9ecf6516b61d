//! The node agent's parts. `main.rs` parses the command line and runs
//! [`agent::run`]; [`restore`] is also a library call on its own: restoring
//! the backup (and the changes captured after it) into a data directory, up
//! to a chosen revision.

pub mod agent;
pub mod cli;
mod etcd_process;
mod exit_status;
mod join;
mod node_tls;
mod observe;
mod order_watch;
mod policy;
mod quorum_watch;
mod readiness;
pub mod replay;
pub mod restore;
mod signals;
mod wait;
