//! While etcd runs: notice a quorum loss that will not heal by itself, and
//! say when this member should recover the cluster from its own data.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::membership::recovery::{decide_recovery, QuorumLoss, Recovery};
use etcd_aws_io::aws::discovery::{DiscoveryError, GroupDiscovery};
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_io::etcd::error::EtcdError;
use tokio::time::Instant;

use crate::peer_certificates::{PeerCertificateLooks, PeerSources};
use crate::ready_endpoint::NodeState;

pub struct QuorumWatch {
    pub own_client_url: String,
    /// The members' client port, to reach the group's other instances.
    pub client_port: u16,
    pub discovery: GroupDiscovery,
    pub group: String,
    pub backups: Option<BackupStore>,
    pub access: EtcdAccess,
    /// Where the node's certificate's expiry is kept current.
    pub node: Arc<NodeState>,
    /// How long quorum must stay lost before recovery is considered.
    pub grace: Duration,
    pub interval: Duration,
}

/// What the watch carries from one round to the next.
struct Watching {
    lost_since: Option<Instant>,
    last_reason: String,
    peers: Vec<String>,
    expired_said: bool,
    /// Beside the rounds, never awaited by them.
    peer_certificates: PeerCertificateLooks,
}

/// What one look at the cluster found.
enum Quorum {
    Holds,
    Lost,
    /// This member is a learner: it cannot serve the linearizable read that
    /// proves quorum, and a slow catch-up is not a quorum loss.
    NotAVoter,
    /// This member does not serve a linearizable read yet, but its peers do:
    /// it is still joining (publishing itself, catching up after a restart),
    /// and the cluster has its quorum.
    ServedByPeers,
    /// This node's certificate has expired: every connection the agent
    /// makes is refused, so nothing can be judged, and no recovery may
    /// start on a judgement it cannot make.
    OwnCertificateExpired(SystemTime),
}

/// Why the cluster could not be observed for the recovery decision.
#[derive(Debug, thiserror::Error)]
enum ObserveError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("cannot read the newest backup's revision: {0}")]
    Backups(#[from] BackupStoreError),
}

impl QuorumWatch {
    /// Returns once this member should restart with `--force-new-cluster`;
    /// runs for as long as etcd does otherwise. `peers` are the other members'
    /// client URLs as the agent last saw them, refreshed while this member
    /// answers: quorum is judged from the cluster, not from one member's
    /// first seconds.
    pub async fn until_forced_recovery_is_due(&self, peers: &[String]) {
        let mut watching = self.watching(peers);
        loop {
            tokio::time::sleep(self.interval).await;
            if self.round(&mut watching).await {
                return;
            }
        }
    }

    fn watching(&self, peers: &[String]) -> Watching {
        Watching {
            lost_since: None,
            last_reason: String::new(),
            peers: peers.to_vec(),
            expired_said: false,
            peer_certificates: PeerCertificateLooks::new(PeerSources {
                own_client_url: self.own_client_url.clone(),
                client_port: self.client_port,
                discovery: self.discovery.clone(),
                group: self.group.clone(),
                access: self.access.clone(),
            }),
        }
    }

    /// One look at the cluster, and what follows from it: `true` once this
    /// member should restart with `--force-new-cluster`.
    async fn round(&self, watching: &mut Watching) -> bool {
        match self.quorum(&mut watching.peers).await {
            Quorum::Holds | Quorum::NotAVoter | Quorum::ServedByPeers => {
                watching.peer_certificates.loss_over();
                if watching.lost_since.take().is_some() {
                    tracing::info!(event = events::QUORUM_BACK, "quorum is back");
                }
                return false;
            }
            Quorum::OwnCertificateExpired(not_after) => {
                watching.lost_since = None;
                // This node's own certificate is what to fix, and is named.
                watching.peer_certificates.loss_over();
                if !std::mem::replace(&mut watching.expired_said, true) {
                    tracing::error!(
                        event = events::CERTIFICATE_EXPIRED,
                        valid_until = %humantime::format_rfc3339_seconds(not_after),
                        "this node's certificate has expired: its renewals failed (see the certificate_renewal_failed lines), \
                         clients and peers refuse it, and quorum cannot be judged from here; fix what the renewals say \
                         (the CA secret), or restart the agent to issue a new certificate"
                    );
                }
                return false;
            }
            Quorum::Lost => {}
        }
        watching.expired_said = false;
        let since = *watching.lost_since.get_or_insert_with(|| {
            tracing::warn!(
                event = events::QUORUM_LOST,
                "this member's cluster has no quorum"
            );
            Instant::now()
        });
        // A peer whose certificate expired (or is not valid yet) is named as
        // such: that, not the quorum, is what to fix. The look runs beside
        // this round and is not awaited: the decision below must not wait
        // for handshakes with peers that may never answer.
        watching.peer_certificates.quorum_lost(&watching.peers);
        if since.elapsed() < self.grace {
            return false;
        }
        match self.observe().await {
            Ok(view) => match decide_recovery(&view) {
                Recovery::ForceNewCluster => return true,
                Recovery::Wait(wait) => {
                    let reason = wait.to_string();
                    if reason != watching.last_reason {
                        tracing::warn!(event = events::RECOVERY_WAITING, wait = wait.kind(), %reason, "quorum lost; not recovering from this member");
                        watching.last_reason = reason;
                    }
                }
            },
            Err(problem) => {
                tracing::warn!(%problem, "quorum lost; cannot observe the cluster to decide on recovery")
            }
        }
        false
    }

