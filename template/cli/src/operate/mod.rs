//! The operator's commands on a running cluster: `status`, `backups list`,
//! `backup`, `restore` and `rotate-ca`. The operator's machine usually cannot reach the
//! members' private addresses, so the commands go through what the stack
//! gives: the backup function (which runs in the VPC) for what only etcd
//! knows, the bucket for the backups, the restore order and the nodes'
//! acknowledgements of a CA rotation, the CA secret for the rotation's
//! stages, the group for
//! its instances, the queues for the lifecycle's backlog.

pub mod backups;
pub mod ca_rotation;
pub mod confirm;
pub mod function;
pub mod function_errors;
pub mod progress;
pub mod restore;
pub mod stack;
pub mod status_view;
