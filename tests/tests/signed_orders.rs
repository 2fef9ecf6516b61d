//! Only an operator's signed instruction commands the nodes. A restore order
//! written by anything that can write to the bucket but cannot sign with the
//! stack's order-signing key (a node's stolen credentials, the functions'
//! role, a script) is refused by every agent: the cluster keeps serving under
//! a writer, and every node logs `instruction_refused`, which the stack counts
//! and alarms on. The orders here ask for the most damaging step there is, a
//! quarantine: obeyed, it would stop every member.
//!
//! Needs `cargo build -p etcd-aws -p etcd-aws-lifecycle -p etcd-aws-backup`
//! first (the harness runs the built binaries).

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use etcd_aws_core::contract::events;
use etcd_aws_core::contract::restore_order::{Phase, RestoreOrder, RestoreTarget, FORMAT};
use etcd_aws_core::contract::signed::Signed;
use etcd_aws_io::aws::order_key::OrderKey;
use etcd_aws_tests::agent_log;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};
use etcd_aws_tests::stand_in::Caller;
use etcd_aws_tests::workload::{Writer, WriterOptions};

const SETTLE: Duration = Duration::from_secs(120);
/// Several of the agents' restore polls (1 s in the harness): long enough
/// for an obeyed order to have stopped every member.
const OBEYED_WITHIN: Duration = Duration::from_secs(5);
/// What the writer may wait at most while the bucket holds the order.
const STALL_LIMIT: Duration = Duration::from_secs(2);

fn quarantine() -> RestoreOrder {
    RestoreOrder {
        format: FORMAT,
        id: "not-an-operators".into(),
        target: RestoreTarget::Revision(1),
        safety: None,
        phase: Phase::Quarantine,
        created_at: etcd_aws_core::clock::now_unix_seconds(),
        restored: None,
    }
}

/// A three-node cluster under a writer.
async fn serving() -> anyhow::Result<(SimCluster, Writer)> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let writer = Writer::start(
        cluster.endpoints(),
        WriterOptions {
            prefix: "written".into(),
            interval: Duration::from_millis(100),
            ..WriterOptions::default()
        },
    );
    writer.wait_for_more(10, SETTLE).await?;
    Ok((cluster, writer))
}

/// Puts `body` where the restore order lives, with the nodes' credentials.
async fn write_order_as_node(cluster: &SimCluster, body: Vec<u8>) -> anyhow::Result<()> {
    let stand_in = &cluster.stand_in;
    let config = stand_in.sdk_config_as(Caller::Node).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    s3.put_object()
        .bucket(stand_in.bucket())
        .key("backups/restore/order.json")
        .body(ByteStream::from(body))
        .send()
        .await?;
    Ok(())
}

/// Waits until every node logged `instruction_refused` with `refusal`.
async fn refused_by_every_node(cluster: &SimCluster, refusal: &str) -> anyhow::Result<()> {
    wait_for(
        &format!("every node to refuse the order ({refusal})"),
        SETTLE,
        || async {
            for id in cluster.instance_ids() {
                let log = cluster.with_node(&id, |node| node.log())?;
                let refused = agent_log::events(&log, events::INSTRUCTION_REFUSED)
                    .iter()
                    .any(|line| {
                        line["refusal"] == refusal && line["instruction"] == "restore_order"
                    });
                anyhow::ensure!(refused, "{id} has not refused it yet");
            }
            Ok(())
        },
    )
    .await
    .map_err(|e| e.context(cluster.logs()))
}

/// The cluster serves as before: same cluster, every member, the writer
/// never waiting long, no node holding for a restore.
async fn still_serving(
    cluster: &SimCluster,
    writer: &Writer,
    cluster_id: etcd_aws_core::etcd::ids::ClusterId,
) -> anyhow::Result<()> {
    tokio::time::sleep(OBEYED_WITHIN).await;
    writer.wait_for_more(20, SETTLE).await?;
    let now = cluster.wait_healthy(3, SETTLE).await?;
    assert_eq!(now.cluster_id, cluster_id, "the same cluster serves");
    assert!(
        writer.current_stall() < STALL_LIMIT,
        "the writer waits {:?}: {:?}",
        writer.current_stall(),
        writer.last_error()
    );
    for id in cluster.instance_ids() {
        let log = cluster.with_node(&id, |node| node.log())?;
        assert!(
            !agent_log::waited_for(&log, events::WAITING, "restore_order_holds"),
            "{id} held for the order:\n{log}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_order_written_with_a_nodes_credentials_is_refused_and_the_cluster_keeps_serving(
) -> anyhow::Result<()> {
    let (cluster, writer) = serving().await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;

    println!("writing a quarantine order as a plain object, with a node's credentials");
    write_order_as_node(&cluster, serde_json::to_vec(&quarantine())?).await?;
    refused_by_every_node(&cluster, "not_signed").await?;
    still_serving(&cluster, &writer, before.cluster_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_signed_by_a_key_other_than_the_stacks_is_refused() -> anyhow::Result<()> {
    let (cluster, writer) = serving().await?;
    let before = cluster.wait_healthy(3, SETTLE).await?;
    let config = cluster.stand_in.sdk_config().await;
    let other_key = cluster.stand_in.another_signing_key().await?;
    let signed = OrderKey::new(&config, &other_key)
        .sign(&quarantine())
        .await?;

    println!("writing a quarantine order signed by a key of the writer's own");
    write_order_as_node(&cluster, serde_json::to_vec(&signed)?).await?;
    refused_by_every_node(&cluster, "wrong_key").await?;

    println!("the same, claiming the stack's key");
    let forged = Signed {
        key_id: cluster.stand_in.order_signing_key().to_owned(),
        ..signed
    };
    write_order_as_node(&cluster, serde_json::to_vec(&forged)?).await?;
    refused_by_every_node(&cluster, "bad_signature").await?;
    still_serving(&cluster, &writer, before.cluster_id).await
}
