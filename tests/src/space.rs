//! Using up a cluster's space on purpose, for the maintenance scenarios and
//! benchmarks: files full of free pages (fragmentation) and a database over
//! its quota (NOSPACE).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::etcd::ids::MemberId;
use etcd_aws_core::etcd::status::MemberStatus;
use etcd_aws_io::etcd::admin::EtcdAdmin;
use etcd_client::{Client, CompactionOptions};
use tokio::time::Instant;

use crate::node::NodeRunner;
use crate::sim_cluster::{wait_for, SimCluster};

pub const MIB: usize = 1024 * 1024;

pub async fn client<N: NodeRunner>(cluster: &SimCluster<N>) -> anyhow::Result<Client> {
    Ok(Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?)
}

/// Each member's own status, by member id.
pub async fn statuses<N: NodeRunner>(
    cluster: &SimCluster<N>,
) -> anyhow::Result<HashMap<MemberId, MemberStatus>> {
    let mut statuses = HashMap::new();
    for (endpoint, status) in
        EtcdAdmin::status_of_each(&cluster.client_urls(), &cluster.etcd_access()).await
    {
        let status = status.with_context(|| format!("{endpoint} did not answer"))?;
        statuses.insert(status.member_id, status);
    }
    Ok(statuses)
}

/// etcd's refusal of a write for want of space (the NOSPACE alarm is raised).
pub fn is_nospace(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status)
        if status.message() == "etcdserver: mvcc: database space exceeded")
}

/// Makes every member's file hold at least `free_mib` MiB of free pages:
/// writes `2 x free_mib` MiB, overwrites it, deletes it and compacts the
/// history away. Returns the members' statuses once all have counted their
/// freed pages (each compacts on its own time and counts at its next commit,
/// so it writes a tick until then).
pub async fn fragment<N: NodeRunner>(
    cluster: &SimCluster<N>,
    free_mib: usize,
    within: Duration,
) -> anyhow::Result<HashMap<MemberId, MemberStatus>> {
    let mut filler = client(cluster).await?;
    let value = vec![b'f'; 128 * 1024];
    let count = (free_mib + free_mib / 2) * MIB / value.len();
    for _ in 0..2 {
        for n in 0..count {
            filler.put(format!("fill/{n}"), value.clone(), None).await?;
        }
    }
    for n in 0..count {
        filler.delete(format!("fill/{n}"), None).await?;
    }
    let revision = filler
        .get("fill/0", None)
        .await?
        .header()
        .map_or(0, |h| h.revision());
    filler
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await?;
    let wanted = i64::try_from(free_mib * MIB)?;
    wait_for("every member to have compacted", within, || async {
        client(cluster).await?.put("fill/tick", "", None).await?;
        let statuses = statuses(cluster).await?;
        for status in statuses.values() {
            anyhow::ensure!(status.free_bytes() > wanted, "{status:?}");
        }
        Ok(statuses)
    })
    .await
}

/// What filling a cluster to its quota left behind.
#[derive(Debug, Clone)]
pub struct Squeezed {
    /// When etcd first refused a write for want of space.
    pub full_at: Instant,
    /// Each squeezed key and the revision of its last acknowledged write.
    pub last_written: HashMap<String, i64>,
    /// The key whose put crossed the quota: etcd's quota applier applies that
    /// put and then answers NOSPACE, so the key may hold a later revision than
    /// its last acknowledged one.
    pub crossed: String,
}

/// Overwrites eight keys with 256 KiB values (every revision is kept until a
/// compaction) until etcd refuses a write for want of space.
pub async fn squeeze_until_nospace<N: NodeRunner>(
    cluster: &SimCluster<N>,
    quota_bytes: usize,
) -> anyhow::Result<Squeezed> {
    let mut squeezer = client(cluster).await?;
    let value = vec![b'x'; 256 * 1024];
    let mut last_written = HashMap::new();
    for round in 0..(4 * quota_bytes / value.len()) {
        let key = format!("squeeze/{}", round % 8);
        match squeezer.put(key.as_str(), value.clone(), None).await {
            Ok(answer) => {
                let revision = answer.header().map_or(0, |h| h.revision());
                last_written.insert(key, revision);
            }
            Err(error) if is_nospace(&error) => {
                return Ok(Squeezed {
                    full_at: Instant::now(),
                    last_written,
                    crossed: key,
                })
            }
            Err(error) => return Err(error).context("the squeezing writer failed"),
        }
    }
    anyhow::bail!("the cluster never ran out of space in {quota_bytes} bytes x 4 of writes")
}

/// Waits until a write is accepted; when it was.
pub async fn writable_again<N: NodeRunner>(
    cluster: &SimCluster<N>,
    within: Duration,
) -> anyhow::Result<Instant> {
    wait_for("writes to be accepted again", within, || async {
        client(cluster)
            .await?
            .put("squeeze/after", "accepted", None)
            .await?;
        Ok(Instant::now())
    })
    .await
}
