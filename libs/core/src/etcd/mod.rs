//! The etcd a node runs: its release and what it may join, its command line,
//! and what its members report.

pub mod ids;
pub mod launch;
pub mod release;
pub mod status;
