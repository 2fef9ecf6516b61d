//! The measurement behind the bill: a three-node cluster on the stand-in with
//! the stack's schedules (a capture run and a maintenance run every minute),
//! idle and then under a writer, counting what the nodes and the functions ask
//! of AWS, what they log and what the members send each other; then the
//! backup and reconcile runs on their own, and the capture's peak memory
//! under a heavier writer.
//!
//! Everything that makes a request runs as the stack runs it, not with the
//! harness's quicker timings: the agents read the restore order at their
//! default interval and look their group up, and the functions run with
//! their binary's defaults, the template's settings and its timeouts.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::CommandFactory;
use etcd_aws_core::contract::jobs::Job;
use etcd_aws_template::names::logical::{CAPTURE_FUNCTION, MAINTENANCE_FUNCTION};
use etcd_aws_tests::etcd_metrics;
use etcd_aws_tests::functions::{
    scheduled_event, BackupOnDemand, JobOnSchedule, LifecycleOnQueue, Scheduled,
};
use etcd_aws_tests::sim_cluster::{NodeOptions, SimCluster};
use etcd_aws_tests::stand_in::{Caller, RecordedCall, StandInOptions};
use etcd_aws_tests::workload::{Writer, WriterOptions};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::inventory::Inventory;
use super::observed::{distinct_metrics, Observed, S3Class, Stretch};
use crate::process::{cpu_seconds, mib, vm_hwm_kib};

/// How long each stretch is measured, and the writers' rates.
#[derive(Debug, Clone)]
pub struct Settings {
    pub stretch: Duration,
    pub busy_writes_per_second: u32,
    pub peak_writes_per_second: u32,
}

const PEER_SENT_BYTES: &str = "etcd_network_peer_sent_bytes_total";
/// The agent's flags whose harness values would change what it asks of
/// AWS, at their defaults (the template's user-data sets none of them).
fn agent_args_as_deployed() -> Vec<String> {
    let agent = etcd_aws::cli::Cli::command();
    defaults_of(&agent, &["restore_poll_interval"])
        .into_iter()
        .flat_map(|(flag, value)| [format!("--{flag}"), value])
        .collect()
}

