//! The rules of the cluster's certificates: when a running node renews its
//! own and the functions', how close each certificate is to expiring, and the
//! name that lets only nodes onto the peer port.

pub mod expiry;
pub mod functions;
pub mod peer_name;
pub mod renewal;
