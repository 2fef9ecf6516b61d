//! What a node sees before deciding: plain data gathered by the bootstrap's I/O.

use std::net::IpAddr;

use crate::etcd::ids::ClusterId;
use crate::membership::instance::Instance;
use crate::membership::member::Member;

/// This node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub instance_id: String,
    pub private_ip: IpAddr,
}

/// What probing one peer's client URL found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState {
    /// etcd answered with its member list; `has_quorum` is whether a
    /// linearizable read through it succeeded; `version` is its release
    /// (`None` when its status did not answer).
    Serving {
        cluster_id: ClusterId,
        members: Vec<Member>,
        has_quorum: bool,
        version: Option<String>,
    },
    /// The connection was refused: that host runs no etcd right now.
    Refused,
    /// No usable answer in time. It may be serving a cluster we cannot reach,
    /// so it must never be taken as proof that no cluster exists.
    Silent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerProbe {
    pub instance_id: String,
    pub state: PeerState,
}

/// The state of this node's etcd data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalData {
    /// No write-ahead log: this node has never run a member here.
    Empty,
    /// A write-ahead log exists: a member ran here before.
    Present,
}

/// Everything the decision needs, gathered by I/O beforehand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub me: Me,
    /// The group's instances in every lifecycle state, this node included.
    pub group: Vec<Instance>,
    /// One probe per other live instance that has a private IP.
    pub probes: Vec<PeerProbe>,
    pub local_data: LocalData,
}
