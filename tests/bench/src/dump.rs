//! Benchmark 2: the 2016 tool's approach at scale. It backed up by reading
//! every key and writing JSON; the v3 equivalent is
//! `etcdctl get "" --prefix -w json | gzip`, then an upload. Compared with
//! our snapshot (the backup benchmark's function runs on the same data in
//! the same run): time to a backup in S3, its size, and peak memory.

use std::time::Duration;

use super::backup::BackupResults;
use super::dataset::Dataset;
use super::process::{self, run, run_pipeline, Stage};
use super::report::{self, Report, Row};
use super::stats::{max, median, ratio};

const DUMP_TIMEOUT: Duration = Duration::from_secs(20 * 60);

pub async fn run_dumps(
    dataset: &Dataset,
    size: &str,
    runs: usize,
    ours: &BackupResults,
    report: &mut Report,
) -> anyhow::Result<()> {
    let family = format!("2. JSON dump, {size}");
    let dump = dataset.work.join("dump.json.gz");
    let dump_path = dump.display().to_string();
    let gzip = Stage::new(std::path::Path::new("gzip"), &["-c"]);
    let (mut seconds, mut etcdctl_peaks) = (Vec::new(), Vec::new());
    let mut dump_bytes = 0;
    for round in 1..=runs {
        let dumped = run_pipeline(
            vec![
                dataset.etcdctl(&["get", "", "--prefix", "-w", "json"]),
                gzip.clone(),
            ],
            Some(dump.clone()),
            dataset.log.clone(),
            DUMP_TIMEOUT,
        )
        .await?;
        dump_bytes = std::fs::metadata(&dump).map_or(0, |m| m.len());
        let upload = run(
            dataset.aws(&[
                "s3",
                "cp",
                &dump_path,
                &dataset.s3_url("standard/dump.json.gz"),
            ]),
            dataset.log.clone(),
            DUMP_TIMEOUT,
        )
        .await?;
        let _ = std::fs::remove_file(&dump);
        seconds.push(dumped.seconds() + upload.seconds());
        etcdctl_peaks.push(process::mib(dumped.max_rss_kib[0]));
        report.detail(
            &family,
            format!(
                "run {round}: etcdctl get -w json | gzip {:.2} s (etcdctl peak RSS {:.1} MiB, gzip {:.1} MiB, dump {:.1} MiB) + aws s3 cp {:.2} s",
                dumped.seconds(),
                process::mib(dumped.max_rss_kib[0]),
                process::mib(dumped.max_rss_kib[1]),
                dump_bytes as f64 / 1048576.0,
                upload.seconds()
            ),
        );
    }
    let (our_time, dump_time) = (median(&ours.ours_seconds), median(&seconds));
    let runs_text = format!("{} / {runs}", ours.ours_seconds.len());
    report.row(Row {
        family: family.clone(),
        figure: "backup in S3: our snapshot vs get -w json | gzip + aws s3 cp".into(),
        ours: report::secs(our_time),
        standard: report::secs(dump_time),
        ratio: ratio(our_time, dump_time),
        target: None,
        checked: None,
        runs: runs_text.clone(),
    });
    let (ours_mib, dump_mib) = (
        ours.ours_stored_bytes as f64 / 1048576.0,
        dump_bytes as f64 / 1048576.0,
    );
    report.row(Row {
        family: family.clone(),
        figure: "stored size: snapshot (zstd) vs JSON dump (gzip)".into(),
        ours: report::mib(Some(ours_mib)),
        standard: report::mib(Some(dump_mib)),
        ratio: ratio(Some(ours_mib), Some(dump_mib)),
        target: None,
        checked: None,
        runs: "last run".into(),
    });
    let (our_peak, dump_peak) = (max(&ours.ours_peak_mib), max(&etcdctl_peaks));
    report.row(Row {
        family,
        figure: "peak RSS: backup function vs etcdctl get -w json".into(),
        ours: report::mib(our_peak),
        standard: report::mib(dump_peak),
        ratio: ratio(our_peak, dump_peak),
        target: None,
        checked: None,
        runs: runs_text,
    });
    Ok(())
}
