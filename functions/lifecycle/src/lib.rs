//! The lifecycle function: removes the etcd member of an instance that Auto
//! Scaling is terminating, then lets the termination continue; and, on a
//! schedule, removes members whose instances left the group without a message.
//!
//! # Layout
//! - `main.rs`: a thin Lambda shell over [`handler::Lifecycle`], configured
//!   by [`config`].
//! - [`invocation`]: which job a payload asks for (an SQS batch or a
//!   reconcile) and the invocation's deadline.
//! - [`notification`]: one queue message parsed (Auto Scaling's lifecycle
//!   notification, its test notification, garbage).
//! - [`plan`]: what to remove and whether leadership moves first: pure,
//!   table-tested (`plan_tests.rs`), using the core's one rule for which
//!   instance runs which member.
//! - [`handler`]: one message or one reconcile carried out, failures reported
//!   per message (`handler_tests.rs` drives it through fakes of the seams).
//! - The seams: [`aws::Aws`] (the group, EC2, completing the action) and
//!   [`etcd::Etcd`] (the members, leadership, removal).

pub mod aws;
pub mod config;
pub mod etcd;
pub mod handler;
pub mod invocation;
pub mod notification;
pub mod plan;
