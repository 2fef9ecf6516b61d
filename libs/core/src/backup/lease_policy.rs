//! What a restore does with the leases it brings back.
//!
//! A restored snapshot (and the captured changes replayed after it) holds the
//! leases of the lost cluster with the keys attached to them. Locks and
//! elections (etcd's `concurrency` package, Patroni, service registries) are
//! such keys: the restored leader key names whoever held it at the restored
//! revision. When that holder lost the lock later, but its process lives on
//! and keeps the very same lease id alive, it believes it holds the lock
//! again, beside the holder that took over: two leaders.
//!
//! [`LeasePolicy::Revoke`], the default, revokes every restored lease before
//! the cluster serves: its keys vanish, every holder's keep-alive is answered
//! "lease not found", and each one acquires afresh. [`LeasePolicy::Keep`]
//! restores leases as they were (a holder that kept its lease alive keeps its
//! keys), for applications that check their own fencing.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeasePolicy {
    #[default]
    Revoke,
    Keep,
}

impl LeasePolicy {
    pub const ALL: [LeasePolicy; 2] = [LeasePolicy::Revoke, LeasePolicy::Keep];

    /// As the flag, the environment variable and the stack parameter spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LeasePolicy::Revoke => "revoke",
            LeasePolicy::Keep => "keep",
        }
    }
}

impl fmt::Display for LeasePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease policy {0:?} is neither \"revoke\" nor \"keep\"")]
pub struct UnknownLeasePolicy(pub String);

impl FromStr for LeasePolicy {
    type Err = UnknownLeasePolicy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        LeasePolicy::ALL
            .into_iter()
            .find(|policy| policy.as_str() == text.trim())
            .ok_or_else(|| UnknownLeasePolicy(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_is_the_default() {
        assert_eq!(LeasePolicy::default(), LeasePolicy::Revoke);
    }

    #[test]
    fn each_policy_reads_back_from_its_name() {
        for policy in LeasePolicy::ALL {
            assert_eq!(policy.as_str().parse(), Ok(policy));
        }
        assert!("expire".parse::<LeasePolicy>().is_err());
    }
}
