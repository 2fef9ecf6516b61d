//! The life of a cluster, step by step, under a steady writer: what
//! `make demo` plays and the scenario suite checks. Each step is timed,
//! narrated, and followed by the checker; a step that fails says which it was.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use etcd_aws_core::contract::events;
use etcd_aws_core::contract::jobs::BackupAnswer;

use crate::agent_log;
use crate::functions::{BackupOnSchedule, LifecycleOnQueue};
use crate::paths::EtcdRelease;
use crate::sim_cluster::{wait_for, ClusterSnapshot, Endpoints, NodeOptions, SimCluster};
use crate::stand_in::{ActionOutcome, StandInOptions};
use crate::workload::{self, describe, Writer, WriterOptions};

#[derive(Debug, Clone)]
pub struct LifeOptions {
    pub size: usize,
    pub backup_every: Duration,
    /// Bound on each step (formation, one replacement, a restore...).
    pub step_timeout: Duration,
    /// The longest write stall a step may show while a quorum stands.
    pub max_stall: Duration,
    /// Print a progress line this often while a step runs.
    pub progress_every: Option<Duration>,
    /// Whether the writer starts with the group or only once the cluster
    /// has formed (see `Life::formed`).
    pub writes_from_start: bool,
    /// The etcd release the group's instances start with.
    pub etcd: EtcdRelease,
}

impl Default for LifeOptions {
    fn default() -> Self {
        Self {
            size: 3,
            backup_every: Duration::from_secs(4),
            step_timeout: Duration::from_secs(90),
            max_stall: Duration::from_secs(20),
            progress_every: None,
            writes_from_start: true,
            etcd: EtcdRelease::default(),
        }
    }
}

/// One row of the summary table.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub number: usize,
    pub name: String,
    pub took: Duration,
    pub acknowledged: usize,
    /// Acknowledged writes missing after the step.
    pub lost: usize,
    /// Of `lost`, the loss the step is allowed (writes after a restored backup).
    pub allowed_loss: usize,
    pub max_stall: Duration,
    pub failure: Option<String>,
}

/// The cluster, both functions on their triggers, and the writer.
pub struct Life {
    pub cluster: SimCluster,
    pub lifecycle: LifecycleOnQueue,
    pub backups: BackupOnSchedule,
    pub writer: Writer,
    pub options: LifeOptions,
    started: Instant,
    /// Holds the writer back until formation when it may not write earlier.
    writes_open: Arc<AtomicBool>,
}

/// The steps played so far: their rows, and what the checker already knows.
#[derive(Debug, Default)]
pub struct Steps {
    reports: Vec<StepReport>,
    /// Lost writes already reported by an earlier step.
    known_lost: usize,
    /// After a restore: the lost cluster's id and the restored backup's
    /// revision, which decide which missing writes were allowed to go.
    restore_point: Option<(u64, i64)>,
}

impl Life {
    /// Starts everything; the group's instances begin forming at once.
    pub async fn start(options: LifeOptions) -> anyhow::Result<Life> {
        let started = Instant::now();
        let cluster = SimCluster::start_with_nodes(
            StandInOptions {
                group_size: options.size,
                ..StandInOptions::default()
            },
            NodeOptions {
                etcd: options.etcd,
                ..NodeOptions::default()
            },
        )
        .await
        .context("starting the stand-in and the group")?;
        let lifecycle = LifecycleOnQueue::start(&cluster.stand_in)
            .await
            .context("starting the lifecycle function on its queue")?;
        let backups = BackupOnSchedule::start(&cluster.stand_in, options.backup_every)
            .await
            .context("starting the backup function on its schedule")?;
        let writes_open = Arc::new(AtomicBool::new(options.writes_from_start));
        let writer = Writer::start(
            gated(cluster.endpoints(), Arc::clone(&writes_open)),
            WriterOptions::default(),
        );
        Ok(Life {
            cluster,
            lifecycle,
            backups,
            writer,
            options,
            started,
            writes_open,
        })
    }

