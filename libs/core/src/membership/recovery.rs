//! Quorum loss with a survivor: may this node force a new cluster from its data?
//!
//! Pure, like [`crate::membership::decision`]. The rule that keeps it safe: a member that
//! does not answer is only counted as lost when its instance is confirmed gone
//! from the group. A member that is merely unreachable (a partition, a paused
//! process, a reboot) may come back with the newest writes, so the survivor
//! waits for it instead.

use std::fmt;

use crate::etcd::ids::MemberId;
use crate::membership::instance::Instance;
use crate::membership::member::{Member, Standing};

/// What a running member sees once its cluster has lost quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumLoss {
    pub my_member_id: MemberId,
    /// The revision this member has applied.
    pub my_revision: i64,
    /// The member list as this member knows it.
    pub members: Vec<Member>,
    /// Other members that still answer, with their applied revisions.
    pub answering: Vec<(MemberId, i64)>,
    /// The group's instances in every state.
    pub group: Vec<Instance>,
    /// The revision of the newest backup, if any.
    pub newest_backup_revision: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Restart this member with `--force-new-cluster`: it keeps its data and
    /// becomes a one-member cluster that the replacements join.
    ForceNewCluster,
    Wait(RecoveryWait),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryWait {
    /// These members do not answer but their instances are still live.
    MembersMayReturn(Vec<String>),
    /// Enough members answer for quorum; it should come back by itself.
    QuorumWithinReach,
    /// Another survivor has newer data (or wins the tie) and recovers instead.
    AnotherSurvivorRecovers(String),
    /// The newest backup is newer than every survivor: an operator must choose.
    BackupIsNewer { backup: i64, survivor: i64 },
    /// This member is a learner or not in its own member list.
    NotAVoter,
}

impl RecoveryWait {
    /// The reason's name in a log line's `wait` field, for queries and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MembersMayReturn(_) => "members_may_return",
            Self::QuorumWithinReach => "quorum_within_reach",
            Self::AnotherSurvivorRecovers(_) => "another_survivor_recovers",
            Self::BackupIsNewer { .. } => "backup_is_newer",
            Self::NotAVoter => "not_a_voter",
        }
    }
}

impl fmt::Display for RecoveryWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MembersMayReturn(names) => write!(
                f,
                "members {} do not answer, but their instances are still in the group: they may come back with newer data, so no forced recovery",
                names.join(", ")
            ),
            Self::QuorumWithinReach => write!(f, "enough members answer for quorum; waiting for it to return"),
            Self::AnotherSurvivorRecovers(name) => write!(f, "survivor {name} has the newest data and recovers the cluster"),
            Self::BackupIsNewer { backup, survivor } => write!(
                f,
                "the newest backup (revision {backup}) is newer than every survivor (revision {survivor}); choose by hand: restore the backup, or force the survivor"
            ),
            Self::NotAVoter => write!(f, "this member is not a voting member and cannot recover the cluster"),
        }
    }
}

