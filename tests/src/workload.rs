//! A steady client load and the checker of what it was promised: a writer
//! puts one new key at a time and retries it until the cluster acknowledges
//! it (as a standard etcd client does across a changing endpoint list), and
//! records every acknowledgement; the checker reads the keys back and names
//! each acknowledged write that is missing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use etcd_client::{Client, GetOptions};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::lock;
use crate::sim_cluster::Endpoints;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Keys are `<prefix>/<sequence>`; the checker reads this prefix back.
    pub prefix: String,
    /// Pause between one acknowledged write and the next.
    pub interval: Duration,
    /// Pause before retrying a write that failed.
    pub retry_delay: Duration,
    /// Bounds on the whole run, so a forgotten writer stops by itself.
    pub max_writes: u64,
    pub max_duration: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            prefix: "workload".to_owned(),
            interval: Duration::from_millis(50),
            retry_delay: Duration::from_millis(100),
            max_writes: 50_000,
            max_duration: Duration::from_secs(600),
        }
    }
}

/// One write the cluster acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub sequence: u64,
    pub key: String,
    /// The revision the acknowledging member reported for the put.
    pub revision: i64,
    /// Which cluster acknowledged it: after a restore the revisions of the new
    /// cluster overlap the old one's, so revisions compare only within one.
    pub cluster_id: u64,
    /// The member that answered.
    pub member_id: u64,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Record {
    acks: Vec<Ack>,
    failures: Failures,
}

/// A writer's attempts that failed and were retried: not losses, since
/// nothing was promised for them, but the last one's error explains a stall.
#[derive(Debug, Default, Clone)]
pub struct Failures {
    pub attempts: u64,
    pub last_error: Option<String>,
}

impl Failures {
    pub fn record(&mut self, error: &anyhow::Error) {
        self.attempts += 1;
        self.last_error = Some(format!("{error:#}"));
    }
}

/// A running writer; dropping it stops the writes.
pub struct Writer {
    record: Arc<Mutex<Record>>,
    prefix: String,
    started: Instant,
    task: JoinHandle<()>,
}

/// An etcd client's timeouts: fail over quickly from a member that is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

impl Writer {
    pub fn start(endpoints: Endpoints, options: WriterOptions) -> Writer {
        let record = Arc::new(Mutex::new(Record::default()));
        let started = Instant::now();
        let task = tokio::spawn(write_steadily(
            endpoints,
            options.clone(),
            Arc::clone(&record),
        ));
        Writer {
            record,
            prefix: options.prefix,
            started,
            task,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Every acknowledged write so far, in order.
    pub fn acks(&self) -> Vec<Ack> {
        lock(&self.record).acks.clone()
    }

    pub fn acknowledged(&self) -> usize {
        lock(&self.record).acks.len()
    }

    pub fn last_ack(&self) -> Option<Ack> {
        lock(&self.record).acks.last().cloned()
    }

    /// Attempts that failed and were retried (not losses: nothing was promised).
    pub fn failed_attempts(&self) -> u64 {
        lock(&self.record).failures.attempts
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.record).failures.last_error.clone()
    }

    /// How long the writer has gone without an acknowledgement.
    pub fn current_stall(&self) -> Duration {
        let last = lock(&self.record).acks.last().map(|a| a.at);
        last.unwrap_or(self.started).elapsed()
    }

    /// A cheap, detached view of (acknowledged so far, current stall), for
    /// progress lines.
    pub fn ack_counter(&self) -> impl Fn() -> (usize, Duration) + Send + 'static {
        let record = Arc::clone(&self.record);
        let started = self.started;
        move || {
            let record = lock(&record);
            let last = record.acks.last().map_or(started, |a| a.at);
            (record.acks.len(), last.elapsed())
        }
    }

    /// Waits until the writer has `count` more acknowledgements than now.
    pub async fn wait_for_more(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        wait_for_acknowledgements(|| self.acknowledged(), count, timeout, || self.last_error())
            .await
    }
}

