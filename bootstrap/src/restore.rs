//! Restoring the newest valid backup into an empty data directory, falling
//! back to older backups when one is damaged, then replaying the changes the
//! continuous backup captured after it ([`crate::replay`]).
//!
//! The restored cluster's revision is bumped past the highest revision the
//! bucket has ever recorded, by a margin, and marked compacted there
//! (`etcdutl snapshot restore --bump-revision --mark-compacted`;
//! [`revisions::bump`]): a watcher (Kubernetes) that saw any earlier
//! cluster's revisions, including those of a restored cluster whose restore
//! is now undone, never sees one again for another change, and one that
//! resumes from an old revision is told it was compacted and lists afresh.
//!
//! A restore tool that cannot bump (etcd 3.4's etcdctl, etcdutl before
//! 3.5.13) is refused before anything is downloaded
//! ([`revisions::check_tool`]). Restoring without the bump cannot be made
//! safe afterwards: the restored cluster would serve revision numbers the
//! lost one served (a watcher resuming from one misses changes and hears of
//! no compaction), and nothing short of a billion writes moves it past them.
//! A seed that refuses forms nothing; the cluster comes back once the node
//! runs etcd 3.5.13 or later, or `--etcdutl-binary` names such an etcdutl.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use etcd_aws_core::backup::empty_start::{self, BucketHistory, EmptyStart, EmptyStartPermit};
use etcd_aws_core::backup::lease_policy::LeasePolicy;
use etcd_aws_core::backup::manifest::BackupManifest;
use etcd_aws_core::backup::replay::ReplayTarget;
use etcd_aws_core::backup::revisions;
use etcd_aws_core::clock;
use etcd_aws_core::contract::events;
use etcd_aws_core::contract::restore_order::RestoreTarget;
use etcd_aws_core::etcd::disk;
use etcd_aws_core::etcd::launch::EtcdLaunch;
use etcd_aws_core::etcd::release::listed_flags;
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_io::data_dir;
use tokio::process::Command;

use crate::instructions::Instructions;
use crate::replay::{replay_segments, Replayed, SegmentReplay, SnapshotPoint};

/// Where the cluster's backups are, from `--backup-bucket` and friends.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub bucket: String,
    pub prefix: String,
    /// The etcdutl binary that restores a snapshot into a data directory.
    pub etcdutl: PathBuf,
    /// What becomes of the leases a restore brings back.
    pub lease_policy: LeasePolicy,
    /// How an operator's instructions are recognised and acknowledged;
    /// `None`: none is obeyed.
    pub operators: Option<OperatorOrders>,
}

/// What a node needs to obey an operator's instructions.
#[derive(Debug, Clone)]
pub struct OperatorOrders {
    /// The key whose signature makes a restore order or a start-empty
    /// permit an operator's.
    pub signing_key: String,
    /// The node role's id, which names this node's acknowledgements
    /// ([`etcd_aws_core::contract::restore_order::Acknowledger`]).
    pub node_role_id: String,
}

pub struct Restorer {
    pub store: BackupStore,
    /// Whose start-empty permit counts: an operator's, signed.
    pub instructions: Arc<Instructions>,
    pub etcdutl: PathBuf,
    /// The etcd that replays the captured changes onto the restored data.
    pub etcd: PathBuf,
    /// The flags the cluster runs with that shape its data (quota, compaction).
    pub etcd_args: Vec<String>,
    /// `--initial-cluster-token` of the restored one-member cluster, to
    /// which each restore adds its time ([`Restorer::restore_token`]).
    pub token: String,
    /// What becomes of the leases the restore brings back.
    pub lease_policy: LeasePolicy,
}

/// What a restore restored.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: BackupManifest,
    /// The snapshot's own revision (etcdutl's reading of the file).
    pub snapshot_revision: i64,
    /// The highest revision the bucket recorded before the restore, and how
    /// far the restore bumped the snapshot's revision to start past it.
    pub highest_recorded: i64,
    pub revision_bump: u64,
    pub replayed: Replayed,
}

/// What every attempt of one restore shares: how the restore tool is told
/// to bump, and what it bumps past.
struct Bumping {
    /// The flags the tool's `snapshot restore --help` lists.
    flags: std::collections::BTreeSet<String>,
    highest_recorded: i64,
}

