//! Plain-data builders for the table tests of the agent and the functions:
//! instances, members and addresses, the same everywhere so that a row reads
//! the same in `decision`, `recovery`, `member` and the lifecycle plan.
//!
//! Addresses are `127.0.1.<last>`; ports are etcd's standard ones. Compiled
//! always (it is a few functions without I/O), so that other crates' tests can
//! use it without a feature that would rebuild the workspace twice.

use std::net::IpAddr;

use crate::backup::segment::{Change, RevisionChange, Segment, FORMAT};
use crate::contract::names::ports;
use crate::etcd::ids::{ClusterId, MemberId};
use crate::etcd::status::MemberStatus;
use crate::membership::instance::{Instance, LifecycleState};
use crate::membership::member::Member;

/// `127.0.1.<last>`.
pub fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 1, last])
}

/// An instance at `127.0.1.<last>` in the given lifecycle state (AWS's
/// spelling, such as `InService` or `Terminating:Wait`), launched at t=0.
pub fn instance(id: &str, last: u8, state: &str) -> Instance {
    Instance {
        id: id.into(),
        private_ip: Some(ip(last)),
        lifecycle_state: LifecycleState::parse(state),
        launch_time: Some(0),
        availability_zone: None,
    }
}

/// An in-service instance launched at `launched` (seconds), for seed choices.
pub fn launched(id: &str, last: u8, launched: i64) -> Instance {
    Instance {
        launch_time: Some(launched),
        ..instance(id, last, "InService")
    }
}

/// An instance EC2 has not given an IP yet.
pub fn without_ip(id: &str, state: &str) -> Instance {
    Instance {
        private_ip: None,
        ..instance(id, 0, state)
    }
}

/// A started voting member named after its instance, at `127.0.1.<last>`.
pub fn member(id: u64, name: &str, last: u8) -> Member {
    Member {
        id: MemberId(id),
        name: name.into(),
        peer_urls: vec![format!("http://{}:{}", ip(last), ports::PEER)],
        client_urls: vec![format!("http://{}:{}", ip(last), ports::CLIENT)],
        is_learner: false,
    }
}

/// A started learner.
pub fn learner(id: u64, name: &str, last: u8) -> Member {
    Member {
        is_learner: true,
        ..member(id, name, last)
    }
}

/// A learner added for `127.0.1.<last>` whose etcd never started: no name,
/// no client URLs.
pub fn unstarted(id: u64, last: u8) -> Member {
    Member {
        name: String::new(),
        client_urls: Vec::new(),
        ..learner(id, "", last)
    }
}

/// A voting member's status report: of cluster 7, at revision 10, a 4 KiB
/// database wholly in use, naming `leader_id` its leader (0: none); adjust
/// the fields a row is about.
pub fn status(member_id: u64, leader_id: u64) -> MemberStatus {
    MemberStatus {
        cluster_id: ClusterId(7),
        member_id: MemberId(member_id),
        leader_id: (leader_id != 0).then_some(MemberId(leader_id)),
        is_learner: false,
        revision: 10,
        raft_applied_index: 10,
        raft_term: 2,
        db_size: 4096,
        db_size_in_use: 4096,
        version: "3.5.16".into(),
    }
}

/// A segment of cluster `c1` claiming `first..=last` and holding
/// `revisions`, each a put of `k` to `v` seen at `1_700_000_000_000 + revision`
/// ms; adjust the fields a row is about.
pub fn segment(first: i64, last: i64, revisions: &[i64]) -> Segment {
    Segment {
        format: FORMAT,
        cluster_id: ClusterId(0xc1),
        first,
        last,
        flushed_at: 1_700_000_000,
        revisions: revisions
            .iter()
            .map(|&revision| RevisionChange {
                revision,
                changes: vec![Change::Put {
                    key: b"k".to_vec(),
                    value: b"v".to_vec(),
                    lease: 0,
                }],
                seen_at_ms: 1_700_000_000_000 + revision,
            })
            .collect(),
        leases: vec![],
    }
}
