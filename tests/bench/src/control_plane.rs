//! Benchmark 4, the control plane on the stand-in, with the harness's
//! agent tuning (500 ms poll interval, etcd heartbeat 50 ms / election
//! 500 ms; `node.rs`):
//! - termination notice -> member removed by the lifecycle function (p50, p99);
//! - bootstrap: a replacement agent's start -> healthy voting member;
//! - total loss -> serving again from a backup;
//! - 3-node cold formation by the agents vs raw etcd with a static
//!   `--initial-cluster` and the same flags given by hand.
//!
//! Also the agent's (`etcd-aws`) peak RSS while supervising.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::Instant;

use super::backup::{start_backup_function, tail, wait_initialised};
use super::data;
use super::environment::Tools;
use super::process::{mib, vm_hwm_kib};
use super::report::{self, Report, Row, Target};
use super::stats::{max, median, percentile, ratio};
use super::Options;
use etcd_aws_tests::functions::scheduled_event;
use etcd_aws_tests::functions::LifecycleOnQueue;
use etcd_aws_tests::node::{Node, ETCD_TUNING_ARGS};
use etcd_aws_tests::sim_cluster::SimCluster;
use etcd_aws_tests::stand_in::{InstanceEvent, StandIn, StandInOptions};

/// How often the benchmarks look: fine enough for sub-second figures.
const POLL: Duration = Duration::from_millis(20);
const STEP_TIMEOUT: Duration = Duration::from_secs(180);
/// etcd refuses to remove a voting member until the others have been
/// connected for its HealthInterval (5 s): right after a join, the lifecycle
/// function retries (1 s apart) until then. Terminations are measured on a
/// settled cluster, as they mostly come; the first quick runs, without
/// this pause, took 4.2 s for that reason.
const SETTLE: Duration = Duration::from_secs(6);

pub async fn run_all(options: &Options, tools: &Tools, work: &Path, report: &mut Report) {
    if let Err(error) = termination_and_bootstrap(options, report).await {
        report.failure("4. termination/bootstrap", &error);
    }
    if let Err(error) = total_loss(options, work, report).await {
        report.failure("4. total loss", &error);
    }
    if let Err(error) = formation(options, tools, work, report).await {
        report.failure("4. formation", &error);
    }
}

