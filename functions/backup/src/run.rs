//! One backup run: find a healthy member, snapshot it into S3, publish,
//! thin old backups, report.

use std::time::{Duration, Instant};

use etcd_aws_core::backup::manifest::BackupManifest;
use etcd_aws_core::backup::replay;
use etcd_aws_core::clock;
use etcd_aws_core::contract::jobs::BackupAnswer;
use etcd_aws_core::etcd::ids::{ClusterId, MemberId};
use etcd_aws_io::aws::discovery::DiscoveryError;
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_io::etcd::admin::{EtcdAccess, EtcdAdmin, EtcdTimeouts};
use etcd_aws_io::etcd::error::EtcdError;
use etcd_aws_io::logging;
use etcd_aws_io::tls::ClientTlsError;

use crate::config::{BackupConfig, ConfigError};
use crate::emf::BackupMetrics;
use crate::endpoints::live_endpoints;
use crate::member_choice::{candidates, Candidate, MemberProbe};
use crate::multipart::{MultipartUpload, UploadError};
use crate::retention;
use crate::stored_stream::{StoredStream, StoredSummary, StreamError};
use etcd_aws_core::contract::restore_order::{protected_backups, RestoreOrder};
use etcd_aws_core::contract::signed::Signed;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the group's instances: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("group {0} has no live instance with a private IP; nothing to back up")]
    NoInstances(String),
    #[error("no etcd member of group {group} is a healthy voting member that knows a leader ({probed} probed); not backing up a cluster without quorum")]
    NoHealthyMember { group: String, probed: usize },
    #[error("no member confirmed quorum with a linearizable read; last error: {0}")]
    NoQuorum(EtcdError),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    ClientTls(#[from] ClientTlsError),
    #[error(transparent)]
    Store(#[from] BackupStoreError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("snapshot from {endpoint}: {source}")]
    Snapshot {
        endpoint: String,
        #[source]
        source: StreamError,
    },
    #[error("the snapshot from {endpoint} did not finish within {timeout:?}")]
    SnapshotTimeout { endpoint: String, timeout: Duration },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupOutcome {
    pub action: BackupAction,
    /// The client URL of the member that was read.
    pub endpoint: String,
    pub member_id: MemberId,
    /// Whether that member led the cluster when it was chosen.
    pub from_leader: bool,
    /// Snapshots that retention deleted, oldest first.
    pub deleted: Vec<String>,
    /// Retention deletions that failed; the backup itself succeeded.
    pub retention_errors: Vec<String>,
    pub metrics: BackupMetrics,
    /// The embedded-metric-format line the run printed.
    pub emf_line: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackupAction {
    /// A new backup was uploaded and published.
    Uploaded(BackupManifest),
    /// The newest backup already holds the cluster's current revision.
    Unchanged(BackupManifest),
}

impl BackupOutcome {
    /// The job's answer ([`BackupAnswer`]).
    pub fn answer(&self) -> BackupAnswer {
        let manifest = self.action.manifest();
        BackupAnswer {
            uploaded: matches!(self.action, BackupAction::Uploaded(_)),
            key: manifest.key.clone(),
            revision: manifest.revision,
            stored_bytes: manifest.stored_bytes,
            member: self.endpoint.clone(),
            deleted: self.deleted.clone(),
        }
    }
}

impl BackupAction {
    pub fn manifest(&self) -> &BackupManifest {
        match self {
            BackupAction::Uploaded(m) | BackupAction::Unchanged(m) => m,
        }
    }
}

/// The member that will serve the snapshot, and the cluster as it saw it.
struct Source {
    candidate: Candidate,
    /// Revision of a linearizable read through this member: the member has
    /// applied at least this much, so its snapshot holds at least this revision.
    revision: i64,
    cluster_id: ClusterId,
    member_count: usize,
}

/// Whether a run thins old backups once it has taken one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thinning {
    Apply,
    /// The capture and the maintenance run take snapshots too, but their
    /// roles may not delete one: retention is the backup run's alone.
    LeaveToTheBackupRun,
}

/// The backup job: takes a backup of the group's cluster into the bucket,
/// then deletes what [`retention`] no longer keeps. Nothing under the
/// prefix changes unless the whole snapshot was uploaded and checked; on any
/// error the multipart upload is aborted and `latest.json` stays as it was.
pub async fn run_backup(
    config: &BackupConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<BackupOutcome, BackupError> {
    backup(config, sdk, Thinning::Apply).await
}

/// A backup as [`run_backup`] takes it, but deleting nothing: what the
/// capture and the maintenance run take, whose roles may write snapshots
/// and never delete one. The next backup run thins what they added.
pub async fn take_backup(
    config: &BackupConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<BackupOutcome, BackupError> {
    backup(config, sdk, Thinning::LeaveToTheBackupRun).await
}

async fn backup(
    config: &BackupConfig,
    sdk: &aws_config::SdkConfig,
    thinning: Thinning,
) -> Result<BackupOutcome, BackupError> {
    config.validate()?;
    let started = Instant::now();
    let store = BackupStore::new(sdk, &config.bucket, &config.prefix);
    let access = config.tls.access(sdk, config.etcd_timeouts).await?;
    let source = find_source(config, sdk, &access).await?;
    let endpoint = source.candidate.endpoint.clone();
    tracing::info!(
        %endpoint,
        member_id = %source.candidate.status.member_id,
        from_leader = source.candidate.is_leader,
        revision = source.revision,
        db_size = source.candidate.status.db_size,
        "chose the member to back up from"
    );
    let pointer = match store.pointer().await {
        Ok(pointer) => pointer,
        // A damaged pointer names nothing usable; the new backup replaces it.
        Err(BackupStoreError::Damaged { reason, .. }) => {
            tracing::warn!(%reason, "latest.json is unreadable; taking a new backup");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let action = match pointer {
        Some(newest) if still_current(&newest, &source, config.refresh_after) => {
            tracing::info!(
                revision = source.revision,
                key = %newest.key,
                "revision unchanged since the newest backup; nothing uploaded"
            );
            BackupAction::Unchanged(newest)
        }
        _ => BackupAction::Uploaded(upload(config, &store, &source, &access).await?),
    };
    let manifest = action.manifest().clone();
    let (deleted, retention_errors) = match thinning {
        Thinning::Apply => apply_retention(config, &store, &manifest).await,
        Thinning::LeaveToTheBackupRun => (Vec::new(), Vec::new()),
    };
    let metrics = BackupMetrics {
        age_seconds: (clock::now_unix_seconds() - manifest.created_at).max(0) as f64,
        bytes: manifest.stored_bytes,
        duration_seconds: started.elapsed().as_secs_f64(),
        revision: manifest.revision,
    };
    let emf_line =
        logging::print_metrics_with(&config.group_name, &metrics.metrics(), &metrics.fields());
    Ok(BackupOutcome {
        action,
        endpoint,
        member_id: source.candidate.status.member_id,
        from_leader: source.candidate.is_leader,
        deleted,
        retention_errors,
        metrics,
        emf_line,
    })
}

/// The newest backup still holds everything: the same cluster at the same
/// revision, and young enough. An idle cluster's backup is still taken anew
/// once it is `refresh_after` old, so its age (and the stale-backup alarm
/// that reads it) tells a stopped backup from a quiet cluster.
fn still_current(newest: &BackupManifest, source: &Source, refresh_after: Duration) -> bool {
    let age = clock::now_unix_seconds().saturating_sub(newest.created_at);
    newest.revision == source.revision
        && newest.cluster_id == source.cluster_id
        && u64::try_from(age).is_ok_and(|age| age < refresh_after.as_secs())
}

async fn find_source(
    config: &BackupConfig,
    sdk: &aws_config::SdkConfig,
    access: &EtcdAccess,
) -> Result<Source, BackupError> {
    let endpoints = live_endpoints(config, sdk, access).await?;
    if endpoints.is_empty() {
        return Err(BackupError::NoInstances(config.group_name.clone()));
    }
    let probes = probe(&endpoints, access).await;
    let ordered = candidates(&probes);
    if ordered.is_empty() {
        return Err(BackupError::NoHealthyMember {
            group: config.group_name.clone(),
            probed: probes.len(),
        });
    }
    let mut last_error = None;
    for candidate in ordered {
        match confirm(&candidate, access).await {
            Ok((revision, cluster_id, member_count)) => {
                return Ok(Source {
                    candidate,
                    revision,
                    cluster_id,
                    member_count,
                })
            }
            Err(error) => {
                tracing::warn!(endpoint = %candidate.endpoint, %error, "member cannot serve the backup; trying the next");
                last_error = Some(error);
            }
        }
    }
    Err(match last_error {
        Some(error) => BackupError::NoQuorum(error),
        None => BackupError::NoHealthyMember {
            group: config.group_name.clone(),
            probed: probes.len(),
        },
    })
}

async fn probe(endpoints: &[String], access: &EtcdAccess) -> Vec<MemberProbe> {
    EtcdAdmin::status_of_each(endpoints, access)
        .await
        .into_iter()
        .map(|(endpoint, status)| {
            let status = status
                .inspect_err(|error| {
                    tracing::info!(%endpoint, %error, "member did not answer a status request")
                })
                .ok();
            MemberProbe { endpoint, status }
        })
        .collect()
}

/// Quorum through this very member (a linearizable read it must serve), and
/// the membership for the manifest.
async fn confirm(
    candidate: &Candidate,
    access: &EtcdAccess,
) -> Result<(i64, ClusterId, usize), EtcdError> {
    let mut admin = EtcdAdmin::connect(std::slice::from_ref(&candidate.endpoint), access).await?;
    let revision = admin.check_quorum().await?;
    let (cluster_id, members) = admin.members().await?;
    Ok((revision, cluster_id, members.len()))
}

async fn upload(
    config: &BackupConfig,
    store: &BackupStore,
    source: &Source,
    access: &EtcdAccess,
) -> Result<BackupManifest, BackupError> {
    let created_at = clock::now_unix_seconds();
    // Two runs in the same second at the same revision (an overlapping
    // schedule, a manual invoke) must never write into one object.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let key =
        store
            .layout()
            .snapshot_key(created_at, source.revision, &run[..12], config.compression);
    let summary = snapshot_to_s3(config, store, access, &source.candidate.endpoint, &key).await?;
    let manifest = BackupManifest {
        key,
        sha256: summary.sha256,
        stored_bytes: summary.stored_bytes,
        snapshot_bytes: summary.snapshot_bytes,
        compression: config.compression,
        revision: source.revision,
        cluster_id: source.cluster_id,
        member_count: source.member_count,
        etcd_version: source.candidate.status.version.clone(),
        created_at,
    };
    // Should this fail, the snapshot object stays without a manifest, which
    // the format defines as an interrupted upload: never restored.
    store.publish(&manifest).await?;
    tracing::info!(
        key = %manifest.key,
        revision = manifest.revision,
        stored_bytes = manifest.stored_bytes,
        snapshot_bytes = manifest.snapshot_bytes,
        compression = ?manifest.compression,
        "backup published"
    );
    Ok(manifest)
}

/// Streams one member's snapshot into a new object at `key` (the data path
/// of a run, without choosing the member or publishing). The object exists
/// only if this returns `Ok`: on any error the multipart upload is aborted.
pub async fn snapshot_to_s3(
    config: &BackupConfig,
    store: &BackupStore,
    access: &EtcdAccess,
    endpoint: &str,
    key: &str,
) -> Result<StoredSummary, BackupError> {
    let mut upload =
        MultipartUpload::create(store.s3(), store.bucket(), key, config.parts_in_flight).await?;
    tracing::info!(%key, upload_id = upload.upload_id(), "multipart upload started");
    let streamed = tokio::time::timeout(
        config.snapshot_timeout,
        stream_snapshot(config, access, endpoint, &mut upload),
    )
    .await
    .unwrap_or_else(|_| {
        Err(BackupError::SnapshotTimeout {
            endpoint: endpoint.to_owned(),
            timeout: config.snapshot_timeout,
        })
    });
    let summary = match streamed {
        Ok(summary) => summary,
        Err(error) => {
            abort(upload, key).await;
            return Err(error);
        }
    };
    if let Err(error) = upload.complete().await {
        abort(upload, key).await;
        return Err(error.into());
    }
    Ok(summary)
}

async fn stream_snapshot(
    config: &BackupConfig,
    access: &EtcdAccess,
    endpoint: &str,
    upload: &mut MultipartUpload,
) -> Result<StoredSummary, BackupError> {
    let snapshot_error = |source| BackupError::Snapshot {
        endpoint: endpoint.to_owned(),
        source,
    };
    // etcd ends the stream at the gRPC deadline, so this connection's request
    // timeout is the time the whole snapshot may take.
    let timeouts = EtcdTimeouts {
        connect: config.etcd_timeouts.connect,
        request: config.snapshot_timeout,
    };
    let mut admin =
        EtcdAdmin::connect(&[endpoint.to_owned()], &access.with_timeouts(timeouts)).await?;
    let mut snapshot = admin.snapshot().await?;
    let mut stored = StoredStream::new(config.compression, config.zstd_level, config.part_size)
        .map_err(snapshot_error)?;
    while let Some(chunk) = snapshot.next_chunk().await? {
        for part in stored.write(&chunk).map_err(snapshot_error)? {
            upload.send(part).await?;
        }
    }
    let (parts, summary) = stored.finish().map_err(snapshot_error)?;
    for part in parts {
        upload.send(part).await?;
    }
    Ok(summary)
}

async fn abort(upload: MultipartUpload, key: &str) {
    let upload_id = upload.upload_id().to_owned();
    match upload.abort().await {
        Ok(()) => {
            tracing::warn!(%key, %upload_id, "multipart upload aborted; latest.json unchanged")
        }
        // The bucket's lifecycle rule for incomplete uploads cleans up what is left.
        Err(error) => {
            tracing::error!(%key, %upload_id, %error, "could not abort the multipart upload")
        }
    }
}

/// Deletes what the policy no longer keeps. A failed deletion is reported but
/// does not fail the run: the backup is safe, and the next run tries again.
async fn apply_retention(
    config: &BackupConfig,
    store: &BackupStore,
    newest: &BackupManifest,
) -> (Vec<String>, Vec<String>) {
    let manifests = match store.manifests().await {
        Ok(manifests) => manifests,
        Err(error) => {
            tracing::error!(%error, "cannot list backups; retention skipped this run");
            return (Vec::new(), vec![error.to_string()]);
        }
    };
    // A restore in progress needs its snapshots; one that cannot be read
    // might, so nothing is deleted then. The order is read without checking
    // its signature: retention only keeps more for it, and an order no
    // operator signed can make it keep a snapshot longer, nothing else.
    let order = match store.restore_order().await {
        Ok(stored) => stored.and_then(|stored| Signed::unverified::<RestoreOrder>(&stored)),
        Err(error) => {
            tracing::error!(%error, "cannot read the restore order; retention skipped this run");
            return (Vec::new(), vec![error.to_string()]);
        }
    };
    let mut protected = vec![newest.key.as_str()];
    if let Some(order) = &order {
        protected.extend(protected_backups(order, &manifests));
    }
    let doomed = retention::to_delete(
        &manifests,
        &config.retention,
        clock::now_unix_seconds(),
        &protected,
    );
    let (mut deleted, mut errors) = (Vec::new(), Vec::new());
    let doomed_keys: Vec<&str> = doomed.iter().map(|m| m.key.as_str()).collect();
    let oldest_kept = manifests
        .iter()
        .filter(|m| !doomed_keys.contains(&m.key.as_str()))
        .map(|m| m.revision)
        .min();
    for manifest in doomed {
        match store.delete(&manifest).await {
            Ok(()) => {
                tracing::info!(key = %manifest.key, revision = manifest.revision, "retention deleted a backup");
                deleted.push(manifest.key);
            }
            Err(error) => {
                tracing::error!(key = %manifest.key, %error, "retention could not delete a backup");
                errors.push(error.to_string());
            }
        }
    }
    if let Some(oldest_kept) = oldest_kept {
        delete_superseded_segments(store, oldest_kept, &mut deleted, &mut errors).await;
    }
    (deleted, errors)
}

/// Segments whose every revision the oldest kept backup holds go with the
/// backups before it: nothing could replay them.
async fn delete_superseded_segments(
    store: &BackupStore,
    oldest_kept: i64,
    deleted: &mut Vec<String>,
    errors: &mut Vec<String>,
) {
    let segments = match store.segments().await {
        Ok(segments) => segments,
        Err(error) => {
            tracing::error!(%error, "cannot list segments; their retention skipped this run");
            errors.push(error.to_string());
            return;
        }
    };
    let superseded = replay::superseded(oldest_kept, &segments);
    if !superseded.is_empty() {
        tracing::info!(
            count = superseded.len(),
            oldest_kept,
            "retention deletes the segments the oldest kept backup holds"
        );
    }
    for segment in superseded {
        match store.delete_segment(&segment).await {
            Ok(()) => deleted.push(segment.key),
            Err(error) => {
                tracing::error!(key = %segment.key, %error, "retention could not delete a segment");
                errors.push(error.to_string());
            }
        }
    }
}
