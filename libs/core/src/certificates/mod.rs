//! The rules of the cluster's certificates over time: when a running node
//! renews its own, and how close each certificate is to expiring.

pub mod expiry;
pub mod renewal;