/// Waits until a writer whose acknowledgements `acknowledged` counts has
/// `more` than now; the error names `last_error`.
pub async fn wait_for_acknowledgements(
    acknowledged: impl Fn() -> usize,
    more: usize,
    timeout: Duration,
    last_error: impl Fn() -> Option<String>,
) -> anyhow::Result<()> {
    let target = acknowledged() + more;
    let deadline = Instant::now() + timeout;
    while acknowledged() < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the writer got no {more} acknowledgements in {timeout:?} (last error: {})",
            last_error().unwrap_or_else(|| "none".to_owned())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn write_steadily(endpoints: Endpoints, options: WriterOptions, record: Arc<Mutex<Record>>) {
    let deadline = Instant::now() + options.max_duration;
    let mut client: Option<Client> = None;
    for sequence in 0..options.max_writes {
        let key = format!("{}/{sequence:08}", options.prefix);
        // The same key and value on every attempt: a retry after an ambiguous
        // failure (the put committed, its answer was lost) changes nothing.
        loop {
            if Instant::now() >= deadline {
                return;
            }
            match put(&mut client, &endpoints, &key, sequence).await {
                Ok((revision, cluster_id, member_id)) => {
                    lock(&record).acks.push(Ack {
                        sequence,
                        key,
                        revision,
                        cluster_id,
                        member_id,
                        at: Instant::now(),
                    });
                    break;
                }
                Err(error) => {
                    // Reconnect: the endpoints may have changed under the client.
                    client = None;
                    lock(&record).failures.record(&error);
                    tokio::time::sleep(options.retry_delay).await;
                }
            }
        }
        tokio::time::sleep(options.interval).await;
    }
}

async fn put(
    client: &mut Option<Client>,
    endpoints: &Endpoints,
    key: &str,
    sequence: u64,
) -> anyhow::Result<(i64, u64, u64)> {
    let client = connected(client, endpoints).await?;
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.put(key, sequence.to_string(), None))
        .await
        .context("the put timed out")??;
    let header = answer.header().context("the put answer has no header")?;
    Ok((header.revision(), header.cluster_id(), header.member_id()))
}

/// A writer's client, connected when there is none (a writer drops it
/// after a failed call).
pub async fn connected<'a>(
    client: &'a mut Option<Client>,
    endpoints: &Endpoints,
) -> anyhow::Result<&'a mut Client> {
    Ok(match client {
        Some(client) => client,
        None => client.insert(connect(endpoints).await?),
    })
}

/// A client over `endpoints` with a writer's short timeouts.
pub async fn connect(endpoints: &Endpoints) -> anyhow::Result<Client> {
    let urls = endpoints.urls();
    anyhow::ensure!(!urls.is_empty(), "no node to connect to");
    let options = endpoints.connect_options(CONNECT_TIMEOUT, REQUEST_TIMEOUT);
    Ok(
        tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(urls, Some(options)))
            .await
            .context("connecting timed out")??,
    )
}

/// Acknowledgements and the longest wait for one, within a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStats {
    pub acknowledged: usize,
    /// The longest stretch of the window without an acknowledgement.
    pub max_stall: Duration,
}

/// The writes acknowledged in `[from, to)` and the longest gap between the
/// window's start, its acknowledgements and its end.
pub fn window(acks: &[Ack], from: Instant, to: Instant) -> WindowStats {
    let times: Vec<Instant> = acks
        .iter()
        .map(|a| a.at)
        .filter(|at| *at >= from && *at < to)
        .collect();
    WindowStats {
        acknowledged: times.len(),
        max_stall: longest_gap(&times, from, to),
    }
}

/// The longest stretch of `[from, to]` without one of `times` (sorted, all
/// inside the window): what a writer waited at the longest.
pub fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    std::iter::once(from)
        .chain(times.iter().copied())
        .zip(times.iter().copied().chain(std::iter::once(to)))
        .map(|(earlier, later)| later.saturating_duration_since(earlier))
        .max()
        .unwrap_or_default()
}

/// The keys under `prefix` that the cluster serves now (a linearizable read).
pub async fn present_keys(endpoints: &Endpoints, prefix: &str) -> anyhow::Result<HashSet<String>> {
    let mut client = connect(endpoints).await?;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(
            format!("{prefix}/"),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ),
    )
    .await
    .context("reading the written keys back timed out")??;
    Ok(answer
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect())
}

