//! Who is in the cluster, and what a node does about it: the autoscaling
//! group's instances, etcd's members, the one rule that pairs them, and the
//! decisions taken from them (at boot, and after a quorum loss).

pub mod decision;
pub mod instance;
pub mod member;
pub mod observation;
pub mod recovery;
