//! The bootstrap decision: given what a node observes, form, join, restart or wait.
//!
//! Pure: no I/O, so every branch is a row in the table tests below. The two
//! rules that keep data safe are visible here: a node only forms a cluster when
//! it is the seed *and* every other live instance is positively known to run no
//! etcd (a silent peer might be serving a cluster we cannot reach), and a stale
//! data directory is moved aside, never reused and never deleted.

use std::fmt;

use crate::etcd::ids::{ClusterId, MemberId};
use crate::membership::instance::Instance;
use crate::membership::member::{Member, Standing};
use crate::membership::observation::{LocalData, Me, Observation, PeerState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The local data directory belongs to a current member (or nobody is
    /// serving and this node has data): start etcd on it as it is.
    Restart,
    /// A healthy cluster exists and this node is not (or no longer) in it.
    Join(JoinPlan),
    /// No cluster exists and this node is the seed: form a one-member cluster,
    /// from the newest valid backup when there is one (which backup is chosen
    /// after this decision, since only a seed needs to read the bucket).
    Form,
    /// Nothing safe to do yet; observe again later.
    Wait(WaitReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    /// Members whose instances have left the group (or a former incarnation of
    /// this node): remove them before adding ourselves.
    pub remove: Vec<Member>,
    /// The data directory holds a removed member's data: move it aside.
    pub move_aside_local_data: bool,
    /// This node was already added (a previous attempt died before etcd
    /// started): reuse that member instead of adding another.
    pub existing_member: Option<MemberId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// The group does not list this instance as live (yet, or any more).
    NotLiveInGroup,
    /// Peers answer for different clusters: an operator must look.
    ConflictingClusters(Vec<ClusterId>),
    /// Members answer but none can serve a linearizable read, and this node
    /// has no member data to help restore quorum.
    NoQuorum,
    /// Another instance is the seed; this node joins once it serves.
    WaitingForSeed(String),
    /// This node is the seed but cannot confirm these instances run no etcd.
    PeersUnconfirmed(Vec<String>),
    /// This node's data differs from its peers' and no healthy quorum holds
    /// the cluster's data for it to rejoin from.
    DivergedWithoutQuorum,
}

impl WaitReason {
    /// The reason's name in a log line's `wait` field, for queries and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotLiveInGroup => "not_live_in_group",
            Self::ConflictingClusters(_) => "conflicting_clusters",
            Self::NoQuorum => "no_quorum",
            Self::WaitingForSeed(_) => "waiting_for_seed",
            Self::PeersUnconfirmed(_) => "peers_unconfirmed",
            Self::DivergedWithoutQuorum => "diverged_without_quorum",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLiveInGroup => write!(f, "this instance is not listed as live in its autoscaling group"),
            Self::ConflictingClusters(ids) => {
                let ids: Vec<String> = ids.iter().map(ClusterId::to_string).collect();
                write!(f, "peers serve different clusters ({}); refusing to pick one, check the members by hand", ids.join(", "))
            }
            Self::NoQuorum => write!(f, "members answer but the cluster has no quorum, and this node has no member data to restore it"),
            Self::WaitingForSeed(seed) => write!(f, "no cluster is serving yet; waiting for the seed instance {seed} to form it"),
            Self::DivergedWithoutQuorum => write!(f, "this member's data differs from its peers' (etcd's corruption check refused it), and no peer serves with quorum: keeping the data in place until a healthy quorum can take this node back as a learner"),
            Self::PeersUnconfirmed(ids) => write!(
                f,
                "this node is the seed, but cannot confirm that {} run no etcd (silent or without an IP); a cluster may exist behind them",
                ids.join(", ")
            ),
        }
    }
}

