//! The etcd a node runs: its release and what it may join, its command line,
//! what its members report, and the disk under it.

pub mod disk;
pub mod ids;
pub mod launch;
pub mod release;
pub mod status;
