//! Table tests of the bootstrap decision: one row per branch, named for it.

use super::*;
use crate::membership::observation::PeerProbe;
use crate::test_support::{instance, ip, launched, learner, member, unstarted};

const ME: &str = "i-me";

fn leaving(id: &str, last: u8) -> Instance {
    instance(id, last, "Terminating:Wait")
}

fn serving(instance_id: &str, members: &[Member], has_quorum: bool) -> PeerProbe {
    PeerProbe {
        instance_id: instance_id.into(),
        state: PeerState::Serving {
            cluster_id: ClusterId(0xc1),
            members: members.to_vec(),
            has_quorum,
            version: Some("3.5.16".into()),
        },
    }
}

fn probe(instance_id: &str, state: PeerState) -> PeerProbe {
    PeerProbe {
        instance_id: instance_id.into(),
        state,
    }
}

/// Me at 127.0.1.10, launched at t=30; peers a (t=10, .4) and b (t=20, .5).
fn observe(group: Vec<Instance>, probes: Vec<PeerProbe>, local_data: LocalData) -> Observation {
    Observation {
        me: Me {
            instance_id: ME.into(),
            private_ip: ip(10),
        },
        group,
        probes,
        local_data,
    }
}

fn three(me_launched: i64) -> Vec<Instance> {
    vec![
        launched("i-a", 4, 10),
        launched("i-b", 5, 20),
        launched(ME, 10, me_launched),
    ]
}

fn healthy_ab() -> Vec<PeerProbe> {
    let members = [member(1, "i-a", 4), member(2, "i-b", 5)];
    vec![
        serving("i-a", &members, true),
        serving("i-b", &members, true),
    ]
}

fn join(remove: Vec<Member>, move_aside: bool, existing: Option<u64>) -> Decision {
    Decision::Join(JoinPlan {
        remove,
        move_aside_local_data: move_aside,
        existing_member: existing.map(MemberId),
    })
}

#[test]
fn member_with_its_data_restarts() {
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), member(3, ME, 10)];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Present,
    );
    assert_eq!(decide(&obs), Decision::Restart);
}

#[test]
fn learner_with_its_data_restarts_and_is_promoted_later() {
    let members = [member(1, "i-a", 4), learner(3, ME, 10)];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Present,
    );
    assert_eq!(decide(&obs), Decision::Restart);
}

#[test]
fn new_node_joins_a_healthy_cluster() {
    let obs = observe(three(30), healthy_ab(), LocalData::Empty);
    assert_eq!(decide(&obs), join(vec![], false, None));
}

#[test]
fn joining_node_removes_members_whose_instances_left_the_group() {
    let gone = member(9, "i-gone", 9);
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), gone.clone()];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![gone], false, None));
}

#[test]
fn joining_node_leaves_members_of_terminating_instances_to_the_lifecycle_function() {
    let mut group = three(30);
    group.push(leaving("i-old", 6));
    let members = [
        member(1, "i-a", 4),
        member(2, "i-b", 5),
        member(6, "i-old", 6),
    ];
    let obs = observe(
        group,
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![], false, None));
}

#[test]
fn joining_node_removes_members_whose_instances_are_terminated() {
    let mut group = three(30);
    group.push(instance("i-old", 6, "Terminated"));
    let old = member(6, "i-old", 6);
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), old.clone()];
    let obs = observe(
        group,
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![old], false, None));
}

#[test]
fn joining_node_removes_an_unstarted_member_at_an_address_no_live_instance_has() {
    let orphan = unstarted(7, 77);
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), orphan.clone()];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![orphan], false, None));
}

#[test]
fn joining_node_keeps_an_unstarted_member_of_another_live_instance() {
    let mut group = three(30);
    group.push(launched("i-c", 6, 40));
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), unstarted(7, 6)];
    let obs = observe(
        group,
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![], false, None));
}

#[test]
fn node_that_was_added_but_never_started_reuses_its_member() {
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), unstarted(3, 10)];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![], false, Some(3)));
}

