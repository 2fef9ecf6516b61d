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

use crate::ready_endpoint::NodeState;

pub struct QuorumWatch {
    pub own_client_url: String,
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
        let mut lost_since: Option<Instant> = None;
        let mut last_reason = String::new();
        let mut peers = peers.to_vec();
        let mut expired_said = false;
        loop {
            tokio::time::sleep(self.interval).await;
            match self.quorum(&mut peers).await {
                Quorum::Holds | Quorum::NotAVoter | Quorum::ServedByPeers => {
                    if lost_since.take().is_some() {
                        tracing::info!(event = events::QUORUM_BACK, "quorum is back");
                    }
                    continue;
                }
                Quorum::OwnCertificateExpired(not_after) => {
                    lost_since = None;
                    if !std::mem::replace(&mut expired_said, true) {
                        tracing::error!(
                            event = events::CERTIFICATE_EXPIRED,
                            valid_until = %humantime::format_rfc3339_seconds(not_after),
                            "this node's certificate has expired: its renewals failed (see the certificate_renewal_failed lines), \
                             clients and peers refuse it, and quorum cannot be judged from here; fix what the renewals say \
                             (the CA secret), or restart the agent to issue a new certificate"
                        );
                    }
                    continue;
                }
                Quorum::Lost => {}
            }
            expired_said = false;
            let since = *lost_since.get_or_insert_with(|| {
                tracing::warn!(
                    event = events::QUORUM_LOST,
                    "this member's cluster has no quorum"
                );
                Instant::now()
            });
            if since.elapsed() < self.grace {
                continue;
            }
            match self.observe().await {
                Ok(view) => match decide_recovery(&view) {
                    Recovery::ForceNewCluster => return,
                    Recovery::Wait(wait) => {
                        let reason = wait.to_string();
                        if reason != last_reason {
                            tracing::warn!(event = events::RECOVERY_WAITING, wait = wait.kind(), %reason, "quorum lost; not recovering from this member");
                            last_reason = reason;
                        }
                    }
                },
                Err(problem) => {
                    tracing::warn!(%problem, "quorum lost; cannot observe the cluster to decide on recovery")
                }
            }
        }
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
