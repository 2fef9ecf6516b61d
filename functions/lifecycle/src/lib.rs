//! The lifecycle function: removes the etcd member of an instance that Auto
//! Scaling is terminating, then lets the termination continue; and, on a
//! schedule, removes members whose instances left the group without a message.
//!
//! The Lambda handler (`main.rs`) is a thin shell over [`handler::Lifecycle`]:
//! [`notification`] parses a queue message, [`plan`] decides (pure, table
//! tested), and the seams [`aws::Aws`] and [`etcd::Etcd`] do the I/O.

pub mod aws;
pub mod config;
pub mod etcd;
pub mod handler;
pub mod invocation;
pub mod notification;
pub mod plan;
