//! Only nodes speak raft. Every node certificate names [`PEER_HOSTNAME`] and
//! no client certificate does (clients get `issue_client`'s, without names),
//! so a member started with etcd's `--peer-cert-allowed-hostname` refuses a
//! client certificate on the peer port even though the same CA issued it.
//!
//! etcd reads the flag only at start, and a member that refuses a peer's
//! certificate cuts that peer out of raft. A node therefore turns the check on
//! only when every other member's certificate is known to carry the name: a
//! cluster whose older members were issued certificates without it (before
//! this check existed) keeps working, and each member turns it on at its first
//! start once all of them do.

/// The DNS name in every node certificate, and only there.
pub const PEER_HOSTNAME: &str = "peer.etcd-aws.internal";

/// Whether a member starting beside `others` may require [`PEER_HOSTNAME`]
/// of its peers: each entry is whether that member's certificate names it,
/// `None` when it could not be read (a member down, or never started).
pub fn may_require(others: &[Option<bool>]) -> bool {
    others.iter().all(|carries| *carries == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_is_on_only_when_every_other_member_is_known_to_carry_the_name() {
        let cases: [(&[Option<bool>], bool); 6] = [
            // A new cluster: nobody to cut out.
            (&[], true),
            (&[Some(true), Some(true)], true),
            // A member from before the check: refusing it would break raft.
            (&[Some(true), Some(false)], false),
            // A member that did not answer may come back with an old one.
            (&[Some(true), None], false),
            (&[None], false),
            (&[Some(false)], false),
        ];
        for (others, on) in cases {
            assert_eq!(may_require(others), on, "{others:?}");
        }
    }
}
