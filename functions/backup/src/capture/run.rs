//! One capture run: watch every change after the newest stored revision and
//! flush it to the bucket as segments, for about a minute, then hand over to
//! the next run.
//!
//! Runs are started every minute and each watches a little longer than that,
//! so two may overlap for a few seconds: both write the same revisions, under
//! keys named by their ranges, and the restore's plan takes each revision once
//! ([`etcd_aws_core::backup::replay`]). A run killed mid-segment loses nothing
//! stored: the next one starts from where a restore could reach.
//!
//! Where a run starts is the restore's own rule: the newest snapshot of this
//! cluster plus the segments that follow it without a gap
//! ([`replay::plan`]). A cluster with no snapshot yet (new, or just restored)
//! gets one first; history etcd compacted before it was stored (a gap) is
//! closed by a snapshot at once, loudly; and once more revisions follow the
//! newest snapshot than the restore should replay, a snapshot is taken beside
//! the watch.
//!
//! Those snapshots delete nothing ([`take_backup`]): the capture's role may
//! write snapshots and segments, and delete only segments (the small ones a
//! merge replaced), never a snapshot. The backup run thins them later.

use etcd_aws_core::clock;
use etcd_aws_core::etcd::ids::ClusterId;
use std::collections::HashMap;
use std::time::Duration;

use etcd_aws_core::backup::replay::{self, Lineage, ReplayTarget};
use etcd_aws_core::backup::segment::{LeaseGrant, GONE_LEASE_TTL, UNKNOWN_LEASE_TTL};
use etcd_aws_core::contract::jobs::CaptureAnswer;
use etcd_aws_core::contract::metrics::fields;
use etcd_aws_core::contract::metrics::{Metric, Unit};
use etcd_aws_core::contract::{events, metrics};
use etcd_aws_io::aws::discovery::DiscoveryError;
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use etcd_aws_io::etcd::changes::{ChangeWatch, Watched};
use etcd_aws_io::etcd::error::EtcdError;
use etcd_aws_io::logging;
use etcd_aws_io::tls::ClientTlsError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::capture::merge::RunLog;
use crate::capture::pending::{FlushPolicy, Pending};
use crate::config::{BackupConfig, ConfigError};
use crate::endpoints::live_endpoints;
use crate::run::{take_backup, BackupError, BackupOutcome};

/// How a capture run behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSettings {
    /// How long one run watches. Runs start every minute: a little over a
    /// minute makes consecutive runs overlap instead of leaving a pause.
    pub duration: Duration,
    pub flush: FlushPolicy,
    /// A snapshot is taken once this many revisions follow the newest one,
    /// so a restore never replays more.
    pub snapshot_after_revisions: i64,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(70),
            flush: FlushPolicy {
                delay: Duration::from_secs(1),
                max_bytes: 4 * 1024 * 1024,
            },
            snapshot_after_revisions: 100_000,
        }
    }
}