/// Decides what this node does next. See the module documentation.
pub fn decide(observation: &Observation) -> Decision {
    let Observation {
        me,
        group,
        probes,
        local_data,
    } = observation;
    let live: Vec<&Instance> = group.iter().filter(|i| i.is_live()).collect();
    if !live.iter().any(|i| i.id == me.instance_id) {
        return Decision::Wait(WaitReason::NotLiveInGroup);
    }

    let serving: Vec<(ClusterId, &Vec<Member>, bool)> = probes
        .iter()
        .filter_map(|p| match &p.state {
            PeerState::Serving {
                cluster_id,
                members,
                has_quorum,
                ..
            } => Some((*cluster_id, members, *has_quorum)),
            _ => None,
        })
        .collect();
    let mut cluster_ids: Vec<ClusterId> = serving.iter().map(|(id, _, _)| *id).collect();
    cluster_ids.sort_unstable();
    cluster_ids.dedup();
    if cluster_ids.len() > 1 {
        return Decision::Wait(WaitReason::ConflictingClusters(cluster_ids));
    }

    if let Some((_, members, _)) = serving.iter().find(|(_, _, quorum)| *quorum) {
        return decide_with_healthy_cluster(me, group, members, *local_data);
    }
    if let Some((_, members, _)) = serving.first() {
        let am_member = members.iter().any(|m| m.is_mine(me));
        return match (am_member, local_data) {
            // Our vote may be the one the cluster is missing.
            (true, LocalData::Present) => Decision::Restart,
            _ => Decision::Wait(WaitReason::NoQuorum),
        };
    }
    if *local_data == LocalData::Present {
        // Nobody serves: the whole cluster is (re)starting; our data has the
        // member list, and etcd finds the others once they start too.
        return Decision::Restart;
    }
    decide_without_cluster(me, &live, observation)
}

/// After etcd refused to start this member because its data differs from
/// its peers' at the same revision: set the data aside (never delete it)
/// and rejoin as a new learner, but only while a healthy quorum holds the
/// cluster's data; otherwise wait, since this copy may be all that is left.
pub fn after_divergence(observation: &Observation) -> Result<(), WaitReason> {
    let healthy = observation.probes.iter().any(|p| {
        matches!(
            p.state,
            PeerState::Serving {
                has_quorum: true,
                ..
            }
        )
    });
    if healthy {
        Ok(())
    } else {
        Err(WaitReason::DivergedWithoutQuorum)
    }
}

fn decide_with_healthy_cluster(
    me: &Me,
    group: &[Instance],
    members: &[Member],
    local_data: LocalData,
) -> Decision {
    let mine = members.iter().find(|m| m.is_mine(me));
    let pending = members
        .iter()
        .find(|m| m.is_unstarted() && m.has_peer_ip(me.private_ip));
    // Members of leaving instances still serve: handing them over is the
    // lifecycle function's job. A joiner removes only the departed ones.
    let mut remove: Vec<Member> = members
        .iter()
        .filter(|m| Some(*m) != mine && Some(*m) != pending)
        .filter(|m| m.standing(group, Some(me)) == Standing::Departed)
        .cloned()
        .collect();
    match (mine, local_data) {
        (Some(_), LocalData::Present) => Decision::Restart,
        (Some(former), LocalData::Empty) => {
            // Our disk was lost: the old member can never start again; replace it.
            remove.push(former.clone());
            Decision::Join(JoinPlan {
                remove,
                move_aside_local_data: false,
                existing_member: None,
            })
        }
        (None, local_data) => Decision::Join(JoinPlan {
            remove,
            move_aside_local_data: local_data == LocalData::Present,
            existing_member: pending.map(|m| m.id),
        }),
    }
}

fn decide_without_cluster(me: &Me, live: &[&Instance], observation: &Observation) -> Decision {
    let seed = live
        .iter()
        .min_by(|a, b| a.launch_order().cmp(&b.launch_order()));
    match seed {
        Some(seed) if seed.id != me.instance_id => {
            Decision::Wait(WaitReason::WaitingForSeed(seed.id.clone()))
        }
        _ => {
            let unconfirmed: Vec<String> = live
                .iter()
                .filter(|i| i.id != me.instance_id)
                .filter(|i| {
                    !observation
                        .probes
                        .iter()
                        .any(|p| p.instance_id == i.id && p.state == PeerState::Refused)
                })
                .map(|i| i.id.clone())
                .collect();
            if unconfirmed.is_empty() {
                Decision::Form
            } else {
                Decision::Wait(WaitReason::PeersUnconfirmed(unconfirmed))
            }
        }
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
