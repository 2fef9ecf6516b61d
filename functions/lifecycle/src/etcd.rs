//! The function's seam to etcd: what the cluster looks like, leadership
//! hand-over, member removal.

use std::net::IpAddr;

use async_trait::async_trait;
use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::etcd::status::leader_named_by_most;
use etcd_aws_core::membership::member::Member;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_io::etcd::error::EtcdError;

/// The member list, and which members answered for themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdObservation {
    pub members: Vec<Member>,
    pub leader: Option<MemberId>,
    /// Members that answered a status request and know a leader.
    pub healthy: Vec<MemberId>,
}

#[async_trait]
pub trait Etcd: Send + Sync {
    /// The client URL of the member on `ip` (the scheme depends on TLS).
    fn client_url(&self, ip: IpAddr, port: u16) -> String;
    /// Observes the cluster through these client URLs (one per live instance).
    async fn observe(&self, endpoints: &[String]) -> Result<EtcdObservation, EtcdError>;
    /// Asks `leader` to hand leadership to `target`.
    async fn move_leader(&self, leader: &Member, target: MemberId) -> Result<(), EtcdError>;
    /// Removes a member; one already gone counts as removed.
    async fn remove(&self, endpoints: &[String], member: MemberId) -> Result<(), EtcdError>;
}

/// The real thing, through etcd's client API.
#[derive(Debug, Clone)]
pub struct ClientEtcd {
    pub access: EtcdAccess,
}

#[async_trait]
impl Etcd for ClientEtcd {
    fn client_url(&self, ip: IpAddr, port: u16) -> String {
        self.access.url(ip, port)
    }

    async fn observe(&self, endpoints: &[String]) -> Result<EtcdObservation, EtcdError> {
        let (_, members) =
            EtcdAdmin::first_answer(endpoints, &self.access, async |admin| admin.members().await)
                .await?;
        let mut answered = Vec::new();
        for (endpoint, status) in EtcdAdmin::status_of_each(endpoints, &self.access).await {
            match status {
                Ok(status) if status.leader_id.is_some() => answered.push(status),
                Ok(_) => {
                    tracing::info!(%endpoint, "member answers but knows no leader; not counted as healthy")
                }
                Err(error) => {
                    tracing::info!(%endpoint, %error, "member did not answer a status request")
                }
            }
        }
        let mut healthy: Vec<MemberId> = answered.iter().map(|s| s.member_id).collect();
        healthy.sort_unstable();
        healthy.dedup();
        // Members partitioned from the rest may name an old leader; the view
        // most members share wins.
        let leader = leader_named_by_most(&answered);
        Ok(EtcdObservation {
            members,
            leader,
            healthy,
        })
    }

    async fn move_leader(&self, leader: &Member, target: MemberId) -> Result<(), EtcdError> {
        EtcdAdmin::connect(&leader.client_urls, &self.access)
            .await?
            .move_leader(target)
            .await
    }

    async fn remove(&self, endpoints: &[String], member: MemberId) -> Result<(), EtcdError> {
        EtcdAdmin::first_answer(endpoints, &self.access, async move |admin| {
            admin.remove(member).await
        })
        .await
    }
}
