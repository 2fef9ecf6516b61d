//! Scenarios: the continuous backup. Capture runs (the backup function's
//! `capture` job, run in-process) watch the cluster and flush its changes as
//! segments; after a total loss the seed restores the newest snapshot and
//! replays the segments after it before it serves.

use std::time::Duration;

use etcd_aws_backup::capture::{run_capture, CaptureOutcome, CaptureSettings};
use etcd_aws_backup::BackupConfig;
use etcd_aws_cluster::backup_store::BackupStore;
use etcd_aws_cluster::replay::{self, ReplayTarget};
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};
use etcd_aws_tests::stand_in::FaultRule;
use etcd_aws_tests::workload::{self, Writer, WriterOptions};
use etcd_client::{Client, CompactionOptions, PutOptions, Txn, TxnOp};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const SETTLE: Duration = Duration::from_secs(120);
/// The loss window the README promises for the default settings.
const LOSS_BOUND: Duration = Duration::from_secs(5);

fn backup_config(cluster: &SimCluster) -> BackupConfig {
    BackupConfig::new(
        cluster.stand_in.group_name(),
        cluster.stand_in.bucket(),
        cluster.stand_in.functions_tls(),
    )
}

/// A capture run of `seconds`, started now beside the test.
async fn capture_for(
    cluster: &SimCluster,
    seconds: u64,
) -> JoinHandle<anyhow::Result<CaptureOutcome>> {
    let config = backup_config(cluster);
    let sdk = cluster.stand_in.sdk_config().await;
    let settings = CaptureSettings {
        duration: Duration::from_secs(seconds),
        ..CaptureSettings::default()
    };
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(seconds + 60);
        Ok(run_capture(&config, &settings, &sdk, deadline).await?)
    })
}

