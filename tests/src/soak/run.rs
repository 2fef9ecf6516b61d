//! One soak run: a cluster of the harness with both functions on their
//! (compressed) schedules, the checking workload, and faults one after
//! another until the time is up. After each fault: the time until the
//! cluster is healthy again (every member voting, the writer acknowledged,
//! the continuous backup caught up), then the checker on everything
//! acknowledged so far.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::backup::replay::{self, ReplayTarget};
use etcd_aws_io::backup_store::BackupStore;
use tokio::time::Instant;

use super::checker::{self, Acked, Read, Rules, TotalLoss};
use super::fault::Fault;
use super::inject::{Durations, Faultable, Target};
use super::report::{summary, FaultRow, Totals};
use super::schedule::Schedule;
use super::workload::{self, CheckingWriter, TornReader, WorkloadOptions};
use crate::container_node::{ContainerNode, ContainerSettings};
use crate::functions::{BackupOnSchedule, JobOnSchedule, LifecycleOnQueue};
use crate::node::Node;
use crate::paths::EtcdRelease;
use crate::sim_cluster::{wait_for, NodeOptions, SimCluster};
use crate::stand_in::{StandIn, StandInOptions, SubnetRange};

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub duration: Duration,
    pub seed: u64,
    pub size: usize,
    pub faults: Vec<Fault>,
    /// Nodes in containers (partitions possible) instead of processes.
    pub containers: bool,
    /// What a total loss may lose: acknowledgements at most this old.
    pub loss_window: Duration,
    /// Bound on the cluster's return to health after a fault.
    pub recovery_timeout: Duration,
    /// The steady time between one fault's check and the next fault.
    pub steady: Duration,
    pub lasting: Durations,
    /// The members' backend quota (small, so a NOSPACE squeeze is quick).
    pub quota_bytes: usize,
    pub backup_every: Duration,
    pub capture_every: Duration,
    pub maintenance_every: Duration,
    pub reconcile_every: Duration,
}

/// What the run found.
#[derive(Debug)]
pub struct SoakOutcome {
    pub rows: Vec<FaultRow>,
    pub totals: Totals,
    /// The summary table.
    pub summary: String,
    pub kept: bool,
}

/// The older release a run with the rolling upgrade starts on.
const OLDER_ETCD: EtcdRelease = EtcdRelease::V3_4_23;

