//! What etcd reports of its members: each one's own status and the alarms
//! the cluster has raised. Plain data, read by the I/O crate's etcd access and
//! judged by the rules here and in the functions.

use serde::{Deserialize, Serialize};

use crate::etcd::ids::{ClusterId, MemberId};

/// One member's own report, from the maintenance Status call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub cluster_id: ClusterId,
    pub member_id: MemberId,
    /// `None` when the member knows no leader.
    pub leader_id: Option<MemberId>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    pub member_id: MemberId,
    pub kind: AlarmKind,
}

/// The alarms etcd raises (its `AlarmType`), named as etcdctl names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlarmKind {
    /// The backend quota is exhausted: the cluster refuses writes.
    NoSpace,
    /// A member's data differs from its peers' at the same revision.
    Corrupt,
}

impl std::fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoSpace => "NOSPACE",
            Self::Corrupt => "CORRUPT",
        })
    }
}

/// The leader most answering members name; ties to the lower id, so every
/// reader of the same answers names the same leader. `None` when no member
/// knows one.
pub fn leader_named_by_most(statuses: &[MemberStatus]) -> Option<MemberId> {
    let mut named: Vec<MemberId> = statuses.iter().filter_map(|s| s.leader_id).collect();
    named.sort_unstable();
    named
        .chunk_by(|a, b| a == b)
        .max_by_key(|run| (run.len(), std::cmp::Reverse(run[0])))
        .map(|run| run[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::status;

    fn naming(leaders: &[Option<u64>]) -> Vec<MemberStatus> {
        leaders
            .iter()
            .enumerate()
            .map(|(n, leader)| MemberStatus {
                leader_id: leader.map(MemberId),
                ..status(n as u64 + 1, 0)
            })
            .collect()
    }

    #[test]
    fn the_leader_is_the_one_most_members_name() {
        assert_eq!(
            leader_named_by_most(&naming(&[Some(2), Some(2), Some(3)])),
            Some(MemberId(2))
        );
    }

    #[test]
    fn a_tie_goes_to_the_lower_id() {
        assert_eq!(
            leader_named_by_most(&naming(&[Some(3), Some(2)])),
            Some(MemberId(2))
        );
    }

    #[test]
    fn members_without_a_leader_name_none() {
        assert_eq!(leader_named_by_most(&naming(&[None, None])), None);
        assert_eq!(leader_named_by_most(&[]), None);
    }

    #[test]
    fn free_bytes_are_the_file_less_what_is_in_use() {
        let full = MemberStatus {
            db_size: 100,
            db_size_in_use: 60,
            ..status(1, 1)
        };
        assert_eq!(full.free_bytes(), 40);
    }
}
