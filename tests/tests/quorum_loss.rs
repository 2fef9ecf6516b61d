//! Scenarios: quorum is lost. A survivor recovers from its own data only when
//! the lost members' instances are confirmed gone, never when they are merely
//! unreachable.

use etcd_aws_core::contract::events;
use std::time::Duration;

use etcd_aws_tests::agent_log;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};

const SETTLE: Duration = Duration::from_secs(90);

async fn write(cluster: &SimCluster, key: &str) -> anyhow::Result<()> {
    cluster
        .client()
        .await?
        .put(key, "acknowledged", None)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_recovers_the_cluster_when_the_other_instances_are_gone() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    write(&cluster, "written/before-the-loss").await?;

    // Two of three instances vanish at once, before anyone removed their
    // members: the survivor has no quorum, and only it has the data.
    let ids = cluster.instance_ids();
    let (survivor, lost) = (ids[0].clone(), [ids[1].clone(), ids[2].clone()]);
    for id in &lost {
        cluster.remove_node(id);
    }
    for id in &lost {
        cluster.stand_in.vanish(id).await?;
    }

    // The survivor forces a new cluster from its data; the replacements join it.
    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert!(after.members.iter().any(|m| m.name == survivor));
    let log = cluster.with_node(&survivor, |n| n.log())?;
    assert!(
        agent_log::has_event(&log, events::FORCE_NEW_CLUSTER),
        "{log}"
    );
    let mut client = cluster.client().await?;
    let value = client.get("written/before-the-loss", None).await?;
    assert_eq!(
        value.kvs().first().map(|kv| kv.value().to_vec()),
        Some(b"acknowledged".to_vec()),
        "acknowledged write lost"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_never_forces_a_new_cluster_while_the_others_are_only_unreachable(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;

    // Two members freeze (their instances stay in the group): quorum is lost,
    // but they may come back with newer writes.
    let ids = cluster.instance_ids();
    let (survivor, frozen) = (ids[0].clone(), [ids[1].clone(), ids[2].clone()]);
    for id in &frozen {
        cluster.with_node(id, |n| n.pause())?;
    }
    // Past the 3 s grace the harness configures, the survivor says why it waits...
    let said_why = wait_for("the survivor to say why it waits", SETTLE, || async {
        let log = cluster.with_node(&survivor, |n| n.log())?;
        anyhow::ensure!(
            agent_log::waited_for(&log, events::RECOVERY_WAITING, "members_may_return"),
            "not yet"
        );
        Ok(())
    })
    .await;
    // ...and waits on, well past the grace.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = cluster.with_node(&survivor, |n| n.log())?;
    assert!(
        !agent_log::has_event(&log, events::FORCE_NEW_CLUSTER),
        "forced recovery over live members:\n{log}"
    );
    said_why.map_err(|e| e.context(log))?;

    // They come back: the same cluster, the same members.
    for id in &frozen {
        cluster.with_node(id, |n| n.resume())?;
    }
    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert_eq!(after.cluster_id, before.cluster_id);
    let ids = |s: &etcd_aws_tests::sim_cluster::ClusterSnapshot| {
        let mut ids: Vec<u64> = s.members.iter().map(|m| m.id.0).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&after), ids(&before));
    Ok(())
}
