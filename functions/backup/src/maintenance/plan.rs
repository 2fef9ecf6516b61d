//! The maintenance decision: whether to defragment, which members in what
//! order, and what NOSPACE needs. Pure, like the other decisions: every
//! branch is a row in the table tests below.
//!
//! The rules that keep writers going are visible here: nothing is done unless
//! every voting member answers and agrees on a leader (a defragmenting member
//! answers nothing, and with another member down the cluster would lose
//! quorum); one member at a time; followers first; the leader last, after
//! leadership has moved away, so writers never wait on a defragmenting leader.

use etcd_aws_core::etcd::ids::{joined, MemberId};
use etcd_aws_core::etcd::status::{Alarm, AlarmKind, MemberStatus};
use etcd_aws_core::membership::member::Member;

/// What the run saw of the cluster.
#[derive(Debug, Clone, Copy)]
pub struct ClusterState<'a> {
    pub members: &'a [Member],
    /// The status of each member that answered.
    pub statuses: &'a [MemberStatus],
    pub alarms: &'a [Alarm],
    /// Seconds since the newest valid backup was taken; `None`: there is none.
    pub backup_age_seconds: Option<i64>,
}

/// When maintenance is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A member is defragmented once this many bytes of its file are free.
    pub defrag_free_bytes: i64,
    /// A scheduled defragmentation takes a backup first when the newest is
    /// older than this (the backup schedule's interval).
    pub backup_max_age_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No member is fragmented enough, and no alarm asks for anything.
    Nothing,
    /// Something is due, but it is not safe now.
    Wait(WaitReason),
    Maintain(Maintenance),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Take a backup before anything else.
    pub backup_first: bool,
    /// NOSPACE: compact the history up to this revision first, so that the
    /// defragmentations have free pages to give back.
    pub compact_to: Option<i64>,
    /// In this order, one at a time.
    pub defragment: Vec<Defragmentation>,
    /// NOSPACE alarms to clear once every member is below the quota again
    /// (checked after the defragmentations, never before).
    pub disarm: Vec<Alarm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defragmentation {
    pub member_id: MemberId,
    pub client_urls: Vec<String>,
    /// The member leads: hand leadership to this member first.
    pub hand_leadership_to: Option<MemberId>,
    /// What the defragmentation should give back.
    pub free_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitReason {
    #[error("members {} do not answer; maintenance waits for every voting member (a defragmenting member answers nothing, and quorum would hang on the rest)", joined(.0))]
    MembersSilent(Vec<MemberId>),
    #[error("the members do not agree on a leader (they name {}); maintenance waits for a stable leader", named_leaders(.0))]
    NoStableLeader(Vec<Option<MemberId>>),
    #[error("a learner is catching up (member {0}); maintenance waits until the replacement is a voting member")]
    LearnerJoining(MemberId),
    #[error("the CORRUPT alarm is raised for members {}; maintenance leaves a cluster with diverged data alone", joined(.0))]
    Corrupt(Vec<MemberId>),
}

/// The leaders members name, for people: `1, none`.
fn named_leaders(leaders: &[Option<MemberId>]) -> String {
    let named: Vec<String> = leaders
        .iter()
        .map(|l| l.map_or_else(|| "none".to_owned(), |id| id.to_string()))
        .collect();
    named.join(", ")
}

pub fn plan(state: &ClusterState<'_>, thresholds: &Thresholds) -> Plan {
    let nospace: Vec<Alarm> = state
        .alarms
        .iter()
        .filter(|a| a.kind == AlarmKind::NoSpace)
        .copied()
        .collect();
    let status_of = |id: MemberId| state.statuses.iter().find(|s| s.member_id == id);
    let voters: Vec<&Member> = state.members.iter().filter(|m| !m.is_learner).collect();
    let fragmented: Vec<&Member> = voters
        .iter()
        .copied()
        .filter(|m| status_of(m.id).is_some_and(|s| s.free_bytes() >= thresholds.defrag_free_bytes))
        .collect();
    if nospace.is_empty() && fragmented.is_empty() {
        return Plan::Nothing;
    }
    let mut corrupt: Vec<MemberId> = state
        .alarms
        .iter()
        .filter(|a| a.kind == AlarmKind::Corrupt)
        .map(|a| a.member_id)
        .collect();
    if !corrupt.is_empty() {
        corrupt.sort_unstable();
        return Plan::Wait(WaitReason::Corrupt(corrupt));
    }
    if let Some(learner) = state.members.iter().find(|m| m.is_learner) {
        return Plan::Wait(WaitReason::LearnerJoining(learner.id));
    }
    let silent: Vec<MemberId> = voters
        .iter()
        .filter(|m| status_of(m.id).is_none())
        .map(|m| m.id)
        .collect();
    if !silent.is_empty() {
        return Plan::Wait(WaitReason::MembersSilent(silent));
    }
    let mut leaders: Vec<Option<MemberId>> = voters
        .iter()
        .filter_map(|m| status_of(m.id))
        .map(|s| s.leader_id)
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let leader = match leaders.as_slice() {
        [Some(leader)] if voters.iter().any(|m| m.id == *leader) => *leader,
        _ => return Plan::Wait(WaitReason::NoStableLeader(leaders)),
    };

    // Under NOSPACE every member is rewritten after the compaction: its free
    // pages only appear then, so today's sizes say nothing.
    let (to_defragment, compact_to) = if nospace.is_empty() {
        (fragmented, None)
    } else {
        let current = state.statuses.iter().map(|s| s.revision).max();
        (voters.clone(), current)
    };
    let mut followers: Vec<&Member> = to_defragment
        .iter()
        .copied()
        .filter(|m| m.id != leader)
        .collect();
    followers.sort_by_key(|m| m.id);
    let successor = voters.iter().filter(|m| m.id != leader).map(|m| m.id).min();
    let step = |member: &Member, hand_leadership_to: Option<MemberId>| Defragmentation {
        member_id: member.id,
        client_urls: member.client_urls.clone(),
        hand_leadership_to,
        free_bytes: status_of(member.id).map_or(0, MemberStatus::free_bytes),
    };
    let mut defragment: Vec<Defragmentation> = followers.iter().map(|m| step(m, None)).collect();
    if let Some(leader) = to_defragment.iter().find(|m| m.id == leader) {
        defragment.push(step(leader, successor));
    }
    Plan::Maintain(Maintenance {
        backup_first: nospace.is_empty()
            && state
                .backup_age_seconds
                .is_none_or(|age| age > thresholds.backup_max_age_seconds),
        compact_to,
        defragment,
        disarm: nospace,
    })
}

#[cfg(test)]
mod tests {
    use etcd_aws_core::test_support::{learner, member, status};

    use super::*;

    const MIB: i64 = 1024 * 1024;

    fn thresholds() -> Thresholds {
        Thresholds {
            defrag_free_bytes: 64 * MIB,
            backup_max_age_seconds: 900,
        }
    }

    /// Three voters 1, 2, 3 at .1-.3; 1 leads; each file 100 MiB with `free` MiB free.
    struct Cluster {
        members: Vec<Member>,
        statuses: Vec<MemberStatus>,
        alarms: Vec<Alarm>,
        backup_age_seconds: Option<i64>,
    }

    impl Cluster {
        fn with_free(free: [i64; 3]) -> Self {
            let statuses = free
                .iter()
                .zip(1..)
                .map(|(free, id)| MemberStatus {
                    db_size: 100 * MIB,
                    db_size_in_use: (100 - free) * MIB,
                    revision: 500 + i64::try_from(id).unwrap_or(0),
                    ..status(id, 1)
                })
                .collect();
            Self {
                members: vec![
                    member(1, "i-a", 1),
                    member(2, "i-b", 2),
                    member(3, "i-c", 3),
                ],
                statuses,
                alarms: Vec::new(),
                backup_age_seconds: Some(60),
            }
        }

        fn plan(&self) -> Plan {
            plan(
                &ClusterState {
                    members: &self.members,
                    statuses: &self.statuses,
                    alarms: &self.alarms,
                    backup_age_seconds: self.backup_age_seconds,
                },
                &thresholds(),
            )
        }
    }

    fn order(plan: &Plan) -> Vec<(u64, Option<u64>)> {
        match plan {
            Plan::Maintain(m) => m
                .defragment
                .iter()
                .map(|d| (d.member_id.0, d.hand_leadership_to.map(|id| id.0)))
                .collect(),
            other => panic!("expected maintenance, got {other:?}"),
        }
    }

    fn maintenance(plan: Plan) -> Maintenance {
        match plan {
            Plan::Maintain(m) => m,
            other => panic!("expected maintenance, got {other:?}"),
        }
    }

    #[test]
    fn members_below_the_threshold_are_left_alone() {
        assert_eq!(Cluster::with_free([10, 63, 0]).plan(), Plan::Nothing);
    }

    #[test]
    fn only_the_fragmented_members_are_defragmented() {
        let plan = Cluster::with_free([0, 64, 10]).plan();
        assert_eq!(order(&plan), vec![(2, None)]);
        assert_eq!(maintenance(plan).defragment[0].free_bytes, 64 * MIB);
    }

    #[test]
    fn followers_go_first_and_the_leader_last_after_handing_leadership_away() {
        let plan = Cluster::with_free([80, 70, 90]).plan();
        assert_eq!(order(&plan), vec![(2, None), (3, None), (1, Some(2))]);
    }

    #[test]
    fn a_fragmented_leader_alone_still_hands_over_first() {
        let plan = Cluster::with_free([80, 0, 0]).plan();
        assert_eq!(order(&plan), vec![(1, Some(2))]);
    }

    #[test]
    fn a_backup_is_taken_first_when_the_newest_is_older_than_the_schedule() {
        let mut cluster = Cluster::with_free([0, 80, 0]);
        assert!(!maintenance(cluster.plan()).backup_first);
        cluster.backup_age_seconds = Some(901);
        assert!(maintenance(cluster.plan()).backup_first);
        cluster.backup_age_seconds = None;
        assert!(maintenance(cluster.plan()).backup_first);
    }

    #[test]
    fn nothing_is_done_while_a_voter_is_silent() {
        let mut cluster = Cluster::with_free([80, 80, 80]);
        cluster.statuses.retain(|s| s.member_id != MemberId(3));
        assert_eq!(
            cluster.plan(),
            Plan::Wait(WaitReason::MembersSilent(vec![MemberId(3)]))
        );
    }

    #[test]
    fn nothing_is_done_while_members_disagree_on_the_leader() {
        let mut cluster = Cluster::with_free([80, 80, 80]);
        cluster.statuses[2].leader_id = Some(MemberId(3));
        assert_eq!(
            cluster.plan(),
            Plan::Wait(WaitReason::NoStableLeader(vec![
                Some(MemberId(1)),
                Some(MemberId(3))
            ]))
        );
        for s in &mut cluster.statuses {
            s.leader_id = None;
        }
        assert_eq!(
            cluster.plan(),
            Plan::Wait(WaitReason::NoStableLeader(vec![None]))
        );
    }

    #[test]
    fn nothing_is_done_while_a_replacement_is_a_learner() {
        let mut cluster = Cluster::with_free([80, 80, 80]);
        cluster.members.push(learner(4, "i-d", 4));
        assert_eq!(
            cluster.plan(),
            Plan::Wait(WaitReason::LearnerJoining(MemberId(4)))
        );
    }

    #[test]
    fn a_corrupt_cluster_is_left_alone() {
        let mut cluster = Cluster::with_free([80, 80, 80]);
        cluster.alarms.push(Alarm {
            member_id: MemberId(3),
            kind: AlarmKind::Corrupt,
        });
        assert_eq!(
            cluster.plan(),
            Plan::Wait(WaitReason::Corrupt(vec![MemberId(3)]))
        );
    }

    #[test]
    fn nospace_compacts_to_the_current_revision_then_defragments_every_member_and_disarms() {
        let mut cluster = Cluster::with_free([0, 0, 0]);
        let alarm = Alarm {
            member_id: MemberId(2),
            kind: AlarmKind::NoSpace,
        };
        cluster.alarms.push(alarm);
        let plan = cluster.plan();
        assert_eq!(order(&plan), vec![(2, None), (3, None), (1, Some(2))]);
        let maintenance = maintenance(plan);
        assert_eq!(maintenance.compact_to, Some(503));
        assert_eq!(maintenance.disarm, vec![alarm]);
        assert!(
            !maintenance.backup_first,
            "NOSPACE is recovered first: writers are refused meanwhile"
        );
    }

    #[test]
    fn nospace_with_a_member_down_waits_rather_than_lose_quorum() {
        let mut cluster = Cluster::with_free([0, 0, 0]);
        cluster.alarms.push(Alarm {
            member_id: MemberId(1),
            kind: AlarmKind::NoSpace,
        });
        cluster.statuses.retain(|s| s.member_id != MemberId(2));
        assert_eq!(
            cluster.plan(),
            Plan::Wait(WaitReason::MembersSilent(vec![MemberId(2)]))
        );
    }
}
