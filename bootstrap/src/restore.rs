//! Restoring the newest valid backup into an empty data directory, falling
//! back to older backups when one is damaged.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use etcd_aws_cluster::backup::BackupManifest;
use etcd_aws_cluster::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_cluster::data_dir;
use etcd_aws_cluster::etcd_launch::EtcdLaunch;
use etcd_aws_cluster::names::events;
use tokio::process::Command;

/// Where the cluster's backups are, from `--backup-bucket` and friends.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub bucket: String,
    pub prefix: String,
    /// The etcdutl binary that restores a snapshot into a data directory.
    pub etcdutl: PathBuf,
}

pub struct Restorer {
    pub store: BackupStore,
    pub etcdutl: PathBuf,
    /// `--initial-cluster-token` of the restored one-member cluster.
    pub token: String,
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

    /// Restores the first backup of `candidates` (newest first) that downloads,
    /// verifies and restores cleanly; returns which one it was.
    pub async fn restore(
        &self,
        candidates: &[BackupManifest],
        launch: &EtcdLaunch,
    ) -> anyhow::Result<BackupManifest> {
        let parent = launch
            .data_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let snapshot = parent.join(format!("{}.restore.db", file_name(&launch.data_dir)));
        for (index, manifest) in candidates.iter().enumerate() {
            tracing::info!(key = %manifest.key, revision = manifest.revision, "restoring backup");
            match self.try_one(manifest, &snapshot, launch).await {
                Ok(()) => {
                    if index > 0 {
                        tracing::warn!(event = events::OLDER_BACKUP_RESTORED, key = %manifest.key, skipped = index, "restored an OLDER backup because the newer ones are damaged; writes after revision {} are lost", manifest.revision);
                    }
                    tracing::info!(key = %manifest.key, revision = manifest.revision, cluster_id = %manifest.cluster_id, "restored backup");
                    return Ok(manifest.clone());
                }
                Err(RestoreAttempt::Damaged(reason)) => {
                    tracing::error!(event = events::BACKUP_DAMAGED, key = %manifest.key, %reason, "BACKUP DAMAGED: refusing it and falling back to the previous backup");
                }
                Err(RestoreAttempt::Fatal(e)) => return Err(e),
            }
        }
        bail!(
            "none of the {} backups in s3://{}/{} could be restored (all damaged, see the errors above); refusing to form an empty cluster over data that exists. Repair or remove the damaged backups, or start with no backup bucket to form an empty cluster",
            candidates.len(),
            self.store.bucket(),
            self.store.layout().snapshots_prefix()
        )
    }

    async fn try_one(
        &self,
        manifest: &BackupManifest,
        snapshot: &Path,
        launch: &EtcdLaunch,
    ) -> Result<(), RestoreAttempt> {
        let result = self.store.download_verified(manifest, snapshot).await;
        let outcome = match result {
            Ok(()) => self.etcdutl_restore(snapshot, launch).await,
            Err(BackupStoreError::Damaged { reason, .. }) => Err(RestoreAttempt::Damaged(reason)),
            Err(e) => Err(RestoreAttempt::Fatal(
                anyhow::Error::new(e).context("cannot download the backup"),
            )),
        };
        let _ = std::fs::remove_file(snapshot);
        outcome
    }

    async fn etcdutl_restore(
        &self,
        snapshot: &Path,
        launch: &EtcdLaunch,
    ) -> Result<(), RestoreAttempt> {
        // etcdutl refuses an existing directory; one without member data
        // (an abandoned attempt) is moved aside like any other.
        if launch.data_dir.exists() {
            let moved = data_dir::move_aside(&launch.data_dir)
                .map_err(|e| RestoreAttempt::Fatal(e.into()))?;
            tracing::warn!(moved_to = %moved.display(), "moved an existing data directory aside before restoring");
        }
        let peer = launch.peer_url();
        let output = Command::new(&self.etcdutl)
            .arg("snapshot")
            .arg("restore")
            .arg(snapshot)
            .arg(format!("--data-dir={}", launch.data_dir.display()))
            .arg(format!("--name={}", launch.name))
            .arg(format!("--initial-cluster={}={peer}", launch.name))
            .arg(format!("--initial-cluster-token={}", self.token))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .output()
            .await
            .with_context(|| {
                format!(
                    "cannot run {}; check --etcdutl-binary / ETCD_AWS_ETCDUTL_BINARY",
                    self.etcdutl.display()
                )
            })
            .map_err(RestoreAttempt::Fatal)?;
        if output.status.success() {
            return Ok(());
        }
        // A snapshot that passed the checksum but etcdutl rejects (not a
        // snapshot at all, or its own hash fails) is damaged too. Whatever
        // etcdutl left behind came from that file, not from a member.
        if launch.data_dir.exists() {
            let _ = std::fs::remove_dir_all(&launch.data_dir);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_line = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        Err(RestoreAttempt::Damaged(format!(
            "etcdutl snapshot restore failed ({}): {last_line}",
            output.status
        )))
    }
}

enum RestoreAttempt {
    /// This backup cannot be used; an older one may.
    Damaged(String),
    /// Something outside the backup is wrong; trying older ones would not help.
    Fatal(anyhow::Error),
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "etcd".into(), |n| n.to_string_lossy().into_owned())
}
