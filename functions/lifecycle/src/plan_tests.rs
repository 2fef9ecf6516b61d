//! Table tests of the lifecycle decision: one row per branch, named for it.

use super::*;
use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::test_support::{instance, ip, learner, member, unstarted};

const LEAVING: &str = "i-leaving";

/// Three instances a (.1), b (.2) and the leaving one (.3), each with its member
/// (ids 1, 2, 3), all healthy; a leads.
struct Fixture {
    members: Vec<Member>,
    leader: Option<MemberId>,
    healthy: Vec<MemberId>,
    group: Vec<Instance>,
}

impl Fixture {
    fn three() -> Self {
        Self {
            members: vec![
                member(1, "i-a", 1),
                member(2, "i-b", 2),
                member(3, LEAVING, 3),
            ],
            leader: Some(MemberId(1)),
            healthy: ids(&[1, 2, 3]),
            group: vec![
                instance("i-a", 1, "InService"),
                instance("i-b", 2, "InService"),
                instance(LEAVING, 3, "Terminating:Wait"),
            ],
        }
    }

    fn view(&self) -> ClusterView<'_> {
        ClusterView {
            members: &self.members,
            leader: self.leader,
            healthy: &self.healthy,
            group: &self.group,
        }
    }

    fn terminate(&self, instance_id: &str) -> TerminationPlan {
        plan_termination(&self.view(), instance_id, None)
    }

    fn member(&self, id: u64) -> Member {
        self.members
            .iter()
            .find(|m| m.id == MemberId(id))
            .cloned()
            .unwrap_or_else(|| member(id, "missing", 0))
    }
}

fn remove(member: Member, transfer_leadership_to: Option<MemberId>) -> Removal {
    Removal {
        member,
        transfer_leadership_to,
    }
}

#[test]
fn a_terminating_follower_is_removed_without_a_leadership_transfer() {
    let f = Fixture::three();
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Remove(vec![remove(f.member(3), None)])
    );
}

#[test]
fn a_terminating_leader_hands_leadership_to_a_healthy_voter_first() {
    let f = Fixture {
        leader: Some(MemberId(3)),
        ..Fixture::three()
    };
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Remove(vec![remove(f.member(3), Some(MemberId(1)))])
    );
}

#[test]
fn leadership_goes_to_a_healthy_member_not_to_an_unreachable_one() {
    let f = Fixture {
        leader: Some(MemberId(3)),
        healthy: ids(&[2, 3]),
        members: vec![
            member(1, "i-a", 1),
            member(2, "i-b", 2),
            member(3, LEAVING, 3),
            member(4, "i-c", 4),
        ],
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
            instance(LEAVING, 3, "Terminating:Wait"),
            instance("i-c", 4, "InService"),
        ],
    };
    // a is unreachable: after the removal only b of the voters a, b, c answers.
    assert!(matches!(
        f.terminate(LEAVING),
        TerminationPlan::Refuse(Refusal::WouldLoseQuorum { .. })
    ));
    let f = Fixture {
        healthy: ids(&[2, 3, 4]),
        ..f
    };
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Remove(vec![remove(f.member(3), Some(MemberId(2)))])
    );
}

#[test]
fn a_learner_is_never_chosen_to_lead() {
    let f = Fixture {
        members: vec![
            learner(1, "i-a", 1),
            member(2, "i-b", 2),
            member(3, LEAVING, 3),
        ],
        leader: Some(MemberId(3)),
        ..Fixture::three()
    };
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Remove(vec![remove(f.member(3), Some(MemberId(2)))])
    );
}

#[test]
fn an_instance_whose_member_is_already_gone_needs_only_its_action_completed() {
    let f = Fixture {
        members: vec![member(1, "i-a", 1), member(2, "i-b", 2)],
        ..Fixture::three()
    };
    assert_eq!(f.terminate(LEAVING), TerminationPlan::AlreadyGone);
}

#[test]
fn a_member_added_but_never_started_is_found_by_its_peer_ip() {
    let f = Fixture {
        members: vec![member(1, "i-a", 1), member(2, "i-b", 2), unstarted(3, 3)],
        ..Fixture::three()
    };
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Remove(vec![remove(f.member(3), None)])
    );
}

#[test]
fn an_unstarted_member_at_an_ip_a_live_instance_now_holds_is_not_touched() {
    // The leaving instance's IP was already handed to a new instance that is
    // joining: the unstarted member is the newcomer's, not ours.
    let f = Fixture {
        members: vec![member(1, "i-a", 1), member(2, "i-b", 2), unstarted(3, 3)],
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
            instance(LEAVING, 3, "Terminating:Wait"),
            instance("i-new", 3, "Pending"),
        ],
        ..Fixture::three()
    };
    assert_eq!(f.terminate(LEAVING), TerminationPlan::AlreadyGone);
}

#[test]
fn an_instance_the_group_still_lists_as_live_is_refused() {
    let f = Fixture::three();
    assert_eq!(
        f.terminate("i-a"),
        TerminationPlan::Refuse(Refusal::StillLive {
            instance_id: "i-a".to_owned(),
            lifecycle_state: "InService".to_owned(),
        })
    );
}

#[test]
fn an_instance_already_gone_from_the_group_is_found_through_ec2() {
    let f = Fixture {
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
        ],
        ..Fixture::three()
    };
    let ec2 = Ec2Instance {
        private_ip: Some(ip(3)),
    };
    assert_eq!(
        plan_termination(&f.view(), LEAVING, Some(&ec2)),
        TerminationPlan::Remove(vec![remove(f.member(3), None)])
    );
}