/// Terminates a member again and again through the lifecycle hook; times
/// the removal and the replacement's bootstrap each time.
async fn termination_and_bootstrap(options: &Options, report: &mut Report) -> anyhow::Result<()> {
    let family = "4. control plane";
    let started = Instant::now();
    let cluster = SimCluster::start_with(plaintext(3)).await?;
    cluster.wait_healthy(3, STEP_TIMEOUT).await?;
    let _lifecycle = LifecycleOnQueue::start(&cluster.stand_in).await?;
    small_database(&cluster).await?;
    let mut events = cluster.stand_in.subscribe();
    let (mut removals, mut bootstraps) = (Vec::new(), Vec::new());
    for round in 1..=options.terminations {
        cluster.wait_healthy(3, STEP_TIMEOUT).await?;
        tokio::time::sleep(SETTLE).await;
        let ids = cluster.instance_ids();
        let victim = ids.first().cloned().context("no instance to terminate")?;
        let survivors: Vec<String> = ids
            .iter()
            .filter(|id| **id != victim)
            .filter_map(|id| cluster.client_url(id).ok())
            .collect();
        let mut client = etcd_client::Client::connect(&survivors, None)
            .await
            .context("cannot connect to the survivors")?;
        // Forget earlier launches (bounded: the channel holds few events).
        for _ in 0..10_000 {
            if let Err(TryRecvError::Empty | TryRecvError::Closed) = events.try_recv() {
                break;
            }
        }
        let noticed = Instant::now();
        cluster.stand_in.terminate(&victim).await?;
        let removed = poll_until(
            &format!("{victim}'s member to be removed"),
            STEP_TIMEOUT,
            || {
                let mut client = client.clone();
                let victim = victim.clone();
                async move {
                    client
                        .member_list()
                        .await
                        .is_ok_and(|list| list.members().iter().all(|m| m.name() != victim))
                }
            },
        )
        .await?;
        let (newcomer, launched) = next_launch(&mut events, STEP_TIMEOUT).await?;
        let ready = poll_until(
            &format!("{newcomer} to be a healthy voting member"),
            STEP_TIMEOUT,
            || {
                let ready = cluster
                    .with_node(&newcomer, Node::is_ready)
                    .unwrap_or(false);
                async move { ready }
            },
        )
        .await?;
        client
            .member_list()
            .await
            .context("member list after the join")?;
        let (removal, bootstrap) = (
            removed.duration_since(noticed).as_secs_f64(),
            ready.duration_since(launched).as_secs_f64(),
        );
        removals.push(removal);
        bootstraps.push(bootstrap);
        report.detail(
            "4. termination -> removal, bootstrap",
            format!("run {round}: {victim} removed {removal:.3} s after the notice; replacement {newcomer} a healthy voting member {bootstrap:.2} s after its agent started"),
        );
    }
    let runs = options.terminations.to_string();
    report.row(Row {
        family: family.into(),
        figure: format!(
            "termination notice -> member removed: p50 (p99 {})",
            report::secs(percentile(&removals, 99.0))
        ),
        ours: report::secs(percentile(&removals, 50.0)),
        standard: "-".into(),
        ratio: None,
        target: Some(Target::SecondsAtMost(1.0)),
        checked: percentile(&removals, 50.0),
        runs: runs.clone(),
    });
    report.row(Row {
        family: family.into(),
        figure: format!(
            "bootstrap start -> healthy voting member (joining, small database; max {})",
            report::secs(max(&bootstraps))
        ),
        ours: report::secs(median(&bootstraps)),
        standard: "-".into(),
        ratio: None,
        target: Some(Target::SecondsAtMost(3.0)),
        checked: median(&bootstraps),
        runs,
    });
    agent_memory(&cluster, started, "after the termination runs", report)
}

