//! Benchmark 7: the continuous backup.
//!
//! - Loss window: how long an acknowledged write waits until the bucket
//!   holds it, for every write of a writer at 10 and 200 writes/s, p50 and
//!   p99. A capture run (the backup function's `capture` job, in-process)
//!   watches a one-member cluster; the benchmark lists the bucket every
//!   50 ms and notes when each segment first appears. This is the window of
//!   a loss the capture does not see coming (a network that goes silent):
//!   when members die the capture flushes at once, and loses less. The
//!   standard tools snapshot on a schedule: etcd-manager every 15 minutes,
//!   gardener's etcd-backup-restore takes deltas every 20 s; a write waits
//!   up to one interval, evenly spread, so their p50 and p99 are half and 99%
//!   of the interval.
//! - Restore: the agent's restore of a snapshot plus one hour of segments
//!   at 100 writes/s (60 segments of 6,000 revisions: what the capture
//!   leaves at that rate once each run has merged its one-second segments),
//!   against the same restore of the snapshot alone. The segments are
//!   written by the benchmark: an hour of writes in real time would take an
//!   hour.
//! - Capture cost in GB-s per hour, from the stack's settings.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use etcd_aws::instructions::Instructions;
use etcd_aws::restore::Restorer;
use etcd_aws_backup::capture::{run_capture, CaptureSettings};
use etcd_aws_backup::BackupConfig;
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_core::backup::replay::ReplayTarget;
use etcd_aws_core::backup::segment::{Change, RevisionChange, Segment, FORMAT};
use etcd_aws_core::etcd::ids::ClusterId;
use etcd_aws_core::etcd::launch::EtcdLaunch;
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_tests::sim_cluster::SimCluster;
use etcd_aws_tests::workload::{Writer, WriterOptions};
use tokio::time::Instant;

use super::control_plane;
use super::dataset::Dataset;
use super::report::{self, Report, Row, Target};
use super::stats::{median, percentile, ratio};

const SETTLE: Duration = Duration::from_secs(120);
/// How often the benchmark lists the bucket for new segments.
const LIST_EVERY: Duration = Duration::from_millis(50);
/// The standard tools' intervals.
const ETCD_MANAGER_INTERVAL: f64 = 15.0 * 60.0;
const GARDENER_DELTA_INTERVAL: f64 = 20.0;
/// The stack's capture function: 70 s a minute at 256 MB.
const CAPTURE_SECONDS_PER_MINUTE: f64 = 70.0;
const CAPTURE_MEMORY_GB: f64 = 0.25;

pub async fn loss_windows(rates: &[u32], seconds: u64, report: &mut Report) {
    for &rate in rates {
        if let Err(error) = loss_window(rate, seconds, report).await {
            report.failure(
                &format!("7. continuous backup: loss window at {rate} writes/s"),
                &error,
            );
        }
    }
    let gb_seconds = CAPTURE_SECONDS_PER_MINUTE * 60.0 * CAPTURE_MEMORY_GB;
    report.row(Row {
        family: "7. continuous backup".into(),
        figure: "capture cost per hour (computed: 70 s a minute at 256 MB)".into(),
        ours: format!("{gb_seconds:.0} GB-s"),
        standard: "-".into(),
        ratio: None,
        target: None,
        checked: None,
        runs: "-".into(),
    });
}

