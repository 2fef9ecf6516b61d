//! Benchmark 6: what a writer sees while the cluster's space is looked after,
//! on a three-member cluster of the agent, a writer putting every 20 ms.
//!
//! - Defragmentation of members whose files are mostly free pages: the
//!   maintenance run (one member at a time, followers first, the leader last
//!   after moving leadership away) against `etcdctl defrag --cluster` (every
//!   member in turn, the leader where it falls). The figure is the writer's
//!   longest wait for an acknowledgement while it runs.
//! - NOSPACE to writes accepted again, with a 16 MiB quota: the maintenance
//!   run on a 2-second schedule (the stack's is a minute: add up to that) against
//!   etcd's runbook (compact to the current revision, `etcdctl defrag
//!   --cluster`, `etcdctl alarm disarm`) started the moment a write is refused,
//!   which no person on call can beat.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_tests::functions::JobOnSchedule;
use etcd_aws_tests::sim_cluster::{wait_for, NodeOptions, SimCluster};
use etcd_aws_tests::space::{self, MIB};
use etcd_aws_tests::workload::{self, Writer, WriterOptions};
use tokio::time::Instant;

use super::control_plane;
use super::environment::Tools;
use super::process::{run, Stage};
use super::report::{self, Report, Row, Target};
use super::stats::{max, median, ratio};
use super::Options;

const SETTLE: Duration = Duration::from_secs(120);
const STEP_TIMEOUT: Duration = Duration::from_secs(180);
const NOSPACE_QUOTA: usize = 16 * MIB;
const SCHEDULE: Duration = Duration::from_secs(2);

pub async fn run_all(options: &Options, tools: &Tools, work: &Path, report: &mut Report) {
    let free_mib = if options.quick { 16 } else { 64 };
    if let Err(error) = defragmentation(options.runs, free_mib, tools, work, report).await {
        report.failure("6. maintenance: defragmentation", &error);
    }
    if let Err(error) = nospace(options.runs, tools, work, report).await {
        report.failure("6. maintenance: NOSPACE", &error);
    }
}

fn writer(cluster: &SimCluster, prefix: &str) -> Writer {
    Writer::start(
        cluster.endpoints(),
        WriterOptions {
            prefix: prefix.to_owned(),
            interval: Duration::from_millis(20),
            ..WriterOptions::default()
        },
    )
}

fn etcdctl(tools: &Tools, cluster: &SimCluster, args: &[&str]) -> Stage {
    let endpoints = format!("--endpoints={}", cluster.client_urls().join(","));
    let mut all = vec![endpoints.as_str(), "--command-timeout=2m"];
    all.extend(args);
    Stage::new(&tools.etcdctl, &all).env(&[("ETCDCTL_API".into(), "3".into())])
}

/// The writer's longest stall while `during` runs, and how long it ran.
async fn stall_during<F, Fut>(writer: &Writer, during: F) -> anyhow::Result<(f64, f64)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    writer.wait_for_more(5, SETTLE).await?;
    let started = Instant::now();
    during().await?;
    let finished = Instant::now();
    writer.wait_for_more(5, SETTLE).await?;
    let stall = workload::window(&writer.acks(), started, finished).max_stall;
    Ok((stall.as_secs_f64(), (finished - started).as_secs_f64()))
}