#[test]
fn removed_members_data_is_moved_aside_before_joining() {
    let obs = observe(three(30), healthy_ab(), LocalData::Present);
    assert_eq!(decide(&obs), join(vec![], true, None));
}

#[test]
fn member_that_lost_its_disk_replaces_its_old_member() {
    let former = member(3, ME, 10);
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), former.clone()];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![former], false, None));
}

#[test]
fn member_named_like_me_at_another_address_is_stale_and_removed() {
    let stale = member(3, ME, 99);
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), stale.clone()];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![stale], false, None));
}

#[test]
fn duplicate_members_of_a_departed_instance_are_all_removed() {
    let (d1, d2) = (member(8, "i-gone", 8), member(9, "i-gone", 9));
    let members = [
        member(1, "i-a", 4),
        member(2, "i-b", 5),
        d1.clone(),
        d2.clone(),
    ];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), join(vec![d1, d2], false, None));
}

#[test]
fn one_peer_with_quorum_is_enough_to_join() {
    let members = [member(1, "i-a", 4), member(2, "i-b", 5)];
    let probes = vec![
        serving("i-a", &members, true),
        probe("i-b", PeerState::Silent),
    ];
    let obs = observe(three(30), probes, LocalData::Empty);
    assert_eq!(decide(&obs), join(vec![], false, None));
}

#[test]
fn member_with_data_restarts_when_the_cluster_lacks_quorum() {
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), member(3, ME, 10)];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, false)],
        LocalData::Present,
    );
    assert_eq!(decide(&obs), Decision::Restart);
}

#[test]
fn non_member_waits_when_the_cluster_lacks_quorum() {
    let members = [member(1, "i-a", 4), member(2, "i-b", 5)];
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, false)],
        LocalData::Empty,
    );
    assert_eq!(decide(&obs), Decision::Wait(WaitReason::NoQuorum));
}

#[test]
fn node_with_data_restarts_when_nobody_serves() {
    let probes = vec![
        probe("i-a", PeerState::Refused),
        probe("i-b", PeerState::Silent),
    ];
    let obs = observe(three(30), probes, LocalData::Present);
    assert_eq!(decide(&obs), Decision::Restart);
}

#[test]
fn seed_forms_when_every_peer_refuses() {
    let probes = vec![
        probe("i-a", PeerState::Refused),
        probe("i-b", PeerState::Refused),
    ];
    let obs = observe(three(5), probes, LocalData::Empty);
    assert_eq!(decide(&obs), Decision::Form);
}

#[test]
fn single_instance_group_forms_at_once() {
    let obs = observe(vec![launched(ME, 10, 1)], vec![], LocalData::Empty);
    assert_eq!(decide(&obs), Decision::Form);
}

#[test]
fn seed_waits_while_a_peer_is_silent_because_a_cluster_may_be_behind_it() {
    let probes = vec![
        probe("i-a", PeerState::Refused),
        probe("i-b", PeerState::Silent),
    ];
    let obs = observe(three(5), probes, LocalData::Empty);
    assert_eq!(
        decide(&obs),
        Decision::Wait(WaitReason::PeersUnconfirmed(vec!["i-b".into()]))
    );
}

#[test]
fn seed_waits_for_a_live_instance_that_has_no_ip_yet() {
    let mut group = three(5);
    group[1].private_ip = None;
    let obs = observe(
        group,
        vec![probe("i-a", PeerState::Refused)],
        LocalData::Empty,
    );
    assert_eq!(
        decide(&obs),
        Decision::Wait(WaitReason::PeersUnconfirmed(vec!["i-b".into()]))
    );
}

#[test]
fn non_seed_waits_for_the_earliest_launched_instance() {
    let probes = vec![
        probe("i-a", PeerState::Refused),
        probe("i-b", PeerState::Refused),
    ];
    let obs = observe(three(30), probes, LocalData::Empty);
    assert_eq!(
        decide(&obs),
        Decision::Wait(WaitReason::WaitingForSeed("i-a".into()))
    );
}

