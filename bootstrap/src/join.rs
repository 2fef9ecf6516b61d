//! Carries out a join plan: remove departed members, move stale data aside,
//! add this node as a learner, and build the etcd launch that joins.

use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::launch::{
    initial_members_for_join, ClusterState, EtcdLaunch, InitialCluster,
};
use etcd_aws_core::membership::decision::JoinPlan;
use etcd_aws_io::data_dir;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_io::etcd::error::EtcdError;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The cluster said "not now" (another learner is catching up, a leader
    /// election): observe again and retry.
    #[error("the cluster cannot take this node yet: {0}")]
    NotYet(EtcdError),
    #[error(transparent)]
    Etcd(EtcdError),
    #[error(transparent)]
    DataDir(#[from] data_dir::DataDirError),
}

impl From<EtcdError> for JoinError {
    fn from(error: EtcdError) -> Self {
        if error.is_transient() {
            Self::NotYet(error)
        } else {
            Self::Etcd(error)
        }
    }
}

/// Returns the launch that joins, through the serving members' client URLs.
pub async fn prepare(
    plan: &JoinPlan,
    cluster_endpoints: &[String],
    mut launch: EtcdLaunch,
    access: &EtcdAccess,
) -> Result<EtcdLaunch, JoinError> {
    let mut admin = EtcdAdmin::connect(cluster_endpoints, access).await?;
    for member in &plan.remove {
        tracing::info!(event = events::REMOVED_DEPARTED_MEMBER, member_id = %member.id, member_name = %member.name, peer_urls = ?member.peer_urls,
            "removing member whose instance left the group");
        admin.remove(member.id).await?;
    }
    if plan.move_aside_local_data {
        let moved = data_dir::move_aside(&launch.data_dir)?;
        tracing::warn!(data_dir = %launch.data_dir.display(), moved_to = %moved.display(),
            "this node's data belongs to a member that was removed from the cluster; moved it aside (not deleted) and joining afresh");
    }
    let my_id = match plan.existing_member {
        Some(id) => {
            tracing::info!(event = events::JOINED_AS_LEARNER, member_id = %id, reused = true, "this node was added before but never started; reusing that member");
            id
        }
        None => {
            let id = admin.add_learner(&launch.peer_url()).await?;
            tracing::info!(event = events::JOINED_AS_LEARNER, member_id = %id, peer_url = %launch.peer_url(), "added this node as a learner");
            id
        }
    };
    // List again: a learner added by another node since our add must be in
    // our --initial-cluster too, or etcd refuses to start.
    let (_, members) = admin.members().await?;
    launch.initial_cluster = Some(InitialCluster {
        members: initial_members_for_join(&members, my_id, &launch.name),
        state: ClusterState::Existing,
        token: String::new(),
    });
    Ok(launch)
}