/// One restored snapshot: its revision and the bump it got.
struct RestoredFile {
    revision: i64,
    bump: u64,
}

impl Restorer {
    /// The backups a seed may restore, newest first. A bucket that does not
    /// exist, or one without backups, means a brand-new cluster; any other
    /// failure stops the seed rather than form an empty cluster over data
    /// that might exist.
    pub async fn candidates(&self) -> anyhow::Result<Vec<BackupManifest>> {
        let store = &self.store;
        let manifests = match store.manifests().await {
            Ok(manifests) => manifests,
            Err(BackupStoreError::NoSuchBucket { bucket }) => {
                tracing::warn!(%bucket, "backup bucket does not exist: the new cluster starts empty (create the bucket, or the backups will fail)");
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(
                    "cannot read the backups; refusing to form an empty cluster over data that might exist",
                ))
            }
        };
        if manifests.is_empty() {
            tracing::info!(bucket = store.bucket(), prefix = %store.layout().snapshots_prefix(), "no backups found: this is a new cluster, it starts empty");
            return Ok(manifests);
        }
        // The manifests decide, not the pointer: a damaged pointer names no
        // backup, but an operator should hear that it is damaged.
        if let Err(BackupStoreError::Damaged { key, reason, .. }) = store.pointer().await {
            tracing::warn!(%key, %reason, "latest.json is unreadable; ignoring it and restoring the newest valid backup its manifests describe");
        }
        Ok(manifests)
    }

    /// Whether this seed, finding no snapshot, may form an empty cluster
    /// ([`empty_start::decide`]), with what the bucket holds instead.
    pub async fn empty_start(&self) -> anyhow::Result<(EmptyStart, BucketHistory)> {
        let refusing = "cannot read what the bucket holds besides snapshots; refusing to form an empty cluster over data that might exist";
        let history = match self.store.history().await {
            Ok(history) => history,
            // Said already by `candidates`: a missing bucket holds nothing.
            Err(BackupStoreError::NoSuchBucket { .. }) => {
                return Ok((EmptyStart::Form, BucketHistory::default()))
            }
            Err(error) => return Err(anyhow::Error::new(error).context(refusing)),
        };
        let permit = match self.store.empty_start_permit().await {
            Ok(Some(stored)) => {
                let object = self.store.layout().empty_start_permit_key();
                self.instructions
                    .open::<EmptyStartPermit>(&object, &stored)
                    .await
                    .context(refusing)?
            }
            Ok(None) => None,
            Err(error) => return Err(anyhow::Error::new(error).context(refusing)),
        };
        Ok((empty_start::decide(&history, permit.as_ref()), history))
    }

    /// The revision a restore "as of `time_ms`" (milliseconds since the
    /// epoch) goes back to ([`BackupStore::revision_at`]).
    pub async fn revision_at(&self, time_ms: i64) -> anyhow::Result<i64> {
        Ok(self.store.revision_at(time_ms).await?)
    }

    /// Restores what an operator's restore order asks for: exactly one
    /// backup, or a revision through the backups and the captured changes.
    pub async fn restore_target(
        &self,
        candidates: &[BackupManifest],
        launch: &EtcdLaunch,
        target: &RestoreTarget,
    ) -> anyhow::Result<Restored> {
        match target {
            RestoreTarget::Revision(revision) => {
                self.restore(candidates, launch, ReplayTarget::Revision(*revision))
                    .await
            }
            RestoreTarget::Backup(key) => {
                let manifest = candidates.iter().find(|m| &m.key == key).with_context(|| {
                    format!(
                        "the restore order names backup s3://{}/{key}, which has no manifest; run the restore command again with another backup",
                        self.store.bucket()
                    )
                })?;
                staged(launch, async |staging| {
                    self.restore_exactly(manifest, staging).await
                })
                .await
            }
        }
    }

    /// Restores this one backup and nothing after it.
    async fn restore_exactly(
        &self,
        manifest: &BackupManifest,
        launch: &EtcdLaunch,
    ) -> anyhow::Result<Restored> {
        let bumping = self.bumping(std::slice::from_ref(manifest)).await?;
        let snapshot = restore_file_path(launch)?;
        tracing::info!(key = %manifest.key, revision = manifest.revision, "restoring exactly this backup, as the restore order asks");
        match self
            .try_one(manifest, &snapshot, launch, ReplayTarget::Latest, &bumping)
            .await
        {
            Ok(file) => {
                self.log_restored(manifest, &file, &bumping);
                // Nothing captured after it is replayed; the leases are
                // dealt with as after any restore.
                let replayed = replay_segments(
                    &self.segment_replay(),
                    &launch.data_dir,
                    &launch.name,
                    SnapshotPoint {
                        revision: file.revision,
                        cluster_id: manifest.cluster_id,
                    },
                    &[],
                    ReplayTarget::Latest,
                )
                .await?;
                Ok(Restored {
                    manifest: manifest.clone(),
                    snapshot_revision: file.revision,
                    highest_recorded: bumping.highest_recorded,
                    revision_bump: file.bump,
                    replayed,
                })
            }
            Err(RestoreAttempt::Damaged(reason)) => {
                tracing::error!(event = events::BACKUP_DAMAGED, key = %manifest.key, %reason, "BACKUP DAMAGED: the backup the restore order names cannot be restored");
                bail!("backup {} cannot be restored: {reason}; run the restore command again with another backup", manifest.key)
            }
            // Only a restore to a revision refuses a snapshot past it.
            Err(RestoreAttempt::PastTarget(revision)) => {
                bail!(
                    "backup {} holds revision {revision}, past what was asked",
                    manifest.key
                )
            }
            Err(RestoreAttempt::Fatal(e)) => Err(e),
        }
    }

    /// Restores the first backup of `candidates` (newest first) that downloads,
    /// verifies and restores cleanly and is not past `target`, then replays
    /// the captured changes after it up to `target`.
    pub async fn restore(
        &self,
        candidates: &[BackupManifest],
        launch: &EtcdLaunch,
        target: ReplayTarget,
    ) -> anyhow::Result<Restored> {
        staged(launch, async |staging| {
            self.restore_and_replay(candidates, staging, target).await
        })
        .await
    }

    async fn restore_and_replay(
        &self,
        candidates: &[BackupManifest],
        launch: &EtcdLaunch,
        target: ReplayTarget,
    ) -> anyhow::Result<Restored> {
        let bumping = self.bumping(candidates).await?;
        let snapshot = restore_file_path(launch)?;
        let usable = candidates.iter().filter(|m| match target {
            ReplayTarget::Latest => true,
            // A manifest's revision is a lower bound of its snapshot's.
            ReplayTarget::Revision(revision) => m.revision <= revision,
        });
        for (index, manifest) in usable.enumerate() {
            tracing::info!(key = %manifest.key, revision = manifest.revision, "restoring backup");
            match self
                .try_one(manifest, &snapshot, launch, target, &bumping)
                .await
            {
                Ok(file) => {
                    if index > 0 {
                        tracing::warn!(event = events::OLDER_BACKUP_RESTORED, key = %manifest.key, skipped = index, "restored an OLDER backup because the newer ones are damaged or past the target; the captured changes after revision {} are replayed where they exist", file.revision);
                    }
                    self.log_restored(manifest, &file, &bumping);
                    let from = SnapshotPoint {
                        revision: file.revision,
                        cluster_id: manifest.cluster_id,
                    };
                    let replayed = self.replay(launch, from, target).await?;
                    return Ok(Restored {
                        manifest: manifest.clone(),
                        snapshot_revision: file.revision,
                        highest_recorded: bumping.highest_recorded,
                        revision_bump: file.bump,
                        replayed,
                    });
                }
                Err(RestoreAttempt::Damaged(reason)) => {
                    tracing::error!(event = events::BACKUP_DAMAGED, key = %manifest.key, %reason, "BACKUP DAMAGED: refusing it and falling back to the previous backup");
                }
                Err(RestoreAttempt::PastTarget(revision)) => {
                    tracing::info!(key = %manifest.key, snapshot_revision = revision, ?target, "this backup holds revisions past the target; trying an older one");
                }
                Err(RestoreAttempt::Fatal(e)) => return Err(e),
            }
        }
        bail!(
            "none of the {} backups in s3://{}/{} could be restored ({}); refusing to form an empty cluster over data that exists. Repair or remove the damaged backups, or start with no backup bucket to form an empty cluster",
            candidates.len(),
            self.store.bucket(),
            self.store.layout().snapshots_prefix(),
            match target {
                ReplayTarget::Latest => "all damaged, see the errors above".to_owned(),
                ReplayTarget::Revision(revision) => format!("damaged, or none at or before revision {revision}"),
            }
        )
    }

    fn segment_replay(&self) -> SegmentReplay<'_> {
        SegmentReplay {
            store: &self.store,
            etcd: &self.etcd,
            etcd_args: &self.etcd_args,
            lease_policy: self.lease_policy,
        }
    }

    /// The restore tool's flags and the highest revision the bucket records
    /// (`manifests` are the bucket's, read already): read once per restore,
    /// before anything is downloaded, so a tool that cannot bump is refused
    /// before anything changes.
    async fn bumping(&self, manifests: &[BackupManifest]) -> anyhow::Result<Bumping> {
        let help = self
            .etcdutl(|command| {
                command.args(["snapshot", "restore", "--help"]);
            })
            .await
            .map_err(RestoreAttempt::into_error)?;
        let flags = listed_flags(&format!(
            "{}\n{}",
            String::from_utf8_lossy(&help.stdout),
            String::from_utf8_lossy(&help.stderr)
        ));
        revisions::check_tool(&self.etcdutl.display().to_string(), &flags)?;
        let highest_recorded = self
            .store
            .highest_revision(manifests)
            .await
            .context("cannot read the highest revision the bucket records, which the restored cluster must start past; the restore stops rather than reuse revisions")?;
        Ok(Bumping {
            flags,
            highest_recorded,
        })
    }

    fn log_restored(&self, manifest: &BackupManifest, file: &RestoredFile, bumping: &Bumping) {
        // The scenario harness reads this line's key, revision and bump.
        tracing::info!(
            event = events::RESTORED_BACKUP,
            key = %manifest.key,
            revision = manifest.revision,
            snapshot_revision = file.revision,
            cluster_id = %manifest.cluster_id,
            highest_recorded = bumping.highest_recorded,
            revision_bump = file.bump,
            "restored backup; its revisions start past every revision the bucket records"
        );
    }

    /// Replays the captured changes of the snapshot's cluster after it.
    async fn replay(
        &self,
        launch: &EtcdLaunch,
        snapshot: SnapshotPoint,
        target: ReplayTarget,
    ) -> anyhow::Result<Replayed> {
        let segments =
            self.store.segments().await.context(
                "cannot list the captured changes (segments) to replay after the snapshot",
            )?;
        let replayed = replay_segments(
            &self.segment_replay(),
            &launch.data_dir,
            &launch.name,
            snapshot,
            &segments,
            target,
        )
        .await?;
        if replayed.left_out > 0 {
            tracing::info!(snapshot_cluster_id = %snapshot.cluster_id, left_out = replayed.left_out, "left out the captured segments of other clusters: only the snapshot's cluster's changes follow it");
        }
        if let ReplayTarget::Revision(revision) = target {
            if replayed.until < revision {
                bail!(
                    "revision {revision} cannot be reached: the backups and captured changes reach revision {} (see the errors above)",
                    replayed.until
                );
            }
        }
        Ok(replayed)
    }

    /// Downloads, verifies and restores one backup; returns the snapshot's
    /// own revision and its bump.
    async fn try_one(
        &self,
        manifest: &BackupManifest,
        snapshot: &Path,
        launch: &EtcdLaunch,
        target: ReplayTarget,
        bumping: &Bumping,
    ) -> Result<RestoredFile, RestoreAttempt> {
        // Before the download: a disk too small would fail halfway, after
        // minutes, and leave the seed's disk full.
        let disk = data_dir::disk_of(&launch.data_dir)
            .map_err(|e| RestoreAttempt::Fatal(anyhow::Error::new(e)))?;
        disk::restore_fits(manifest.snapshot_bytes, disk).map_err(|e| {
            RestoreAttempt::Fatal(anyhow::Error::new(e).context(format!(
                "not restoring {} into {}",
                manifest.key,
                launch.data_dir.display()
            )))
        })?;
        let result = self.store.download_verified(manifest, snapshot).await;
        let outcome = match result {
            Ok(()) => {
                self.restore_file(snapshot, manifest.revision, launch, target, bumping)
                    .await
            }
            Err(BackupStoreError::Damaged { reason, .. }) => Err(RestoreAttempt::Damaged(reason)),
            Err(e) => Err(RestoreAttempt::Fatal(
                anyhow::Error::new(e).context("cannot download the backup"),
            )),
        };
        let _ = std::fs::remove_file(snapshot);
        outcome
    }

    /// Restores the file; returns the revision the replay continues after.
    ///
    /// Both figures are lower bounds of the snapshot's revision: the
    /// manifest's is a read just before it, etcdutl's the newest revision
    /// among the stored keys, which misses revisions whose only trace
    /// compaction removed (and is 0 for an empty cluster at revision 1). The
    /// higher one is taken; replaying a revision the snapshot already holds
    /// again changes nothing, as later revisions follow it.
    async fn restore_file(
        &self,
        snapshot: &Path,
        manifest_revision: i64,
        launch: &EtcdLaunch,
        target: ReplayTarget,
        bumping: &Bumping,
    ) -> Result<RestoredFile, RestoreAttempt> {
        let revision = self
            .snapshot_revision(snapshot)
            .await?
            .max(manifest_revision);
        if let ReplayTarget::Revision(wanted) = target {
            if revision > wanted {
                return Err(RestoreAttempt::PastTarget(revision));
            }
        }
        let bump = revisions::bump(revision, bumping.highest_recorded)
            .map_err(|e| RestoreAttempt::Fatal(e.into()))?;
        let bump_arguments =
            revisions::bump_arguments(&self.etcdutl.display().to_string(), &bumping.flags, bump)
                .map_err(|e| RestoreAttempt::Fatal(e.into()))?;
        self.etcdutl_restore(snapshot, launch, &bump_arguments)
            .await?;
        Ok(RestoredFile { revision, bump })
    }

    /// The newest revision among the snapshot's keys (`etcdutl snapshot status`).
    async fn snapshot_revision(&self, snapshot: &Path) -> Result<i64, RestoreAttempt> {
        let output = self
            .etcdutl(|command| {
                command
                    .args(["snapshot", "status"])
                    .arg(snapshot)
                    .arg("--write-out=json");
            })
            .await?;
        if !output.status.success() {
            return Err(RestoreAttempt::Damaged(format!(
                "etcdutl snapshot status failed ({}): {}",
                output.status,
                last_line(&output.stderr)
            )));
        }
        #[derive(serde::Deserialize)]
        struct Status {
            revision: i64,
        }
        serde_json::from_slice::<Status>(&output.stdout)
            .map(|status| status.revision)
            .map_err(|e| {
                RestoreAttempt::Damaged(format!("etcdutl snapshot status printed no revision: {e}"))
            })
    }

    /// Runs the restore tool with the arguments `args` gives it; a tool that
    /// cannot run stops the restore (no older backup would do better).
    async fn etcdutl(
        &self,
        args: impl FnOnce(&mut Command),
    ) -> Result<std::process::Output, RestoreAttempt> {
        let mut command = Command::new(&self.etcdutl);
        args(&mut command);
        command
            .output()
            .await
            .with_context(|| {
                format!(
                    "cannot run {}; check --etcdutl-binary / ETCD_AWS_ETCDUTL_BINARY",
                    self.etcdutl.display()
                )
            })
            .map_err(RestoreAttempt::Fatal)
    }

    async fn etcdutl_restore(
        &self,
        snapshot: &Path,
        launch: &EtcdLaunch,
        bump: &[String],
    ) -> Result<(), RestoreAttempt> {
        // etcdutl refuses an existing directory. This one is the staging
        // directory ([`staged`]): whatever is there came from the bucket.
        if launch.data_dir.exists() {
            std::fs::remove_dir_all(&launch.data_dir)
                .with_context(|| format!("cannot remove {}", launch.data_dir.display()))
                .map_err(RestoreAttempt::Fatal)?;
        }
        let peer = launch.peer_url();
        let output = self
            .etcdutl(|command| {
                command
                    .args(["snapshot", "restore"])
                    .arg(snapshot)
                    .arg(format!("--data-dir={}", launch.data_dir.display()))
                    .arg(format!("--name={}", launch.name))
                    .arg(format!("--initial-cluster={}={peer}", launch.name))
                    .arg(format!("--initial-cluster-token={}", self.restore_token()))
                    .arg(format!("--initial-advertise-peer-urls={peer}"))
                    .args(bump);
            })
            .await?;
        if output.status.success() {
            return Ok(());
        }
        // A snapshot that passed the checksum but etcdutl rejects (not a
        // snapshot at all, or its own hash fails) is damaged too. Whatever
        // etcdutl left behind came from that file, not from a member.
        if launch.data_dir.exists() {
            let _ = std::fs::remove_dir_all(&launch.data_dir);
        }
        Err(RestoreAttempt::Damaged(format!(
            "etcdutl snapshot restore failed ({}): {}",
            output.status,
            last_line(&output.stderr)
        )))
    }
}

