//! Which member to take the snapshot from: a pure function of what each
//! member said about itself.
//!
//! A snapshot is a full read of the database and costs the serving member
//! disk and network for its whole duration, so a follower serves it: the
//! leader is the one member whose slowness slows every write. The leader is
//! still better than no backup, so it comes last rather than never.

use etcd_aws_core::etcd::status::MemberStatus;

/// One live instance's client URL and what its member answered, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProbe {
    pub endpoint: String,
    pub status: Option<MemberStatus>,
}

/// A member that may serve the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub endpoint: String,
    pub status: MemberStatus,
    pub is_leader: bool,
}

/// Members fit to serve the snapshot, best first: followers before the
/// leader, among followers the one with most applied (its snapshot is the
/// freshest), then the lower member id so repeated runs agree.
///
/// Learners are left out (they may lag arbitrarily and are not part of the
/// quorum), and so is a member that knows no leader: it is partitioned or the
/// cluster has lost quorum, and its data may be stale.
pub fn candidates(probes: &[MemberProbe]) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = probes
        .iter()
        .filter_map(|probe| {
            let status = probe.status.as_ref()?;
            (status.leader_id.is_some() && !status.is_learner).then(|| Candidate {
                endpoint: probe.endpoint.clone(),
                status: status.clone(),
                is_leader: Some(status.member_id) == status.leader_id,
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        (
            a.is_leader,
            std::cmp::Reverse(a.status.raft_applied_index),
            a.status.member_id,
        )
            .cmp(&(
                b.is_leader,
                std::cmp::Reverse(b.status.raft_applied_index),
                b.status.member_id,
            ))
    });
    // Two endpoints can reach one member (an instance listed twice); once is enough.
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.status.member_id));
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(member_id: u64, leader_id: u64, applied: u64) -> MemberStatus {
        MemberStatus {
            raft_applied_index: applied,
            ..etcd_aws_core::test_support::status(member_id, leader_id)
        }
    }

    fn probe(endpoint: &str, status: Option<MemberStatus>) -> MemberProbe {
        MemberProbe {
            endpoint: endpoint.into(),
            status,
        }
    }

    fn endpoints(candidates: &[Candidate]) -> Vec<&str> {
        candidates.iter().map(|c| c.endpoint.as_str()).collect()
    }

    #[test]
    fn followers_come_before_the_leader() {
        let probes = [
            probe("a", Some(status(1, 1, 50))),
            probe("b", Some(status(2, 1, 50))),
            probe("c", Some(status(3, 1, 50))),
        ];
        assert_eq!(endpoints(&candidates(&probes)), vec!["b", "c", "a"]);
    }

    #[test]
    fn the_follower_with_most_applied_comes_first() {
        let probes = [
            probe("b", Some(status(2, 1, 40))),
            probe("c", Some(status(3, 1, 50))),
        ];
        assert_eq!(endpoints(&candidates(&probes)), vec!["c", "b"]);
    }

    #[test]
    fn the_leader_serves_when_no_follower_answers() {
        let probes = [
            probe("a", Some(status(1, 1, 50))),
            probe("b", None),
            probe("c", None),
        ];
        let chosen = candidates(&probes);
        assert_eq!(endpoints(&chosen), vec!["a"]);
        assert!(chosen[0].is_leader);
    }

    #[test]
    fn a_member_that_knows_no_leader_is_not_a_candidate() {
        let probes = [probe("a", Some(status(1, 0, 50)))];
        assert!(candidates(&probes).is_empty());
    }

    #[test]
    fn a_learner_is_not_a_candidate() {
        let mut learner = status(4, 1, 50);
        learner.is_learner = true;
        let probes = [
            probe("d", Some(learner)),
            probe("a", Some(status(1, 1, 50))),
        ];
        assert_eq!(endpoints(&candidates(&probes)), vec!["a"]);
    }

    #[test]
    fn a_member_reached_twice_is_listed_once() {
        let probes = [
            probe("b", Some(status(2, 1, 50))),
            probe("b2", Some(status(2, 1, 50))),
        ];
        assert_eq!(endpoints(&candidates(&probes)), vec!["b"]);
    }

    #[test]
    fn equal_followers_are_ordered_by_member_id() {
        let probes = [
            probe("c", Some(status(3, 1, 50))),
            probe("b", Some(status(2, 1, 50))),
        ];
        assert_eq!(endpoints(&candidates(&probes)), vec!["b", "c"]);
    }
}
