//! The backup bucket: list, read, publish, delete and verify backups, the
//! continuous backup's segments and the restore orders.

pub mod segment_codec;

use std::path::{Path, PathBuf};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client as S3Client;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::aws::error::{self as aws_error, AwsErrorKind};
use crate::error_chain::error_chain;
use etcd_aws_core::backup::empty_start::{BucketHistory, DeletedBackups};
use etcd_aws_core::backup::manifest::{BackupLayout, BackupManifest, Compression};
use etcd_aws_core::backup::segment::{Segment, SegmentRef};
use etcd_aws_core::certificates::ca_rotation::Stage;
use etcd_aws_core::contract::ca_rotation_acks;
use etcd_aws_core::contract::restore_order::{Acknowledger, RestoreOrder};
use etcd_aws_core::contract::signed::Signed;

#[derive(Debug, thiserror::Error)]
pub enum BackupStoreError {
    #[error("backup bucket {bucket} does not exist")]
    NoSuchBucket { bucket: String },
    #[error("access denied to s3://{bucket}/{key} ({operation}); the role needs s3:ListBucket and s3:ListBucketVersions on the bucket for the prefix and s3:GetObject/PutObject/DeleteObject under it")]
    AccessDenied {
        operation: &'static str,
        bucket: String,
        key: String,
    },
    #[error("S3 {operation} on s3://{bucket}/{key} failed: {message}")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    #[error("backup s3://{bucket}/{key} is damaged: {reason}")]
    Damaged {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("no backup in s3://{bucket}/{prefix} is as old as {time_ms} ms since the epoch (the oldest was taken {}); choose a later time", oldest.map_or_else(|| "(there is none)".to_owned(), |t| format!("at {t} s since the epoch")))]
    NothingThatOld {
        bucket: String,
        prefix: String,
        time_ms: i64,
        oldest: Option<i64>,
    },
    #[error("local file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl BackupStoreError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// How many pages of object versions (S3 answers up to 1000 a page) a look
/// for deleted backups reads under each of the snapshots, the segments and
/// the pointer. It only has to tell whether something was deleted, not
/// count it all: a seed asks at every poll while it waits, and a bucket
/// with more is said to hold "or more".
const VERSION_PAGES: usize = 2;

/// The backups under one prefix of one bucket.
#[derive(Debug, Clone)]
pub struct BackupStore {
    s3: S3Client,
    bucket: String,
    layout: BackupLayout,
}

impl BackupStore {
    /// Path-style addressing when a custom endpoint is configured (S3
    /// emulators on an IP address cannot serve virtual-hosted buckets).
    pub fn new(config: &aws_config::SdkConfig, bucket: &str, prefix: &str) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Self {
            s3: S3Client::from_conf(s3_config),
            bucket: bucket.to_owned(),
            layout: BackupLayout::new(prefix),
        }
    }

    pub fn s3(&self) -> &S3Client {
        &self.s3
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn layout(&self) -> &BackupLayout {
        &self.layout
    }

    fn error<E>(
        &self,
        operation: &'static str,
        key: &str,
        error: SdkError<E, HttpResponse>,
    ) -> BackupStoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let error = aws_error::read(&error);
        match error.kind {
            AwsErrorKind::NoSuchBucket => BackupStoreError::NoSuchBucket {
                bucket: self.bucket.clone(),
            },
            AwsErrorKind::AccessDenied => BackupStoreError::AccessDenied {
                operation,
                bucket: self.bucket.clone(),
                key: key.to_owned(),
            },
            _ => BackupStoreError::S3 {
                operation,
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                message: error.summary,
            },
        }
    }

