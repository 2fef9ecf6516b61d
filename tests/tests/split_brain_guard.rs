//! Scenario: a node that cannot see the healthy cluster must wait, never form
//! a second one.

use etcd_aws_core::contract::events;
use std::net::SocketAddr;
use std::time::Duration;

use etcd_aws_tests::agent_log;
use etcd_aws_tests::sim_cluster::SimCluster;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_that_cannot_reach_the_cluster_waits_and_never_forms_a_second_one(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let before = cluster.wait_healthy(3, Duration::from_secs(60)).await?;

    // The seed (the node that formed the cluster, so it would form again if
    // it believed no cluster existed) loses its disk and restarts...
    let seed = cluster
        .instance_ids()
        .into_iter()
        .find(|id| {
            cluster
                .with_node(id, |n| agent_log::has_event(&n.log(), events::FORMED))
                .unwrap_or(false)
        })
        .expect("one node formed the cluster");
    cluster.remove_node(&seed);
    std::fs::remove_dir_all(cluster.instance_root(&seed).join("etcd"))?;

    // ...while every other node is frozen: their etcd holds its port but answers nothing.
    let others: Vec<String> = cluster.instance_ids();
    for id in &others {
        cluster.with_node(id, |n| n.pause())?;
    }
    cluster.restart_node(&seed).await?;

    // For eight seconds the seed must never serve a cluster of its own.
    let seed_ip = cluster
        .stand_in
        .instances()
        .await?
        .into_iter()
        .find(|i| i.id == seed)
        .map(|i| i.private_ip)
        .expect("seed instance");
    let address = SocketAddr::from((seed_ip, 2379));
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let connected = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(address),
        )
        .await;
        assert!(
            !matches!(connected, Ok(Ok(_))),
            "the isolated seed started etcd:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = cluster.with_node(&seed, |n| n.log())?;
    assert!(
        agent_log::waited_for(&log, events::WAITING, "peers_unconfirmed"),
        "the seed should say why it waits:\n{log}"
    );

    // Once the others answer again, the seed joins the existing cluster.
    for id in &others {
        cluster.with_node(id, |n| n.resume())?;
    }
    let after = cluster.wait_healthy(3, Duration::from_secs(60)).await?;
    assert_eq!(
        after.cluster_id, before.cluster_id,
        "a second cluster was formed"
    );
    Ok(())
}
