//! Benchmark 1: a backup to S3. Ours is the backup function's release
//! binary run as Lambda runs it (its own process, through the Runtime API
//! emulator, production settings: zstd level 1, 8 MiB parts, 2 in flight),
//! invoked with a scheduled event; the standard is `etcdctl snapshot save`
//! then `aws s3 cp` of the file. Same member, same data, runs interleaved.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use super::dataset::{Dataset, STANDARD_SNAPSHOT_KEY};
use super::process::{self, run, vm_hwm_kib};
use super::report::{self, Report, Row, Target};
use super::stats::{max, median, ratio};
use etcd_aws_tests::functions::scheduled_event;
use etcd_aws_tests::lambda::{FunctionSpec, LambdaFunction};
use etcd_aws_tests::stand_in::StandIn;

/// Bound on one backup either way (the function's own default is 9 min).
const BACKUP_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What the dump and restore benchmarks reuse.
#[derive(Debug, Clone, Default)]
pub struct BackupResults {
    pub ours_seconds: Vec<f64>,
    pub ours_peak_mib: Vec<f64>,
    /// Bytes the function stored (zstd) in its last run.
    pub ours_stored_bytes: u64,
    pub standard_seconds: Vec<f64>,
    /// The snapshot file `etcdctl snapshot save` wrote.
    pub snapshot_bytes: u64,
}

pub async fn run_backups(
    dataset: &Dataset,
    size: &str,
    runs: usize,
    report: &mut Report,
) -> anyhow::Result<BackupResults> {
    let family = format!("1. backup, {size}");
    let mut results = BackupResults::default();
    let snapshot = dataset.work.join("etcdctl-snapshot.db");
    for round in 1..=runs {
        dataset.bump_revision().await?;
        let (seconds, peak_kib, stored) = backup_function_run(dataset).await?;
        results.ours_seconds.push(seconds);
        results.ours_peak_mib.push(process::mib(peak_kib));
        results.ours_stored_bytes = stored;

        let snapshot_path = snapshot.display().to_string();
        let save = run(
            dataset.etcdctl(&["snapshot", "save", &snapshot_path]),
            dataset.log.clone(),
            BACKUP_TIMEOUT,
        )
        .await?;
        results.snapshot_bytes = std::fs::metadata(&snapshot).map_or(0, |m| m.len());
        let upload = run(
            dataset.aws(&[
                "s3",
                "cp",
                &snapshot_path,
                &dataset.s3_url(STANDARD_SNAPSHOT_KEY),
            ]),
            dataset.log.clone(),
            BACKUP_TIMEOUT,
        )
        .await?;
        let _ = std::fs::remove_file(&snapshot);
        results
            .standard_seconds
            .push(save.seconds() + upload.seconds());
        report.detail(
            &family,
            format!(
                "run {round}: function {seconds:.2} s (peak RSS {:.1} MiB, stored {:.1} MiB); etcdctl snapshot save {:.2} s (peak RSS {:.1} MiB, file {:.1} MiB) + aws s3 cp {:.2} s (peak RSS {:.1} MiB)",
                process::mib(peak_kib),
                stored as f64 / 1048576.0,
                save.seconds(),
                process::mib(save.max_rss_kib[0]),
                results.snapshot_bytes as f64 / 1048576.0,
                upload.seconds(),
                process::mib(upload.max_rss_kib[0]),
            ),
        );
    }
    let (ours, standard) = (
        median(&results.ours_seconds),
        median(&results.standard_seconds),
    );
    let runs_text = runs.to_string();
    report.row(Row {
        family: family.clone(),
        figure: "snapshot to S3: function vs etcdctl snapshot save + aws s3 cp".into(),
        ours: report::secs(ours),
        standard: report::secs(standard),
        ratio: ratio(ours, standard),
        target: Some(Target::RatioAtMost(1.0)),
        checked: ratio(ours, standard),
        runs: runs_text.clone(),
    });
    let peak = max(&results.ours_peak_mib);
    report.row(Row {
        family,
        figure: "backup function peak RSS (VmHWM of its process, largest run)".into(),
        ours: report::mib(peak),
        standard: "-".into(),
        ratio: None,
        target: Some(Target::MibAtMost(64.0)),
        checked: peak,
        runs: runs_text,
    });
    Ok(results)
}

/// One invocation of a freshly started function process: (seconds of the
/// invocation, the process's peak RSS in KiB, stored bytes). The process
/// is new for each run, so its high-water mark belongs to this backup alone.
async fn backup_function_run(dataset: &Dataset) -> anyhow::Result<(f64, u64, u64)> {
    let stand_in = &dataset.cluster.stand_in;
    let function = start_backup_function(
        stand_in,
        BACKUP_TIMEOUT,
        dataset.work.join("backup-function.log"),
    )
    .await?;
    // Init is not part of the backup: Lambda keeps a warm function, and the
    // standard tools' start-up is a few milliseconds.
    wait_initialised(&function).await?;
    let started = tokio::time::Instant::now();
    let answer = function
        .invoke(&scheduled_event(stand_in.region()))
        .await
        .with_context(|| {
            format!(
                "the backup function failed; its log ends:\n{}",
                tail(&function.log(), 15)
            )
        })?;
    let seconds = started.elapsed().as_secs_f64();
    let pid = function
        .pid()
        .context("the backup function's process is gone")?;
    let peak = vm_hwm_kib(pid).context("cannot read the backup function's VmHWM")?;
    if answer.get("uploaded").and_then(Value::as_bool) != Some(true) {
        bail!("the backup function uploaded nothing: {answer}");
    }
    let stored = answer
        .get("stored_bytes")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok((seconds, peak, stored))
}

/// Waits (at most 15 s) for the function's first poll of the Runtime API.
pub async fn wait_initialised(function: &LambdaFunction) -> anyhow::Result<Duration> {
    for _ in 0..1500 {
        if let Some(init) = function.init_duration() {
            return Ok(init);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!(
        "the function did not poll the Runtime API within 15 s; init error {:?}; log:\n{}",
        function.runtime_api().init_error(),
        tail(&function.log(), 15)
    )
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The backup function's release binary behind the Runtime API emulator,
/// configured for `stand_in`'s group and bucket with production defaults.
pub async fn start_backup_function(
    stand_in: &StandIn,
    timeout: Duration,
    log_file: PathBuf,
) -> anyhow::Result<LambdaFunction> {
    let mut env = stand_in.env();
    env.extend(stand_in.functions_tls_env());
    env.push((
        "ETCD_AWS_GROUP_NAME".into(),
        stand_in.group_name().to_owned(),
    ));
    env.push(("ETCD_BACKUP_BUCKET".into(), stand_in.bucket().to_owned()));
    LambdaFunction::start(FunctionSpec {
        binary: "etcd-aws-backup".to_owned(),
        function_name: "etcd-backup".to_owned(),
        timeout,
        env,
        log_file,
    })
    .await
}
