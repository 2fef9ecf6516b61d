//! The lifecycle function's decision: which members to remove, whether leadership
//! must move first, and when to refuse.
//!
//! Pure: no I/O, so every branch is a row in the table tests beside it. The rule
//! that keeps the cluster serving is visible here: a removal happens only if,
//! afterwards, the members that answered and whose instances are live still make
//! a quorum of the remaining voters. A member that leads is asked to hand over
//! leadership to such a member first, so its removal costs no election.

use std::net::IpAddr;

use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::membership::instance::Instance;
use etcd_aws_core::membership::member::{Member, Standing};
use etcd_aws_io::aws::discovery::Ec2Instance;

/// What the function observed of the cluster and its group.
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    pub members: &'a [Member],
    /// The leader the answering members agree on, if any.
    pub leader: Option<MemberId>,
    /// Members that answered a status request just now.
    pub healthy: &'a [MemberId],
    /// Every instance of the group, in every lifecycle state.
    pub group: &'a [Instance],
}

/// One member removal, with the leadership hand-over it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub member: Member,
    /// The member leads: move leadership to this member before removing it.
    pub transfer_leadership_to: Option<MemberId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Auto Scaling still lists the instance as live: the message is early or
    /// stale, and removing a live instance's member would weaken the cluster.
    #[error("instance {instance_id} is still {lifecycle_state} in its group; not removing the member of a live instance")]
    StillLive {
        instance_id: String,
        lifecycle_state: String,
    },
    #[error("removing member {member} would leave {healthy_after} healthy members of live instances among {voters_after} voters, short of a quorum")]
    WouldLoseQuorum {
        member: MemberId,
        voters_after: usize,
        healthy_after: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationPlan {
    /// Remove these members, in this order (usually one).
    Remove(Vec<Removal>),
    /// No member belongs to the instance (removed earlier, by a duplicate
    /// message, the reconcile or a joining node): only complete the action.
    AlreadyGone,
    /// Not now; the message goes back to the queue and is retried.
    Refuse(Refusal),
    /// Neither the group nor EC2 knows the instance: the message is not about
    /// this cluster (or is forged), and nothing may be removed for it.
    UnknownInstance,
}

/// Decides what to do for `instance_id`, which is terminating. `outside_group`
/// is what EC2 says of it when the group no longer lists it.
pub fn plan_termination(
    view: &ClusterView<'_>,
    instance_id: &str,
    outside_group: Option<&Ec2Instance>,
) -> TerminationPlan {
    let ip = match view.group.iter().find(|i| i.id == instance_id) {
        Some(instance) if instance.is_live() => {
            return TerminationPlan::Refuse(Refusal::StillLive {
                instance_id: instance_id.to_owned(),
                lifecycle_state: state_name(instance),
            })
        }
        Some(instance) => instance.private_ip,
        None => match outside_group {
            Some(ec2) => ec2.private_ip,
            None => return TerminationPlan::UnknownInstance,
        },
    };
    let doomed = members_of(view, instance_id, ip);
    if doomed.is_empty() {
        return TerminationPlan::AlreadyGone;
    }
    let mut removals = Vec::new();
    for step in plan_removals(view, &doomed) {
        match step {
            Ok(removal) => removals.push(removal),
            Err(refusal) => return TerminationPlan::Refuse(refusal),
        }
    }
    TerminationPlan::Remove(removals)
}

/// The scheduled reconcile: remove every member whose instance is not live in
/// the group, as far as quorum allows. Members that need no leadership hand-over
/// go first, so a refusal late in the list leaves the most done.
pub fn plan_reconcile(view: &ClusterView<'_>) -> Vec<Result<Removal, Refusal>> {
    let mut departed: Vec<&Member> = view
        .members
        .iter()
        .filter(|m| m.standing(view.group, None) != Standing::Live)
        .collect();
    departed.sort_by_key(|m| (view.leader == Some(m.id), m.id));
    plan_removals(view, &departed)
}

/// The members of a terminating instance. An unstarted member at its IP is
/// only its own when no live instance runs it, because IPs are reused and the
/// new holder's join may be the one pending.
fn members_of<'a>(
    view: &ClusterView<'a>,
    instance_id: &str,
    ip: Option<IpAddr>,
) -> Vec<&'a Member> {
    view.members
        .iter()
        .filter(|m| m.is_run_by(instance_id, ip))
        .filter(|m| !m.is_unstarted() || m.standing(view.group, None) != Standing::Live)
        .collect()
}

/// Simulates the removals in order; each is checked against the members left
/// by the ones before it.
fn plan_removals(view: &ClusterView<'_>, doomed: &[&Member]) -> Vec<Result<Removal, Refusal>> {
    let mut remaining: Vec<&Member> = view.members.iter().collect();
    let mut leader = view.leader;
    let mut steps = Vec::with_capacity(doomed.len());
    for member in doomed {
        let after: Vec<&Member> = remaining
            .iter()
            .copied()
            .filter(|m| m.id != member.id)
            .collect();
        let voters_after = after.iter().filter(|m| !m.is_learner).count();
        let mut healthy_voters: Vec<MemberId> = after
            .iter()
            .filter(|m| !m.is_learner)
            .filter(|m| view.healthy.contains(&m.id))
            .filter(|m| m.standing(view.group, None) == Standing::Live)
            .map(|m| m.id)
            .collect();
        healthy_voters.sort_unstable();
        let quorum = voters_after / 2 + 1;
        if voters_after == 0 || healthy_voters.len() < quorum {
            steps.push(Err(Refusal::WouldLoseQuorum {
                member: member.id,
                voters_after,
                healthy_after: healthy_voters.len(),
            }));
            continue;
        }
        let transfer_leadership_to = if leader == Some(member.id) {
            // The quorum check above guarantees at least one candidate.
            let target = healthy_voters.first().copied();
            leader = target;
            target
        } else {
            None
        };
        remaining = after;
        steps.push(Ok(Removal {
            member: (*member).clone(),
            transfer_leadership_to,
        }));
    }
    steps
}

fn state_name(instance: &Instance) -> String {
    use etcd_aws_core::membership::instance::LifecycleState;
    match &instance.lifecycle_state {
        LifecycleState::Pending => "Pending".to_owned(),
        LifecycleState::InService => "InService".to_owned(),
        LifecycleState::Standby => "Standby".to_owned(),
        LifecycleState::Leaving(s) | LifecycleState::Other(s) => s.clone(),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
