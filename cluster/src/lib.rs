//! The cluster logic shared by `etcd-aws` and the two Lambda functions.
//!
//! The core is pure: [`decision::decide`] turns an [`observation::Observation`]
//! (instances, probed members, local data, backups) into a [`decision::Decision`],
//! and [`etcd_launch`] turns a decision into etcd's command line. Everything
//! that talks to AWS or etcd lives beside it, in modules named for the one
//! thing each does, so the decision can be tested as a table and the I/O
//! against the real thing.

pub mod aws_env;
pub mod aws_error;
pub mod backup;
pub mod backup_store;
pub mod cluster_report;
pub mod data_dir;
pub mod decision;
pub mod discovery;
pub mod emf;
pub mod etcd_admin;
pub mod etcd_changes;
pub mod etcd_launch;
pub mod etcd_release;
pub mod identity;
pub mod instance;
pub mod logging;
pub mod member;
pub mod names;
pub mod observation;
pub mod peer_probe;
pub mod recovery;
pub mod replay;
pub mod restore_order;
pub mod segment;
pub mod test_support;
pub mod tls;
pub mod version_endpoint;
