//! An etcd cluster member, as the cluster API reports it, and the one rule
//! for which instance of the group runs it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::etcd::ids::MemberId;
use crate::membership::instance::Instance;
use crate::membership::observation::Me;

/// A member of the etcd cluster. Its `name` is the instance id of the node that
/// runs it; a member that was added but never started has an empty name, so
/// it can only be matched to an instance through the IP in its peer URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

impl Member {
    /// True when the member was added but its etcd has never started.
    pub fn is_unstarted(&self) -> bool {
        self.name.is_empty()
    }

    /// The IP addresses named in the member's peer URLs.
    pub fn peer_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.peer_urls.iter().filter_map(|url| url_ip(url))
    }

    pub fn has_peer_ip(&self, ip: IpAddr) -> bool {
        self.peer_ips().any(|candidate| candidate == ip)
    }

    /// Whether `instance` (its id, and its private IP when known) is the one
    /// that runs this member: by name once started, since etcd-aws names every
    /// member after its instance; by the IP of its peer URL before, since a
    /// member added but never started has no name yet.
    pub fn is_run_by(&self, instance_id: &str, private_ip: Option<IpAddr>) -> bool {
        if self.is_unstarted() {
            private_ip.is_some_and(|ip| self.has_peer_ip(ip))
        } else {
            self.name == instance_id
        }
    }

    /// Whether this node runs this member: named after its instance *and* at
    /// its address. A member with our name elsewhere is a stale record of ours.
    pub fn is_mine(&self, me: &Me) -> bool {
        self.name == me.instance_id && self.has_peer_ip(me.private_ip)
    }

    /// The instance of `group` that runs this member ([`Member::is_run_by`]):
    /// a live one before a leaving one before a gone one, since IPs are
    /// reused and of several holders of an unstarted member's IP a live one's
    /// join may be the one pending.
    pub fn runner<'g>(&self, group: &'g [Instance]) -> Option<&'g Instance> {
        group
            .iter()
            .filter(|i| self.is_run_by(&i.id, i.private_ip))
            .max_by_key(|i| (i.is_live(), !i.is_gone()))
    }

    /// Where this member stands against the group's instances (every lifecycle
    /// state). The agent, the lifecycle function and the cluster report all
    /// ask this, so they can never disagree about whether a member has
    /// departed. `me` is the node asking, if it is one: only a node knows its
    /// own address, so only it can tell that a member carrying its name
    /// elsewhere is stale.
    pub fn standing(&self, group: &[Instance], me: Option<&Me>) -> Standing {
        if me.is_some_and(|me| self.name == me.instance_id && !self.is_mine(me)) {
            return Standing::Departed;
        }
        match self.runner(group) {
            Some(instance) if instance.is_live() => Standing::Live,
            Some(instance) if !instance.is_gone() => Standing::Leaving,
            _ => Standing::Departed,
        }
    }
}

/// Where a member stands against its autoscaling group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// An instance the group lists as live runs it (or will, once it starts).
    Live,
    /// Its instance is leaving the group (`Terminating*`, `Detaching`) but
    /// still runs it: handing it over is the lifecycle function's job.
    Leaving,
    /// No instance of the group runs it any more (terminated, detached, not
    /// listed, or a stale record of the asking node): it can only be removed.
    Departed,
}

/// Extracts the IP literal of `scheme://ip:port[/path]`; `None` for host names
/// or malformed URLs (those never match an instance, which is the safe side:
/// a member we cannot place is never counted as ours).
pub fn url_ip(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{instance, ip, member, unstarted, without_ip};

    fn me() -> Me {
        Me {
            instance_id: "i-me".into(),
            private_ip: ip(10),
        }
    }

    /// One row: the member, the group, whether a node asks, and the standing.
    fn standing_of(member: &Member, group: &[Instance], asked_by_me: bool) -> Standing {
        member.standing(group, asked_by_me.then(me).as_ref())
    }

    #[test]
    fn a_named_member_stands_with_the_instance_of_its_name() {
        let m = member(1, "i-a", 4);
        for (state, expected) in [
            ("InService", Standing::Live),
            ("Pending:Wait", Standing::Live),
            ("Standby", Standing::Live),
            ("Terminating:Wait", Standing::Leaving),
            ("Detaching", Standing::Leaving),
            ("Terminated", Standing::Departed),
            ("Detached", Standing::Departed),
        ] {
            let group = [instance("i-a", 4, state)];
            assert_eq!(standing_of(&m, &group, false), expected, "{state}");
        }
    }

    #[test]
    fn a_named_member_whose_instance_is_not_listed_has_departed() {
        let group = [instance("i-b", 4, "InService")];
        assert_eq!(
            standing_of(&member(1, "i-a", 4), &group, false),
            Standing::Departed,
            "an instance at the member's old address is not the member's instance"
        );
    }

    #[test]
    fn a_named_member_is_matched_by_name_even_when_its_instance_has_no_ip() {
        let group = [without_ip("i-a", "Pending")];
        assert_eq!(
            standing_of(&member(1, "i-a", 4), &group, false),
            Standing::Live
        );
    }

    #[test]
    fn an_unstarted_member_stands_with_the_instance_holding_its_peer_ip() {
        let m = unstarted(1, 4);
        let live = [instance("i-new", 4, "InService")];
        assert_eq!(standing_of(&m, &live, false), Standing::Live);
        let leaving = [instance("i-old", 4, "Terminating:Wait")];
        assert_eq!(standing_of(&m, &leaving, false), Standing::Leaving);
        let elsewhere = [instance("i-new", 5, "InService")];
        assert_eq!(standing_of(&m, &elsewhere, false), Standing::Departed);
    }

    #[test]
    fn an_unstarted_member_at_a_reused_ip_stands_with_the_live_holder() {
        let group = [
            instance("i-old", 4, "Terminating:Wait"),
            instance("i-new", 4, "Pending"),
        ];
        assert_eq!(standing_of(&unstarted(1, 4), &group, false), Standing::Live);
    }

    #[test]
    fn an_instance_without_an_ip_runs_no_unstarted_member() {
        let group = [without_ip("i-new", "Pending")];
        assert_eq!(
            standing_of(&unstarted(1, 4), &group, false),
            Standing::Departed
        );
    }

    #[test]
    fn a_member_with_our_name_at_another_address_is_stale_to_us() {
        let group = [instance("i-me", 10, "InService")];
        let stale = member(1, "i-me", 4);
        assert_eq!(standing_of(&stale, &group, true), Standing::Departed);
        assert_eq!(
            standing_of(&stale, &group, false),
            Standing::Live,
            "only the node itself knows its address"
        );
        assert_eq!(
            standing_of(&member(2, "i-me", 10), &group, true),
            Standing::Live
        );
    }

    #[test]
    fn url_ip_reads_ipv4_with_port_and_path() {
        assert_eq!(url_ip("http://127.0.1.4:2380"), "127.0.1.4".parse().ok());
        assert_eq!(url_ip("https://10.0.0.7:2380/x"), "10.0.0.7".parse().ok());
    }

    #[test]
    fn url_ip_reads_bracketed_ipv6() {
        assert_eq!(url_ip("http://[::1]:2380"), "::1".parse().ok());
    }

    #[test]
    fn url_ip_refuses_host_names_and_garbage() {
        assert_eq!(url_ip("http://etcd-0.example:2380"), None);
        assert_eq!(url_ip(""), None);
        assert_eq!(url_ip("http://:2380"), None);
    }
}
