//! `make bench`: etcd-aws against the standard tools, in one run, on the
//! local stand-in. Each family measures ours and the standard tool on the
//! same data, interleaved, and reports medians and their ratio.
//!
//! # Layout
//! The families:
//! - [`backup`]: the backup function vs `etcdctl snapshot save` + `aws s3 cp`
//! - [`dump`]: the 2016 tool's JSON dump vs our snapshot
//! - [`restore`]: the agent's restore path vs `aws s3 cp` + `etcdutl`
//! - [`control_plane`]: removal on termination, bootstrap, total loss,
//!   formation vs raw etcd; the agent's memory
//! - [`lambda`]: cold start and package size of both functions
//! - [`maintenance`]: a writer's stall during defragmentation, and NOSPACE
//!   recovery, vs `etcdctl defrag --cluster` and etcd's runbook
//! - [`continuous`]: the continuous backup's loss window vs the standard
//!   tools' intervals, and the restore with an hour of segments vs the
//!   snapshot alone
//!
//! Beside them, [`cost`]: not a race but a bill. `make cost` (its own
//! binary) measures a stack's requests, run times and bytes on the stand-in
//! and prices each way of deploying it.
//!
//! What they share: [`environment`] (the machine and tools, stated in the
//! report), [`data`] and [`dataset`] (Kubernetes-like keys, loaded once),
//! [`process`] (timing and peak memory of a process); [`report`] prints the
//! table and writes `docs/benchmarks.md`, keeping the cost section.

pub mod backup;
pub mod continuous;
pub mod control_plane;
pub mod cost;
pub mod data;
pub mod dataset;
pub mod dump;
pub mod environment;
pub mod lambda;
pub mod maintenance;
pub mod process;
pub mod report;
pub mod restore;
pub mod stats;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use environment::{Contention, Tools};
use etcd_aws_tests::paths;
use report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Family {
    Backup,
    Dump,
    Restore,
    ControlPlane,
    Lambda,
    Maintenance,
    Continuous,
}

/// Benchmarks of etcd-aws against the standard tools (see docs/benchmarks.md).
#[derive(Debug, Clone, Parser)]
#[command(name = "bench")]
pub struct Options {
    /// A smoke run: 16 MiB, 2 runs, 3 terminations, 1 formation; overrides the sizes and counts.
    #[arg(long, env = "BENCH_QUICK")]
    pub quick: bool,
    /// Database sizes for backup, dump and restore, in MiB, smallest first.
    #[arg(
        long,
        env = "BENCH_SIZES_MIB",
        value_delimiter = ',',
        default_value = "100,1024"
    )]
    pub sizes_mib: Vec<u64>,
    /// Largest database the JSON dump runs on, in MiB: etcdctl's JSON output
    /// needs about ten times the database in memory (450 MiB for 45 MiB).
    #[arg(long, env = "BENCH_DUMP_MAX_MIB", default_value_t = 256)]
    pub dump_max_mib: u64,
    /// Runs of each side for the data benchmarks (the median is reported).
    #[arg(long, env = "BENCH_RUNS", default_value_t = 3)]
    pub runs: usize,
    /// Terminations for termination -> member removed (p50, p99).
    #[arg(long, env = "BENCH_TERMINATIONS", default_value_t = 20)]
    pub terminations: usize,
    /// Database size of the total-loss restore, in MiB.
    #[arg(long, env = "BENCH_TOTAL_LOSS_MIB", default_value_t = 100)]
    pub total_loss_mib: u64,
    /// Total losses to restore from.
    #[arg(long, env = "BENCH_TOTAL_LOSS_RUNS", default_value_t = 3)]
    pub total_loss_runs: usize,
    /// Cold formations of each kind (agents, raw etcd).
    #[arg(long, env = "BENCH_FORMATIONS", default_value_t = 5)]
    pub formations: usize,
    /// Cold starts of each function.
    #[arg(long, env = "BENCH_COLD_STARTS", default_value_t = 10)]
    pub cold_starts: usize,
    /// Which benchmark families to run.
    #[arg(
        long,
        env = "BENCH_ONLY",
        value_enum,
        value_delimiter = ',',
        default_value = "backup,dump,restore,control-plane,lambda,maintenance,continuous"
    )]
    pub only: Vec<Family>,
    /// Where the results document goes.
    #[arg(long, env = "BENCH_OUTPUT", default_value_os_t = paths::workspace_root().join("docs/benchmarks.md"))]
    pub output: PathBuf,
    /// Parent of the scratch dir for snapshots and dumps (default: the system temp dir).
    #[arg(long, env = "BENCH_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
}