/// (long flag, default) of `command`'s arguments named `ids`.
fn defaults_of(command: &clap::Command, ids: &[&str]) -> Vec<(String, String)> {
    command
        .get_arguments()
        .filter(|argument| ids.contains(&argument.get_id().as_str()))
        .filter_map(|argument| {
            let default = argument.get_default_values().first()?;
            Some((
                argument.get_long()?.to_owned(),
                default.to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

/// The backup code's `job` as the template's `function` runs it: every
/// setting at the binary's default (the harness scales some down), then
/// the template's plain settings, with the template's timeout.
async fn job_as_deployed(
    cluster: &SimCluster,
    stack: &Inventory,
    function: &str,
    job: Job,
) -> anyhow::Result<JobOnSchedule> {
    let deployed = stack
        .function(function)
        .with_context(|| format!("the template has no {function}"))?;
    let command = etcd_aws_backup::config::EnvConfig::command();
    let mut env: Vec<(String, String)> = command
        .get_arguments()
        .filter_map(|argument| {
            let name = argument.get_env()?.to_string_lossy().into_owned();
            let default = argument.get_default_values().first()?;
            Some((name, default.to_string_lossy().into_owned()))
        })
        .collect();
    env.extend(deployed.environment.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    JobOnSchedule::as_deployed(
        &cluster.stand_in,
        EVERY_MINUTE,
        &env,
        job,
        Duration::from_secs(deployed.timeout_seconds),
    )
    .await
}

/// What one writer sustains here; more are started for a higher rate.
const WRITES_PER_WRITER: u32 = 50;
/// A writer pauses between an acknowledgement and its next write, so it
/// falls short of its pace by its writes' latency: aiming this much higher
/// lands near the rate asked for. The rate reached is what the report states.
const PACE_ABOVE_RATE: f64 = 1.2;
/// The stack's capture and maintenance schedules: every minute.
const EVERY_MINUTE: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(120);
/// Runs of the backup and of a reconcile whose lengths are averaged.
const SINGLE_RUNS: usize = 3;

/// Measures the stack `stack` describes (its functions' settings).
pub async fn observe(settings: &Settings, stack: &Inventory) -> anyhow::Result<Observed> {
    let cluster = SimCluster::start_with_nodes(
        StandInOptions {
            group_size: 3,
            ..StandInOptions::default()
        },
        NodeOptions {
            discover_group: true,
            agent_args: agent_args_as_deployed(),
            ..NodeOptions::default()
        },
    )
    .await?;
    cluster.wait_healthy(3, SETTLE).await?;
    // A backup first, as the stack has one within a backup interval: the
    // maintenance runs would otherwise start by making it.
    cluster.backup_now().await?;
    let capture = job_as_deployed(&cluster, stack, CAPTURE_FUNCTION, Job::Capture).await?;
    let maintenance =
        job_as_deployed(&cluster, stack, MAINTENANCE_FUNCTION, Job::Maintenance).await?;
    // The capture's first run starts with a snapshot; the stretches measure
    // the runs that follow it.
    first_run(&capture, Duration::from_secs(240)).await?;

    println!("-- idle for {:?}", settings.stretch);
    let idle = stretch(&cluster, &capture, &maintenance, settings.stretch, 0).await?;
    println!(
        "-- {} writes/s for {:?}",
        settings.busy_writes_per_second, settings.stretch
    );
    let busy = stretch(
        &cluster,
        &capture,
        &maintenance,
        settings.stretch,
        settings.busy_writes_per_second,
    )
    .await?;
    let published_metrics = distinct_metrics(
        capture
            .metric_lines()
            .iter()
            .chain(maintenance.metric_lines().iter()),
    );
    drop((capture, maintenance));

    println!("-- backup and reconcile runs");
    let backup_run_seconds = backup_run_seconds(&cluster).await?;
    let reconcile_run_seconds = reconcile_run_seconds(&cluster).await?;

    println!(
        "-- capture's peak memory at {} writes/s",
        settings.peak_writes_per_second
    );
    let peak = capture_peak(&cluster, stack, settings.peak_writes_per_second).await?;

    Ok(Observed {
        idle,
        busy,
        backup_run_seconds,
        reconcile_run_seconds,
        published_metrics,
        capture_peak_rss_mib: peak.rss_mib,
        capture_cpu_share: peak.cpu_share,
        peak_writes_per_second: peak.writes_per_second,
    })
}

/// What the cluster and the functions do in `length` under `rate` writes/s.
async fn stretch(
    cluster: &SimCluster,
    capture: &JobOnSchedule,
    maintenance: &JobOnSchedule,
    length: Duration,
    rate: u32,
) -> anyhow::Result<Stretch> {
    let ips = member_ips(cluster).await?;
    let calls_before = cluster.stand_in.calls().len();
    let logs_before = log_bytes(cluster, &[capture, maintenance]);
    let peer_before = peer_sent_bytes(&ips).await?;
    let started = Instant::now();

    let writers = writers(cluster, rate, length, "cost");
    tokio::time::sleep(length).await;
    let acknowledged: usize = writers.iter().map(Writer::acknowledged).sum();
    drop(writers);

    let seconds = started.elapsed().as_secs_f64();
    let peer_after = peer_sent_bytes(&ips).await?;
    let logs_after = log_bytes(cluster, &[capture, maintenance]);
    let calls = cluster.stand_in.calls();
    let calls = calls.get(calls_before..).unwrap_or_default();
    let (s3_put, s3_get, secret_calls) = count_calls(calls);
    let s3_requests = s3_requests(calls);
    // Runs that started in the stretch; the last may still be watching.
    let until = started + length + Duration::from_secs(90);
    let capture_run_seconds = median_run_seconds(capture, started, length, until)
        .await
        .context("the capture runs")?;
    let maintenance_run_seconds = median_run_seconds(maintenance, started, length, until)
        .await
        .context("the maintenance runs")?;
    Ok(Stretch {
        seconds,
        writes_per_second: acknowledged as f64 / seconds,
        s3_put,
        s3_get,
        secret_calls,
        log_bytes: logs_after.saturating_sub(logs_before),
        peer_bytes: (peer_after - peer_before).max(0.0),
        capture_run_seconds,
        maintenance_run_seconds,
        s3_requests,
    })
}

/// Writers that together aim at `rate` writes/s; none for 0.
fn writers(cluster: &SimCluster, rate: u32, length: Duration, prefix: &str) -> Vec<Writer> {
    let count = rate.div_ceil(WRITES_PER_WRITER);
    (0..count)
        .map(|n| {
            Writer::start(
                cluster.endpoints(),
                WriterOptions {
                    prefix: format!("bench/{prefix}-{rate}-{n}"),
                    interval: Duration::from_secs_f64(
                        f64::from(count) / (f64::from(rate.max(1)) * PACE_ABOVE_RATE),
                    ),
                    max_writes: u64::MAX,
                    max_duration: length + Duration::from_secs(30),
                    ..WriterOptions::default()
                },
            )
        })
        .collect()
}

/// The calls the stack makes: the nodes' and the functions'; the harness's
/// own and the queue poller's are not the stack's.
fn the_stacks(calls: &[RecordedCall]) -> impl Iterator<Item = &RecordedCall> {
    calls.iter().filter(|call| {
        matches!(
            call.caller(),
            Some(
                Caller::Node
                    | Caller::BackupFunction
                    | Caller::MaintenanceFunction
                    | Caller::CaptureFunction
                    | Caller::LifecycleFunction
            )
        )
    })
}

/// (S3 PUT-class, S3 GET-class, Secrets Manager) calls of the stack.
fn count_calls(calls: &[RecordedCall]) -> (u64, u64, u64) {
    let (mut put, mut get, mut secrets) = (0, 0, 0);
    for call in the_stacks(calls) {
        match call.service.as_str() {
            "s3" => match S3Class::of(&call.operation) {
                S3Class::Put => put += 1,
                S3Class::Get => get += 1,
                S3Class::Free => {}
            },
            "secretsmanager" => secrets += 1,
            _ => {}
        }
    }
    (put, get, secrets)
}

/// The median length of `job`'s runs that started within `length` of `from`
/// and have finished, waiting until `until` for a first one.
async fn median_run_seconds(
    job: &JobOnSchedule,
    from: Instant,
    length: Duration,
    until: Instant,
) -> anyhow::Result<f64> {
    let started_in = |run: &Scheduled<Value>| run.started >= from && run.started < from + length;
    loop {
        let finished: Vec<f64> = job
            .runs()
            .iter()
            .filter(|run| started_in(run))
            .map(|run| (run.finished - run.started).as_secs_f64())
            .collect();
        if let Some(median) = crate::stats::median(&finished) {
            return Ok(median);
        }
        if Instant::now() >= until {
            anyhow::bail!(
                "no run that started in the stretch had finished by its end and 90 s more:\n{}",
                job.log()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Waits for `job`'s first run to finish (its schedule starts a period late).
async fn first_run(job: &JobOnSchedule, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while job.runs().is_empty() {
        if Instant::now() >= deadline {
            anyhow::bail!("no run finished within {timeout:?}:\n{}", job.log());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// The stack's S3 requests by caller and operation, the most frequent first.
fn s3_requests(calls: &[RecordedCall]) -> Vec<(String, String, u64)> {
    let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for call in the_stacks(calls).filter(|call| call.service == "s3") {
        let caller = call.caller().map_or("?", |c| c.access_key_id());
        *counts
            .entry((caller.to_owned(), call.operation.clone()))
            .or_default() += 1;
    }
    let mut requests: Vec<(String, String, u64)> = counts
        .into_iter()
        .map(|((caller, operation), count)| (caller, operation, count))
        .collect();
    requests.sort_by_key(|request| std::cmp::Reverse(request.2));
    requests
}

async fn member_ips(cluster: &SimCluster) -> anyhow::Result<Vec<Ipv4Addr>> {
    Ok(cluster
        .stand_in
        .instances()
        .await?
        .into_iter()
        .map(|instance| instance.private_ip)
        .collect())
}

async fn peer_sent_bytes(ips: &[Ipv4Addr]) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for ip in ips {
        total += etcd_metrics::counter_total(*ip, PEER_SENT_BYTES).await?;
    }
    Ok(total)
}

/// What the nodes (the agent's log, etcd's output with it) and the functions
/// have logged so far.
fn log_bytes(cluster: &SimCluster, jobs: &[&JobOnSchedule]) -> u64 {
    let nodes: u64 = cluster
        .instance_ids()
        .iter()
        .map(|id| files_bytes(&cluster.instance_root(id), "log"))
        .sum();
    let functions: u64 = jobs.iter().map(|job| job.log().len() as u64).sum();
    nodes + functions
}

fn files_bytes(dir: &Path, extension: &str) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == extension))
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum()
}

async fn backup_run_seconds(cluster: &SimCluster) -> anyhow::Result<f64> {
    let backup = BackupOnDemand::start(&cluster.stand_in, &[]).await?;
    let mut seconds = Vec::new();
    for _ in 0..SINGLE_RUNS {
        let started = Instant::now();
        backup
            .invoke(&scheduled_event(cluster.stand_in.region()))
            .await
            .map_err(|e| anyhow::anyhow!("a scheduled backup run failed: {e}"))?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    crate::stats::median(&seconds).context("no run")
}

async fn reconcile_run_seconds(cluster: &SimCluster) -> anyhow::Result<f64> {
    let lifecycle = LifecycleOnQueue::start(&cluster.stand_in).await?;
    let mut seconds = Vec::new();
    for _ in 0..SINGLE_RUNS {
        let started = Instant::now();
        lifecycle
            .function()
            .invoke(&json!({"reconcile": true}))
            .await
            .map_err(|e| anyhow::anyhow!("a reconcile run failed: {e}"))?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    crate::stats::median(&seconds).context("no run")
}

/// What a fresh capture function used over two runs under a writer.
struct Peak {
    rss_mib: f64,
    /// CPU seconds per second of its runs.
    cpu_share: f64,
    writes_per_second: f64,
}

async fn capture_peak(cluster: &SimCluster, stack: &Inventory, rate: u32) -> anyhow::Result<Peak> {
    let capture = job_as_deployed(cluster, stack, CAPTURE_FUNCTION, Job::Capture).await?;
    let pid = capture
        .function()
        .pid()
        .context("the capture function did not start")?;
    let length = Duration::from_secs(140);
    let started = Instant::now();
    let writers = writers(cluster, rate, length, "peak");
    tokio::time::sleep(length).await;
    let acknowledged: usize = writers.iter().map(Writer::acknowledged).sum();
    let peak = vm_hwm_kib(pid).with_context(|| format!("no VmHWM for pid {pid}"))?;
    let cpu = cpu_seconds(pid).with_context(|| format!("no CPU time for pid {pid}"))?;
    drop(writers);
    let running: f64 = capture
        .runs()
        .iter()
        .map(|run| (run.finished - run.started).as_secs_f64())
        .sum();
    anyhow::ensure!(running > 0.0, "no capture run finished:\n{}", capture.log());
    Ok(Peak {
        rss_mib: mib(peak),
        cpu_share: cpu / running,
        writes_per_second: acknowledged as f64 / started.elapsed().as_secs_f64(),
    })
}
