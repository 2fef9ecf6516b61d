//! Scenarios: the continuous backup. Capture runs (the backup function's
//! `capture` job, run in-process) watch the cluster and flush its changes as
//! segments; after a total loss the seed restores the newest snapshot and
//! replays the segments after it before it serves.

use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_core::contract::events;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use etcd_aws::instructions::Instructions;
use etcd_aws::restore::{Restored, Restorer};
use etcd_aws_backup::capture::{run_capture, CaptureOutcome, CaptureSettings};
use etcd_aws_backup::retention::RetentionPolicy;
use etcd_aws_backup::{run_backup, BackupConfig};
use etcd_aws_core::backup::replay::{self, ReplayTarget};
use etcd_aws_core::backup::revisions::RevisionError;
use etcd_aws_core::backup::segment::{Change, RevisionChange, Segment, FORMAT};
use etcd_aws_core::etcd::ids::ClusterId;
use etcd_aws_core::etcd::launch::EtcdLaunch;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::etcd::admin::EtcdAdmin;
use etcd_aws_tests::agent_log;
use etcd_aws_tests::paths::{etcd_tool, EtcdRelease};
use etcd_aws_tests::sim_cluster::{wait_for, NodeOptions, SimCluster};
use etcd_aws_tests::space::{self, MIB};
use etcd_aws_tests::stand_in::{FaultRule, StandInOptions};
use etcd_aws_tests::workload::{self, Writer, WriterOptions};
use etcd_client::{Client, CompactionOptions, GetOptions, PutOptions, Txn, TxnOp};
use tokio::process::Child;
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
    capture_with(
        cluster,
        CaptureSettings {
            duration: Duration::from_secs(seconds),
            ..CaptureSettings::default()
        },
    )
    .await
}

async fn capture_with(
    cluster: &SimCluster,
    settings: CaptureSettings,
) -> JoinHandle<anyhow::Result<CaptureOutcome>> {
    let config = backup_config(cluster);
    let sdk = cluster.stand_in.sdk_config().await;
    let seconds = settings.duration.as_secs();
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
        agent_log::events(&logs, events::FORMED)
            .iter()
            .any(|line| line["from"] == "backup"),
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
            async move {
                match value(&mut client, "leased").await? {
                    None => Ok(()),
                    Some(_) => anyhow::bail!("the leased key is still there"),
                }
            }
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
        replay::Lineage::restore(pointer.cluster_id),
        &store.segments().await?,
        ReplayTarget::Latest,
    );
    assert_eq!(reach.cut_off_by_gap, None, "{reach:?}");
    Ok(())
}

fn store(cluster: &SimCluster, sdk: &aws_config::SdkConfig) -> BackupStore {
    BackupStore::new(sdk, cluster.stand_in.bucket(), "backups/")
}

/// The bucket's backup and segments restored into `dir`, as the seed's agent
/// restores them, up to `target`.
async fn restore_into(
    cluster: &SimCluster,
    dir: &Path,
    target: ReplayTarget,
) -> anyhow::Result<Restored> {
    restore_with(cluster, dir, target, etcd_tool("etcdutl")?).await
}

async fn restore_with(
    cluster: &SimCluster,
    dir: &Path,
    target: ReplayTarget,
    restore_tool: std::path::PathBuf,
) -> anyhow::Result<Restored> {
    restore_by(restorer(cluster, restore_tool).await?, dir, target).await
}

/// What `restorer` restores into `dir`, as the seed's agent does.
async fn restore_by(
    restorer: Restorer,
    dir: &Path,
    target: ReplayTarget,
) -> anyhow::Result<Restored> {
    let launch = EtcdLaunch {
        name: "restored".into(),
        data_dir: dir.join("etcd"),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        client_port: 0,
        peer_port: free_port()?,
        metrics_port: 0,
        tls: None,
        peer_allowed_hostname: None,
        initial_cluster: None,
        upkeep_args: Vec::new(),
        extra_args: Vec::new(),
    };
    let candidates = restorer.candidates().await?;
    restorer.restore(&candidates, &launch, target).await
}

/// The seed's restorer, for the bucket of `cluster`.
async fn restorer(
    cluster: &SimCluster,
    restore_tool: std::path::PathBuf,
) -> anyhow::Result<Restorer> {
    let sdk = cluster.stand_in.sdk_config().await;
    Ok(Restorer {
        store: store(cluster, &sdk),
        etcdutl: restore_tool,
        etcd: etcd_tool("etcd")?,
        etcd_args: Vec::new(),
        token: "restored".into(),
        // These restores are about what the replay brings back, leases
        // included, as it was captured.
        lease_policy: LeasePolicy::Keep,
        // Restores from snapshots need no operator's instruction.
        instructions: std::sync::Arc::new(Instructions::new(None)),
    })
}