    /// A narration line, stamped with the time since the start.
    pub fn say(&self, text: &str) {
        say(self.started, text);
    }

    fn progress(&self, number: usize) -> Option<AbortOnDrop> {
        let every = self.options.progress_every?;
        let started = self.started;
        let step_start = Instant::now();
        let acks = self.writer_probe();
        Some(AbortOnDrop(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let (acknowledged, stall, members) = acks();
                say(
                    started,
                    &format!(
                        "  ... step {number} running {:.0}s: {acknowledged} writes acknowledged so far, writer waiting {:.1}s, {members} nodes running",
                        step_start.elapsed().as_secs_f64(),
                        stall.as_secs_f64()
                    ),
                );
            }
        })))
    }

    /// A cheap view of the writer and the fleet for the progress line.
    fn writer_probe(&self) -> impl Fn() -> (usize, Duration, usize) + Send + 'static {
        let endpoints = self.cluster.endpoints();
        let acks = self.writer.ack_counter();
        move || {
            let (count, stall) = acks();
            (count, stall, endpoints.urls().len())
        }
    }

    /// Step 1: the group's instances form one cluster of `size` voters.
    pub async fn formed(&self) -> anyhow::Result<ClusterSnapshot> {
        let snapshot = self
            .cluster
            .wait_healthy(self.options.size, self.options.step_timeout)
            .await?;
        self.writes_open.store(true, Ordering::SeqCst);
        self.writer
            .wait_for_more(1, self.options.step_timeout)
            .await
            .context("the formed cluster acknowledges no write")?;
        self.say(&format!(
            "formed: cluster {} with {} voting members: {}",
            snapshot.cluster_id,
            snapshot.members.len(),
            names(&snapshot)
        ));
        Ok(snapshot)
    }

    /// The group terminates `victim` through its lifecycle hook: the
    /// lifecycle function removes its member and lets it go, and the
    /// replacement joins. Returns the replacement's instance id.
    pub async fn replace(&self, victim: &str) -> anyhow::Result<String> {
        let before = self.cluster.snapshot().await?;
        anyhow::ensure!(
            before.members.iter().any(|m| m.name == victim),
            "{victim} is not a member"
        );
        let began = Instant::now();
        self.cluster.stand_in.terminate(victim).await?;
        self.removed_by_the_lifecycle_function(victim, began)
            .await?;
        let after = self
            .cluster
            .wait_healthy(self.options.size, self.options.step_timeout)
            .await?;
        let newcomer = same_cluster_one_newcomer(&before, &after)?;
        self.say(&format!(
            "  replacement {newcomer} joined as a voting member {:.1}s after the termination began",
            began.elapsed().as_secs_f64()
        ));
        Ok(newcomer)
    }

    /// The first half of one batch of the template's rolling update
    /// (MaxBatchSize 1, MinInstancesInService = size): the group launches one
    /// instance more, and the update waits until it is a healthy voting
    /// member. Returns its instance id.
    pub async fn launch_one_more(&self) -> anyhow::Result<String> {
        let before = self.cluster.snapshot().await?;
        let began = Instant::now();
        self.cluster
            .stand_in
            .set_desired_capacity(self.options.size + 1)
            .await?;
        let after = self
            .cluster
            .wait_healthy(self.options.size + 1, self.options.step_timeout)
            .await?;
        let newcomer = same_cluster_one_newcomer(&before, &after)?;
        self.say(&format!(
            "  {newcomer} launched and joined as a voting member after {:.1}s",
            began.elapsed().as_secs_f64()
        ));
        Ok(newcomer)
    }

    /// The second half: the update terminates `victim`, lowering the desired
    /// capacity back to size; the hook holds it, and the lifecycle function
    /// removes its member and lets it go.
    pub async fn retire(&self, victim: &str) -> anyhow::Result<()> {
        let before = self.cluster.snapshot().await?;
        anyhow::ensure!(
            before.members.iter().any(|m| m.name == victim),
            "{victim} is not a member"
        );
        let began = Instant::now();
        aws_sdk_autoscaling::Client::new(&self.cluster.stand_in.sdk_config().await)
            .terminate_instance_in_auto_scaling_group()
            .instance_id(victim)
            .should_decrement_desired_capacity(true)
            .send()
            .await
            .with_context(|| format!("terminating {victim} with the desired capacity lowered"))?;
        self.removed_by_the_lifecycle_function(victim, began)
            .await?;
        let after = self
            .cluster
            .wait_healthy(self.options.size, self.options.step_timeout)
            .await?;
        anyhow::ensure!(
            after.cluster_id == before.cluster_id,
            "the cluster id changed from {} to {}: a second cluster formed",
            before.cluster_id,
            after.cluster_id
        );
        Ok(())
    }

    /// Waits for `victim`'s lifecycle action to complete with CONTINUE after
    /// the lifecycle function removed its member.
    async fn removed_by_the_lifecycle_function(
        &self,
        victim: &str,
        began: Instant,
    ) -> anyhow::Result<()> {
        let outcome = wait_for(
            &format!("the lifecycle action of {victim} to complete"),
            self.options.step_timeout,
            || async {
                let action = self
                    .cluster
                    .stand_in
                    .lifecycle_actions()
                    .into_iter()
                    .find(|a| a.instance_id == victim)
                    .and_then(|a| a.outcome);
                action.context("still in Terminating:Wait")
            },
        )
        .await?;
        anyhow::ensure!(
            outcome == ActionOutcome::Continue,
            "the lifecycle action of {victim} ended {outcome:?}, not CONTINUE from the function; function log:\n{}",
            tail(&self.lifecycle.log(), 40)
        );
        anyhow::ensure!(
            self.lifecycle.logged_for("removed member", victim) >= 1,
            "the action completed but the function never removed {victim}'s member; function log:\n{}",
            tail(&self.lifecycle.log(), 40)
        );
        self.say(&format!(
            "  {victim}: member removed by the lifecycle function, action completed (CONTINUE) after {:.1}s",
            began.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    /// Replaces every current instance, one at a time.
    pub async fn rolling_replacement(&self) -> anyhow::Result<Vec<String>> {
        let mut replaced = Vec::new();
        for victim in self.cluster.instance_ids() {
            replaced.push(self.replace(&victim).await?);
        }
        Ok(replaced)
    }

    /// Waits for the schedule to upload a backup that holds every write
    /// acknowledged so far.
    pub async fn backup(&self) -> anyhow::Result<BackupAnswer> {
        let since = Instant::now();
        let revision = self.writer.last_ack().map_or(0, |a| a.revision);
        let run = self
            .backups
            .wait_for_upload(since, revision, self.options.step_timeout)
            .await?;
        self.say(&format!(
            "  backup: {} at revision {} ({} bytes) by the scheduled backup function",
            run.key, run.revision, run.stored_bytes
        ));
        Ok(run)
    }

    /// The check, and the restore point (lost cluster id, backup revision).
    async fn restore_and_check(&self) -> anyhow::Result<(workload::RestoreCheck, (u64, i64))> {
        let old = self.cluster.snapshot().await?;
        let lost = self.cluster.lose_every_instance().await?;
        let began = Instant::now();
        self.say(&format!(
            "  lost {} instances and their disks: {}",
            lost.len(),
            lost.join(", ")
        ));
        let restored = self
            .cluster
            .wait_healthy(self.options.size, self.options.step_timeout)
            .await?;
        anyhow::ensure!(
            restored.members.iter().all(|m| !lost.contains(&m.name)),
            "a lost instance is still a member"
        );
        let (key, revision) = self
            .restored_backup()
            .context("no node logged which backup it restored")?;
        self.say(&format!(
            "  restored: new cluster {} of {} voters from {key} (revision {revision}) {:.1}s after the loss",
            restored.cluster_id,
            restored.members.len(),
            began.elapsed().as_secs_f64()
        ));
        self.writer
            .wait_for_more(1, self.options.step_timeout)
            .await
            .context("the restored cluster acknowledges no write")?;
        // Acknowledgements first: one that arrives after the read would look lost.
        let acks = self.writer.acks();
        let present = workload::read_back(
            &self.cluster.endpoints(),
            self.writer.prefix(),
            Duration::from_secs(30),
        )
        .await?;
        let check = workload::check_restore(&acks, &present, old.cluster_id.0, revision);
        self.say(&format!(
            "  checker: {} acknowledged writes up to revision {revision} all present; lost as expected (after the backup): {}",
            check.kept,
            describe(&check.lost_after_backup)
        ));
        Ok((check, (old.cluster_id.0, revision)))
    }

    /// The backup the seed restored, from its log: (key, revision).
    fn restored_backup(&self) -> Option<(String, i64)> {
        self.cluster.instance_ids().iter().find_map(|id| {
            let log = self.cluster.with_node(id, |n| n.log()).ok()?;
            let key = agent_log::first_field(&log, events::RESTORED_BACKUP, "key")?;
            let revision = agent_log::first_field(&log, events::RESTORED_BACKUP, "revision")?;
            Some((key, revision.parse().ok()?))
        })
    }

    /// Every node's, and both functions', log tails: for a failure message.
    pub fn diagnostics(&self) -> String {
        format!(
            "{}\n===== lifecycle function =====\n{}\n===== backup function =====\n{}",
            self.cluster.logs(),
            tail(&self.lifecycle.log(), 40),
            tail(&self.backups.log(), 20)
        )
    }
}

impl Steps {
    /// How a scenario bounded by `limit` ended (`played` is what
    /// `tokio::time::timeout(limit, ...)` returned): its summary table
    /// printed, and on failure every log attached.
    pub fn verdict(
        &self,
        life: &Life,
        limit: Duration,
        played: Result<anyhow::Result<()>, tokio::time::error::Elapsed>,
    ) -> anyhow::Result<()> {
        println!("\n{}", self.summary());
        let played = played
            .map_err(|_| anyhow::anyhow!("the scenario did not finish within {limit:?}"))
            .and_then(|result| result);
        match played {
            Ok(()) if self.all_kept() => Ok(()),
            Ok(()) => bail!("a step broke its promise:\n{}", self.summary()),
            Err(error) => {
                Err(error.context(format!("\n{}\n{}", self.summary(), life.diagnostics())))
            }
        }
    }

    pub fn new() -> Self {
        Self::default()
    }

    pub fn reports(&self) -> &[StepReport] {
        &self.reports
    }

    /// Whether every step so far kept its promises.
    pub fn all_kept(&self) -> bool {
        self.reports.iter().all(|r| r.failure.is_none())
    }

    /// Runs one step under its time bound, then checks every acknowledged
    /// write; records the step's row and fails with the step named.
    pub async fn step<T, F>(&mut self, life: &Life, name: &str, body: F) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = anyhow::Result<T>>,
    {
        let number = self.reports.len() + 1;
        life.say(&format!("step {number}: {name}"));
        let from = Instant::now();
        let progress = life.progress(number);
        let timeout = life.options.step_timeout;
        let result = match tokio::time::timeout(timeout, body).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("did not finish within {timeout:?}")),
        };
        drop(progress);
        let took = from.elapsed();
        let to = Instant::now();
        let mut failure = result.as_ref().err().map(|e| format!("{e:#}"));
        let lost = match self.lost_writes(life).await {
            Ok(lost) => lost,
            Err(error) => {
                failure.get_or_insert_with(|| format!("{error:#}"));
                Vec::new()
            }
        };
        let new_losses = lost.len().saturating_sub(self.known_lost);
        self.known_lost = self.known_lost.max(lost.len());
        let stats = workload::window(&life.writer.acks(), from, to);
        if failure.is_none() && new_losses > 0 {
            failure = Some(format!(
                "acknowledged writes are missing: {}",
                describe(&lost)
            ));
        }
        self.reports.push(StepReport {
            number,
            name: name.to_owned(),
            took,
            acknowledged: stats.acknowledged,
            lost: new_losses,
            allowed_loss: 0,
            max_stall: stats.max_stall,
            failure: failure.clone(),
        });
        match (result, failure) {
            (Ok(value), None) => {
                life.say(&format!(
                    "step {number} done in {:.1}s: {} writes acknowledged, longest stall {:.1}s",
                    took.as_secs_f64(),
                    stats.acknowledged,
                    stats.max_stall.as_secs_f64()
                ));
                Ok(value)
            }
            (_, failure) => bail!(
                "step {number} ({name}) failed after {:.1}s: {}",
                took.as_secs_f64(),
                failure.unwrap_or_default()
            ),
        }
    }

    /// Fails the last step if its writes stalled longer than a cluster with
    /// quorum may make them wait.
    pub fn require_available(&mut self, life: &Life) -> anyhow::Result<()> {
        let limit = life.options.max_stall;
        let Some(report) = self.reports.last_mut() else {
            return Ok(());
        };
        if report.max_stall > limit {
            let failure = format!(
                "writes stalled for {:.1}s (at most {:.1}s allowed while a quorum stands)",
                report.max_stall.as_secs_f64(),
                limit.as_secs_f64()
            );
            report.failure = Some(failure.clone());
            bail!("step {} ({}) failed: {failure}", report.number, report.name);
        }
        Ok(())
    }

    /// The acknowledged writes the cluster does not serve now, leaving out
    /// those a restore was allowed to lose.
    async fn lost_writes(&self, life: &Life) -> anyhow::Result<Vec<workload::Ack>> {
        // Acknowledgements first: one that arrives after the read would look lost.
        let acks = life.writer.acks();
        let present = workload::read_back(
            &life.cluster.endpoints(),
            life.writer.prefix(),
            Duration::from_secs(30),
        )
        .await?;
        Ok(match self.restore_point {
            None => workload::missing(&acks, &present),
            Some((lost_cluster, revision)) => {
                let check = workload::check_restore(&acks, &present, lost_cluster, revision);
                [check.lost_from_backup, check.lost_elsewhere].concat()
            }
        })
    }

    /// Step 5: every instance and its disk is lost at once; the new group
    /// restores from the newest backup by itself. Accounts the loss exactly.
    pub async fn lose_everything_and_restore(&mut self, life: &Life) -> anyhow::Result<()> {
        let number = self.reports.len() + 1;
        let name = "every node lost; restored from the backup";
        life.say(&format!("step {number}: {name}"));
        let from = Instant::now();
        let progress = life.progress(number);
        let timeout = life.options.step_timeout;
        let result = tokio::time::timeout(timeout, life.restore_and_check()).await;
        drop(progress);
        let took = from.elapsed();
        let stats = workload::window(&life.writer.acks(), from, Instant::now());
        let (check, failure) = match result {
            Ok(Ok((check, restore_point))) => {
                self.restore_point = Some(restore_point);
                let failure = (!check.promise_kept()).then(|| format!(
                    "acknowledged writes the restore had to keep are missing: {} from the backup, {} written after the restore",
                    describe(&check.lost_from_backup),
                    describe(&check.lost_elsewhere)
                ));
                (Some(check), failure)
            }
            Ok(Err(error)) => (None, Some(format!("{error:#}"))),
            Err(_) => (None, Some(format!("did not finish within {timeout:?}"))),
        };
        let (lost, allowed) = check
            .as_ref()
            .map_or((0, 0), |c| (c.lost(), c.lost_after_backup.len()));
        self.known_lost = lost - allowed;
        self.reports.push(StepReport {
            number,
            name: name.to_owned(),
            took,
            acknowledged: stats.acknowledged,
            lost,
            allowed_loss: allowed,
            max_stall: stats.max_stall,
            failure: failure.clone(),
        });
        if let Some(failure) = failure {
            bail!(
                "step {number} ({name}) failed after {:.1}s: {failure}",
                took.as_secs_f64()
            );
        }
        life.say(&format!(
            "step {number} done in {:.1}s: {} writes acknowledged, longest stall {:.1}s",
            took.as_secs_f64(),
            stats.acknowledged,
            stats.max_stall.as_secs_f64()
        ));
        Ok(())
    }

    /// The summary table, one row per step.
    pub fn summary(&self) -> String {
        summary_table(&self.reports)
    }
}

