//! The faults a soak run draws from: etcd-cloud-operator's named cases
//! (kill the leader, a follower, a majority, all; kill and wipe one, a
//! majority, all; stop and wipe all) and what else kills clusters slowly:
//! replacements through the lifecycle hook, frozen processes, AWS errors
//! and throttling, a NOSPACE squeeze, a rolling etcd upgrade, the backup
//! bucket out of reach, and network partitions (containers only).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The leader's process dies; systemd starts it again on its disk.
    KillLeader,
    /// One follower's process dies and comes back on its disk.
    KillFollower,
    /// A majority's processes die at once (quorum lost) and come back.
    KillMajority,
    /// Every process dies at once and comes back on its disk.
    KillAll,
    /// One instance is lost with its disk; the group replaces it.
    KillAndWipeOne,
    /// A majority of instances are lost with their disks: the survivor
    /// recovers the cluster once the group confirms they are gone.
    KillAndWipeMajority,
    /// Every instance is lost with its disk: the new group restores from the
    /// bucket (snapshot plus captured changes).
    KillAndWipeAll,
    /// Every process is stopped cleanly (SIGTERM), then every disk is lost.
    StopAndWipeAll,
    /// The group replaces one instance through the lifecycle hook, as a
    /// rolling update does.
    ReplaceOne,
    /// One node's processes are frozen (SIGSTOP) for a while, then thawed.
    Freeze,
    /// AWS answers errors to the autoscaling, EC2 and SQS calls for a while.
    AwsErrors,
    /// AWS throttles every call for a while.
    AwsThrottling,
    /// A writer fills the database past its quota (NOSPACE); the
    /// maintenance run recovers it.
    NospaceSqueeze,
    /// Every node is replaced by one running the newer etcd release.
    RollingUpgrade,
    /// Every call to the backup bucket fails for a while.
    BucketUnreachable,
    /// One node is cut off the network for a while, then healed.
    PartitionOne,
    /// The leader is cut off the network for a while, then healed.
    PartitionLeader,
}

/// What a fault needs beyond a cluster of process nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    /// Nodes in containers on their own network (`--containers`).
    Containers,
    /// Process nodes that start on the older etcd release (not in
    /// containers, which run the image's etcd).
    OlderEtcd,
}

impl Fault {
    pub const ALL: [Fault; 17] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::KillMajority,
        Fault::KillAll,
        Fault::KillAndWipeOne,
        Fault::KillAndWipeMajority,
        Fault::KillAndWipeAll,
        Fault::StopAndWipeAll,
        Fault::ReplaceOne,
        Fault::Freeze,
        Fault::AwsErrors,
        Fault::AwsThrottling,
        Fault::NospaceSqueeze,
        Fault::RollingUpgrade,
        Fault::BucketUnreachable,
        Fault::PartitionOne,
        Fault::PartitionLeader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillFollower => "kill-follower",
            Fault::KillMajority => "kill-majority",
            Fault::KillAll => "kill-all",
            Fault::KillAndWipeOne => "kill-wipe-one",
            Fault::KillAndWipeMajority => "kill-wipe-majority",
            Fault::KillAndWipeAll => "kill-wipe-all",
            Fault::StopAndWipeAll => "stop-wipe-all",
            Fault::ReplaceOne => "replace-one",
            Fault::Freeze => "freeze",
            Fault::AwsErrors => "aws-errors",
            Fault::AwsThrottling => "aws-throttling",
            Fault::NospaceSqueeze => "nospace",
            Fault::RollingUpgrade => "rolling-upgrade",
            Fault::BucketUnreachable => "bucket-unreachable",
            Fault::PartitionOne => "partition-one",
            Fault::PartitionLeader => "partition-leader",
        }
    }

    pub fn needs(self) -> Needs {
        match self {
            Fault::PartitionOne | Fault::PartitionLeader => Needs::Containers,
            Fault::RollingUpgrade => Needs::OlderEtcd,
            _ => Needs::Nothing,
        }
    }

    /// Every instance and disk is lost: the only faults after which
    /// acknowledged writes may be missing (those inside the loss window).
    pub fn loses_every_disk(self) -> bool {
        matches!(self, Fault::KillAndWipeAll | Fault::StopAndWipeAll)
    }

    /// Drawn at most once a run: an upgrade cannot be repeated (etcd never
    /// downgrades).
    pub fn once_only(self) -> bool {
        matches!(self, Fault::RollingUpgrade)
    }

    /// Whether a run in this mode can apply the fault.
    pub fn possible(self, containers: bool) -> bool {
        match self.needs() {
            Needs::Nothing => true,
            Needs::Containers => containers,
            Needs::OlderEtcd => !containers,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {0:?}; the faults are: {names}", names = Fault::ALL.map(Fault::name).join(", "))]
pub struct UnknownFault(pub String);

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Fault::ALL
            .into_iter()
            .find(|fault| fault.name() == name)
            .ok_or_else(|| UnknownFault(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_is_read_back_from_its_name() {
        for fault in Fault::ALL {
            assert_eq!(fault.name().parse::<Fault>(), Ok(fault));
        }
    }

    #[test]
    fn an_unknown_name_lists_the_faults() {
        let error = "kill-everything".parse::<Fault>().unwrap_err();
        assert!(error.to_string().contains("kill-leader, kill-follower"));
    }

    #[test]
    fn partitions_need_containers_and_the_upgrade_needs_process_nodes() {
        assert!(!Fault::PartitionOne.possible(false));
        assert!(Fault::PartitionOne.possible(true));
        assert!(Fault::RollingUpgrade.possible(false));
        assert!(!Fault::RollingUpgrade.possible(true));
        assert!(Fault::KillLeader.possible(false) && Fault::KillLeader.possible(true));
    }

    #[test]
    fn only_losing_every_disk_may_lose_acknowledged_writes() {
        let losing: Vec<Fault> = Fault::ALL
            .into_iter()
            .filter(|f| f.loses_every_disk())
            .collect();
        assert_eq!(losing, vec![Fault::KillAndWipeAll, Fault::StopAndWipeAll]);
    }
}
