//! The rules of the cluster's certificates over time: when a running node
//! renews its own and the functions', and how close each certificate is to
//! expiring.

pub mod expiry;
pub mod functions;
pub mod renewal;