    /// Whether the cluster has quorum: through this member first; when it
    /// cannot prove it, through `peers`. Refreshes `peers` from the member
    /// list whenever this member answers.
    async fn quorum(&self, peers: &mut Vec<String>) -> Quorum {
        if let Some(not_after) = self.node.certificate_not_after() {
            if not_after <= SystemTime::now() {
                return Quorum::OwnCertificateExpired(not_after);
            }
        }
        if let Ok(mut own) =
            EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access).await
        {
            match own.status().await {
                Ok(status) if status.is_learner => return Quorum::NotAVoter,
                Ok(status) if own.check_quorum().await.is_ok() => {
                    if let Ok((_, members)) = own.members().await {
                        *peers = members
                            .iter()
                            .filter(|m| m.id != status.member_id)
                            .flat_map(|m| m.client_urls.iter().cloned())
                            .collect();
                    }
                    return Quorum::Holds;
                }
                _ => {}
            }
        }
        let served = EtcdAdmin::first_answer(peers, &self.access, async |admin| {
            admin.check_quorum().await
        })
        .await;
        if served.is_ok() {
            Quorum::ServedByPeers
        } else {
            Quorum::Lost
        }
    }

    async fn observe(&self) -> Result<QuorumLoss, ObserveError> {
        let mut own =
            EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access).await?;
        let status = own.status().await?;
        let (_, members) = own.members().await?;
        let others: Vec<String> = members
            .iter()
            .filter(|m| m.id != status.member_id)
            .flat_map(|m| m.client_urls.iter().cloned())
            .collect();
        let mut answering: Vec<(MemberId, i64)> = EtcdAdmin::status_of_each(&others, &self.access)
            .await
            .into_iter()
            .filter_map(|(_, answer)| answer.ok())
            .map(|other| (other.member_id, other.revision))
            .collect();
        // A member with two client URLs answers twice.
        answering.sort_unstable();
        answering.dedup_by_key(|(id, _)| *id);
        let group = self.discovery.instances(&self.group).await?;
        let newest_backup_revision = match &self.backups {
            Some(store) => store.pointer().await?.map(|m| m.revision),
            None => None,
        };
        Ok(QuorumLoss {
            my_member_id: status.member_id,
            my_revision: status.revision,
            members,
            answering,
            group,
            newest_backup_revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_certificates::tests::{closed_port, credentials, discovery, silent_peer};
    use etcd_aws_io::etcd::admin::EtcdTimeouts;

    /// What 4027f2f withdrew a first version for: a round with quorum lost
    /// made its handshakes with the peers (2 s each for one that never
    /// answers) before judging. The round, up to its recovery decision, must come back
    /// in the time its own etcd calls take (0.2 s here), with the look still
    /// under way beside it.
    #[tokio::test]
    async fn a_round_with_quorum_lost_does_not_wait_for_the_peers_certificates() {
        let (_silent, peer) = silent_peer().await;
        let watch = QuorumWatch {
            own_client_url: closed_port().await,
            client_port: 2379,
            discovery: discovery(),
            group: "never-asked".to_owned(),
            backups: None,
            access: EtcdAccess::tls(
                EtcdTimeouts {
                    connect: Duration::from_millis(100),
                    request: Duration::from_millis(100),
                },
                credentials(),
            ),
            node: Arc::new(NodeState::default()),
            // No grace: the round goes on to the recovery decision.
            grace: Duration::ZERO,
            interval: Duration::from_millis(100),
        };
        let mut watching = watch.watching(std::slice::from_ref(&peer));
        let round = tokio::time::timeout(Duration::from_secs(1), watch.round(&mut watching)).await;
        assert_eq!(round.ok(), Some(false), "the round waited for the look");
        assert!(watching.lost_since.is_some(), "quorum is lost");
        assert!(
            watching.peer_certificates.in_flight(),
            "the look is under way beside the round"
        );
    }
}
