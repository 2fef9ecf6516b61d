//! etcd as the programs reach it: over gRPC with the cluster's TLS, for
//! administration, the continuous backup's watch and replay, and a peer's
//! first answer; and the local etcd binary, asked what it is.

pub mod admin;
pub mod binary;
pub mod changes;
pub mod error;
pub mod peer_probe;
pub mod version_endpoint;