/// Reads the keys back, retrying for up to `timeout` while the cluster settles.
pub async fn read_back(
    endpoints: &Endpoints,
    prefix: &str,
    timeout: Duration,
) -> anyhow::Result<HashSet<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        match present_keys(endpoints, prefix).await {
            Ok(keys) => return Ok(keys),
            Err(error) if Instant::now() >= deadline => {
                return Err(error.context(format!("cannot read the written keys in {timeout:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Acknowledged writes the cluster no longer serves.
pub fn missing(acks: &[Ack], present: &HashSet<String>) -> Vec<Ack> {
    acks.iter()
        .filter(|a| !present.contains(&a.key))
        .cloned()
        .collect()
}

/// What a restore from a backup kept, and what it lost, of the acknowledged writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreCheck {
    /// Acknowledged by the lost cluster at or below the backup's revision, and present.
    pub kept: usize,
    /// Acknowledged by the lost cluster after the backup: the loss a restore
    /// is allowed, reported exactly.
    pub lost_after_backup: Vec<Ack>,
    /// Acknowledged at or below the backup's revision yet missing: a broken promise.
    pub lost_from_backup: Vec<Ack>,
    /// Acknowledged by any other cluster (the restored one) yet missing: a broken promise.
    pub lost_elsewhere: Vec<Ack>,
}

impl RestoreCheck {
    pub fn promise_kept(&self) -> bool {
        self.lost_from_backup.is_empty() && self.lost_elsewhere.is_empty()
    }

    pub fn lost(&self) -> usize {
        self.lost_after_backup.len() + self.lost_from_backup.len() + self.lost_elsewhere.len()
    }
}

/// Sorts the missing acknowledged writes after a restore of a backup at
/// `backup_revision` taken from cluster `lost_cluster_id`.
pub fn check_restore(
    acks: &[Ack],
    present: &HashSet<String>,
    lost_cluster_id: u64,
    backup_revision: i64,
) -> RestoreCheck {
    let mut check = RestoreCheck::default();
    for ack in acks {
        let in_backup = ack.cluster_id == lost_cluster_id && ack.revision <= backup_revision;
        match (present.contains(&ack.key), in_backup) {
            (true, true) => check.kept += 1,
            (true, false) => {}
            (false, true) => check.lost_from_backup.push(ack.clone()),
            (false, false) if ack.cluster_id == lost_cluster_id => {
                check.lost_after_backup.push(ack.clone())
            }
            (false, false) => check.lost_elsewhere.push(ack.clone()),
        }
    }
    check
}

/// "k/00000012..k/00000020 (revisions 30..38)" for a run of acknowledged writes.
pub fn describe(acks: &[Ack]) -> String {
    match (acks.first(), acks.last()) {
        (Some(first), Some(last)) if acks.len() > 1 => format!(
            "{} writes, {}..{} (revisions {}..{})",
            acks.len(),
            first.key,
            last.key,
            first.revision,
            last.revision
        ),
        (Some(only), _) => format!(
            "1 write, {} (revision {} of cluster {:x}, acknowledged by member {:x})",
            only.key, only.revision, only.cluster_id, only.member_id
        ),
        _ => "no writes".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(sequence: u64, revision: i64, cluster_id: u64, at: Instant) -> Ack {
        Ack {
            sequence,
            key: format!("w/{sequence:08}"),
            revision,
            cluster_id,
            member_id: 1,
            at,
        }
    }

    fn keys(acks: &[&Ack]) -> HashSet<String> {
        acks.iter().map(|a| a.key.clone()).collect()
    }

    #[test]
    fn a_window_counts_only_the_acknowledgements_inside_it() {
        let t = Instant::now();
        let acks = [
            ack(0, 1, 1, t),
            ack(1, 2, 1, t + Duration::from_secs(1)),
            ack(2, 3, 1, t + Duration::from_secs(5)),
        ];
        let stats = window(
            &acks,
            t + Duration::from_millis(500),
            t + Duration::from_secs(5),
        );
        assert_eq!(stats.acknowledged, 1);
    }

    #[test]
    fn a_window_stall_runs_from_its_start_to_the_first_acknowledgement() {
        let t = Instant::now();
        let acks = [ack(0, 1, 1, t + Duration::from_secs(3))];
        let stats = window(&acks, t, t + Duration::from_secs(4));
        assert_eq!(stats.max_stall, Duration::from_secs(3));
    }

    #[test]
    fn a_window_without_acknowledgements_stalls_for_its_whole_length() {
        let t = Instant::now();
        let stats = window(&[], t, t + Duration::from_secs(7));
        assert_eq!(
            stats,
            WindowStats {
                acknowledged: 0,
                max_stall: Duration::from_secs(7)
            }
        );
    }

    #[test]
    fn missing_names_exactly_the_acknowledged_writes_not_served() {
        let t = Instant::now();
        let acks = [ack(0, 1, 1, t), ack(1, 2, 1, t)];
        let lost = missing(&acks, &keys(&[&acks[0]]));
        assert_eq!(lost, vec![acks[1].clone()]);
    }

    #[test]
    fn a_restore_may_lose_only_the_lost_clusters_writes_after_the_backup() {
        let t = Instant::now();
        let (old, new) = (7, 9);
        let acks = [
            ack(0, 10, old, t),
            ack(1, 11, old, t),
            ack(2, 12, old, t),
            // The restored cluster's revisions start again at the backup's.
            ack(3, 12, new, t),
        ];
        let check = check_restore(&acks, &keys(&[&acks[0], &acks[1], &acks[3]]), old, 11);
        assert_eq!(check.kept, 2);
        assert_eq!(check.lost_after_backup, vec![acks[2].clone()]);
        assert!(check.promise_kept());
    }

    #[test]
    fn a_restore_that_misses_a_write_at_the_backups_revision_breaks_the_promise() {
        let t = Instant::now();
        let acks = [ack(0, 10, 7, t), ack(1, 11, 7, t)];
        let check = check_restore(&acks, &keys(&[&acks[0]]), 7, 11);
        assert_eq!(check.lost_from_backup, vec![acks[1].clone()]);
        assert!(!check.promise_kept());
    }

    #[test]
    fn a_restored_cluster_that_misses_its_own_write_breaks_the_promise() {
        let t = Instant::now();
        let acks = [ack(0, 10, 7, t), ack(1, 11, 9, t)];
        let check = check_restore(&acks, &keys(&[&acks[0]]), 7, 10);
        assert_eq!(check.lost_elsewhere, vec![acks[1].clone()]);
        assert!(!check.promise_kept());
    }
}