async fn defragmentation(
    runs: usize,
    free_mib: usize,
    tools: &Tools,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let family = format!("6. maintenance: defragmentation, {free_mib} MiB free per member");
    let (mut ours, mut standard) = (Vec::new(), Vec::new());
    for round in 1..=runs {
        let cluster = SimCluster::start_with(control_plane::plaintext(3)).await?;
        cluster.wait_healthy(3, SETTLE).await?;
        let writer = writer(&cluster, "bench/defrag");

        space::fragment(&cluster, free_mib, SETTLE).await?;
        let threshold = (free_mib / 2).to_string();
        let (our_stall, our_seconds) = stall_during(&writer, || async {
            let maintenance = JobOnSchedule::maintenance(
                &cluster.stand_in,
                SCHEDULE,
                &[
                    ("ETCD_MAINTENANCE_DEFRAG_FREE_MIB", threshold.as_str()),
                    ("ETCD_MAINTENANCE_DEFRAG_TIMEOUT", "2m"),
                ],
            )
            .await?;
            wait_for("a run that defragmented", STEP_TIMEOUT, || async {
                maintenance
                    .runs()
                    .into_iter()
                    .find_map(|run| {
                        run.outcome.ok().filter(|outcome| {
                            outcome["defragmented"]
                                .as_array()
                                .is_some_and(|done| done.len() == 3)
                        })
                    })
                    .context("not yet")
            })
            .await
            .with_context(|| maintenance.log())?;
            Ok(())
        })
        .await?;

        space::fragment(&cluster, free_mib, SETTLE).await?;
        let (standard_stall, standard_seconds) = stall_during(&writer, || async {
            run(
                etcdctl(tools, &cluster, &["defrag", "--cluster"]),
                work.join("etcdctl-defrag.log"),
                STEP_TIMEOUT,
            )
            .await?;
            Ok(())
        })
        .await?;

        // Acknowledgements first: one that arrives after the read would look lost.
        let acks = writer.acks();
        let present = workload::present_keys(&cluster.endpoints(), writer.prefix()).await?;
        let lost = workload::missing(&acks, &present).len();
        anyhow::ensure!(lost == 0, "{lost} acknowledged writes lost");
        ours.push(our_stall);
        standard.push(standard_stall);
        report.detail(
            &family,
            format!(
                "run {round}: maintenance run: longest stall {:.0} ms, {our_seconds:.1} s from start to all three defragmented (schedule {} s); etcdctl defrag --cluster: longest stall {:.0} ms over {standard_seconds:.1} s; 0 writes lost",
                our_stall * 1000.0,
                SCHEDULE.as_secs(),
                standard_stall * 1000.0
            ),
        );
    }
    let (worst, ours, standard) = (max(&ours), median(&ours), median(&standard));
    report.row(Row {
        family,
        figure: "writer's longest stall: maintenance run vs etcdctl defrag --cluster".into(),
        ours: report::millis(ours),
        standard: report::millis(standard),
        ratio: ratio(ours, standard),
        target: Some(Target::SecondsAtMost(1.0)),
        checked: worst,
        runs: runs.to_string(),
    });
    Ok(())
}

async fn nospace(
    runs: usize,
    tools: &Tools,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let family = "6. maintenance: NOSPACE, 16 MiB quota".to_string();
    let (mut ours, mut standard) = (Vec::new(), Vec::new());
    for round in 1..=runs {
        let cluster = SimCluster::start_with_nodes(
            control_plane::plaintext(3),
            NodeOptions {
                etcd_args: vec![format!("--quota-backend-bytes={NOSPACE_QUOTA}")],
                ..NodeOptions::default()
            },
        )
        .await?;
        cluster.wait_healthy(3, SETTLE).await?;

        let quota = NOSPACE_QUOTA.to_string();
        let maintenance = JobOnSchedule::maintenance(
            &cluster.stand_in,
            SCHEDULE,
            &[
                ("ETCD_AWS_QUOTA_BACKEND_BYTES", quota.as_str()),
                ("ETCD_MAINTENANCE_DEFRAG_TIMEOUT", "1m"),
            ],
        )
        .await?;
        let squeezed = space::squeeze_until_nospace(&cluster, NOSPACE_QUOTA).await?;
        let accepted = space::writable_again(&cluster, STEP_TIMEOUT)
            .await
            .with_context(|| maintenance.log())?;
        let our_seconds = (accepted - squeezed.full_at).as_secs_f64();
        drop(maintenance);

        let squeezed = space::squeeze_until_nospace(&cluster, NOSPACE_QUOTA).await?;
        let log = work.join("etcdctl-nospace.log");
        let revision = space::client(&cluster)
            .await?
            .status()
            .await?
            .header()
            .map_or(0, |h| h.revision())
            .to_string();
        run(
            etcdctl(tools, &cluster, &["compact", &revision, "--physical"]),
            log.clone(),
            STEP_TIMEOUT,
        )
        .await?;
        run(
            etcdctl(tools, &cluster, &["defrag", "--cluster"]),
            log.clone(),
            STEP_TIMEOUT,
        )
        .await?;
        run(
            etcdctl(tools, &cluster, &["alarm", "disarm"]),
            log,
            STEP_TIMEOUT,
        )
        .await?;
        let accepted = space::writable_again(&cluster, STEP_TIMEOUT).await?;
        let standard_seconds = (accepted - squeezed.full_at).as_secs_f64();

        ours.push(our_seconds);
        standard.push(standard_seconds);
        report.detail(
            &family,
            format!(
                "run {round}: maintenance run (every {} s) {our_seconds:.2} s; runbook started at once {standard_seconds:.2} s",
                SCHEDULE.as_secs()
            ),
        );
    }
    let (ours, standard) = (median(&ours), median(&standard));
    report.row(Row {
        family,
        figure: "NOSPACE -> writes accepted: maintenance run vs the runbook at once".into(),
        ours: report::secs(ours),
        standard: report::secs(standard),
        ratio: ratio(ours, standard),
        target: None,
        checked: None,
        runs: runs.to_string(),
    });
    Ok(())
}
