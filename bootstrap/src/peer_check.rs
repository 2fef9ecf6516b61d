//! Whether this start's etcd refuses every certificate on the peer port but a
//! node's: the core's [`peer_name`] rule, fed with the certificates the other
//! members serve (read from a TLS handshake with each one's client port,
//! which presents the same certificate as its peer port).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_aws_core::certificates::peer_name::{self, PEER_HOSTNAME};
use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::membership::observation::{Observation, PeerState};
use etcd_aws_io::etcd::admin::EtcdAccess;
use etcd_aws_io::tls::served::served_certificate_names;

/// How long one member's handshake may take: a member that does not answer
/// in this time counts as unknown, which leaves the check off.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(2);

/// The `--peer-cert-allowed-hostname` for a member named `me` starting beside
/// the members `observation` saw; `None` without TLS or while any other
/// member's certificate does not (or may not) carry the peer name.
pub async fn allowed_hostname(
    observation: &Observation,
    me: &str,
    access: &EtcdAccess,
) -> Option<String> {
    let credentials = access.tls.as_ref()?.current();
    let mut others = Vec::new();
    let mut without = Vec::new();
    for member in members_seen(observation).values() {
        if member.name == me {
            continue;
        }
        let carries = match member.client_urls.first() {
            None => None,
            Some(url) => served_certificate_names(url, &credentials, HANDSHAKE_DEADLINE)
                .await
                .ok()
                .map(|names| names.iter().any(|n| n == PEER_HOSTNAME)),
        };
        if carries != Some(true) {
            without.push(format!(
                "{} ({})",
                member.id,
                if carries.is_none() {
                    "unread"
                } else {
                    "lacks it"
                }
            ));
        }
        others.push(carries);
    }
    if peer_name::may_require(&others) {
        tracing::info!(
            peer_hostname = PEER_HOSTNAME,
            "the peer port accepts only node certificates (every other member's names {PEER_HOSTNAME})"
        );
        Some(PEER_HOSTNAME.to_owned())
    } else {
        tracing::info!(
            peer_hostname = PEER_HOSTNAME,
            members = ?without,
            "the peer port accepts any certificate of the cluster's CA this time: not every other member's certificate is known to name {PEER_HOSTNAME}; a later start turns the check on"
        );
        None
    }
}

/// Every member the serving peers listed, once each.
fn members_seen(
    observation: &Observation,
) -> BTreeMap<MemberId, etcd_aws_core::membership::member::Member> {
    observation
        .probes
        .iter()
        .filter_map(|probe| match &probe.state {
            PeerState::Serving { members, .. } => Some(members),
            _ => None,
        })
        .flatten()
        .map(|member| (member.id, member.clone()))
        .collect()
}