/// No endpoints while `open` is false: the writer keeps retrying.
fn gated(endpoints: Endpoints, open: Arc<AtomicBool>) -> Endpoints {
    endpoints.map(move |urls| {
        if open.load(Ordering::SeqCst) {
            urls
        } else {
            Vec::new()
        }
    })
}

/// The summary table the demo ends with.
pub fn summary_table(reports: &[StepReport]) -> String {
    let width = reports
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<4} {:<width$} {:>7} {:>10} {:>12} {:>10}  result",
        "step", "", "time", "writes ok", "writes lost", "max stall"
    );
    for r in reports {
        let lost = if r.allowed_loss > 0 && r.allowed_loss == r.lost {
            format!("{} allowed", r.lost)
        } else {
            r.lost.to_string()
        };
        let _ = writeln!(
            table,
            "{:<4} {:<width$} {:>6.1}s {:>10} {:>12} {:>9.1}s  {}",
            r.number,
            r.name,
            r.took.as_secs_f64(),
            r.acknowledged,
            lost,
            r.max_stall.as_secs_f64(),
            if r.failure.is_some() { "FAILED" } else { "ok" }
        );
    }
    table
}

fn say(started: Instant, text: &str) {
    println!("[{:>6.1}s] {text}", started.elapsed().as_secs_f64());
}

