//! The continuous backup's capture: etcd's changes after the newest stored
//! revision, flushed to the bucket as segments ([`etcd_aws_core::backup::segment`]).
//! [`pending`] holds and times what is not flushed yet; [`run`] is one
//! invocation's watch; [`merge`] turns what a run stored into one segment.

pub mod merge;
pub mod pending;
pub mod run;

pub use run::{run_capture, CaptureError, CaptureOutcome, CaptureSettings};
