//! Replaying the captured segments onto a restored data directory through a
//! private etcd: on 127.0.0.1, plaintext, on ports nobody is told of. No
//! client, peer or load balancer sees the cluster until the replay is whole;
//! the agent then starts etcd on the data directory as usual.
//!
//! Which segments, in which order, is the pure plan's
//! ([`etcd_aws_core::backup::replay::plan`]): only those of the snapshot's
//! cluster. This module reads each one (its checksum verified, and the
//! cluster it holds checked, since a segment stored before keys named the
//! cluster says so only inside), grants the leases its puts name under their
//! own ids, and applies its revisions in order, each once. A missing or
//! damaged segment, or one of another cluster, is passed over when another
//! covers its revisions; otherwise the replay stops at the last revision it
//! can prove, and says which revisions are lost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_core::backup::replay::{self, BatchLimits, Lineage, ReplayTarget};
use etcd_aws_core::backup::segment::{Change, LeaseGrant, Segment, SegmentRef, UNKNOWN_LEASE_TTL};
use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::ids::ClusterId;
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::etcd_process::{etcd_command, forward};

/// One replay transaction's bounds; the private etcd is started to accept them.
const LIMITS: BatchLimits = BatchLimits {
    max_operations: 10_000,
    max_bytes: 8 * 1024 * 1024,
};
/// Segments read ahead of the one being applied: a restore's time is mostly
/// one S3 round trip per segment when they are read one by one.
const READ_AHEAD: usize = 32;
/// The private etcd's backend quota: etcd's suggested maximum. The replay
/// applies what the lost cluster had accepted, which a snapshot taken near
/// the cluster's own quota (or holding its NOSPACE alarm) must not refuse;
/// the restored cluster runs with its own quota again, and a database past
/// it is the maintenance run's to reclaim.
const REPLAY_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// How long the private etcd may take to answer, and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The snapshot's revision: the replay applied what came after it.
    pub from: i64,
    /// The last revision the data directory now holds.
    pub until: i64,
    pub segments: usize,
    pub revisions: usize,
    /// Revisions captured but not replayed: `(first, last)`, after a missing or
    /// damaged segment, or a hole in the capture.
    pub lost: Option<(i64, i64)>,
    /// Leases revoked before the cluster serves ([`LeasePolicy::Revoke`]).
    pub leases_revoked: usize,
    /// Segments past the snapshot left out as another cluster's.
    pub left_out: usize,
}

/// Where the segments are, the etcd that applies them, and what becomes of
/// the leases the restore brings back.
pub struct SegmentReplay<'a> {
    pub store: &'a BackupStore,
    pub etcd: &'a Path,
    /// The flags the cluster runs with that shape its data (quota, compaction).
    pub etcd_args: &'a [String],
    pub lease_policy: LeasePolicy,
}

/// The snapshot a replay continues: its revision and the cluster it was
/// taken from, whose segments alone follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPoint {
    pub revision: i64,
    pub cluster_id: ClusterId,
}