pub async fn soak(
    options: SoakOptions,
    say: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<SoakOutcome> {
    let upgrade = options.faults.contains(&Fault::RollingUpgrade);
    let stand_in_options = StandInOptions {
        group_size: options.size,
        ..StandInOptions::default()
    };
    let node_options = NodeOptions {
        etcd_args: vec![format!("--quota-backend-bytes={}", options.quota_bytes)],
        etcd: if upgrade {
            OLDER_ETCD
        } else {
            EtcdRelease::default()
        },
        ..NodeOptions::default()
    };
    if options.containers {
        let stand_in = StandIn::start_on(stand_in_options, SubnetRange::Docker)
            .await
            .context("starting the stand-in on a Docker network")?;
        let settings = ContainerSettings::for_stand_in(&stand_in).await?;
        let cluster =
            SimCluster::<ContainerNode>::start_nodes_with(stand_in, settings, node_options).await?;
        soak_on(cluster, options, say).await
    } else {
        let stand_in = StandIn::start(stand_in_options).await?;
        let cluster = SimCluster::<Node>::start_nodes_with(stand_in, (), node_options).await?;
        soak_on(cluster, options, say).await
    }
}

async fn soak_on<N: Faultable>(
    cluster: SimCluster<N>,
    options: SoakOptions,
    say: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<SoakOutcome> {
    let started = Instant::now();
    let size = options.size;
    cluster
        .wait_healthy(size, options.recovery_timeout)
        .await
        .context("the cluster never formed")?;
    say(&format!(
        "formed {size} voting members in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let stand_in = &cluster.stand_in;
    let lifecycle = LifecycleOnQueue::start(stand_in).await?;
    let _reconcile = lifecycle.reconcile_every(options.reconcile_every);
    let backups = BackupOnSchedule::start(stand_in, options.backup_every).await?;
    let quota = options.quota_bytes.to_string();
    let _maintenance = JobOnSchedule::maintenance(
        stand_in,
        options.maintenance_every,
        &[
            ("ETCD_AWS_QUOTA_BACKEND_BYTES", quota.as_str()),
            ("ETCD_MAINTENANCE_DEFRAG_TIMEOUT", "10s"),
        ],
    )
    .await?;
    let capture_duration = format!(
        "{}ms",
        (options.capture_every + Duration::from_secs(1)).as_millis()
    );
    let capture = JobOnSchedule::capture(
        stand_in,
        options.capture_every,
        &[("ETCD_CAPTURE_DURATION", capture_duration.as_str())],
    )
    .await?;
    let store = BackupStore::new(
        &stand_in.sdk_config().await,
        stand_in.bucket(),
        etcd_aws_core::contract::names::bucket::BACKUP_PREFIX,
    );
    let bound = options.duration + Duration::from_secs(3600);
    let writer = CheckingWriter::start(
        cluster.endpoints(),
        WorkloadOptions {
            max_duration: bound,
            ..WorkloadOptions::default()
        },
    );
    let reader = TornReader::start(cluster.endpoints(), Duration::from_millis(500), bound);
    writer.wait_for_more(10, options.recovery_timeout).await?;

    let rules = Rules {
        loss_window: options.loss_window,
        lease_grace: Duration::from_secs(3),
    };
    let target = Target {
        cluster: &cluster,
        size,
        timeout: options.recovery_timeout,
        quota_bytes: options.quota_bytes,
    };
    let mut schedule = Schedule::new(options.seed, &options.faults);
    let mut rows: Vec<FaultRow> = Vec::new();
    let mut losses: Vec<TotalLoss> = Vec::new();
    let mut reported: HashSet<String> = HashSet::new();
    let mut lost_so_far = 0;
    let deadline = started + options.duration;
    while Instant::now() < deadline {
        let Some(fault) = schedule.next_fault() else {
            say("no fault enabled: steady load only");
            break;
        };
        let number = rows.len() + 1;
        let fault_started = Instant::now();
        say(&format!("fault {number}: {fault}"));
        let applied = target
            .apply(fault, schedule.rng(), options.lasting)
            .await
            .with_context(|| format!("applying fault {number} ({fault})"));
        let applied = match applied {
            Ok(applied) => applied,
            Err(error) => {
                say(&format!("  {error:#}"));
                rows.push(unhealthy_row(number, fault, format!("{error:#}")));
                break;
            }
        };
        if let Some((at, lost_cluster)) = applied.total_loss {
            losses.push(TotalLoss { at, lost_cluster });
        }
        say(&format!("  {}", applied.what));
        let fault_ended = Instant::now();
        let recovered = healthy_again(&cluster, &writer, &store, &options).await;
        let to_healthy = fault_ended.elapsed();
        if let Err(error) = recovered {
            say(&format!(
                "  NOT HEALTHY within {:?}: {error:#}\n{}",
                options.recovery_timeout,
                cluster.logs()
            ));
            rows.push(FaultRow {
                what: applied.what,
                ..unhealthy_row(number, fault, format!("not healthy again: {error:#}"))
            });
            break;
        }
        let healthy_since = Instant::now();
        let acked = writer.acked();
        let read = read_back(&cluster, healthy_since).await?;
        let in_doubt = writer.since(acked.len());
        let findings = checker::check(&acked, &in_doubt, &read, &losses, &rules);
        let broken: Vec<String> = findings
            .broken
            .iter()
            .map(ToString::to_string)
            .filter(|b| reported.insert(b.clone()))
            .collect();
        if !broken.is_empty() {
            say(&evidence(&cluster, &capture, &backups));
        }
        let lost_now = findings.lost_in_window.saturating_sub(lost_so_far);
        lost_so_far = findings.lost_in_window;
        let max_stall = longest_stall(&acked, fault_started, Instant::now());
        say(&format!(
            "  healthy again {:.1}s after the fault ended; longest write stall {:.1}s; checker: {}",
            to_healthy.as_secs_f64(),
            max_stall.as_secs_f64(),
            if broken.is_empty() {
                if lost_now > 0 {
                    format!(
                        "{lost_now} acknowledged operations lost inside the loss window (oldest {:.1}s before the loss)",
                        findings.oldest_lost_age.unwrap_or_default().as_secs_f64()
                    )
                } else {
                    "every promise kept".to_owned()
                }
            } else {
                broken.join("; ")
            }
        ));
        rows.push(FaultRow {
            number,
            fault,
            what: applied.what,
            to_healthy: Some(to_healthy),
            max_stall,
            broken,
            lost_in_window: lost_now,
            oldest_lost_age: findings.oldest_lost_age.filter(|_| lost_now > 0),
        });
        steady_for(
            options
                .steady
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }

    say("the time is up: the final check");
    let acked = writer.acked();
    let read = read_back(&cluster, Instant::now()).await;
    let in_doubt = writer.since(acked.len());
    let broken_at_end: Vec<String> = match read {
        Ok(read) => checker::check(&acked, &in_doubt, &read, &losses, &rules)
            .broken
            .iter()
            .map(ToString::to_string)
            .filter(|b| !reported.contains(b))
            .collect(),
        Err(error) => vec![format!("the final read failed: {error:#}")],
    };
    let reader_record = reader.record();
    let totals = Totals {
        seed: options.seed,
        duration: started.elapsed(),
        acknowledged: acked.len(),
        failed_attempts: writer.failed_attempts(),
        reads: reader_record.reads,
        torn_reads: reader_record.torn.len(),
        cluster_ids: acked
            .iter()
            .map(|a| a.cluster_id)
            .collect::<HashSet<_>>()
            .len(),
        broken_at_end,
    };
    let text = summary(&rows, &totals);
    let kept = text.trim_end().ends_with("every promise kept");
    Ok(SoakOutcome {
        rows,
        totals,
        summary: text,
        kept,
    })
}

/// What the nodes said of their restores and the functions of their
/// failures: for a broken promise's post-mortem.
fn evidence<N: Faultable>(
    cluster: &SimCluster<N>,
    capture: &JobOnSchedule,
    backups: &BackupOnSchedule,
) -> String {
    const NODE_WORDS: [&str; 6] = ["restor", "replay", "REVISIONS", "SEGMENT", "BACKUP", "gap"];
    let mut out = String::from("  evidence:\n");
    for id in cluster.instance_ids() {
        let log = cluster.with_node(&id, |n| n.log()).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| NODE_WORDS.iter().any(|w| l.contains(w)))
        {
            out.push_str(&format!("    {id}: {line}\n"));
        }
    }
    for (name, log) in [("capture", capture.log()), ("backup", backups.log())] {
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("\"WARN\"") || l.contains("\"ERROR\"") || l.contains("published")
            })
            .collect();
        for line in &notable[notable.len().saturating_sub(15)..] {
            out.push_str(&format!("    {name} function: {line}\n"));
        }
    }
    out
}

fn unhealthy_row(number: usize, fault: Fault, why: String) -> FaultRow {
    FaultRow {
        number,
        fault,
        what: String::new(),
        to_healthy: None,
        max_stall: Duration::ZERO,
        broken: vec![why],
        lost_in_window: 0,
        oldest_lost_age: None,
    }
}

/// Every member voting and ready, the writer acknowledged again, and the
/// continuous backup holding what the writer last had acknowledged.
async fn healthy_again<N: Faultable>(
    cluster: &SimCluster<N>,
    writer: &CheckingWriter,
    store: &BackupStore,
    options: &SoakOptions,
) -> anyhow::Result<()> {
    cluster
        .wait_healthy(options.size, options.recovery_timeout)
        .await?;
    writer.wait_for_more(3, options.recovery_timeout).await?;
    let revision = writer.last().map_or(0, |a| a.revision);
    wait_for(
        "a restore from the bucket to reach the writer's last acknowledgement",
        options.recovery_timeout,
        || async {
            let reach = restorable_until(store).await?;
            anyhow::ensure!(
                reach >= revision,
                "a restore now reaches revision {reach}, the writer is at {revision}"
            );
            Ok(())
        },
    )
    .await
}

/// The last revision a restore would reach now: the newest snapshot, then
/// the captured changes after it up to the first hole (what the seed of a
/// total loss replays).
async fn restorable_until(store: &BackupStore) -> anyhow::Result<i64> {
    let newest = store.manifests().await?.into_iter().next();
    let segments = store.segments().await?;
    Ok(newest.map_or(0, |snapshot| {
        replay::plan(
            snapshot.revision,
            replay::Lineage::restore(snapshot.cluster_id),
            &segments,
            ReplayTarget::Latest,
        )
        .until
    }))
}

async fn read_back<N: Faultable>(
    cluster: &SimCluster<N>,
    healthy_since: Instant,
) -> anyhow::Result<Read> {
    let endpoints = cluster.endpoints();
    let keys = wait_for("a read of every key", Duration::from_secs(30), || {
        workload::read_keys(&endpoints)
    })
    .await?;
    Ok(Read {
        keys,
        at: Instant::now(),
        healthy_since,
    })
}

/// The longest stretch of `[from, to]` without an acknowledgement.
pub fn longest_stall(acked: &[Acked], from: Instant, to: Instant) -> Duration {
    let times: Vec<Instant> = acked
        .iter()
        .map(|a| a.at)
        .filter(|at| *at >= from && *at <= to)
        .collect();
    crate::workload::longest_gap(&times, from, to)
}

/// The cluster runs under the workload and its schedules, untouched: the
/// time the functions need to act between faults (a backup, a
/// defragmentation), not a wait for a condition.
async fn steady_for(duration: Duration) {
    tokio::time::sleep(duration).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::checker::Op;

    #[test]
    fn the_longest_stall_runs_between_acknowledgements_and_the_window_edges() {
        let t = Instant::now();
        let ack = |secs: u64| Acked {
            seq: secs,
            op: Op::Put { key: String::new() },
            revision: 1,
            cluster_id: 1,
            at: t + Duration::from_secs(secs),
        };
        let acked = [ack(1), ack(2), ack(6), ack(7)];
        assert_eq!(
            longest_stall(&acked, t, t + Duration::from_secs(8)),
            Duration::from_secs(4)
        );
        assert_eq!(
            longest_stall(&[], t, t + Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }
}
