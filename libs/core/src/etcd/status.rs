//! What etcd reports of its members: each one's own status and the alarms
//! the cluster has raised. Plain data, read by the I/O crate's etcd access and
//! judged by the rules here and in the functions.

/// One member's own report, from the maintenance Status call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub cluster_id: u64,
    pub member_id: u64,
    /// 0 when the member knows no leader.
    pub leader_id: u64,
    pub is_learner: bool,
    /// The revision this member has applied (not a linearizable read).
    pub revision: i64,
    pub raft_applied_index: u64,
    /// Rises by one with every leader election.
    pub raft_term: u64,
    /// The size of the backend file.
    pub db_size: i64,
    /// What of the file holds data; the rest is free pages a defragmentation returns.
    pub db_size_in_use: i64,
    pub version: String,
}

impl MemberStatus {
    /// The bytes a defragmentation would give back.
    pub fn free_bytes(&self) -> i64 {
        (self.db_size - self.db_size_in_use).max(0)
    }
}

/// An alarm a member has raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub member_id: u64,
    pub kind: AlarmKind,
}

/// The alarms etcd raises (its `AlarmType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    /// The backend quota is exhausted: the cluster refuses writes.
    NoSpace,
    /// A member's data differs from its peers' at the same revision.
    Corrupt,
}