async fn value(client: &mut Client, key: &str) -> anyhow::Result<Option<String>> {
    let response = client.get(key, None).await?;
    Ok(response
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_loss_under_a_writer_keeps_every_write_acknowledged_before_the_window(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;

    // Captures run as the schedule runs them, overlapping: one from the start
    // (it takes the cluster's first snapshot), a second one 8 s later, and a
    // third that is killed mid-run.
    let first = capture_for(&cluster, 30).await;
    let writer = Writer::start(
        cluster.endpoints(),
        WriterOptions {
            interval: Duration::from_millis(20),
            max_duration: Duration::from_secs(120),
            ..WriterOptions::default()
        },
    );
    let killed = capture_for(&cluster, 30).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let second = capture_for(&cluster, 30).await;

    // The shapes a restore must keep: a transaction of two keys, a leased
    // key, a deleted key, a key overwritten many times.
    let mut client = cluster.client().await?;
    client
        .txn(Txn::new().and_then([
            TxnOp::put("txn/a", "both", None),
            TxnOp::put("txn/b", "both", None),
        ]))
        .await?;
    let lease = client.lease_grant(20, None).await?.id();
    client
        .put(
            "leased",
            "expires",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    client.put("deleted", "soon gone", None).await?;
    client.delete("deleted", None).await?;
    for i in 0..50 {
        client.put("overwritten", format!("v{i}"), None).await?;
    }
    drop(client);
    killed.abort();

    // S3 refuses a few segment uploads mid-flush.
    cluster.stand_in.faults().inject(
        FaultRule::error(
            "s3",
            "PutObject",
            500,
            "InternalError",
            "We encountered an internal error.",
        )
        .times(3),
    );
    writer.wait_for_more(200, Duration::from_secs(60)).await?;

    // Every node dies at once, mid-write.
    let killed_at = Instant::now();
    let lost = cluster.instance_ids();
    for id in &lost {
        cluster.remove_node(id);
    }
    let acks = writer.acks();
    drop(writer);
    let (first, second) = (first.await??, second.await??);
    println!("capture runs: {first:?}\n{second:?}");
    assert!(
        first.segments > 0 && second.segments > 0,
        "both captures flushed segments"
    );

    // The disks are gone too; the group replaces every instance.
    cluster.lose_instances(&lost).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = cluster.logs();
    assert!(
        logs.contains("restored the backup and replayed the changes captured after it"),
        "{logs}"
    );

    // Every write acknowledged before the window is back; measure the window.
    let present =
        workload::read_back(&cluster.endpoints(), "workload", Duration::from_secs(30)).await?;
    let missing = workload::missing(&acks, &present);
    let window = missing.first().map_or(Duration::ZERO, |m| {
        killed_at.saturating_duration_since(m.at)
    });
    println!(
        "{} writes acknowledged, {} missing after the restore; loss window {window:?} (bound {LOSS_BOUND:?})",
        acks.len(),
        missing.len()
    );
    assert!(
        missing
            .iter()
            .all(|m| killed_at.saturating_duration_since(m.at) <= LOSS_BOUND),
        "writes acknowledged more than {LOSS_BOUND:?} before the loss are missing: {}",
        workload::describe(&missing)
    );
    let newest_present = acks.iter().rposition(|a| present.contains(&a.key));
    assert!(
        acks[..newest_present.map_or(0, |i| i + 1)]
            .iter()
            .all(|a| present.contains(&a.key)),
        "a hole: a write is missing before one that is present"
    );

    let mut client = cluster.client().await?;
    // Revisions jumped past anything the lost cluster could have reached.
    let revision = client
        .get("txn/a", None)
        .await?
        .header()
        .map_or(0, |h| h.revision());
    assert!(
        revision > 1_000_000_000,
        "restored revision {revision} is not bumped"
    );
    assert_eq!(value(&mut client, "txn/a").await?.as_deref(), Some("both"));
    assert_eq!(value(&mut client, "txn/b").await?.as_deref(), Some("both"));
    assert_eq!(
        value(&mut client, "deleted").await?,
        None,
        "a delete came back"
    );
    assert_eq!(
        value(&mut client, "overwritten").await?.as_deref(),
        Some("v49"),
        "not the last acknowledged value"
    );
    let leased = client.get("leased", None).await?;
    let attached = leased.kvs().first().map(|kv| kv.lease());
    assert!(
        matches!(attached, Some(id) if id == lease) || attached.is_none(),
        "the leased key was restored without its lease: {attached:?}"
    );
    wait_for(
        "the leased key to expire after the restore",
        Duration::from_secs(60),
        || {
            let mut client = client.clone();
            async move { Ok((value(&mut client, "leased").await?.is_none()).then_some(())) }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_compacted_before_it_was_captured_is_closed_by_a_snapshot_at_once(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let store = BackupStore::new(
        &cluster.stand_in.sdk_config().await,
        cluster.stand_in.bucket(),
        "backups/",
    );

    // A first capture: the cluster's first snapshot, then its changes.
    let first = capture_for(&cluster, 3).await;
    let mut client = cluster.client().await?;
    client.put("captured", "yes", None).await?;
    let first = first.await??;
    assert_eq!((first.gaps, first.snapshots.len()), (0, 1), "{first:?}");

    // No capture runs while the cluster writes and compacts its history.
    let mut revision = 0;
    for i in 0..20 {
        revision = client
            .put(format!("uncaptured/{i}"), "x", None)
            .await?
            .header()
            .map_or(0, |h| h.revision());
    }
    client
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await?;

    // The next capture finds the hole and closes it with a snapshot.
    let next = capture_for(&cluster, 3).await.await??;
    assert_eq!(next.gaps, 1, "{next:?}");
    let pointer = store
        .pointer()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no latest.json"))?;
    assert!(
        pointer.revision >= revision,
        "the snapshot {} does not cover the compacted history up to {revision}",
        pointer.revision
    );
    let reach = replay::plan(
        pointer.revision,
        &store.segments().await?,
        ReplayTarget::Latest,
    );
    assert_eq!(reach.cut_off_by_gap, None, "{reach:?}");
    Ok(())
}