/// Replays onto `data_dir` (a restored snapshot at `snapshot`, of member
/// `name`) what `segments` of the snapshot's cluster hold after it, up to
/// `target`.
pub async fn replay_segments(
    replay: &SegmentReplay<'_>,
    data_dir: &Path,
    name: &str,
    snapshot: SnapshotPoint,
    segments: &[SegmentRef],
    target: ReplayTarget,
) -> anyhow::Result<Replayed> {
    let SegmentReplay {
        store,
        etcd,
        etcd_args,
        lease_policy,
    } = *replay;
    let lineage = Lineage::restore(snapshot.cluster_id);
    let mut replayed = Replayed {
        from: snapshot.revision,
        until: snapshot.revision,
        segments: 0,
        revisions: 0,
        lost: None,
        leases_revoked: 0,
        left_out: 0,
    };
    let mut passed_over: HashSet<String> = HashSet::new();
    let mut leases: HashMap<i64, i64> = HashMap::new();
    let mut granted: HashSet<i64> = HashSet::new();
    let mut private: Option<PrivateEtcd> = None;
    let mut reads = ReadAhead::default();
    let mut plan = replay::plan(replayed.until, lineage, segments, target);
    replayed.left_out = plan.left_out;
    let mut queue: VecDeque<SegmentRef> = plan.segments.drain(..).collect();
    loop {
        let Some(next) = queue.front().cloned() else {
            replayed.lost = plan.cut_off_by_gap;
            break;
        };
        reads.start(store, queue.iter().take(READ_AHEAD));
        let segment = match reads.take(store, &next).await {
            Ok(segment) if segment.cluster_id == snapshot.cluster_id => segment,
            Ok(segment) => {
                tracing::warn!(key = %next.key, segment_cluster_id = %segment.cluster_id, snapshot_cluster_id = %snapshot.cluster_id, "passing over a segment of another cluster (stored before keys named the cluster): its revisions count another history");
                passed_over.insert(next.key.clone());
                replayed.left_out += 1;
                plan = replan(&passed_over, replayed.until, lineage, segments, target);
                queue = plan.segments.drain(..).collect();
                continue;
            }
            Err(BackupStoreError::Damaged { key, reason, .. }) => {
                tracing::error!(event = events::SEGMENTS_UNRECOVERABLE, %key, %reason, "SEGMENT DAMAGED: passing it over; the replay continues only if another segment holds its revisions");
                passed_over.insert(next.key.clone());
                plan = replan(&passed_over, replayed.until, lineage, segments, target);
                queue = plan.segments.drain(..).collect();
                continue;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot read segment {}; the restore stops rather than serve without it",
                    next.key
                )))
            }
        };
        queue.pop_front();
        if private.is_none() {
            private = Some(PrivateEtcd::start(etcd, data_dir, name, etcd_args).await?);
        }
        let admin = &mut private
            .as_mut()
            .context("the private etcd is running")?
            .admin;
        let until = plan.until.min(segment.last);
        let applied = apply(
            admin,
            &segment,
            replayed.until,
            until,
            &mut leases,
            &mut granted,
        )
        .await
        .with_context(|| format!("replaying segment {} onto the restored data", next.key))?;
        replayed.revisions += applied;
        replayed.segments += 1;
        replayed.until = until;
    }
    if lease_policy == LeasePolicy::Revoke {
        if private.is_none() {
            private = Some(PrivateEtcd::start(etcd, data_dir, name, etcd_args).await?);
        }
        let admin = &mut private
            .as_mut()
            .context("the private etcd is running")?
            .admin;
        replayed.leases_revoked = revoke_every_lease(admin)
            .await
            .context("revoking the restored leases before the cluster serves")?;
    }
    if let Some(private) = private {
        private.stop().await?;
    }
    if let Some((first, last)) = replayed.lost {
        tracing::error!(
            event = events::SEGMENTS_UNRECOVERABLE,
            first_lost = first,
            last_lost = last,
            restored_until = replayed.until,
            "REVISIONS LOST: the captured revisions {first}..={last} cannot be replayed (a segment is missing or damaged); the cluster starts from revision {}",
            replayed.until
        );
    }
    Ok(replayed)
}

/// The plan again from `until`, without the segments passed over.
fn replan(
    passed_over: &HashSet<String>,
    until: i64,
    lineage: Lineage,
    segments: &[SegmentRef],
    target: ReplayTarget,
) -> replay::ReplayPlan {
    let usable: Vec<SegmentRef> = segments
        .iter()
        .filter(|s| !passed_over.contains(&s.key))
        .cloned()
        .collect();
    replay::plan(until, lineage, &usable, target)
}

/// Revokes every lease the restored data holds, so that no holder of a lock
/// or an election the lost cluster had given away finds it again; returns
/// how many. Their keys are deleted with them, as revisions of the restored
/// cluster's own history.
async fn revoke_every_lease(admin: &mut EtcdAdmin) -> anyhow::Result<usize> {
    let leases = admin.lease_ids().await?;
    for id in &leases {
        admin.revoke_lease(*id).await?;
    }
    tracing::info!(
        event = events::LEASES_REVOKED,
        revoked = leases.len(),
        "revoked every restored lease (--restore-leases revoke): their keys are gone, and every holder of a lock or an election acquires it afresh"
    );
    Ok(leases.len())
}

/// Segment reads in flight, for the segments the plan takes next.
#[derive(Default)]
struct ReadAhead {
    reads: HashMap<String, JoinHandle<Result<Segment, BackupStoreError>>>,
}

impl ReadAhead {
    /// Starts reading those of `planned` not read yet.
    fn start<'a>(&mut self, store: &BackupStore, planned: impl Iterator<Item = &'a SegmentRef>) {
        for reference in planned {
            if !self.reads.contains_key(&reference.key) {
                let (store, reference) = (store.clone(), reference.clone());
                self.reads.insert(
                    reference.key.clone(),
                    tokio::spawn(async move { store.read_segment(&reference).await }),
                );
            }
        }
    }

    /// The segment, from its read in flight (or read now).
    async fn take(
        &mut self,
        store: &BackupStore,
        reference: &SegmentRef,
    ) -> Result<Segment, BackupStoreError> {
        match self.reads.remove(&reference.key) {
            Some(read) => match read.await {
                Ok(result) => result,
                // The read task panicked or was cancelled: read it here instead.
                Err(_) => store.read_segment(reference).await,
            },
            None => store.read_segment(reference).await,
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        for read in self.reads.values() {
            read.abort();
        }
    }
}