    /// The whole object at `key`; `None` when there is none.
    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, BackupStoreError> {
        let object = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(self.error("GetObject", key, e)),
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| BackupStoreError::S3 {
                operation: "GetObject",
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                message: error_chain(&e),
            })?;
        Ok(Some(bytes.to_vec()))
    }

    /// Every key under `prefix`, all pages of the listing.
    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, BackupStoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(str::to_owned),
            );
        }
        Ok(keys)
    }

    /// Every backup whose manifest is readable, newest first. A manifest that
    /// does not parse is skipped with a warning: it names no usable backup.
    pub async fn manifests(&self) -> Result<Vec<BackupManifest>, BackupStoreError> {
        let keys = self.keys_under(&self.layout.snapshots_prefix()).await?;
        let keys = keys
            .into_iter()
            .filter(|k| BackupLayout::is_manifest_key(k));
        let mut manifests = Vec::new();
        for key in keys {
            match self.read_manifest(&key).await {
                Ok(Some(manifest)) => manifests.push(manifest),
                Ok(None) => {}
                Err(BackupStoreError::Damaged { reason, .. }) => {
                    tracing::warn!(%key, %reason, "skipping unreadable backup manifest")
                }
                Err(e) => return Err(e),
            }
        }
        manifests.sort_by(|a, b| {
            (b.created_at, b.revision, &b.key).cmp(&(a.created_at, a.revision, &a.key))
        });
        Ok(manifests)
    }

    /// The manifest `latest.json` names, if there is one.
    pub async fn pointer(&self) -> Result<Option<BackupManifest>, BackupStoreError> {
        self.read_manifest(&self.layout.pointer_key()).await
    }

    async fn read_manifest(&self, key: &str) -> Result<Option<BackupManifest>, BackupStoreError> {
        let Some(bytes) = self.get_bytes(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| BackupStoreError::Damaged {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                reason: format!("manifest is not valid JSON: {e}"),
            })
    }

    async fn put_json(
        &self,
        key: &str,
        value: &impl serde::Serialize,
    ) -> Result<(), BackupStoreError> {
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(())
    }

    /// Makes an uploaded snapshot a backup: its manifest first, then the
    /// pointer, so a reader never sees a pointer to a backup without one.
    pub async fn publish(&self, manifest: &BackupManifest) -> Result<(), BackupStoreError> {
        self.put_json(&BackupLayout::manifest_key(&manifest.key), manifest)
            .await?;
        self.put_json(&self.layout.pointer_key(), manifest).await
    }

    /// Deletes a backup: its manifest first, so no reader finds a manifest
    /// whose snapshot is gone.
    pub async fn delete(&self, manifest: &BackupManifest) -> Result<(), BackupStoreError> {
        for key in [
            BackupLayout::manifest_key(&manifest.key),
            manifest.key.clone(),
        ] {
            self.s3
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.error("DeleteObject", &key, e))?;
        }
        Ok(())
    }

    /// Every stored segment, by the last revision it covers; keys that are not
    /// segments are skipped (they name no range).
    pub async fn segments(&self) -> Result<Vec<SegmentRef>, BackupStoreError> {
        let keys = self.keys_under(&self.layout.segments_prefix()).await?;
        let mut segments: Vec<SegmentRef> =
            keys.iter().filter_map(|k| SegmentRef::parse(k)).collect();
        segments.sort();
        Ok(segments)
    }

    /// Stores a segment. The same range and changes give the same key and bytes,
    /// so a repeated flush changes nothing.
    pub async fn put_segment(&self, segment: &Segment) -> Result<SegmentRef, BackupStoreError> {
        let (key, stored) = segment_codec::encode(segment, self.layout.prefix()).map_err(|e| {
            BackupStoreError::Damaged {
                bucket: self.bucket.clone(),
                key: self.layout.segments_prefix(),
                reason: e.to_string(),
            }
        })?;
        let reference = SegmentRef::parse(&key).ok_or_else(|| BackupStoreError::Damaged {
            bucket: self.bucket.clone(),
            key: key.clone(),
            reason: "the segment's own key does not parse".into(),
        })?;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(stored))
            .send()
            .await
            .map_err(|e| self.error("PutObject", &key, e))?;
        Ok(reference)
    }

    /// Reads one segment and verifies it against the checksum its key names.
    pub async fn read_segment(&self, reference: &SegmentRef) -> Result<Segment, BackupStoreError> {
        let key = reference.key.as_str();
        let damaged = |reason: String| BackupStoreError::Damaged {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            reason,
        };
        let stored = self
            .get_bytes(key)
            .await?
            .ok_or_else(|| damaged("the segment object is missing".into()))?;
        segment_codec::decode(reference, &stored).map_err(|e| damaged(e.to_string()))
    }

    pub async fn delete_segment(&self, reference: &SegmentRef) -> Result<(), BackupStoreError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(&reference.key)
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", &reference.key, e))?;
        Ok(())
    }

    /// The manifest of the snapshot stored at `snapshot_key`, if it has one.
    pub async fn manifest_of(
        &self,
        snapshot_key: &str,
    ) -> Result<Option<BackupManifest>, BackupStoreError> {
        self.read_manifest(&BackupLayout::manifest_key(snapshot_key))
            .await
    }

    /// The newest revision the cluster had acknowledged by `time_ms`
    /// (milliseconds since the epoch): the last captured revision received by
    /// then, or, before every captured change, the newest snapshot taken by
    /// then. A restore "as of a time" is a restore to this revision.
    pub async fn revision_at(&self, time_ms: i64) -> Result<i64, BackupStoreError> {
        let segments = self.segments().await?;
        // Segments sort by revision, and so by the time their revisions were
        // received: find the newest one whose first revision came by then.
        let first_seen = |segment: &Segment| segment.revisions.first().map_or(0, |r| r.seen_at_ms);
        let (mut low, mut high) = (0, segments.len());
        while low < high {
            let middle = low + (high - low) / 2;
            let seen = first_seen(&self.read_segment(&segments[middle]).await?);
            if seen != 0 && seen <= time_ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        if let Some(reference) = low.checked_sub(1).and_then(|i| segments.get(i)) {
            let segment = self.read_segment(reference).await?;
            let newest = segment
                .revisions
                .iter()
                .rev()
                .find(|r| r.seen_at_ms != 0 && r.seen_at_ms <= time_ms);
            if let Some(revision) = newest {
                return Ok(revision.revision);
            }
        }
        let manifests = self.manifests().await?;
        manifests
            .iter()
            .filter(|m| m.created_at.saturating_mul(1000) <= time_ms)
            .map(|m| m.revision)
            .max()
            .ok_or_else(|| BackupStoreError::NothingThatOld {
                bucket: self.bucket.clone(),
                prefix: self.layout.prefix().to_owned(),
                time_ms,
                oldest: manifests.iter().map(|m| m.created_at).min(),
            })
    }

    /// When the cluster acknowledged `revision`, in milliseconds since the
    /// epoch, as far as the backups say: the time the capture received it, or
    /// the time of a snapshot at exactly that revision.
    pub async fn revision_time(&self, revision: i64) -> Result<Option<i64>, BackupStoreError> {
        let segments = self.segments().await?;
        if let Some(holder) = segments
            .iter()
            .find(|s| s.first <= revision && revision <= s.last)
        {
            let segment = self.read_segment(holder).await?;
            if let Some(change) = segment.revisions.iter().find(|r| r.revision == revision) {
                return Ok(Some(change.seen_at_ms).filter(|ms| *ms != 0));
            }
        }
        Ok(self
            .manifests()
            .await?
            .iter()
            .find(|m| m.revision == revision)
            .map(|m| m.created_at.saturating_mul(1000)))
    }

    /// The restore order object in the bucket, if any, as stored: signed
    /// by the operator ([`etcd_aws_core::contract::restore_order`],
    /// [`etcd_aws_core::contract::signed`]); the reader verifies it.
    pub async fn restore_order(&self) -> Result<Option<Vec<u8>>, BackupStoreError> {
        self.get_bytes(&self.layout.restore_order_key()).await
    }

    pub async fn put_restore_order(&self, order: &Signed) -> Result<(), BackupStoreError> {
        self.put_json(&self.layout.restore_order_key(), order).await
    }

    /// What the bucket holds of an earlier cluster besides snapshots
    /// ([`etcd_aws_core::backup::empty_start`]). A pointer or an order that
    /// cannot be read is there all the same.
    pub async fn history(&self) -> Result<BucketHistory, BackupStoreError> {
        let segments = self.segments().await?;
        let pointer = match self.pointer().await {
            Ok(found) => found.is_some(),
            Err(BackupStoreError::Damaged { .. }) => true,
            Err(error) => return Err(error),
        };
        // Any object there counts, signed or not: it is a trace all the same.
        let restore_order = self.restore_order().await?.map(|stored| {
            Signed::unverified::<RestoreOrder>(&stored).map_or_else(
                || format!("(unsigned {})", self.layout.restore_order_key()),
                |order| order.id,
            )
        });
        Ok(BucketHistory {
            newest_segment_revision: segments.iter().map(|s| s.last).max(),
            segments: segments.len(),
            pointer,
            restore_order,
            deleted: self.deleted_backups().await?,
        })
    }

    /// The backups whose newest version is a delete marker, as far as
    /// [`VERSION_PAGES`] pages under each kind read. Listed kind by kind: the
    /// pointer is replaced at every backup, so its old versions would fill
    /// the pages of one listing of the whole prefix. Its own listing needs
    /// one page, whatever follows: S3 lists a key's newest version first.
    async fn deleted_backups(&self) -> Result<DeletedBackups, BackupStoreError> {
        let mut keys = Vec::new();
        let mut more = false;
        for prefix in [
            self.layout.snapshots_prefix(),
            self.layout.segments_prefix(),
        ] {
            let (markers, truncated) = self.delete_markers_under(&prefix, VERSION_PAGES).await?;
            keys.extend(markers);
            more |= truncated;
        }
        let (pointer, _) = self
            .delete_markers_under(&self.layout.pointer_key(), 1)
            .await?;
        keys.extend(pointer);
        Ok(DeletedBackups::of_markers(
            &self.layout,
            keys.iter().map(String::as_str),
            more,
        ))
    }

    /// The keys under `prefix` whose newest version is a delete marker, in
    /// the first `pages` pages, and whether the listing stopped before its end.
    async fn delete_markers_under(
        &self,
        prefix: &str,
        pages: usize,
    ) -> Result<(Vec<String>, bool), BackupStoreError> {
        let mut markers = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        for _ in 0..pages {
            let page = self
                .s3
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| self.error("ListObjectVersions", prefix, e))?;
            markers.extend(
                page.delete_markers()
                    .iter()
                    .filter(|marker| marker.is_latest() == Some(true))
                    .filter_map(|marker| marker.key())
                    .map(str::to_owned),
            );
            if page.is_truncated() != Some(true) {
                return Ok((markers, false));
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        Ok((markers, true))
    }

    /// The highest revision the bucket records anywhere: any snapshot among
    /// `manifests` (the bucket's, as [`Self::manifests`] read them) or the
    /// pointer, any segment's last revision (of any cluster), the restore
    /// order's restored revision. What a restore bumps past
    /// ([`etcd_aws_core::backup::revisions::bump`]); a record that cannot be
    /// read counts for nothing, which the bump's margin covers.
    pub async fn highest_revision(
        &self,
        manifests: &[BackupManifest],
    ) -> Result<i64, BackupStoreError> {
        let segments = self.segments().await?;
        let pointer = match self.pointer().await {
            Ok(pointer) => pointer.map(|m| m.revision),
            Err(BackupStoreError::Damaged { .. }) => None,
            Err(error) => return Err(error),
        };
        // Unverified: an order's restored revision can only raise the bump.
        let restored = self
            .restore_order()
            .await?
            .and_then(|stored| Signed::unverified::<RestoreOrder>(&stored))
            .and_then(|order| order.restored)
            .map(|r| r.revision);
        Ok(manifests
            .iter()
            .map(|m| m.revision)
            .chain(segments.iter().map(|s| s.last))
            .chain(pointer)
            .chain(restored)
            .max()
            .unwrap_or(0))
    }

    /// The operator's leave to start empty, if one is in the bucket, as
    /// stored (signed; the reader verifies it).
    pub async fn empty_start_permit(&self) -> Result<Option<Vec<u8>>, BackupStoreError> {
        self.get_bytes(&self.layout.empty_start_permit_key()).await
    }

    pub async fn put_empty_start_permit(&self, permit: &Signed) -> Result<(), BackupStoreError> {
        self.put_json(&self.layout.empty_start_permit_key(), permit)
            .await
    }

    /// Records that `node` stopped its etcd for order `id`.
    pub async fn acknowledge_quarantine(
        &self,
        id: &str,
        node: &Acknowledger,
    ) -> Result<(), BackupStoreError> {
        self.put_empty(&self.layout.quarantine_ack_key(id, node))
            .await
    }

    /// The instances that acknowledged order `id`'s quarantine, each by
    /// an object its own role session wrote ([`Acknowledger::instance_of`]).
    pub async fn quarantine_acks(&self, id: &str) -> Result<Vec<String>, BackupStoreError> {
        let prefix = self.layout.quarantine_acks_prefix(id);
        let keys = self.keys_under(&prefix).await?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(Acknowledger::instance_of)
            .map(str::to_owned)
            .collect())
    }

    /// Records that the node named `node` ([`ca_rotation_acks::ack_name`])
    /// reached `stage` of CA rotation `rotation`.
    pub async fn acknowledge_ca_rotation(
        &self,
        rotation: &str,
        stage: Stage,
        node: &str,
    ) -> Result<(), BackupStoreError> {
        self.put_empty(&self.layout.ca_rotation_ack_key(rotation, stage, node))
            .await
    }

    /// An acknowledgement: an empty object whose name says it all.
    async fn put_empty(&self, key: &str) -> Result<(), BackupStoreError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(())
    }

    /// The instances that acknowledged `stage` of CA rotation `rotation`.
    pub async fn ca_rotation_acks(
        &self,
        rotation: &str,
        stage: Stage,
    ) -> Result<Vec<String>, BackupStoreError> {
        let prefix = self.layout.ca_rotation_acks_prefix(rotation, stage);
        let keys = self.keys_under(&prefix).await?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(ca_rotation_acks::acknowledging_instance)
            .map(str::to_owned)
            .collect())
    }

    /// Downloads the snapshot to `dest`, checks its size and SHA-256 against
    /// the manifest, and decompresses it. `Damaged` when it does not match.
    pub async fn download_verified(
        &self,
        manifest: &BackupManifest,
        dest: &Path,
    ) -> Result<(), BackupStoreError> {
        let damaged = |reason: String| BackupStoreError::Damaged {
            bucket: self.bucket.clone(),
            key: manifest.key.clone(),
            reason,
        };
        let object = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&manifest.key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => {
                return Err(damaged("the snapshot object is missing".into()))
            }
            Err(e) => return Err(self.error("GetObject", &manifest.key, e)),
        };
        let stored = dest.with_extension("download");
        let mut file = tokio::fs::File::create(&stored)
            .await
            .map_err(BackupStoreError::io(&stored))?;
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let mut body = object.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BackupStoreError::S3 {
                operation: "GetObject",
                bucket: self.bucket.clone(),
                key: manifest.key.clone(),
                message: error_chain(&e),
            })?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(BackupStoreError::io(&stored))?;
        }
        file.flush().await.map_err(BackupStoreError::io(&stored))?;
        drop(file);
        let digest = hex(&hasher.finalize());
        if size != manifest.stored_bytes || digest != manifest.sha256 {
            let _ = tokio::fs::remove_file(&stored).await;
            return Err(damaged(format!(
                "downloaded {size} bytes with SHA-256 {digest}, the manifest records {} bytes with {}",
                manifest.stored_bytes, manifest.sha256
            )));
        }
        match manifest.compression {
            Compression::None => tokio::fs::rename(&stored, dest)
                .await
                .map_err(BackupStoreError::io(dest)),
            Compression::Zstd => {
                let (from, to) = (stored.clone(), dest.to_owned());
                let result = tokio::task::spawn_blocking(move || decompress(&from, &to)).await;
                let _ = tokio::fs::remove_file(&stored).await;
                match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(damaged(format!("zstd decompression failed: {e}"))),
                    Err(e) => Err(damaged(format!("decompression task failed: {e}"))),
                }
            }
        }
    }
}

fn decompress(from: &Path, to: &Path) -> std::io::Result<()> {
    let input = std::fs::File::open(from)?;
    let mut output = std::fs::File::create(to)?;
    zstd::stream::copy_decode(input, &mut output)?;
    output.sync_all()
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