impl Restorer {
    /// etcd derives the cluster id from the members and this token: the
    /// group's name alone would give a cluster restored in place on its seed
    /// the id it had before, and clients, the capture and the operator's
    /// restore could not tell the restored cluster from the one it replaced.
    fn restore_token(&self) -> String {
        let now = clock::now_unix_millis();
        format!("{}-restored-{now}", self.token)
    }
}

enum RestoreAttempt {
    /// This backup cannot be used; an older one may.
    Damaged(String),
    /// The snapshot holds this revision, past the restore's target.
    PastTarget(i64),
    /// Something outside the backup is wrong; trying older ones would not help.
    Fatal(anyhow::Error),
}

impl RestoreAttempt {
    /// The attempt's failure as the restore's own (outside the loop over
    /// backups, every failure stops the restore).
    fn into_error(self) -> anyhow::Error {
        match self {
            RestoreAttempt::Damaged(reason) => anyhow::anyhow!(reason),
            RestoreAttempt::PastTarget(revision) => {
                anyhow::anyhow!("the backup holds revision {revision}, past what was asked")
            }
            RestoreAttempt::Fatal(error) => error,
        }
    }
}

/// Restores into a staging directory beside the data directory (`work`
/// gets a launch pointing there) and moves it into place only once the
/// snapshot is restored and every captured change replayed. A restore that
/// fails, or a node that dies halfway, leaves no data directory that looks
/// like a member's: the next start restores again instead of serving half a
/// restore. What the staging directory held came from the bucket, never from
/// a member, so it is removed, not moved aside.
async fn staged(
    launch: &EtcdLaunch,
    work: impl AsyncFnOnce(&EtcdLaunch) -> anyhow::Result<Restored>,
) -> anyhow::Result<Restored> {
    let staging = staging_dir(&launch.data_dir);
    if staging.exists() {
        tracing::warn!(staging = %staging.display(), "removing what an interrupted restore left behind");
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    let staged_launch = EtcdLaunch {
        data_dir: staging.clone(),
        ..launch.clone()
    };
    let restored = match work(&staged_launch).await {
        Ok(restored) => restored,
        Err(error) => {
            if staging.exists() {
                let _ = std::fs::remove_dir_all(&staging);
            }
            return Err(error);
        }
    };
    if launch.data_dir.exists() {
        let moved = data_dir::move_aside(&launch.data_dir)?;
        tracing::warn!(moved_to = %moved.display(), "moved an existing data directory aside for the restored one");
    }
    std::fs::rename(&staging, &launch.data_dir).with_context(|| {
        format!(
            "cannot move the restored data from {} to {}",
            staging.display(),
            launch.data_dir.display()
        )
    })?;
    data_dir::sync_parent(&launch.data_dir)?;
    Ok(restored)
}

/// `<data dir>.restoring`, beside the data directory (one file system, so
/// the move into place is a rename).
fn staging_dir(data_dir: &Path) -> PathBuf {
    let mut name = data_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "etcd".into());
    name.push(".restoring");
    data_dir.with_file_name(name)
}

fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .to_owned()
}

/// Where a downloaded snapshot waits beside the data directory for the restore tool.
fn restore_file_path(launch: &EtcdLaunch) -> anyhow::Result<PathBuf> {
    let parent = launch
        .data_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    Ok(parent.join(format!("{}.restore.db", file_name(&launch.data_dir))))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "etcd".into(), |n| n.to_string_lossy().into_owned())
}
