//! While etcd runs: notice a quorum loss that will not heal by itself, and
//! say when this member should recover the cluster from its own data.

use std::time::Duration;

use etcd_aws_cluster::backup_store::BackupStore;
use etcd_aws_cluster::discovery::GroupDiscovery;
use etcd_aws_cluster::etcd_admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_cluster::recovery::{decide_recovery, QuorumLoss, Recovery};
use tokio::time::Instant;

pub struct QuorumWatch {
    pub own_client_url: String,
    pub discovery: GroupDiscovery,
    pub group: String,
    pub backups: Option<BackupStore>,
    pub access: EtcdAccess,
    /// How long quorum must stay lost before recovery is considered.
    pub grace: Duration,
    pub interval: Duration,
}

impl QuorumWatch {
    /// Returns once this member should restart with `--force-new-cluster`;
    /// runs for as long as etcd does otherwise.
    pub async fn until_forced_recovery_is_due(&self) {
        let mut lost_since: Option<Instant> = None;
        let mut last_reason = String::new();
        loop {
            tokio::time::sleep(self.interval).await;
            if self.has_quorum().await {
                if lost_since.take().is_some() {
                    tracing::info!("quorum is back");
                }
                continue;
            }
            let since = *lost_since.get_or_insert_with(|| {
                tracing::warn!("this member's cluster has no quorum");
                Instant::now()
            });
            if since.elapsed() < self.grace {
                continue;
            }
            match self.observe().await {
                Ok(view) => match decide_recovery(&view) {
                    Recovery::ForceNewCluster => return,
                    Recovery::Wait(reason) => {
                        let reason = reason.to_string();
                        if reason != last_reason {
                            tracing::warn!(%reason, "quorum lost; not recovering from this member");
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

    async fn has_quorum(&self) -> bool {
        match EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access).await {
            Ok(mut admin) => admin.check_quorum().await.is_ok(),
            Err(_) => false,
        }
    }

    async fn observe(&self) -> Result<QuorumLoss, String> {
        let mut own = EtcdAdmin::connect(std::slice::from_ref(&self.own_client_url), &self.access)
            .await
            .map_err(|e| e.to_string())?;
        let status = own.server_status().await.map_err(|e| e.to_string())?;
        let (_, members) = own.members().await.map_err(|e| e.to_string())?;
        // All at once: a frozen peer costs a whole timeout, and the
        // decision should not wait for several of them in turn.
        let mut replies = tokio::task::JoinSet::new();
        for member in members.iter().filter(|m| m.id != status.member_id) {
            let (urls, access) = (member.client_urls.clone(), self.access.clone());
            replies.spawn(async move {
                for url in &urls {
                    let reply = async {
                        let mut admin =
                            EtcdAdmin::connect(std::slice::from_ref(url), &access).await?;
                        admin.server_status().await
                    };
                    if let Ok(other) = reply.await {
                        return Some((other.member_id, other.revision));
                    }
                }
                None
            });
        }
        let mut answering = Vec::new();
        while let Some(reply) = replies.join_next().await {
            if let Ok(Some(answer)) = reply {
                answering.push(answer);
            }
        }
        answering.sort_unstable();
        let group = self
            .discovery
            .instances(&self.group)
            .await
            .map_err(|e| e.to_string())?;
        let newest_backup_revision = match &self.backups {
            Some(store) => store
                .pointer()
                .await
                .map_err(|e| e.to_string())?
                .map(|m| m.revision),
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