/// The agents' peak RSS (VmHWM) while they supervised etcd.
fn agent_memory(
    cluster: &SimCluster,
    since: Instant,
    when: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let peaks: Vec<f64> = cluster
        .instance_ids()
        .iter()
        .filter_map(|id| cluster.with_node(id, Node::pid).ok().flatten())
        .filter_map(|pid| u32::try_from(pid).ok())
        .filter_map(vm_hwm_kib)
        .map(mib)
        .collect();
    if peaks.is_empty() {
        bail!("no running agent to measure");
    }
    let peak = max(&peaks);
    report.detail(
        "5. etcd-aws peak RSS",
        format!(
            "{when}: VmHWM of the {} agents {:?} MiB (the cluster ran {:.0} s)",
            peaks.len(),
            peaks
                .iter()
                .map(|p| (p * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            since.elapsed().as_secs_f64()
        ),
    );
    report.row(Row {
        family: "5. lambda and agent".into(),
        figure: format!("etcd-aws peak RSS while supervising ({when}, largest agent)"),
        ours: report::mib(peak),
        standard: "-".into(),
        ratio: None,
        target: Some(Target::MibAtMost(20.0)),
        checked: peak,
        runs: format!("{} agents", peaks.len()),
    });
    Ok(())
}

/// A few hundred small keys: a "small database" for joins.
async fn small_database(cluster: &SimCluster) -> anyhow::Result<()> {
    let mut client = cluster.client().await?;
    for i in 0..200 {
        client
            .put(format!("/bench/small/{i:04}"), vec![b'x'; 1024], None)
            .await
            .context("writing the small database")?;
    }
    Ok(())
}

/// Every member and its disk lost at once; the new group restores the
/// backup by itself. Timed from the loss to the first linearizable read a
/// member serves, and to all three healthy.
async fn total_loss(options: &Options, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let family = "4. control plane";
    let cluster = SimCluster::start_with(plaintext(3)).await?;
    cluster.wait_healthy(3, STEP_TIMEOUT).await?;
    let filled = data::fill_to(
        &cluster.client_urls(),
        super::dataset::PREFIX,
        options.total_loss_mib << 20,
    )
    .await?;
    let stored = take_backup(&cluster, work).await?;
    report.detail(
        "4. total loss",
        format!(
            "backup of a {:.1} MiB database ({} keys), {:.1} MiB stored",
            filled.db_bytes as f64 / 1048576.0,
            filled.keys,
            stored as f64 / 1048576.0
        ),
    );
    let (mut serving, mut healthy) = (Vec::new(), Vec::new());
    for round in 1..=options.total_loss_runs {
        let lost_at = Instant::now();
        cluster.lose_every_instance().await?;
        let served = poll_until(
            "a restored member to serve a linearizable read",
            Duration::from_secs(300),
            || {
                let urls = cluster.client_urls();
                async move {
                    for url in urls {
                        if linearizable_read(&url).await {
                            return true;
                        }
                    }
                    false
                }
            },
        )
        .await?;
        cluster.wait_healthy(3, Duration::from_secs(300)).await?;
        let all = lost_at.elapsed().as_secs_f64();
        let keys = data::count(&mut cluster.client().await?, super::dataset::PREFIX).await?;
        if keys != filled.keys {
            bail!(
                "the restored cluster has {keys} keys of the data set, the backup held {}",
                filled.keys
            );
        }
        let serve = served.duration_since(lost_at).as_secs_f64();
        serving.push(serve);
        healthy.push(all);
        report.detail(
            "4. total loss",
            format!("run {round}: serving {serve:.2} s after the loss, 3 healthy voters after {all:.2} s, all {keys} keys back"),
        );
    }
    report.row(Row {
        family: family.into(),
        figure: format!(
            "total loss -> serving, {} MiB backup (all 3 healthy: {})",
            options.total_loss_mib,
            report::secs(median(&healthy))
        ),
        ours: report::secs(median(&serving)),
        standard: "-".into(),
        ratio: None,
        target: Some(Target::SecondsAtMost(15.0)),
        checked: median(&serving),
        runs: options.total_loss_runs.to_string(),
    });
    Ok(())
}

/// One backup by the function, as the schedule would; the stored bytes.
async fn take_backup(cluster: &SimCluster, work: &Path) -> anyhow::Result<u64> {
    let stand_in = &cluster.stand_in;
    let function = start_backup_function(
        stand_in,
        Duration::from_secs(600),
        work.join("total-loss-backup.log"),
    )
    .await?;
    wait_initialised(&function).await?;
    let answer = function
        .invoke(&scheduled_event(stand_in.region()))
        .await
        .with_context(|| {
            format!(
                "the backup before the loss failed:\n{}",
                tail(&function.log(), 15)
            )
        })?;
    answer
        .get("stored_bytes")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("the backup function answered {answer}"))
}

async fn linearizable_read(url: &str) -> bool {
    let timeouts = EtcdTimeouts {
        connect: Duration::from_millis(200),
        request: Duration::from_millis(500),
    };
    match EtcdAdmin::connect(&[url.to_owned()], &EtcdAccess::plaintext(timeouts)).await {
        Ok(mut admin) => admin.check_quorum().await.is_ok(),
        Err(_) => false,
    }
}

/// The benchmarks run the cluster without TLS, like the raw etcd and the
/// standard tools they are compared with (see docs/benchmarks.md).
pub fn plaintext(group_size: usize) -> StandInOptions {
    StandInOptions {
        group_size,
        tls: false,
        ..StandInOptions::default()
    }
}

/// Cold formation of three members: the agents on a fresh group, then raw
/// etcd on another fresh group's IPs; interleaved, `formations` of each.
async fn formation(
    options: &Options,
    tools: &Tools,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (mut agents, mut raw) = (Vec::new(), Vec::new());
    for round in 1..=options.formations {
        let stand_in = StandIn::start(StandInOptions {
            lifecycle_hook: None,
            ..plaintext(3)
        })
        .await?;
        let began = Instant::now();
        let cluster = SimCluster::start_nodes(stand_in, ()).await?;
        let formed = poll_until(
            "3 agents to form a healthy cluster",
            STEP_TIMEOUT,
            || async {
                let Ok(snapshot) = cluster.snapshot().await else {
                    return false;
                };
                let voters = snapshot
                    .members
                    .iter()
                    .filter(|m| !m.is_learner && !m.is_unstarted())
                    .count();
                voters == 3
                    && snapshot.members.len() == 3
                    && cluster
                        .instance_ids()
                        .iter()
                        .all(|id| cluster.with_node(id, Node::is_ready).unwrap_or(false))
            },
        )
        .await?;
        let agent_seconds = formed.duration_since(began).as_secs_f64();
        drop(cluster);

        let raw_seconds = raw_formation(tools, &work.join(format!("raw-{round}"))).await?;
        agents.push(agent_seconds);
        raw.push(raw_seconds);
        report.detail(
            "4. formation",
            format!("run {round}: agents {agent_seconds:.2} s, raw etcd {raw_seconds:.2} s"),
        );
    }
    let (ours, standard) = (median(&agents), median(&raw));
    report.row(Row {
        family: "4. control plane".into(),
        figure: "3-node cold formation: agents vs raw etcd, static --initial-cluster".into(),
        ours: report::secs(ours),
        standard: report::secs(standard),
        ratio: ratio(ours, standard),
        target: Some(Target::RatioAtMost(2.0)),
        checked: ratio(ours, standard),
        runs: options.formations.to_string(),
    });
    Ok(())
}

/// Three plain etcd processes on a fresh stand-in group's loopback IPs
/// (leased, so they collide with nothing else running), with the flags the
/// agent would give plus a static initial cluster; seconds until every
/// member serves a linearizable read.
async fn raw_formation(tools: &Tools, dir: &Path) -> anyhow::Result<f64> {
    let stand_in = StandIn::start(StandInOptions {
        lifecycle_hook: None,
        ..plaintext(3)
    })
    .await?;
    let ips: Vec<Ipv4Addr> = stand_in
        .instances()
        .await?
        .iter()
        .map(|i| i.private_ip)
        .collect();
    let initial: Vec<String> = ips
        .iter()
        .enumerate()
        .map(|(n, ip)| format!("raw-{n}=http://{ip}:2380"))
        .collect();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let began = Instant::now();
    let mut members = Vec::new();
    for (n, ip) in ips.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("raw-{n}.log")))
            .with_context(|| format!("cannot create a log in {}", dir.display()))?;
        let child = tokio::process::Command::new(&tools.etcd)
            .arg(format!("--name=raw-{n}"))
            .arg(format!(
                "--data-dir={}",
                dir.join(format!("raw-{n}.etcd")).display()
            ))
            .arg(format!("--listen-client-urls=http://{ip}:2379"))
            .arg(format!("--advertise-client-urls=http://{ip}:2379"))
            .arg(format!("--listen-peer-urls=http://{ip}:2380"))
            .arg(format!("--initial-advertise-peer-urls=http://{ip}:2380"))
            .arg(format!("--initial-cluster={}", initial.join(",")))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=raw-bench")
            .args(ETCD_TUNING_ARGS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Dropping `members` (also on an error below) kills them.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", tools.etcd.display()))?;
        members.push(child);
    }
    let urls: Vec<String> = ips.iter().map(|ip| format!("http://{ip}:2379")).collect();
    let formed = poll_until("3 raw etcd members to serve", STEP_TIMEOUT, || {
        let urls = urls.clone();
        async move {
            for url in &urls {
                if !linearizable_read(url).await {
                    return false;
                }
            }
            true
        }
    })
    .await?;
    for member in &mut members {
        let _ = member.kill().await;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(formed.duration_since(began).as_secs_f64())
}

/// The next instance the group launches, and when the harness started its agent.
async fn next_launch(
    events: &mut tokio::sync::broadcast::Receiver<InstanceEvent>,
    timeout: Duration,
) -> anyhow::Result<(String, Instant)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(InstanceEvent::Launched { id, .. })) => return Ok((id, Instant::now())),
            Ok(Ok(_)) => continue,
            Ok(Err(error)) => bail!("instance events ended: {error}"),
            Err(_) => bail!("no replacement instance launched within {timeout:?}"),
        }
    }
}

/// Checks every 20 ms until `check` is true; when it first was.
async fn poll_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(Instant::now());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}