#[test]
fn an_instance_neither_the_group_nor_ec2_knows_is_unknown() {
    let f = Fixture::three();
    assert_eq!(
        f.terminate("i-never-existed"),
        TerminationPlan::UnknownInstance
    );
}

#[test]
fn removal_that_leaves_too_few_healthy_live_members_is_refused() {
    // b's etcd is down: after removing the leaving member, one of two voters answers.
    let f = Fixture {
        healthy: ids(&[1, 3]),
        ..Fixture::three()
    };
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Refuse(Refusal::WouldLoseQuorum {
            member: MemberId(3),
            voters_after: 2,
            healthy_after: 1,
        })
    );
}

#[test]
fn healthy_members_of_other_leaving_instances_do_not_count_toward_quorum() {
    // Scale-in of two at once: b is leaving too, so only a is sure to stay.
    let f = Fixture {
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "Terminating:Wait"),
            instance(LEAVING, 3, "Terminating:Wait"),
        ],
        ..Fixture::three()
    };
    assert!(matches!(
        f.terminate(LEAVING),
        TerminationPlan::Refuse(Refusal::WouldLoseQuorum {
            healthy_after: 1,
            ..
        })
    ));
}

#[test]
fn the_last_voter_is_never_removed() {
    let f = Fixture {
        members: vec![member(3, LEAVING, 3)],
        leader: Some(MemberId(3)),
        healthy: ids(&[3]),
        group: vec![instance(LEAVING, 3, "Terminating:Wait")],
    };
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Refuse(Refusal::WouldLoseQuorum {
            member: MemberId(3),
            voters_after: 0,
            healthy_after: 0,
        })
    );
}

#[test]
fn removing_a_learner_does_not_need_a_healthy_quorum_change() {
    let f = Fixture {
        members: vec![
            member(1, "i-a", 1),
            member(2, "i-b", 2),
            learner(3, LEAVING, 3),
        ],
        ..Fixture::three()
    };
    assert_eq!(
        f.terminate(LEAVING),
        TerminationPlan::Remove(vec![remove(f.member(3), None)])
    );
}

#[test]
fn reconcile_removes_members_whose_instances_left_the_group() {
    let f = Fixture {
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
        ],
        healthy: ids(&[1, 2]),
        ..Fixture::three()
    };
    assert_eq!(
        plan_reconcile(&f.view()),
        vec![Ok(remove(f.member(3), None))]
    );
}

#[test]
fn reconcile_removes_members_of_instances_that_are_leaving() {
    let f = Fixture::three();
    assert_eq!(
        plan_reconcile(&f.view()),
        vec![Ok(remove(f.member(3), None))]
    );
}

#[test]
fn reconcile_leaves_a_healthy_cluster_alone() {
    let f = Fixture {
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
            instance(LEAVING, 3, "InService"),
        ],
        ..Fixture::three()
    };
    assert_eq!(plan_reconcile(&f.view()), Vec::new());
}

#[test]
fn reconcile_keeps_the_unstarted_member_of_a_joining_instance() {
    let f = Fixture {
        members: vec![member(1, "i-a", 1), member(2, "i-b", 2), learner(4, "", 4)],
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
            instance("i-new", 4, "Pending"),
        ],
        healthy: ids(&[1, 2]),
        leader: Some(MemberId(1)),
    };
    assert_eq!(plan_reconcile(&f.view()), Vec::new());
}

#[test]
fn reconcile_removes_an_unstarted_member_whose_ip_no_live_instance_holds() {
    let f = Fixture {
        members: vec![member(1, "i-a", 1), member(2, "i-b", 2), learner(4, "", 9)],
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
        ],
        healthy: ids(&[1, 2]),
        leader: Some(MemberId(1)),
    };
    assert_eq!(
        plan_reconcile(&f.view()),
        vec![Ok(remove(f.member(4), None))]
    );
}

#[test]
fn reconcile_removes_the_departed_leader_last_and_hands_over_leadership() {
    let f = Fixture {
        members: vec![
            member(1, "i-a", 1),
            member(2, "i-b", 2),
            member(3, "i-c", 3),
            member(4, "i-gone", 4),
            member(5, "i-lost", 5),
        ],
        leader: Some(MemberId(4)),
        healthy: ids(&[1, 2, 3, 4]),
        group: vec![
            instance("i-a", 1, "InService"),
            instance("i-b", 2, "InService"),
            instance("i-c", 3, "InService"),
        ],
    };
    assert_eq!(
        plan_reconcile(&f.view()),
        vec![
            Ok(remove(f.member(5), None)),
            Ok(remove(f.member(4), Some(MemberId(1)))),
        ]
    );
}

#[test]
fn reconcile_stops_short_of_losing_quorum() {
    // The group lists no live instance at all (a misconfigured group, or all
    // instances replaced at once): nothing is safe to remove.
    let f = Fixture {
        group: Vec::new(),
        ..Fixture::three()
    };
    let steps = plan_reconcile(&f.view());
    assert_eq!(steps.len(), 3);
    assert!(steps
        .iter()
        .all(|s| matches!(s, Err(Refusal::WouldLoseQuorum { .. }))));
}

/// Member ids from their numbers.
fn ids(numbers: &[u64]) -> Vec<MemberId> {
    numbers.iter().copied().map(MemberId).collect()
}
