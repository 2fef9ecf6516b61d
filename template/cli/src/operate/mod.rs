//! The operator's commands on a running cluster: `status`, `backups list`,
//! `backup` and `restore`. The operator's machine usually cannot reach the
//! members' private addresses, so the commands go through what the stack
//! gives: the backup function (which runs in the VPC) for what only etcd
//! knows, the bucket for the backups and the restore order, the group for
//! its instances, the queues for the lifecycle's backlog.

pub mod backups;
pub mod commands;
pub mod function;
pub mod function_errors;
pub mod progress;
pub mod restore;
pub mod stack;
pub mod status;

/// Now, in seconds since the epoch (what the backups' times are in).
fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