async fn loss_window(rate: u32, seconds: u64, report: &mut Report) -> anyhow::Result<()> {
    let family = format!("7. continuous backup: loss window at {rate} writes/s");
    let cluster = SimCluster::start_with(control_plane::plaintext(1)).await?;
    cluster.wait_healthy(1, SETTLE).await?;
    let sdk = cluster.stand_in.sdk_config().await;
    let store = BackupStore::new(&sdk, cluster.stand_in.bucket(), "backups/");
    let config = BackupConfig::new(
        cluster.stand_in.group_name(),
        cluster.stand_in.bucket(),
        etcd_aws_io::tls::client_source::ClientTlsSource::Plaintext,
    );
    let settings = CaptureSettings {
        duration: Duration::from_secs(seconds + 10),
        ..CaptureSettings::default()
    };
    let capture = {
        let (config, sdk) = (config.clone(), sdk.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + settings.duration + Duration::from_secs(60);
            run_capture(&config, &settings, &sdk, deadline).await
        })
    };
    // The capture's first snapshot, before the writes.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let seen = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
    let lister = {
        let (store, seen) = (store.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(segments) = store.segments().await {
                    let now = Instant::now();
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    for segment in segments {
                        seen.entry(segment.key.clone()).or_insert((
                            segment.first,
                            segment.last,
                            now,
                        ));
                    }
                }
                tokio::time::sleep(LIST_EVERY).await;
            }
        })
    };
    let writer = Writer::start(
        cluster.endpoints(),
        WriterOptions {
            prefix: format!("bench/loss-{rate}"),
            interval: Duration::from_micros(1_000_000 / u64::from(rate.max(1))),
            max_duration: Duration::from_secs(seconds + 30),
            ..WriterOptions::default()
        },
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let acks = writer.acks();
    drop(writer);
    tokio::time::sleep(Duration::from_secs(3)).await;
    lister.abort();
    let outcome = capture.await.context("the capture task")??;
    let seen: Vec<(i64, i64, Instant)> = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .copied()
        .collect();

    let mut windows = Vec::new();
    let mut unstored = 0;
    for ack in &acks {
        let stored = seen
            .iter()
            .filter(|(first, last, _)| *first <= ack.revision && ack.revision <= *last)
            .map(|(_, _, at)| *at)
            .min();
        match stored {
            Some(at) => windows.push(at.saturating_duration_since(ack.at).as_secs_f64()),
            None => unstored += 1,
        }
    }
    let achieved = acks.len() as f64 / seconds as f64;
    report.detail(
        &family,
        format!(
            "{} writes in {seconds} s ({achieved:.0}/s achieved), {} segments, {unstored} writes never seen stored; capture's own longest wait {:.2} s",
            acks.len(),
            outcome.segments,
            outcome.loss_window.as_secs_f64()
        ),
    );
    anyhow::ensure!(
        unstored == 0,
        "{unstored} acknowledged writes were never stored"
    );
    let (p50, p99) = (percentile(&windows, 50.0), percentile(&windows, 99.0));
    let gardener_p99 = GARDENER_DELTA_INTERVAL * 0.99;
    report.row(Row {
        family: family.clone(),
        figure: "write acknowledged -> in the bucket, p50 (gardener 20 s deltas: 10 s; etcd-manager 15 min: 450 s)".into(),
        ours: report::secs(p50),
        standard: report::secs(Some(GARDENER_DELTA_INTERVAL / 2.0)),
        ratio: ratio(p50, Some(GARDENER_DELTA_INTERVAL / 2.0)),
        target: None,
        checked: p50,
        runs: format!("{} writes", windows.len()),
    });
    report.row(Row {
        family,
        figure: format!("write acknowledged -> in the bucket, p99 (gardener: {gardener_p99:.1} s; etcd-manager: {:.0} s)", ETCD_MANAGER_INTERVAL * 0.99),
        ours: report::secs(p99),
        standard: report::secs(Some(gardener_p99)),
        ratio: ratio(p99, Some(gardener_p99)),
        target: Some(Target::SecondsAtMost(5.0)),
        checked: p99,
        runs: format!("{} writes", windows.len()),
    });
    Ok(())
}

/// Revisions per synthesized segment and segments per hour: 100 writes/s,
/// one merged segment per capture run (a minute).
const REVISIONS_PER_SEGMENT: i64 = 6_000;
const SEGMENTS_PER_HOUR: i64 = 60;
/// Distinct keys the synthesized writes cycle through.
const SEGMENT_KEYS: i64 = 10_000;

