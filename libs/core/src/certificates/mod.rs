//! The rules of the cluster's certificates over time: when a running node
//! renews its own.

pub mod renewal;