#[test]
fn equal_launch_times_pick_the_lowest_instance_id_as_seed() {
    let group = vec![
        launched("i-b", 5, 10),
        launched("i-a", 4, 10),
        launched(ME, 10, 10),
    ];
    let probes = vec![
        probe("i-a", PeerState::Refused),
        probe("i-b", PeerState::Refused),
    ];
    let obs = observe(group, probes, LocalData::Empty);
    assert_eq!(
        decide(&obs),
        Decision::Wait(WaitReason::WaitingForSeed("i-a".into()))
    );
}

#[test]
fn terminating_instances_are_never_the_seed() {
    let group = vec![leaving("i-a", 4), launched(ME, 10, 30)];
    let obs = observe(group, vec![], LocalData::Empty);
    assert_eq!(decide(&obs), Decision::Form);
}

#[test]
fn instances_without_launch_time_sort_after_known_ones() {
    let mut group = three(30);
    group[0].launch_time = None;
    group[1].launch_time = None;
    let probes = vec![
        probe("i-a", PeerState::Refused),
        probe("i-b", PeerState::Refused),
    ];
    let obs = observe(group, probes, LocalData::Empty);
    assert_eq!(decide(&obs), Decision::Form);
}

#[test]
fn node_not_listed_in_its_group_waits() {
    let obs = observe(
        vec![launched("i-a", 4, 10)],
        healthy_ab(),
        LocalData::Present,
    );
    assert_eq!(decide(&obs), Decision::Wait(WaitReason::NotLiveInGroup));
}

#[test]
fn terminating_node_waits_instead_of_joining() {
    let group = vec![
        launched("i-a", 4, 10),
        launched("i-b", 5, 20),
        leaving(ME, 10),
    ];
    let obs = observe(group, healthy_ab(), LocalData::Empty);
    assert_eq!(decide(&obs), Decision::Wait(WaitReason::NotLiveInGroup));
}

#[test]
fn peers_serving_different_clusters_make_the_node_wait() {
    let members = [member(1, "i-a", 4)];
    let other = PeerProbe {
        instance_id: "i-b".into(),
        state: PeerState::Serving {
            cluster_id: ClusterId(0xc2),
            members: vec![member(2, "i-b", 5)],
            has_quorum: true,
            version: Some("3.5.16".into()),
        },
    };
    let obs = observe(
        three(30),
        vec![serving("i-a", &members, true), other],
        LocalData::Empty,
    );
    assert_eq!(
        decide(&obs),
        Decision::Wait(WaitReason::ConflictingClusters(vec![
            ClusterId(0xc1),
            ClusterId(0xc2)
        ]))
    );
}

#[test]
fn wait_reasons_explain_themselves() {
    let text = WaitReason::PeersUnconfirmed(vec!["i-b".into()]).to_string();
    assert!(
        text.contains("i-b") && text.contains("cannot confirm"),
        "{text}"
    );
}

#[test]
fn diverged_data_is_set_aside_while_a_healthy_quorum_serves() {
    let obs = observe(three(30), healthy_ab(), LocalData::Present);
    assert_eq!(after_divergence(&obs), Ok(()));
}

#[test]
fn diverged_data_stays_while_the_peers_have_no_quorum() {
    let members = [member(1, "i-a", 4), member(2, "i-b", 5), member(3, ME, 10)];
    let obs = observe(
        three(30),
        vec![
            serving("i-a", &members, false),
            probe("i-b", PeerState::Silent),
        ],
        LocalData::Present,
    );
    assert_eq!(
        after_divergence(&obs),
        Err(WaitReason::DivergedWithoutQuorum)
    );
}

#[test]
fn diverged_data_stays_while_nobody_serves() {
    let probes = vec![
        probe("i-a", PeerState::Refused),
        probe("i-b", PeerState::Refused),
    ];
    let obs = observe(three(30), probes, LocalData::Present);
    assert_eq!(
        after_divergence(&obs),
        Err(WaitReason::DivergedWithoutQuorum)
    );
}