/// Applies the revisions of `segment` in `(after, until]`; returns how many.
async fn apply(
    admin: &mut EtcdAdmin,
    segment: &Segment,
    after: i64,
    until: i64,
    leases: &mut HashMap<i64, i64>,
    granted: &mut HashSet<i64>,
) -> anyhow::Result<usize> {
    leases.extend(segment.leases.iter().map(|l| (l.id, l.ttl_seconds)));
    for batch in replay::batches(&segment.revisions, after, until, LIMITS) {
        for change in &batch {
            if let Change::Put { lease, .. } = change {
                if *lease != 0 && granted.insert(*lease) {
                    let ttl_seconds = leases.get(lease).copied().unwrap_or(UNKNOWN_LEASE_TTL);
                    admin
                        .grant_lease(LeaseGrant {
                            id: *lease,
                            ttl_seconds,
                        })
                        .await?;
                }
            }
        }
        admin.apply(&batch).await?;
    }
    Ok(segment
        .revisions
        .iter()
        .filter(|r| r.revision > after && r.revision <= until)
        .count())
}

/// etcd on the restored data directory, reachable only from this host.
struct PrivateEtcd {
    child: Child,
    admin: EtcdAdmin,
    log: PathBuf,
    data_dir: PathBuf,
    /// Started with `--unsafe-no-fsync`: the data directory is synced once,
    /// after etcd stops, instead of at every transaction.
    unsynced: bool,
}

/// A snapshot taken while the lost cluster's NOSPACE (or CORRUPT) alarm was
/// raised carries the alarm, and etcd refuses every write while one is
/// raised. The alarm belongs to a member of the lost cluster; what the
/// replay applies, that cluster had accepted. So the replay disarms it, and
/// says so: the restored cluster raises its own alarms when it needs them.
async fn disarm_inherited_alarms(admin: &mut EtcdAdmin) -> anyhow::Result<()> {
    let alarms = admin
        .alarms()
        .await
        .context("cannot list the alarms the restored snapshot holds")?;
    for alarm in alarms {
        tracing::warn!(kind = ?alarm.kind, member = %alarm.member_id, "the restored snapshot holds an alarm of the lost cluster; disarming it to replay the changes that cluster accepted");
        admin
            .disarm(alarm)
            .await
            .context("cannot disarm the restored snapshot's alarm")?;
    }
    Ok(())
}

impl PrivateEtcd {
    async fn start(
        binary: &Path,
        data_dir: &Path,
        name: &str,
        etcd_args: &[String],
    ) -> anyhow::Result<PrivateEtcd> {
        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let log = data_dir.with_extension("replay.log");
        let output = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        // A crash mid-replay loses nothing that matters: the restore starts
        // over from the bucket. So the replay skips etcd's fsync per
        // transaction, and syncs the directory once at the end.
        let unsynced = etcd_aws_io::etcd::binary::probe(binary)
            .await
            .is_ok_and(|etcd| etcd.knows("--unsafe-no-fsync"));
        let mut command = etcd_command(binary);
        if unsynced {
            command.arg("--unsafe-no-fsync");
        }
        command
            .arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data_dir.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!("--max-txn-ops={}", LIMITS.max_operations))
            .arg(format!("--max-request-bytes={}", 2 * LIMITS.max_bytes))
            .args(etcd_args)
            // After the cluster's flags: the last one given wins.
            .arg(format!("--quota-backend-bytes={REPLAY_QUOTA_BYTES}"))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .kill_on_drop(true);
        tracing::info!(data_dir = %data_dir.display(), %client_url, log = %log.display(), "starting a private etcd to replay the captured changes");
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start etcd binary {} for the replay",
                binary.display()
            )
        })?;
        let access = EtcdAccess::plaintext(EtcdTimeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(30),
        });
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the private etcd for the replay exited with {status} before answering; its output: {}",
                    last_lines(&log)
                );
            }
            if let Ok(mut admin) =
                EtcdAdmin::connect(std::slice::from_ref(&client_url), &access).await
            {
                if admin.status().await.is_ok() {
                    disarm_inherited_alarms(&mut admin).await?;
                    return Ok(PrivateEtcd {
                        child,
                        admin,
                        log,
                        data_dir: data_dir.to_owned(),
                        unsynced,
                    });
                }
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the private etcd for the replay did not answer within {START_TIMEOUT:?}; its output: {}",
                    last_lines(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops etcd cleanly (SIGTERM): the data directory is then whole.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            forward(pid, libc::SIGTERM);
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() || status.code().is_none() => {
                if self.unsynced {
                    let dir = self.data_dir.clone();
                    tokio::task::spawn_blocking(move || sync_tree(&dir))
                        .await
                        .context("syncing the replayed data directory")?
                        .with_context(|| {
                            format!(
                                "cannot sync the replayed data in {}",
                                self.data_dir.display()
                            )
                        })?;
                }
                let _ = std::fs::remove_file(&self.log);
                Ok(())
            }
            Ok(Ok(status)) => bail!(
                "the private etcd for the replay exited with {status} when stopped; its output: {}",
                last_lines(&self.log)
            ),
            Ok(Err(e)) => Err(e).context("waiting for the private etcd to stop"),
            Err(_) => bail!("the private etcd for the replay did not stop within {STOP_TIMEOUT:?}"),
        }
    }
}

/// Every file and directory under `dir` to disk.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .context("cannot find a free port on 127.0.0.1 for the replay")?;
    Ok(listener.local_addr()?.port())
}

fn last_lines(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