impl Options {
    /// The options after `--quick`.
    pub fn effective(mut self) -> Options {
        if self.quick {
            self.sizes_mib = vec![16];
            self.runs = 2;
            self.terminations = 3;
            self.total_loss_mib = 16;
            self.total_loss_runs = 1;
            self.formations = 1;
            self.cold_starts = 3;
        }
        self.sizes_mib.sort_unstable();
        self.sizes_mib.dedup();
        self
    }

    fn runs(&self, family: Family) -> bool {
        self.only.contains(&family)
    }
}

/// Runs the chosen families, writes the document, and returns the report.
pub async fn run_all(options: &Options) -> anyhow::Result<Report> {
    let tools = Tools::find()?;
    let contention = Contention::start();
    let work = environment::work_dir(options.work_dir.as_deref())?;
    let mut report = Report::default();

    if options.runs(Family::Backup)
        || options.runs(Family::Dump)
        || options.runs(Family::Restore)
        || options.runs(Family::Continuous)
    {
        println!("== data benchmarks: backup, dump, restore");
        if let Err(error) = data_families(options, &tools, work.path(), &mut report).await {
            report.failure("data benchmarks", &error);
        }
    }
    if options.runs(Family::ControlPlane) {
        println!("== control plane");
        control_plane::run_all(options, &tools, work.path(), &mut report).await;
    }
    if options.runs(Family::Lambda) {
        println!("== lambda");
        if let Err(error) = lambda::run(options, work.path(), &mut report).await {
            report.failure("5. lambda", &error);
        }
    }
    if options.runs(Family::Maintenance) {
        println!("== maintenance");
        maintenance::run_all(options, &tools, work.path(), &mut report).await;
    }
    if options.runs(Family::Continuous) {
        println!("== continuous backup: loss window");
        let seconds = if options.quick { 10 } else { 30 };
        continuous::loss_windows(&[10, 200], seconds, &mut report).await;
    }

    let context = environment::describe(&tools, &contention).await;
    let context = format!(
        "{context}\n- options: sizes {:?} MiB (JSON dump up to {} MiB), {} runs per side, {} terminations, total loss at {} MiB x {}, {} formations, {} cold starts{}",
        options.sizes_mib,
        options.dump_max_mib,
        options.runs,
        options.terminations,
        options.total_loss_mib,
        options.total_loss_runs,
        options.formations,
        options.cold_starts,
        if options.quick { " (--quick smoke run)" } else { "" }
    );
    report::write_document(&options.output, &report, &context, METHOD)?;
    println!(
        "\n{}\n{context}\n\nwritten to {}",
        report.table(),
        options.output.display()
    );
    Ok(report)
}

async fn data_families(
    options: &Options,
    tools: &Tools,
    work: &std::path::Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dataset = dataset::Dataset::start(tools.clone(), work).await?;
    for &mib in &options.sizes_mib {
        let size = if mib >= 1024 && mib % 1024 == 0 {
            format!("{} GiB", mib / 1024)
        } else {
            format!("{mib} MiB")
        };
        println!("-- {size}: filling");
        let filled = dataset.grow_to(mib).await?;
        report.detail(
            &format!("data set {size}"),
            format!(
                "database {:.1} MiB (bbolt file), {} values of {} KiB, filled in {:.1} s",
                filled.db_bytes as f64 / 1048576.0,
                filled.keys,
                data::VALUE_BYTES / 1024,
                filled.seconds
            ),
        );
        println!("-- {size}: backup");
        let backups = match backup::run_backups(&dataset, &size, options.runs, report).await {
            Ok(backups) => backups,
            Err(error) => {
                report.failure(&format!("1. backup, {size}"), &error);
                continue;
            }
        };
        if options.runs(Family::Dump) && mib > options.dump_max_mib {
            report.detail(
                &format!("2. JSON dump, {size}"),
                format!("not run: above --dump-max-mib {} (etcdctl get -w json holds the whole answer and its JSON, about 10x the database, in memory; on this shared machine that risks the OOM killer for other work)", options.dump_max_mib),
            );
        } else if options.runs(Family::Dump) {
            println!("-- {size}: JSON dump");
            if let Err(error) =
                dump::run_dumps(&dataset, &size, options.runs, &backups, report).await
            {
                report.failure(&format!("2. JSON dump, {size}"), &error);
            }
        }
        if options.runs(Family::Restore) {
            println!("-- {size}: restore");
            if let Err(error) = restore::run_restores(&dataset, &size, options.runs, report).await {
                report.failure(&format!("3. restore, {size}"), &error);
            }
        }
        if options.runs(Family::Continuous) {
            println!("-- {size}: restore with an hour of segments");
            if let Err(error) =
                continuous::restore_with_segments(&dataset, &size, mib, options.runs, report).await
            {
                report.failure(&format!("7. continuous backup: restore, {size}"), &error);
            }
        }
    }
    Ok(())
}

/// The method section of the document (hand-written; the numbers are not).
const METHOD: &str = include_str!("method.md");
