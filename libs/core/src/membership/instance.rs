//! An EC2 instance of the autoscaling group, as discovery sees it.

use std::net::IpAddr;

/// Where an instance is in its autoscaling lifecycle.
///
/// Only the distinction "live or leaving" matters to the cluster: a leaving
/// instance's member is on its way out, so it must neither seed nor be waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleState {
    Pending,
    InService,
    Standby,
    /// Any `Terminating*` state, `Terminated`, `Detaching`, `Detached`.
    Leaving(String),
    /// A state this version does not know; treated as live, because calling an
    /// unknown state "gone" could remove a healthy member.
    Other(String),
}

impl LifecycleState {
    /// The state as AWS spells it.
    pub fn as_str(&self) -> &str {
        match self {
            LifecycleState::Pending => "Pending",
            LifecycleState::InService => "InService",
            LifecycleState::Standby => "Standby",
            LifecycleState::Leaving(state) | LifecycleState::Other(state) => state,
        }
    }

    /// Parses the AWS lifecycle state string (`InService`, `Terminating:Wait`, ...).
    pub fn parse(state: &str) -> Self {
        match state {
            "InService" => Self::InService,
            "Standby" => Self::Standby,
            s if s.starts_with("Pending") => Self::Pending,
            s if s.starts_with("Terminat") || s.starts_with("Detach") => {
                Self::Leaving(s.to_owned())
            }
            s => Self::Other(s.to_owned()),
        }
    }

    pub fn is_live(&self) -> bool {
        !matches!(self, Self::Leaving(_))
    }

    /// Terminated or detached: the instance no longer runs anything of ours.
    /// A `Terminating*` instance still runs its member until the lifecycle
    /// function has handed over and removed it.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Leaving(s) if s.starts_with("Terminated") || s.starts_with("Detached"))
    }
}

/// One instance of the group. `launch_order` orders instances by launch time,
/// ties broken by instance id, so every node computes the same seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub private_ip: Option<IpAddr>,
    pub lifecycle_state: LifecycleState,
    /// Seconds since the epoch; `None` when EC2 did not say.
    pub launch_time: Option<i64>,
    /// `us-east-1a`; `None` when Auto Scaling did not say. Shown to
    /// operators only: no decision depends on it.
    pub availability_zone: Option<String>,
}

impl Instance {
    pub fn is_live(&self) -> bool {
        self.lifecycle_state.is_live()
    }

    pub fn is_gone(&self) -> bool {
        self.lifecycle_state.is_gone()
    }

    /// Sort key for choosing the seed: earliest launch first, unknown launch
    /// times last, instance id as the tie-break every node agrees on.
    pub fn launch_order(&self) -> (i64, &str) {
        (self.launch_time.unwrap_or(i64::MAX), self.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminating_and_detached_states_are_leaving() {
        for s in [
            "Terminating",
            "Terminating:Wait",
            "Terminating:Proceed",
            "Terminated",
            "Detaching",
            "Detached",
        ] {
            assert!(
                !LifecycleState::parse(s).is_live(),
                "{s} should not be live"
            );
        }
    }

    #[test]
    fn only_terminated_and_detached_instances_are_gone() {
        for s in ["Terminated", "Detached"] {
            assert!(LifecycleState::parse(s).is_gone(), "{s} should be gone");
        }
        for s in [
            "Terminating:Wait",
            "Terminating:Proceed",
            "Detaching",
            "InService",
        ] {
            assert!(
                !LifecycleState::parse(s).is_gone(),
                "{s} still runs its member"
            );
        }
    }

    #[test]
    fn pending_in_service_standby_and_unknown_states_are_live() {
        for s in [
            "Pending",
            "Pending:Wait",
            "Pending:Proceed",
            "InService",
            "Standby",
            "Warmed:Running",
        ] {
            assert!(LifecycleState::parse(s).is_live(), "{s} should be live");
        }
    }
}
