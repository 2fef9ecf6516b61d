//! Scenarios: an instance is lost and the group replaces it.

use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::ids::MemberId;
use std::time::Duration;

use etcd_aws_io::etcd::admin::{EtcdAdmin, EtcdTimeouts};
use etcd_aws_tests::agent_log;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};
use etcd_client::Client;

const SETTLE: Duration = Duration::from_secs(60);

/// Removes a member by hand, as an operator would. etcd refuses removals
/// for a few seconds after peers (re)connect ("unhealthy cluster"), so retry.
async fn remove_member_by_hand(cluster: &SimCluster, id: MemberId) -> anyhow::Result<()> {
    let survivors: Vec<String> = cluster
        .instance_ids()
        .iter()
        .filter_map(|i| cluster.client_url(i).ok())
        .collect();
    wait_for("the member removal to be accepted", SETTLE, || async {
        EtcdAdmin::connect(
            &survivors,
            &cluster.stand_in.etcd_access(EtcdTimeouts::default()),
        )
        .await?
        .remove(id)
        .await?;
        Ok(())
    })
    .await
}

async fn write_keys(cluster: &SimCluster, prefix: &str, count: usize) -> anyhow::Result<()> {
    let mut client = Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
    for i in 0..count {
        client
            .put(format!("{prefix}/{i}"), format!("value-{i}"), None)
            .await?;
    }
    Ok(())
}

async fn assert_keys(cluster: &SimCluster, prefix: &str, count: usize) -> anyhow::Result<()> {
    let mut client = Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
    for i in 0..count {
        let response = client.get(format!("{prefix}/{i}"), None).await?;
        let value = response.kvs().first().map(|kv| kv.value().to_vec());
        assert_eq!(
            value,
            Some(format!("value-{i}").into_bytes()),
            "key {prefix}/{i} lost"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_of_a_killed_instance_joins_as_learner_and_is_promoted() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;
    write_keys(&cluster, "before", 50).await?;

    // An instance dies; an operator (later: the lifecycle function) removes its member.
    let victim = cluster.instance_ids()[0].clone();
    cluster.remove_node(&victim);
    let member = before
        .members
        .iter()
        .find(|m| m.name == victim)
        .map(|m| m.id)
        .expect("victim is a member");
    remove_member_by_hand(&cluster, member).await?;

    // The group replaces the instance; its node joins by itself.
    cluster.stand_in.vanish(&victim).await?;
    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert!(after.members.iter().all(|m| m.name != victim));
    assert_eq!(after.cluster_id, before.cluster_id);
    let newcomer = cluster
        .instance_ids()
        .into_iter()
        .find(|id| before.members.iter().all(|m| &m.name != id))
        .expect("a new instance");
    let log = cluster.with_node(&newcomer, |n| n.log())?;
    assert!(
        agent_log::has_event(&log, events::JOINED_AS_LEARNER),
        "{log}"
    );
    assert!(agent_log::has_event(&log, events::PROMOTED), "{log}");

    // No acknowledged write was lost.
    assert_keys(&cluster, "before", 50).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_node_removes_the_member_of_an_instance_that_left_the_group() -> anyhow::Result<()>
{
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;

    // An instance vanishes without anyone removing its member.
    let victim = cluster.instance_ids()[1].clone();
    cluster.remove_node(&victim);
    cluster.stand_in.vanish(&victim).await?;

    // The replacement removes the phantom member before it joins.
    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert!(
        after.members.iter().all(|m| m.name != victim),
        "phantom member {victim} is still listed"
    );
    let logs = cluster.logs();
    assert!(
        agent_log::has_event(&logs, events::REMOVED_DEPARTED_MEMBER),
        "{logs}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_process_with_its_data_rejoins_as_the_same_member() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;

    // The agent and etcd crash; systemd (here: the harness) starts the agent again.
    let node = cluster.instance_ids()[2].clone();
    let log_before = cluster.with_node(&node, |n| n.log().len())?;
    cluster.with_node(&node, |n| n.crash())?;
    // Until the new agent has decided what to do: before that, the old ready
    // file still makes the node look healthy.
    wait_for("the agent to be restarted", SETTLE, || async {
        match cluster.with_node(&node, |n| (n.starts(), n.log()))? {
            (starts, log)
                if starts >= 2
                    && log.get(log_before..).is_some_and(|l| {
                        agent_log::has_event(l, events::RESTARTED_ON_OWN_DATA)
                            || agent_log::has_event(l, events::JOINED_AS_LEARNER)
                    }) =>
            {
                Ok(())
            }
            (starts, _) => anyhow::bail!("started {starts} times"),
        }
    })
    .await?;

    // Same members, same ids: nothing was added or removed.
    let after = cluster.wait_healthy(3, SETTLE).await?;
    let ids = |s: &etcd_aws_tests::sim_cluster::ClusterSnapshot| {
        let mut ids: Vec<u64> = s.members.iter().map(|m| m.id.0).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&after), ids(&before));
    let log = cluster.with_node(&node, |n| n.log())?;
    let since_crash = log.get(log_before..).unwrap_or_default();
    assert!(
        agent_log::has_event(since_crash, events::RESTARTED_ON_OWN_DATA),
        "{since_crash}"
    );
    assert!(
        !agent_log::has_event(since_crash, events::JOINED_AS_LEARNER),
        "{since_crash}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_of_a_removed_member_is_moved_aside_and_the_node_joins_afresh() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;

    // A node is stopped and its member removed while it is down.
    let node = cluster.instance_ids()[0].clone();
    cluster.remove_node(&node);
    let old_id = before
        .members
        .iter()
        .find(|m| m.name == node)
        .map(|m| m.id)
        .expect("node is a member");
    remove_member_by_hand(&cluster, old_id).await?;

    // When it comes back it must not reuse the removed member's data.
    cluster.restart_node(&node).await?;
    let after = cluster.wait_healthy(3, SETTLE).await?;
    let new_id = after
        .members
        .iter()
        .find(|m| m.name == node)
        .map(|m| m.id)
        .expect("node rejoined");
    assert_ne!(new_id, old_id, "the node must join as a new member");

    // The old data is beside the new one, intact, not deleted.
    let moved: Vec<_> = std::fs::read_dir(cluster.instance_root(&node))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("etcd.removed-"))
        })
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "expected one moved-aside data dir, found {moved:?}"
    );
    let wal_segments = std::fs::read_dir(moved[0].join("member/wal"))?.count();
    assert!(wal_segments > 0, "moved data lost its WAL");
    Ok(())
}
