//! Scenarios that need a real network: every instance is a container of the
//! project's image on a Docker network whose subnet is the VPC's, and a
//! partition is the instance leaving that network (`docker network
//! disconnect`), so packets to and from it go nowhere while it keeps its AWS
//! API.
//!
//! Ignored by a plain `cargo test`: they need a Docker engine and the image.
//! `make test` builds the image and runs them when an engine answers (and,
//! with CI=true, fails when none does):
//!     make image && cargo test -p etcd-aws-tests --test container_partitions -- --ignored

use etcd_aws_core::contract::events;
use std::time::Duration;

use etcd_aws_io::etcd::admin::{EtcdAdmin, EtcdTimeouts};
use etcd_aws_tests::agent_log;
use etcd_aws_tests::container_node::ContainerNode;
use etcd_aws_tests::functions::LifecycleOnQueue;
use etcd_aws_tests::node::NodeRunner;
use etcd_aws_tests::sim_cluster::{self, ClusterSnapshot, SimCluster};
use etcd_aws_tests::stand_in::{ActionOutcome, StandInOptions};
use etcd_client::{Client, ConnectOptions};
use tokio::time::Instant;

type Cluster = SimCluster<ContainerNode>;

const SETTLE: Duration = Duration::from_secs(120);
/// Well past the 3 s quorum-loss grace the harness gives every agent.
const PAST_THE_GRACE: Duration = Duration::from_secs(12);
/// Well under the stand-in hook's 60 s heartbeat timeout: an action completed
/// within it was completed by the function, not by the timeout.
const REMOVAL: Duration = Duration::from_secs(45);
/// Bounds every polling loop by count as well as by time.
const MAX_POLLS: usize = 1_000;
const FORMING: &str = "forming a new one-member cluster";

async fn three_containers() -> anyhow::Result<Cluster> {
    SimCluster::start_in_containers(StandInOptions::default()).await
}

fn client_options(cluster: &Cluster) -> ConnectOptions {
    sim_cluster::client_options(
        &cluster.etcd_access(),
        Duration::from_millis(500),
        Duration::from_secs(2),
    )
}

async fn put(cluster: &Cluster, urls: Vec<String>, key: &str) -> anyhow::Result<()> {
    let mut client = Client::connect(urls, Some(client_options(cluster))).await?;
    client.put(key, "acknowledged", None).await?;
    Ok(())
}

async fn is_present(cluster: &Cluster, urls: Vec<String>, key: &str) -> anyhow::Result<bool> {
    let mut client = Client::connect(urls, Some(client_options(cluster))).await?;
    Ok(client.get(key, None).await?.kvs().len() == 1)
}

fn urls_except(cluster: &Cluster, excluded: &[&str]) -> Vec<String> {
    cluster
        .instance_ids()
        .iter()
        .filter(|id| !excluded.contains(&id.as_str()))
        .filter_map(|id| cluster.client_url(id).ok())
        .collect()
}

fn member_ids(snapshot: &ClusterSnapshot) -> Vec<u64> {
    let mut ids: Vec<u64> = snapshot.members.iter().map(|m| m.id.0).collect();
    ids.sort_unstable();
    ids
}

fn log_of(cluster: &Cluster, id: &str) -> String {
    cluster.with_node(id, |n| n.log()).unwrap_or_default()
}