/// How often held changes are checked for being due while nothing arrives.
const TICK: Duration = Duration::from_millis(100);
/// Bound on storing one segment.
const PUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before retrying a failed flush, or a lost watch.
const RETRY: Duration = Duration::from_millis(500);
/// A run merges what it stored once it holds this much (and at its end).
const MERGE_AT_BYTES: usize = 64 * 1024 * 1024;
/// How long a run keeps trying to store what it holds once its time is up:
/// the next run captures the same revisions again from etcd's history, so
/// waiting longer only holds back its successor.
const FINAL_FLUSH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the group's instances: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("group {0} has no live instance with a private IP; nothing to capture")]
    NoInstances(String),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    ClientTls(#[from] ClientTlsError),
    #[error(transparent)]
    Store(#[from] BackupStoreError),
    #[error("the capture needed a snapshot ({reason}) and could not take one: {source}")]
    Snapshot {
        reason: &'static str,
        #[source]
        source: Box<BackupError>,
    },
    #[error("revisions {first}..={last} were captured but could not be stored before the run's deadline ({error}); the next run captures them again while etcd still holds them")]
    Unflushed {
        first: i64,
        last: i64,
        error: String,
    },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureOutcome {
    pub cluster_id: ClusterId,
    /// The last revision stored when the run started, and when it ended.
    pub started_after: i64,
    pub stored_until: i64,
    pub segments: usize,
    pub revisions: usize,
    /// History compacted before it was stored, each closed by a snapshot.
    pub gaps: usize,
    /// Keys of the snapshots the run took or found current.
    pub snapshots: Vec<String>,
    /// The longest a captured change waited for its flush.
    pub loss_window: Duration,
    /// The segment that replaced the run's small ones, when it stored more than one.
    pub merged: Option<String>,
    pub emf_line: String,
}

impl CaptureOutcome {
    /// The job's answer ([`CaptureAnswer`]).
    pub fn answer(&self) -> CaptureAnswer {
        CaptureAnswer {
            cluster_id: self.cluster_id,
            after: self.started_after,
            until: self.stored_until,
            segments: self.segments,
            revisions: self.revisions,
            gaps: self.gaps,
            snapshots: self.snapshots.clone(),
            loss_window_seconds: self.loss_window.as_secs_f64(),
        }
    }
}

/// Captures changes until `settings.duration` has passed or `deadline` (the
/// invocation's own) comes, whichever is first.
pub async fn run_capture(
    config: &BackupConfig,
    settings: &CaptureSettings,
    sdk: &aws_config::SdkConfig,
    deadline: Instant,
) -> Result<CaptureOutcome, CaptureError> {
    config.validate()?;
    let ends = deadline.min(Instant::now() + settings.duration);
    let access = config.tls.access(sdk, config.etcd_timeouts).await?;
    let connection = Connection::open(config, sdk, &access, settings.duration).await?;
    let store = BackupStore::new(sdk, &config.bucket, &config.prefix);
    let mut capture = Capture {
        config: config.clone(),
        settings: *settings,
        sdk: sdk.clone(),
        cluster_id: connection.cluster_id,
        pending: Pending::new(0),
        snapshot_revision: 0,
        lease_ttls: HashMap::new(),
        snapshot_task: None,
        next_flush: Instant::now(),
        last_flush_error: None,
        stored: RunLog::default(),
        outcome: CaptureOutcome {
            cluster_id: connection.cluster_id,
            started_after: 0,
            stored_until: 0,
            segments: 0,
            revisions: 0,
            gaps: 0,
            snapshots: Vec::new(),
            loss_window: Duration::ZERO,
            merged: None,
            emf_line: String::new(),
        },
        store,
    };
    capture.find_start().await?;
    tracing::info!(
        cluster_id = %capture.cluster_id,
        after = capture.pending.after(),
        snapshot_revision = capture.snapshot_revision,
        until = ?ends.saturating_duration_since(Instant::now()),
        "capturing changes"
    );
    capture.watch_until(ends, Some(connection), &access).await?;
    capture.finish(deadline).await
}

/// The clients of one run: one that watches (its gRPC deadline is the
/// run's length, which etcd enforces on the stream) and one for short calls.
struct Connection {
    watcher: EtcdAdmin,
    admin: EtcdAdmin,
    cluster_id: ClusterId,
}

impl Connection {
    async fn open(
        config: &BackupConfig,
        sdk: &aws_config::SdkConfig,
        access: &EtcdAccess,
        duration: Duration,
    ) -> Result<Connection, CaptureError> {
        let endpoints = live_endpoints(config, sdk, access).await?;
        if endpoints.is_empty() {
            return Err(CaptureError::NoInstances(config.group_name.clone()));
        }
        let mut admin = EtcdAdmin::connect(&endpoints, access).await?;
        let (cluster_id, _) = admin.members().await?;
        let watching = access.with_timeouts(EtcdTimeouts {
            connect: access.timeouts.connect,
            request: duration + Duration::from_secs(30),
        });
        let watcher = EtcdAdmin::connect(&endpoints, &watching).await?;
        Ok(Connection {
            watcher,
            admin,
            cluster_id,
        })
    }
}

struct Capture {
    config: BackupConfig,
    settings: CaptureSettings,
    sdk: aws_config::SdkConfig,
    store: BackupStore,
    cluster_id: ClusterId,
    pending: Pending,
    /// The revision of the newest snapshot of this cluster (a lower bound of
    /// what it holds).
    snapshot_revision: i64,
    lease_ttls: HashMap<i64, i64>,
    snapshot_task: Option<JoinHandle<Result<BackupOutcome, BackupError>>>,
    /// No flush is tried before this (a failed one waits [`RETRY`]).
    next_flush: Instant,
    last_flush_error: Option<String>,
    /// What the run stored, to be merged into one segment.
    stored: RunLog,
    outcome: CaptureOutcome,
}

/// How a watch ended.
enum WatchEnd {
    /// The run's time is up.
    TimeUp,
    /// Watch again from what is held (the member went away, the stream closed).
    Lost,
}

impl Capture {
    /// Where the restore's plan reaches today: the newest snapshot of this
    /// cluster and the segments that follow it without a gap. With no snapshot
    /// of this cluster, one is taken first.
    async fn find_start(&mut self) -> Result<(), CaptureError> {
        let snapshot = match self.store.pointer().await {
            Ok(Some(newest)) if newest.cluster_id == self.cluster_id => Some(newest.revision),
            Ok(_) => None,
            Err(BackupStoreError::Damaged { reason, .. }) => {
                tracing::warn!(%reason, "latest.json is unreadable; taking a snapshot to start from");
                None
            }
            Err(e) => return Err(e.into()),
        };
        let snapshot = match snapshot {
            Some(revision) => revision,
            None => {
                tracing::info!(cluster_id = %self.cluster_id, "no snapshot of this cluster yet (new, or just restored): taking one to capture from");
                self.snapshot_now("no snapshot of this cluster yet").await?
            }
        };
        let segments = self.store.segments().await?;
        let reach = replay::plan(
            snapshot,
            Lineage::capture(self.cluster_id),
            &segments,
            ReplayTarget::Latest,
        );
        if reach.left_out > 0 {
            tracing::info!(cluster_id = %self.cluster_id, left_out = reach.left_out, "segments past this cluster's snapshot whose keys name another cluster (or none) are not this cluster's history: the capture starts after its own");
        }
        if let Some((first, last)) = reach.cut_off_by_gap {
            tracing::warn!(
                missing_from = first,
                held_until = last,
                "the stored segments have a hole after revision {}; capturing again from there",
                reach.until
            );
        }
        self.snapshot_revision = snapshot;
        self.pending = Pending::new(reach.until);
        self.outcome.started_after = reach.until;
        Ok(())
    }

    async fn watch_until(
        &mut self,
        ends: Instant,
        mut connection: Option<Connection>,
        access: &EtcdAccess,
    ) -> Result<(), CaptureError> {
        loop {
            let mut open = match connection.take() {
                Some(open) => open,
                None => {
                    match Connection::open(&self.config, &self.sdk, access, self.settings.duration)
                        .await
                    {
                        Ok(open) => open,
                        Err(error) => {
                            tracing::warn!(%error, "cannot reach the cluster; retrying");
                            if self.pause(ends).await {
                                return Ok(());
                            }
                            continue;
                        }
                    }
                }
            };
            if open.cluster_id != self.cluster_id {
                tracing::warn!(was = %self.cluster_id, now = %open.cluster_id, "another cluster answers (restored meanwhile?): ending this run; the next one starts from its snapshot");
                self.flush(None).await;
                return Ok(());
            }
            let from = self.pending.last_revision() + 1;
            let watch = match open.watcher.watch_changes(from).await {
                Ok(watch) => watch,
                Err(error) => {
                    tracing::warn!(%error, from, "cannot open the watch; retrying");
                    if self.pause(ends).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            match self.follow(watch, &mut open.admin, ends).await? {
                WatchEnd::TimeUp => return Ok(()),
                WatchEnd::Lost => {
                    if self.pause(ends).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn follow(
        &mut self,
        mut watch: ChangeWatch,
        admin: &mut EtcdAdmin,
        ends: Instant,
    ) -> Result<WatchEnd, CaptureError> {
        loop {
            tokio::select! {
                answer = watch.next() => match answer {
                    Ok(Watched::Changes(changes)) => {
                        let (now, seen_at_ms) = (Instant::now(), clock::now_unix_millis());
                        for (revision, change) in changes {
                            self.pending.add(revision, change, now, seen_at_ms);
                        }
                    }
                    Ok(Watched::Quiet) => {}
                    Ok(Watched::Compacted { compact_revision }) => {
                        self.flush(Some(admin)).await;
                        self.close_gap(compact_revision).await?;
                        return Ok(WatchEnd::Lost);
                    }
                    Ok(Watched::Ended { reason }) => {
                        tracing::warn!(%reason, "the watch ended; flushing what is held and watching again");
                        self.flush(None).await;
                        return Ok(WatchEnd::Lost);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the watch failed; flushing what is held and watching again");
                        self.flush(None).await;
                        return Ok(WatchEnd::Lost);
                    }
                },
                _ = tokio::time::sleep(TICK) => {}
                _ = tokio::time::sleep_until(ends) => return Ok(WatchEnd::TimeUp),
            }
            if self.pending.due(Instant::now(), &self.settings.flush) {
                self.flush(Some(admin)).await;
            }
            self.collect_snapshot().await;
        }
    }

    /// Waits [`RETRY`], flushing what is held meanwhile; `true` once the run's
    /// time is up.
    async fn pause(&mut self, ends: Instant) -> bool {
        self.flush(None).await;
        let until = (Instant::now() + RETRY).min(ends);
        tokio::time::sleep_until(until).await;
        Instant::now() >= ends
    }

    /// Stores what is held as one segment. A failure keeps it held, to be
    /// tried again after [`RETRY`].
    async fn flush(&mut self, admin: Option<&mut EtcdAdmin>) {
        if self.pending.is_empty() || Instant::now() < self.next_flush {
            return;
        }
        let leases = self.leases(admin).await;
        let Some(segment) =
            self.pending
                .segment(self.cluster_id, clock::now_unix_seconds(), leases)
        else {
            return;
        };
        let (held, waited) = self.pending.held(Instant::now());
        let stored = tokio::time::timeout(PUT_TIMEOUT, self.store.put_segment(&segment)).await;
        let error = match stored {
            Ok(Ok(reference)) => {
                self.pending.flushed(segment.last);
                self.outcome.segments += 1;
                self.outcome.revisions += held;
                self.outcome.stored_until = segment.last;
                self.outcome.loss_window = self.outcome.loss_window.max(waited);
                self.last_flush_error = None;
                tracing::debug!(key = %reference.key, first = segment.first, last = segment.last, revisions = held, "segment stored");
                self.stored.record(&segment, reference);
                self.maybe_snapshot();
                if self.stored.bytes() >= MERGE_AT_BYTES {
                    self.merge_stored().await;
                }
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("storing the segment took over {PUT_TIMEOUT:?}"),
        };
        tracing::warn!(first = segment.first, last = segment.last, %error, "cannot store the segment; it stays held and is tried again");
        self.last_flush_error = Some(error);
        self.next_flush = Instant::now() + RETRY;
    }

    /// Stores what the run stored as one segment, then deletes the small
    /// ones it replaces. A failure leaves them: they hold the same revisions.
    async fn merge_stored(&mut self) {
        let Some((merged, replaced)) = self
            .stored
            .merge(self.cluster_id, clock::now_unix_seconds())
        else {
            return;
        };
        match self.store.put_segment(&merged).await {
            Ok(reference) => {
                tracing::info!(key = %reference.key, first = merged.first, last = merged.last, replaced = replaced.len(), "merged the run's segments into one");
                for small in replaced {
                    if let Err(error) = self.store.delete_segment(&small).await {
                        tracing::warn!(key = %small.key, %error, "cannot delete a merged segment; the merged one covers it, retention deletes it later");
                    }
                }
                self.outcome.merged = Some(reference.key);
            }
            Err(error) => {
                tracing::warn!(first = merged.first, last = merged.last, %error, "cannot store the merged segment; the run's segments stay as they are")
            }
        }
    }

    /// The TTL of each lease the held puts name: asked once per lease and run.
    async fn leases(&mut self, mut admin: Option<&mut EtcdAdmin>) -> Vec<LeaseGrant> {
        let mut leases = Vec::new();
        for id in self.pending.lease_ids() {
            let ttl_seconds = match (self.lease_ttls.get(&id), admin.as_deref_mut()) {
                (Some(ttl), _) => *ttl,
                (None, Some(admin)) => match admin.lease_granted_ttl(id).await {
                    Ok(Some(ttl)) => *self.lease_ttls.entry(id).or_insert(ttl),
                    Ok(None) => *self.lease_ttls.entry(id).or_insert(GONE_LEASE_TTL),
                    Err(error) => {
                        tracing::warn!(lease = id, %error, ttl = UNKNOWN_LEASE_TTL, "cannot ask a lease's TTL; recording a default");
                        UNKNOWN_LEASE_TTL
                    }
                },
                (None, None) => UNKNOWN_LEASE_TTL,
            };
            leases.push(LeaseGrant { id, ttl_seconds });
        }
        leases
    }

    /// etcd compacted history the capture had not stored: a restore could
    /// not replay past the hole, so a snapshot closes it now.
    async fn close_gap(&mut self, compact_revision: i64) -> Result<(), CaptureError> {
        self.outcome.gaps += 1;
        tracing::error!(
            event = events::CAPTURE_GAP,
            stored_until = self.pending.after(),
            compacted_until = compact_revision,
            "HISTORY GAP: etcd compacted revisions {}..={compact_revision} before the capture stored them (the capture was stopped longer than etcd keeps history); taking a full snapshot now to close the gap",
            self.pending.after() + 1
        );
        let revision = self
            .snapshot_now("history compacted before it was captured")
            .await?;
        self.snapshot_revision = revision;
        self.pending = Pending::new(revision);
        Ok(())
    }

    async fn snapshot_now(&mut self, reason: &'static str) -> Result<i64, CaptureError> {
        let outcome = take_backup(&self.config, &self.sdk)
            .await
            .map_err(|source| CaptureError::Snapshot {
                reason,
                source: Box::new(source),
            })?;
        let manifest = outcome.action.manifest();
        self.outcome.snapshots.push(manifest.key.clone());
        Ok(manifest.revision)
    }

    /// Starts a snapshot beside the watch once the revisions after the newest
    /// snapshot pass the bound (one at a time).
    fn maybe_snapshot(&mut self) {
        let since = self.pending.after() - self.snapshot_revision;
        if since < self.settings.snapshot_after_revisions || self.snapshot_task.is_some() {
            return;
        }
        tracing::info!(
            revisions_since_snapshot = since,
            bound = self.settings.snapshot_after_revisions,
            "the segments since the newest snapshot passed the bound: taking a snapshot"
        );
        let (config, sdk) = (self.config.clone(), self.sdk.clone());
        self.snapshot_task = Some(tokio::spawn(
            async move { take_backup(&config, &sdk).await },
        ));
    }

    /// Takes in a snapshot started beside the watch once it has ended.
    async fn collect_snapshot(&mut self) {
        if !self
            .snapshot_task
            .as_ref()
            .is_some_and(JoinHandle::is_finished)
        {
            return;
        }
        if let Some(task) = self.snapshot_task.take() {
            // The task has finished: this does not wait.
            let output = task.await.ok();
            self.snapshot_taken(output);
        }
    }

    fn snapshot_taken(&mut self, output: Option<Result<BackupOutcome, BackupError>>) {
        match output {
            Some(Ok(outcome)) => {
                let manifest = outcome.action.manifest();
                self.snapshot_revision = self.snapshot_revision.max(manifest.revision);
                self.outcome.snapshots.push(manifest.key.clone());
            }
            Some(Err(error)) => {
                tracing::error!(%error, "the snapshot past the segment bound failed; the next flush tries again")
            }
            None => tracing::error!("the snapshot past the segment bound did not finish"),
        }
    }

    /// Flushes what is left, waits for a snapshot still running, reports.
    async fn finish(mut self, deadline: Instant) -> Result<CaptureOutcome, CaptureError> {
        let give_up = deadline.min(Instant::now() + FINAL_FLUSH);
        while !self.pending.is_empty() && Instant::now() < give_up {
            self.next_flush = self.next_flush.min(Instant::now());
            self.flush(None).await;
            if !self.pending.is_empty() {
                tokio::time::sleep_until((Instant::now() + RETRY).min(give_up)).await;
            }
        }
        self.merge_stored().await;
        if let Some(task) = self.snapshot_task.take() {
            let output = tokio::time::timeout_at(deadline, task)
                .await
                .ok()
                .and_then(Result::ok);
            self.snapshot_taken(output);
        }
        let (lag, _) = self.pending.held(Instant::now());
        self.outcome.stored_until = self.pending.after();
        self.outcome.emf_line = logging::print_metrics_with(
            &self.config.group_name,
            &[
                Metric::new(
                    metrics::CAPTURE_LOSS_WINDOW,
                    Unit::Seconds,
                    self.outcome.loss_window.as_secs_f64(),
                ),
                Metric::new(metrics::CAPTURE_LAG, Unit::Count, lag as u64),
                Metric::new(metrics::CAPTURE_GAPS, Unit::Count, self.outcome.gaps as u64),
            ],
            &[
                (fields::CAPTURE_SEGMENTS, self.outcome.segments.into()),
                (fields::CAPTURE_REVISIONS, self.outcome.revisions.into()),
            ],
        );
        tracing::info!(
            after = self.outcome.started_after,
            until = self.outcome.stored_until,
            segments = self.outcome.segments,
            revisions = self.outcome.revisions,
            gaps = self.outcome.gaps,
            loss_window = ?self.outcome.loss_window,
            "capture run ended"
        );
        if lag > 0 {
            return Err(CaptureError::Unflushed {
                first: self.pending.after() + 1,
                last: self.pending.last_revision(),
                error: self
                    .last_flush_error
                    .unwrap_or_else(|| "no time left".into()),
            });
        }
        Ok(self.outcome)
    }
}