/// etcd serving a restored data directory on 127.0.0.1; killed when dropped.
struct Served {
    _etcd: Child,
    client: Client,
}

async fn serve(dir: &Path) -> anyhow::Result<Served> {
    let (client_port, peer_port) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client_port}");
    let etcd = tokio::process::Command::new(etcd_tool("etcd")?)
        .arg("--name=restored")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let client = wait_for(
        "the restored etcd to answer",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let mut client = Client::connect([url], None).await?;
                client.status().await?;
                Ok(client)
            }
        },
    )
    .await?;
    Ok(Served {
        _etcd: etcd,
        client,
    })
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Every key under `prefix` with its value, now or at `revision`.
async fn keys_at(
    client: &mut Client,
    prefix: &str,
    revision: Option<i64>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut options = GetOptions::new().with_prefix();
    if let Some(revision) = revision {
        options = options.with_revision(revision);
    }
    Ok(client
        .get(prefix, Some(options))
        .await?
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        })
        .collect())
}

/// Rounds of puts, overwrites and deletes under `prefix`; the revision after
/// each round.
async fn write_rounds(
    client: &mut Client,
    prefix: &str,
    rounds: usize,
) -> anyhow::Result<Vec<i64>> {
    Ok(timed_rounds(client, prefix, rounds)
        .await?
        .into_iter()
        .map(|(revision, _)| revision)
        .collect())
}