pub fn decide_recovery(view: &QuorumLoss) -> Recovery {
    let voters: Vec<&Member> = view.members.iter().filter(|m| !m.is_learner).collect();
    if !voters.iter().any(|m| m.id == view.my_member_id) {
        return Recovery::Wait(RecoveryWait::NotAVoter);
    }
    let answers =
        |id: MemberId| id == view.my_member_id || view.answering.iter().any(|(a, _)| *a == id);
    // A leaving instance's member will not come back: only live ones may.
    let silent_but_live: Vec<String> = voters
        .iter()
        .filter(|m| !answers(m.id))
        .filter(|m| m.standing(&view.group, None) == Standing::Live)
        .map(|m| {
            if m.name.is_empty() {
                m.id.to_string()
            } else {
                m.name.clone()
            }
        })
        .collect();
    if !silent_but_live.is_empty() {
        return Recovery::Wait(RecoveryWait::MembersMayReturn(silent_but_live));
    }
    let answering_voters = voters.iter().filter(|m| answers(m.id)).count();
    if answering_voters > voters.len() / 2 {
        return Recovery::Wait(RecoveryWait::QuorumWithinReach);
    }
    // Exactly one survivor may force: the newest data, ties to the lowest name.
    let revision_of = |id: MemberId| {
        if id == view.my_member_id {
            view.my_revision
        } else {
            view.answering
                .iter()
                .find(|(a, _)| *a == id)
                .map_or(i64::MIN, |(_, r)| *r)
        }
    };
    let best = voters.iter().filter(|m| answers(m.id)).max_by(|a, b| {
        revision_of(a.id)
            .cmp(&revision_of(b.id))
            .then_with(|| b.name.cmp(&a.name))
    });
    match best {
        Some(best) if best.id != view.my_member_id => {
            return Recovery::Wait(RecoveryWait::AnotherSurvivorRecovers(best.name.clone()));
        }
        _ => {}
    }
    match view.newest_backup_revision {
        Some(backup) if backup > view.my_revision => Recovery::Wait(RecoveryWait::BackupIsNewer {
            backup,
            survivor: view.my_revision,
        }),
        _ => Recovery::ForceNewCluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{instance, member, unstarted};

    fn live(id: &str, last: u8) -> Instance {
        instance(id, last, "InService")
    }

    /// Me (1, "i-me") at revision 100 in a three-member cluster with i-b and i-c.
    fn view(group: Vec<Instance>, answering: Vec<(u64, i64)>) -> QuorumLoss {
        QuorumLoss {
            my_member_id: MemberId(1),
            my_revision: 100,
            members: vec![
                member(1, "i-me", 4),
                member(2, "i-b", 5),
                member(3, "i-c", 6),
            ],
            answering: answering
                .into_iter()
                .map(|(id, r)| (MemberId(id), r))
                .collect(),
            group,
            newest_backup_revision: Some(90),
        }
    }

    #[test]
    fn sole_survivor_forces_a_new_cluster_when_the_others_are_gone_from_the_group() {
        let v = view(
            vec![live("i-me", 4), live("i-new1", 7), live("i-new2", 8)],
            vec![],
        );
        assert_eq!(decide_recovery(&v), Recovery::ForceNewCluster);
    }

    #[test]
    fn unreachable_members_whose_instances_are_live_are_waited_for() {
        let v = view(
            vec![live("i-me", 4), live("i-b", 5), live("i-new", 8)],
            vec![],
        );
        assert_eq!(
            decide_recovery(&v),
            Recovery::Wait(RecoveryWait::MembersMayReturn(vec!["i-b".into()]))
        );
    }

    #[test]
    fn terminating_instances_count_as_gone() {
        let leaving = instance("i-b", 5, "Terminating:Wait");
        let v = view(vec![live("i-me", 4), leaving], vec![]);
        assert_eq!(decide_recovery(&v), Recovery::ForceNewCluster);
    }

    #[test]
    fn unstarted_member_at_a_live_instances_address_is_waited_for() {
        let mut v = view(vec![live("i-me", 4), live("i-x", 5)], vec![]);
        v.members[1] = Member {
            is_learner: false,
            ..unstarted(2, 5)
        };
        assert_eq!(
            decide_recovery(&v),
            Recovery::Wait(RecoveryWait::MembersMayReturn(vec!["2".into()]))
        );
    }

    #[test]
    fn survivor_with_older_data_lets_the_newer_one_recover() {
        let mut v = view(vec![live("i-me", 4), live("i-b", 5)], vec![(2, 150)]);
        v.members.push(member(4, "i-d", 9));
        v.members.push(member(5, "i-e", 10));
        assert_eq!(
            decide_recovery(&v),
            Recovery::Wait(RecoveryWait::AnotherSurvivorRecovers("i-b".into()))
        );
    }

    #[test]
    fn equal_survivors_leave_recovery_to_the_lowest_name() {
        let mut v = view(vec![live("i-me", 4), live("i-b", 5)], vec![(2, 100)]);
        v.members.push(member(4, "i-d", 9));
        v.members.push(member(5, "i-e", 10));
        assert_eq!(
            decide_recovery(&v),
            Recovery::Wait(RecoveryWait::AnotherSurvivorRecovers("i-b".into()))
        );
    }

    #[test]
    fn newest_survivor_of_two_forces_when_three_of_five_are_gone() {
        let mut v = view(vec![live("i-me", 4), live("i-b", 5)], vec![(2, 50)]);
        v.members.push(member(4, "i-d", 9));
        v.members.push(member(5, "i-e", 10));
        assert_eq!(decide_recovery(&v), Recovery::ForceNewCluster);
    }

    #[test]
    fn quorum_within_reach_is_not_forced() {
        let v = view(vec![live("i-me", 4), live("i-b", 5)], vec![(2, 100)]);
        assert_eq!(
            decide_recovery(&v),
            Recovery::Wait(RecoveryWait::QuorumWithinReach)
        );
    }

    #[test]
    fn backup_newer_than_every_survivor_needs_an_operator() {
        let mut v = view(vec![live("i-me", 4)], vec![]);
        v.newest_backup_revision = Some(120);
        assert_eq!(
            decide_recovery(&v),
            Recovery::Wait(RecoveryWait::BackupIsNewer {
                backup: 120,
                survivor: 100
            })
        );
    }

    #[test]
    fn learner_never_forces() {
        let mut v = view(vec![live("i-me", 4)], vec![]);
        v.members[0].is_learner = true;
        assert_eq!(decide_recovery(&v), Recovery::Wait(RecoveryWait::NotAVoter));
    }
}
