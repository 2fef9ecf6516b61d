//! The continuous backup's capture: etcd's changes after the newest stored
//! revision, flushed to the bucket as segments ([`etcd_aws_cluster::segment`]).
//! [`pending`] holds and times what is not flushed yet; the watch and the
//! flushing run are the next step of the capture.

pub mod pending;