/// The restore of the dataset's newest snapshot with an hour of segments
/// after it, against the same restore of the snapshot alone.
pub async fn restore_with_segments(
    dataset: &Dataset,
    size: &str,
    dataset_mib: u64,
    runs: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let family = format!("7. continuous backup: restore, {size} + 1 h of segments");
    let manifest = dataset
        .store
        .pointer()
        .await?
        .context("no backup to restore: latest.json is missing")?;
    let snapshot_revision = snapshot_revision(dataset, &manifest).await?;
    let started = Instant::now();
    write_segments(&dataset.store, manifest.cluster_id, snapshot_revision).await?;
    report.detail(
        &family,
        format!(
            "{SEGMENTS_PER_HOUR} segments of {REVISIONS_PER_SEGMENT} revisions written to the bucket in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
    );
    let restorer = Restorer {
        store: dataset.store.clone(),
        etcdutl: dataset.tools.etcdutl.clone(),
        etcd: dataset.tools.etcd.clone(),
        etcd_args: Vec::new(),
        token: "bench".into(),
        lease_policy: LeasePolicy::default(),
        // No start-empty permit matters to a restore from a snapshot.
        instructions: std::sync::Arc::new(Instructions::new(None)),
    };
    let candidates = restorer.candidates().await?;
    let (mut with, mut alone) = (Vec::new(), Vec::new());
    for round in 1..=runs {
        for (target, times) in [
            (ReplayTarget::Latest, &mut with),
            (ReplayTarget::Revision(snapshot_revision), &mut alone),
        ] {
            let launch = launch(&dataset.work.join("restored-continuous"))?;
            let started = Instant::now();
            let restored = restorer.restore(&candidates, &launch, target).await?;
            times.push(started.elapsed().as_secs_f64());
            println!(
                "   round {round}: {:?} restored until {} ({} revisions replayed) in {:.1} s",
                target,
                restored.replayed.until,
                restored.replayed.revisions,
                started.elapsed().as_secs_f64()
            );
            std::fs::remove_dir_all(&launch.data_dir).ok();
        }
    }
    let (with, alone) = (median(&with), median(&alone));
    let ratio = ratio(with, alone);
    report.row(Row {
        family,
        figure: "restore with 360,000 replayed revisions vs the snapshot alone".into(),
        ours: report::secs(with),
        standard: report::secs(alone),
        ratio,
        // The goal is set for a gigabyte; smaller snapshots restore
        // in less than the replay's fixed cost.
        target: (dataset_mib >= 1024).then_some(Target::RatioAtMost(1.5)),
        checked: ratio,
        runs: runs.to_string(),
    });
    for segment in dataset.store.segments().await? {
        dataset.store.delete_segment(&segment).await?;
    }
    Ok(())
}

/// The revision the snapshot file holds, as the restore reads it.
async fn snapshot_revision(
    dataset: &Dataset,
    manifest: &etcd_aws_core::backup::manifest::BackupManifest,
) -> anyhow::Result<i64> {
    let file = dataset.work.join("continuous-status.db");
    dataset.store.download_verified(manifest, &file).await?;
    let output = tokio::process::Command::new(&dataset.tools.etcdutl)
        .arg("snapshot")
        .arg("status")
        .arg(&file)
        .arg("--write-out=json")
        .output()
        .await
        .context("cannot run etcdutl snapshot status")?;
    std::fs::remove_file(&file).ok();
    anyhow::ensure!(
        output.status.success(),
        "etcdutl snapshot status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    status["revision"]
        .as_i64()
        .context("etcdutl snapshot status printed no revision")
}

async fn write_segments(
    store: &BackupStore,
    cluster_id: ClusterId,
    after: i64,
) -> anyhow::Result<()> {
    let mut uploads = tokio::task::JoinSet::new();
    for index in 0..SEGMENTS_PER_HOUR {
        let first = after + 1 + index * REVISIONS_PER_SEGMENT;
        let segment = Segment {
            format: FORMAT,
            cluster_id,
            first,
            last: first + REVISIONS_PER_SEGMENT - 1,
            flushed_at: 0,
            revisions: (first..first + REVISIONS_PER_SEGMENT)
                .map(|revision| RevisionChange {
                    revision,
                    changes: vec![Change::Put {
                        key: format!("/bench/segments/{}", revision % SEGMENT_KEYS).into_bytes(),
                        value: format!("{revision:0100}").into_bytes(),
                        lease: 0,
                    }],
                    seen_at_ms: 0,
                })
                .collect(),
            leases: Vec::new(),
        };
        let store = store.clone();
        uploads.spawn(async move { store.put_segment(&segment).await });
        while uploads.len() >= 16 {
            if let Some(done) = uploads.join_next().await {
                done??;
            }
        }
    }
    while let Some(done) = uploads.join_next().await {
        done??;
    }
    Ok(())
}

fn launch(data_dir: &Path) -> anyhow::Result<EtcdLaunch> {
    let peer_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(EtcdLaunch {
        name: "bench".into(),
        data_dir: data_dir.to_owned(),
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        client_port: 0,
        peer_port,
        metrics_port: 0,
        tls: None,
        peer_allowed_hostname: None,
        initial_cluster: None,
        upkeep_args: Vec::new(),
        extra_args: Vec::new(),
    })
}