/// [`write_rounds`], with a wall-clock time (ms since the epoch) between
/// each round and the next.
async fn timed_rounds(
    client: &mut Client,
    prefix: &str,
    rounds: usize,
) -> anyhow::Result<Vec<(i64, i64)>> {
    let mut after_each = Vec::new();
    for round in 0..rounds {
        let mut revision = 0;
        for key in 0..5 {
            let put = client
                .put(format!("{prefix}{key}"), format!("round {round}"), None)
                .await?;
            revision = put.header().map_or(0, |h| h.revision());
        }
        if round % 2 == 1 {
            let deleted = client.delete(format!("{prefix}{round}"), None).await?;
            revision = deleted.header().map_or(revision, |h| h.revision());
        }
        // Apart enough that the rounds land in different segments.
        tokio::time::sleep(Duration::from_millis(600)).await;
        after_each.push((revision, unix_millis()));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    Ok(after_each)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_to_a_revision_in_the_middle_holds_exactly_what_etcd_served_at_it(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let capture = capture_for(&cluster, 12).await;
    let mut client = cluster.client().await?;
    // Let the capture take the cluster's first snapshot before the writes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rounds = write_rounds(&mut client, "pitr/", 6).await?;
    let middle = rounds[2];
    let expected = keys_at(&mut client, "pitr/", Some(middle)).await?;
    let outcome = capture.await??;
    assert!(outcome.segments >= 3, "{outcome:?}");

    let dir = tempfile::tempdir()?;
    let restored = restore_into(&cluster, dir.path(), ReplayTarget::Revision(middle)).await?;
    assert_eq!(restored.replayed.until, middle, "{restored:?}");
    assert!(restored.snapshot_revision <= middle, "{restored:?}");
    let mut served = serve(dir.path()).await?;
    assert_eq!(keys_at(&mut served.client, "pitr/", None).await?, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_between_two_writes_resolves_to_the_revision_of_the_first() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let capture = capture_for(&cluster, 10).await;
    let mut client = cluster.client().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_the_writes = unix_millis() - 500;
    let rounds = timed_rounds(&mut client, "at/", 4).await?;
    capture.await??;

    let restorer = restorer(&cluster, etcd_tool("etcdutl")?).await?;
    for (revision, time) in &rounds {
        assert_eq!(restorer.revision_at(*time).await?, *revision, "at {time}");
    }
    // Before any captured change: the snapshot taken by then (the capture's first).
    let manifests = restorer.store.manifests().await?;
    let first_snapshot = manifests.last().map(|m| m.revision).unwrap_or_default();
    assert_eq!(
        restorer.revision_at(before_the_writes).await?,
        first_snapshot
    );
    // Before every backup: nothing to restore.
    assert!(restorer.revision_at(0).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_tool_that_cannot_bump_revisions_is_refused_before_anything_is_restored(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let capture = capture_for(&cluster, 4).await;
    let mut client = cluster.client().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    write_rounds(&mut client, "old-tool/", 1).await?;
    capture.await??;

    // etcd 3.4's etcdctl restores snapshots but knows no --bump-revision.
    let dir = tempfile::tempdir()?;
    let old_tool = EtcdRelease::V3_4_23.restore_tool()?;
    let refused = restore_with(&cluster, dir.path(), ReplayTarget::Latest, old_tool).await;
    let error = refused.expect_err("a tool that cannot bump is refused");
    assert!(
        matches!(
            error.downcast_ref::<RevisionError>(),
            Some(RevisionError::ToolCannotBump { .. })
        ),
        "{error:#}"
    );
    assert!(
        !dir.path().join("etcd").exists(),
        "nothing was restored: {error:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clusters_segments_are_neither_replayed_nor_taken_as_the_captures_start(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let mut client = cluster.client().await?;
    client.put("lineage/kept", "ours", None).await?;
    client.put("lineage/overwritten", "ours", None).await?;
    let first = capture_for(&cluster, 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    write_rounds(&mut client, "lineage/ours/", 1).await?;
    let first = first.await??;

    // Another cluster's history in the same prefix (a cluster restored
    // without a bump, or a second stack given the same bucket), reaching far
    // past this cluster's revisions: it deletes one key, overwrites another.
    let sdk = cluster.stand_in.sdk_config().await;
    let store = store(&cluster, &sdk);
    let pointer = store
        .pointer()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no latest.json"))?;
    let foreign_cluster = ClusterId(pointer.cluster_id.0 ^ 0xf00d);
    let (from, until) = (pointer.revision + 1, pointer.revision + 10_000);
    let foreign = Segment {
        format: FORMAT,
        cluster_id: foreign_cluster,
        first: from,
        last: until,
        flushed_at: 0,
        revisions: vec![
            RevisionChange {
                revision: from,
                changes: vec![Change::Delete {
                    key: b"lineage/kept".to_vec(),
                }],
                seen_at_ms: 0,
            },
            RevisionChange {
                revision: until,
                changes: vec![Change::Put {
                    key: b"lineage/overwritten".to_vec(),
                    value: b"theirs".to_vec(),
                    lease: 0,
                }],
                seen_at_ms: 0,
            },
        ],
        leases: Vec::new(),
    };
    store.put_segment(&foreign).await?;

    // The capture starts after this cluster's own history, not after 10,000
    // foreign revisions, and stores what this cluster writes next.
    let next = capture_for(&cluster, 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    write_rounds(&mut client, "lineage/after/", 1).await?;
    let next = next.await??;
    assert_eq!(next.started_after, first.stored_until, "{next:?}");
    assert!(next.revisions > 0, "{next:?}");
    let expected = keys_at(&mut client, "lineage/", None).await?;

    let dir = tempfile::tempdir()?;
    let restored = restore_into(&cluster, dir.path(), ReplayTarget::Latest).await?;
    assert!(restored.replayed.left_out >= 1, "{restored:?}");
    let mut served = serve(dir.path()).await?;
    assert_eq!(
        keys_at(&mut served.client, "lineage/", None).await?,
        expected
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_segment_stops_the_replay_at_the_last_revision_it_can_prove() -> anyhow::Result<()>
{
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    // Three capture runs one after the other, each leaving one merged segment.
    let mut client = cluster.client().await?;
    for run in 0..3 {
        let capture = capture_for(&cluster, 5).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        write_rounds(&mut client, &format!("damaged/{run}/"), 2).await?;
        let outcome = capture.await??;
        assert!(outcome.merged.is_some(), "{outcome:?}");
    }
    let everything = keys_at(&mut client, "damaged/", None).await?;

    // One segment in the middle rots in the bucket; no other holds its revisions.
    let sdk = cluster.stand_in.sdk_config().await;
    let store = store(&cluster, &sdk);
    let segments = store.segments().await?;
    anyhow::ensure!(segments.len() >= 3, "too few segments: {segments:?}");
    let rotten = segments[segments.len() / 2].clone();
    let newest = segments.iter().map(|s| s.last).max().unwrap_or_default();
    store
        .s3()
        .put_object()
        .bucket(store.bucket())
        .key(&rotten.key)
        .body(ByteStream::from(b"not a segment".to_vec()))
        .send()
        .await?;

    let dir = tempfile::tempdir()?;
    let restored = restore_into(&cluster, dir.path(), ReplayTarget::Latest).await?;
    assert_eq!(restored.replayed.until, rotten.first - 1, "{restored:?}");
    assert_eq!(restored.replayed.lost, Some((rotten.first, newest)));
    // What is served is the cluster as it was at the last proven revision.
    let expected = keys_at(&mut client, "damaged/", Some(rotten.first - 1)).await?;
    let mut served = serve(dir.path()).await?;
    let restored_keys = keys_at(&mut served.client, "damaged/", None).await?;
    assert_eq!(restored_keys, expected);
    assert_ne!(
        restored_keys, everything,
        "nothing was lost: the rot was not read"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_segment_bound_the_capture_takes_a_snapshot_beside_the_watch() -> anyhow::Result<()>
{
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let capture = capture_with(
        &cluster,
        CaptureSettings {
            duration: Duration::from_secs(8),
            snapshot_after_revisions: 20,
            ..CaptureSettings::default()
        },
    )
    .await;
    let mut client = cluster.client().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut revision = 0;
    for i in 0..60 {
        revision = client
            .put(format!("bound/{i}"), "x", None)
            .await?
            .header()
            .map_or(0, |h| h.revision());
    }
    let outcome = capture.await??;
    // The first snapshot (a new cluster), then at least one past the bound.
    assert!(outcome.snapshots.len() >= 2, "{outcome:?}");
    let sdk = cluster.stand_in.sdk_config().await;
    let pointer = store(&cluster, &sdk)
        .pointer()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no latest.json"))?;
    assert!(
        revision - pointer.revision <= 20 + 60,
        "the newest snapshot at {} is far behind revision {revision}",
        pointer.revision
    );
    assert!(
        pointer.revision > 20,
        "no snapshot after the first: {pointer:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_run_leaves_one_segment_for_everything_it_stored() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let capture = capture_for(&cluster, 6).await;
    let mut client = cluster.client().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rounds = write_rounds(&mut client, "merged/", 3).await?;
    let outcome = capture.await??;
    assert!(outcome.segments >= 3, "{outcome:?}");

    let sdk = cluster.stand_in.sdk_config().await;
    let segments = store(&cluster, &sdk).segments().await?;
    assert_eq!(segments.len(), 1, "{segments:?}");
    assert_eq!(Some(&segments[0].key), outcome.merged.as_ref());
    assert_eq!(
        (segments[0].first, segments[0].last),
        (outcome.started_after + 1, outcome.stored_until)
    );
    assert!(segments[0].last >= rounds[2]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_catches_up_on_history_larger_than_grpcs_default_message() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    capture_for(&cluster, 3).await.await??;

    // While no capture runs, 12 MiB of history: a catching-up watch gets it
    // in one answer, three times gRPC's default limit.
    let mut client = cluster.client().await?;
    let value = "x".repeat(1024 * 1024);
    let mut revision = 0;
    for i in 0..12 {
        revision = client
            .put(format!("large/{i}"), value.as_str(), None)
            .await?
            .header()
            .map_or(0, |h| h.revision());
    }
    let outcome = capture_for(&cluster, 4).await.await??;
    assert!(outcome.stored_until >= revision, "{outcome:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_the_segments_the_oldest_kept_snapshot_holds() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let capture = capture_for(&cluster, 6).await;
    let mut client = cluster.client().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    write_rounds(&mut client, "kept/", 3).await?;
    capture.await??;
    let sdk = cluster.stand_in.sdk_config().await;
    let store = store(&cluster, &sdk);
    let before = store.segments().await?;
    anyhow::ensure!(!before.is_empty(), "the capture stored no segment");

    // A backup that keeps only itself: every segment it holds goes.
    let config = BackupConfig {
        retention: RetentionPolicy {
            keep_last: 1,
            hourly_hours: 0,
            daily_days: 0,
        },
        ..backup_config(&cluster)
    };
    let outcome = run_backup(&config, &sdk).await?;
    let kept_from = outcome.action.manifest().revision;
    let after = store.segments().await?;
    assert!(
        after.iter().all(|s| s.last > kept_from),
        "segments the kept snapshot at {kept_from} holds are left: {after:?}"
    );
    assert!(
        before
            .iter()
            .filter(|s| s.last <= kept_from)
            .all(|s| outcome.deleted.contains(&s.key)),
        "the run does not report the segments it deleted: {:?}",
        outcome.deleted
    );
    Ok(())
}

/// A node of one member whose etcd runs with `quota` bytes, and its restorer
/// running etcd with the same flags, as the seed's agent would.
async fn one_member_with_quota(quota: usize) -> anyhow::Result<(SimCluster, Vec<String>)> {
    let flags = vec![format!("--quota-backend-bytes={quota}")];
    let cluster = SimCluster::start_with_nodes(
        StandInOptions {
            group_size: 1,
            ..StandInOptions::default()
        },
        NodeOptions {
            etcd_args: flags.clone(),
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(1, SETTLE).await?;
    Ok((cluster, flags))
}

/// Waits until the capture has stored every revision up to `revision`.
async fn captured_through(store: &BackupStore, revision: i64) -> anyhow::Result<()> {
    wait_for("the capture to store the revision", SETTLE, || async {
        let held = store.segments().await?.iter().map(|s| s.last).max();
        anyhow::ensure!(held >= Some(revision), "captured up to {held:?}");
        Ok(())
    })
    .await
}

/// Found by `make soak`: a snapshot taken while the NOSPACE alarm was
/// raised holds the alarm and a database past the quota; the replay onto it
/// was refused, and the seed then served the snapshot without the changes
/// captured after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_out_of_space_gets_the_changes_captured_after_it_replayed(
) -> anyhow::Result<()> {
    const QUOTA: usize = 16 * MIB;
    let (cluster, flags) = one_member_with_quota(QUOTA).await?;
    let sdk = cluster.stand_in.sdk_config().await;
    let store = store(&cluster, &sdk);
    let capture = capture_for(&cluster, 45).await;
    wait_for("the capture's first snapshot", SETTLE, || async {
        anyhow::ensure!(!store.manifests().await?.is_empty(), "none yet");
        Ok(())
    })
    .await?;

    println!("the database runs out of space; a backup is taken while the alarm is raised");
    space::squeeze_until_nospace(&cluster, QUOTA).await?;
    let full = run_backup(&backup_config(&cluster), &sdk).await?;
    let full = full.action.manifest().clone();
    let mut admin = EtcdAdmin::connect(&cluster.client_urls(), &cluster.etcd_access()).await?;
    anyhow::ensure!(
        !admin.alarms().await?.is_empty(),
        "the backup was not taken under the alarm"
    );

    println!("space is reclaimed by hand (compact, defragment, disarm), then more is written");
    let mut client = cluster.client().await?;
    let deleted = client
        .delete(
            "squeeze/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await?;
    let revision = deleted.header().map_or(0, |h| h.revision());
    // Compacted only once captured: a gap would make the capture take a
    // snapshot of its own, newer than the full one.
    captured_through(&store, revision).await?;
    admin.compact(revision).await?;
    admin.defragment().await?;
    for alarm in admin.alarms().await? {
        admin.disarm(alarm).await?;
    }
    let mut last = 0;
    for n in 0..20 {
        last = client
            .put(format!("after/{n:02}"), "kept", None)
            .await?
            .header()
            .map_or(0, |h| h.revision());
    }
    captured_through(&store, last).await?;
    capture.abort();

    println!("every disk lost: the seed restores the full snapshot and replays what came after");
    let restorer = Restorer {
        etcd_args: flags,
        ..restorer(&cluster, etcd_tool("etcdutl")?).await?
    };
    let dir = tempfile::tempdir()?;
    let restored = restore_by(restorer, dir.path(), ReplayTarget::Latest).await?;
    assert_eq!(
        restored.manifest.key, full.key,
        "the restore starts from the snapshot taken under the alarm"
    );
    assert_eq!(restored.replayed.until, last, "{restored:?}");
    let mut served = serve(dir.path()).await?;
    assert_eq!(keys_at(&mut served.client, "after/", None).await?.len(), 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_replay_fails_leaves_no_data_directory_behind() -> anyhow::Result<()> {
    let cluster = SimCluster::start(1).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let sdk = cluster.stand_in.sdk_config().await;
    let store = store(&cluster, &sdk);
    let capture = capture_for(&cluster, 6).await;
    let mut client = cluster.client().await?;
    let rounds = write_rounds(&mut client, "replayed/", 2).await?;
    captured_through(&store, rounds[1]).await?;
    capture.await??;

    // The replay's etcd cannot start: the snapshot restores, the replay fails.
    let restorer = Restorer {
        etcd_args: vec!["--no-such-flag".to_owned()],
        ..restorer(&cluster, etcd_tool("etcdutl")?).await?
    };
    let dir = tempfile::tempdir()?;
    let failed = restore_by(restorer, dir.path(), ReplayTarget::Latest).await;
    assert!(failed.is_err(), "{failed:?}");
    let left: Vec<String> = std::fs::read_dir(dir.path())?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".log"))
        .collect();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "no data directory a node could start on, staged or not"
    );
    Ok(())
}
