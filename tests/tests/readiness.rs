//! Scenarios: the agent's `GET /ready`, which the load balancer's target
//! group asks, so that no client is handed a node that would refuse it: a
//! voting member that serves reads is ready; a learner is not; a node a
//! restore order holds out is not.

use std::net::IpAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use etcd_aws::ready_endpoint::{NodeState, Readiness, ReadyEndpoint};
use etcd_aws_core::contract::restore_order::{Phase, RestoreOrder, RestoreTarget, FORMAT};
use etcd_aws_core::membership::member::url_ip;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin};
use etcd_aws_tests::load_balancer::ready_answer;
use etcd_aws_tests::paths::etcd_tool;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster, HARNESS_TIMEOUTS};
use etcd_aws_tests::stand_in::StandInOptions;

const SETTLE: Duration = Duration::from_secs(90);

/// The readiness the agent's endpoint gives for the member at `client_url`,
/// with etcd running and nothing else holding the node out.
async fn readiness_of(client_url: &str, access: &EtcdAccess) -> Readiness {
    let state = Arc::new(NodeState::default());
    state.set_etcd_running(true);
    ReadyEndpoint {
        state,
        own_client_url: client_url.to_owned(),
        access: access.clone(),
    }
    .readiness()
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_voter_is_ready_and_a_learner_beside_it_is_not() -> anyhow::Result<()> {
    let cluster = SimCluster::start_with(StandInOptions {
        group_size: 1,
        tls: false,
        ..StandInOptions::default()
    })
    .await?;
    let formed = cluster.wait_healthy(1, SETTLE).await?;
    let seed = formed.members.first().context("the seed's member")?;
    let seed_url = seed.client_urls.first().context("the seed's client URL")?;
    let access = EtcdAccess::plaintext(HARNESS_TIMEOUTS);
    assert_eq!(readiness_of(seed_url, &access).await, Readiness::Ready);

    // A learner added beside it, on an address of the subnet nothing else uses.
    let ip = format!("{}.250", cluster.stand_in.subnet_prefix());
    let (client_url, peer_url) = (format!("http://{ip}:2379"), format!("http://{ip}:2380"));
    EtcdAdmin::connect(std::slice::from_ref(seed_url), &access)
        .await?
        .add_learner(&peer_url)
        .await?;
    let data = tempfile::tempdir()?;
    let initial_cluster = format!(
        "{}={},learner={peer_url}",
        seed.name,
        seed.peer_urls.first().context("the seed's peer URL")?
    );
    let _learner = tokio::process::Command::new(etcd_tool("etcd")?)
        .args(["--name=learner", "--log-level=warn"])
        .arg(format!("--data-dir={}", data.path().join("etcd").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster={initial_cluster}"))
        .arg("--initial-cluster-state=existing")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the learner's etcd")?;
    let said = wait_for("the learner to answer as a learner", SETTLE, || async {
        let status = EtcdAdmin::connect(std::slice::from_ref(&client_url), &access)
            .await?
            .status()
            .await?;
        anyhow::ensure!(status.is_learner, "not a learner: {status:?}");
        Ok(readiness_of(&client_url, &access).await)
    })
    .await?;
    assert!(
        matches!(said, Readiness::NotReady(reason) if reason.contains("learner")),
        "{said:?}"
    );
    // The voter beside it stays ready.
    assert_eq!(readiness_of(seed_url, &access).await, Readiness::Ready);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_leaves_the_load_balancer_while_a_restore_order_holds_it_out(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    let formed = cluster.wait_healthy(3, SETTLE).await?;
    let ips: Vec<IpAddr> = formed
        .members
        .iter()
        .filter_map(|m| m.client_urls.first().and_then(|url| url_ip(url)))
        .collect();
    for ip in &ips {
        let answer = ready_answer(*ip).await?;
        assert!(answer.starts_with("HTTP/1.0 200"), "{ip}: {answer}");
    }

    // An operator's restore stops every node (the quarantine).
    let store = BackupStore::new(
        &cluster.stand_in.sdk_config().await,
        cluster.stand_in.bucket(),
        etcd_aws_core::contract::names::bucket::BACKUP_PREFIX,
    );
    let order = RestoreOrder {
        format: FORMAT,
        id: "readiness-scenario".into(),
        target: RestoreTarget::Revision(1),
        safety: None,
        phase: Phase::Quarantine,
        created_at: etcd_aws_core::clock::now_unix_seconds(),
        restored: None,
    };
    store
        .put_restore_order(&cluster.stand_in.signed_by_operator(&order).await?)
        .await?;
    for ip in &ips {
        wait_for(
            &format!("{ip} to leave the load balancer"),
            SETTLE,
            || async {
                let answer = ready_answer(*ip).await?;
                anyhow::ensure!(
                    answer.starts_with("HTTP/1.0 503") && answer.contains("restore order"),
                    "{answer}"
                );
                Ok(())
            },
        )
        .await?;
    }
    Ok(())
}
