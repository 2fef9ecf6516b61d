//! Benchmark 3: a restore into a data dir. Ours is the agent's restore path
//! (`bootstrap/src/restore.rs`): `BackupStore::download_verified` (download,
//! SHA-256 and size against the manifest, zstd decompression) then
//! `etcdutl snapshot restore` with the agent's flags, run here in-process
//! from the same library. The standard is `aws s3 cp` of the etcdctl
//! snapshot then `etcdutl snapshot restore` with the same flags (etcdutl
//! checks the snapshot's own hash in both). Same data, runs interleaved.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::dataset::{Dataset, STANDARD_SNAPSHOT_KEY};
use super::process::{run, Stage};
use super::report::{self, Report, Row, Target};
use super::stats::{median, ratio};

const RESTORE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

pub async fn run_restores(
    dataset: &Dataset,
    size: &str,
    runs: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let family = format!("3. restore, {size}");
    let manifest = dataset
        .store
        .pointer()
        .await
        .context("cannot read latest.json")?
        .context("no backup to restore: latest.json is missing")?;
    let (mut ours, mut standard) = (Vec::new(), Vec::new());
    for round in 1..=runs {
        let data_dir = dataset.work.join("restored");
        let snapshot = dataset.work.join("restore.db");

        let started = Instant::now();
        dataset
            .store
            .download_verified(&manifest, &snapshot)
            .await
            .with_context(|| format!("downloading {}", manifest.key))?;
        let download = started.elapsed().as_secs_f64();
        run(
            restore_command(dataset, &snapshot, &data_dir),
            dataset.log.clone(),
            RESTORE_TIMEOUT,
        )
        .await?;
        let our_seconds = started.elapsed().as_secs_f64();
        cleanup(&snapshot, &data_dir)?;

        let started = Instant::now();
        let snapshot_path = snapshot.display().to_string();
        run(
            dataset.aws(&[
                "s3",
                "cp",
                &dataset.s3_url(STANDARD_SNAPSHOT_KEY),
                &snapshot_path,
            ]),
            dataset.log.clone(),
            RESTORE_TIMEOUT,
        )
        .await?;
        let standard_download = started.elapsed().as_secs_f64();
        run(
            restore_command(dataset, &snapshot, &data_dir),
            dataset.log.clone(),
            RESTORE_TIMEOUT,
        )
        .await?;
        let standard_seconds = started.elapsed().as_secs_f64();
        cleanup(&snapshot, &data_dir)?;

        ours.push(our_seconds);
        standard.push(standard_seconds);
        report.detail(
            &family,
            format!(
                "run {round}: ours {our_seconds:.2} s (download+verify+decompress {download:.2} s of {:.1} MiB stored); standard {standard_seconds:.2} s (aws s3 cp {standard_download:.2} s)",
                manifest.stored_bytes as f64 / 1048576.0
            ),
        );
    }
    let (ours, standard) = (median(&ours), median(&standard));
    report.row(Row {
        family,
        figure: "download + verify + etcdutl restore vs aws s3 cp + etcdutl restore".into(),
        ours: report::secs(ours),
        standard: report::secs(standard),
        ratio: ratio(ours, standard),
        target: Some(Target::RatioAtMost(1.1)),
        checked: ratio(ours, standard),
        runs: runs.to_string(),
    });
    Ok(())
}

/// The agent's restore command line (bootstrap/src/restore.rs), for both.
fn restore_command(dataset: &Dataset, snapshot: &Path, data_dir: &Path) -> Stage {
    let peer = "http://127.0.0.1:2380";
    Stage::new(
        &dataset.tools.etcdutl,
        &[
            "snapshot",
            "restore",
            &snapshot.display().to_string(),
            &format!("--data-dir={}", data_dir.display()),
            "--name=bench-restore",
            &format!("--initial-cluster=bench-restore={peer}"),
            "--initial-cluster-token=bench-restore",
            &format!("--initial-advertise-peer-urls={peer}"),
        ],
    )
}

fn cleanup(snapshot: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(snapshot);
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("cannot remove {}", data_dir.display()))?;
    }
    Ok(())
}