/// The instance whose member leads.
async fn leader(cluster: &Cluster) -> anyhow::Result<String> {
    let snapshot = cluster.snapshot().await?;
    let mut admin = EtcdAdmin::connect(
        &cluster.client_urls(),
        &cluster.stand_in.etcd_access(EtcdTimeouts::default()),
    )
    .await?;
    let leader_id = admin
        .status()
        .await?
        .leader_id
        .ok_or_else(|| anyhow::anyhow!("the member asked knows no leader"))?;
    snapshot
        .members
        .iter()
        .find(|m| m.id == leader_id)
        .map(|m| m.name.clone())
        .ok_or_else(|| anyhow::anyhow!("no leader {leader_id} among {:?}", snapshot.members))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and `make image`; make test runs it"]
async fn containers_of_the_image_form_one_cluster_on_the_vpc_subnet() -> anyhow::Result<()> {
    let cluster = three_containers().await?;
    let formed = cluster.wait_healthy(3, SETTLE).await?;

    let subnet = format!("https://{}.", cluster.stand_in.subnet_prefix());
    for member in &formed.members {
        assert!(
            member.peer_urls.iter().all(|url| url.starts_with(&subnet)),
            "member {} is not on the VPC subnet: {:?}",
            member.name,
            member.peer_urls
        );
    }
    let seeds: Vec<String> = cluster
        .instance_ids()
        .into_iter()
        .filter(|id| log_of(&cluster, id).contains(FORMING))
        .collect();
    assert_eq!(seeds.len(), 1, "exactly one node forms: {seeds:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and `make image`; make test runs it"]
async fn the_agent_writes_its_volume_as_the_images_non_root_user() -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid cannot fail and touches no memory.
    if unsafe { libc::getuid() } != 0 {
        // Only a root harness runs the image as its own user (see ContainerSettings).
        println!("SKIPPED: the harness is not root, so the containers run as its user");
        return Ok(());
    }
    let cluster = three_containers().await?;
    cluster.wait_healthy(3, SETTLE).await?;
    for id in cluster.instance_ids() {
        let data = cluster.instance_root(&id).join("etcd").join("member");
        let owner = std::fs::metadata(&data)?.uid();
        assert_eq!(owner, 10001, "{} belongs to uid {owner}", data.display());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and `make image`; make test runs it"]
async fn a_seed_cut_off_from_a_healthy_cluster_waits_and_rejoins_the_same_cluster_once_healed(
) -> anyhow::Result<()> {
    let cluster = three_containers().await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;

    // The seed (it formed the cluster, so it would form one again if it
    // believed none existed) reboots with an empty disk while cut off from
    // its peers. It still reaches AWS and sees them in the group.
    let seed = cluster
        .instance_ids()
        .into_iter()
        .find(|id| log_of(&cluster, id).contains(FORMING))
        .ok_or_else(|| anyhow::anyhow!("no node formed the cluster:\n{}", cluster.logs()))?;
    cluster.with_node(&seed, |n| n.power_off())??;
    let disk = cluster.instance_root(&seed);
    std::fs::remove_dir_all(disk.join("etcd"))?;
    cluster.with_node(&seed, |n| n.cut_off())??;
    let log_before_reboot = log_of(&cluster, &seed).len();
    cluster.with_node(&seed, |n| n.power_on())?;

    // It must wait: never decide to form, while the others keep serving.
    let others = urls_except(&cluster, &[&seed]);
    let deadline = Instant::now() + PAST_THE_GRACE;
    for poll in 0..MAX_POLLS {
        let since_reboot = log_of(&cluster, &seed).split_off(log_before_reboot);
        assert!(
            !since_reboot.contains(FORMING),
            "the cut-off seed formed a second cluster:\n{since_reboot}"
        );
        put(
            &cluster,
            others.clone(),
            &format!("during-partition/{poll}"),
        )
        .await?;
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let since_reboot = log_of(&cluster, &seed).split_off(log_before_reboot);
    assert!(
        agent_log::waited_for(&since_reboot, events::WAITING, "peers_unconfirmed"),
        "the seed should say why it waits:\n{since_reboot}"
    );

    // Healed, it joins the cluster that exists.
    cluster.with_node(&seed, |n| n.heal())??;
    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert_eq!(
        after.cluster_id, before.cluster_id,
        "a second cluster was formed"
    );
    assert!(after.members.iter().any(|m| m.name == seed));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and `make image`; make test runs it"]
async fn a_leader_cut_off_while_its_instance_terminates_is_removed_and_the_others_keep_serving(
) -> anyhow::Result<()> {
    let cluster = three_containers().await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;
    let lifecycle = LifecycleOnQueue::start(&cluster.stand_in).await?;
    put(&cluster, cluster.client_urls(), "before-the-removal").await?;

    // The leader is cut off just as scale-in picks it: the function cannot
    // reach it to hand leadership over, only the two members left behind.
    let leader = leader(&cluster).await?;
    cluster.with_node(&leader, |n| n.cut_off())??;
    cluster.stand_in.terminate(&leader).await?;

    let others = urls_except(&cluster, &[&leader]);
    let started = Instant::now();
    let mut acknowledged = Vec::new();
    let outcome = loop {
        let outcome = cluster
            .stand_in
            .lifecycle_actions()
            .into_iter()
            .find(|a| a.instance_id == leader)
            .and_then(|a| a.outcome);
        if outcome.is_some() || started.elapsed() > REMOVAL || acknowledged.len() >= MAX_POLLS {
            break outcome;
        }
        let key = format!("during-the-removal/{}", acknowledged.len());
        if put(&cluster, others.clone(), &key).await.is_ok() {
            acknowledged.push(key);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "action completed {:?} after the termination began; {} writes acknowledged meanwhile",
        started.elapsed(),
        acknowledged.len()
    );
    assert_eq!(
        outcome,
        Some(ActionOutcome::Continue),
        "function log:\n{}",
        lifecycle.log()
    );
    assert_eq!(
        lifecycle.logged_for("removed member", &leader),
        1,
        "function log:\n{}",
        lifecycle.log()
    );
    assert!(
        !acknowledged.is_empty(),
        "no write succeeded during the removal"
    );

    // The replacement joins the same cluster; the cut-off leader is gone from it.
    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert_eq!(after.cluster_id, before.cluster_id);
    assert!(after.members.iter().all(|m| m.name != leader));
    for key in std::iter::once("before-the-removal".to_owned()).chain(acknowledged) {
        assert!(
            is_present(&cluster, cluster.client_urls(), &key).await?,
            "acknowledged key {key} is lost"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and `make image`; make test runs it"]
async fn quorum_lost_to_a_partition_never_forces_a_new_cluster_and_heals_into_the_same_one(
) -> anyhow::Result<()> {
    let cluster = three_containers().await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;
    put(&cluster, cluster.client_urls(), "before-the-partition").await?;

    // Every node is cut off from the other two: no side has quorum, and every
    // instance stays in the group, so each may come back with newer data.
    let ids = cluster.instance_ids();
    for id in &ids[1..] {
        cluster.with_node(id, |n| n.cut_off())??;
    }
    tokio::time::sleep(PAST_THE_GRACE).await;
    for id in &ids {
        let log = log_of(&cluster, id);
        assert!(
            !agent_log::has_event(&log, events::FORCE_NEW_CLUSTER),
            "{id} forced a new cluster over a partition:\n{log}"
        );
    }
    let survivor_log = log_of(&cluster, &ids[0]);
    assert!(
        agent_log::waited_for(
            &survivor_log,
            events::RECOVERY_WAITING,
            "members_may_return"
        ),
        "the survivor should say why it does not recover:\n{survivor_log}"
    );

    // Healed: the same cluster, the same members, the acknowledged write.
    for id in &ids[1..] {
        cluster.with_node(id, |n| n.heal())??;
    }
    let after = cluster.wait_healthy(3, SETTLE).await?;
    assert_eq!(after.cluster_id, before.cluster_id);
    assert_eq!(member_ids(&after), member_ids(&before));
    assert!(
        is_present(&cluster, cluster.client_urls(), "before-the-partition").await?,
        "the acknowledged write is lost"
    );
    Ok(())
}