/// The one member of `after` that `before` did not have, checking that no
/// second cluster formed in between.
fn same_cluster_one_newcomer(
    before: &ClusterSnapshot,
    after: &ClusterSnapshot,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        after.cluster_id == before.cluster_id,
        "the cluster id changed from {} to {}: a second cluster formed",
        before.cluster_id,
        after.cluster_id
    );
    after
        .members
        .iter()
        .find(|m| before.members.iter().all(|b| b.name != m.name))
        .map(|m| m.name.clone())
        .context("no new member joined")
}

fn names(snapshot: &ClusterSnapshot) -> String {
    let mut names: Vec<&str> = snapshot.members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.join(", ")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lost: usize, allowed_loss: usize, failure: Option<&str>) -> StepReport {
        StepReport {
            number: 5,
            name: "restored".to_owned(),
            took: Duration::from_secs(8),
            acknowledged: 15,
            lost,
            allowed_loss,
            max_stall: Duration::from_secs(6),
            failure: failure.map(str::to_owned),
        }
    }

    #[test]
    fn a_summary_row_marks_a_loss_the_restore_was_allowed() {
        let table = summary_table(&[row(3, 3, None)]);
        assert!(table.contains("3 allowed"), "{table}");
        assert!(table.trim_end().ends_with("ok"), "{table}");
    }

    #[test]
    fn a_summary_row_with_a_loss_beyond_the_allowed_says_failed() {
        let table = summary_table(&[row(4, 3, Some("1 write from the backup missing"))]);
        assert!(!table.contains("allowed"), "{table}");
        assert!(table.trim_end().ends_with("FAILED"), "{table}");
    }
}
