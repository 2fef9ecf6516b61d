//! What each run of the backup code may do in the backup bucket: the backup
//! run, the maintenance run and the capture run the same binary, each under
//! a role of its own, so that one job's credentials cannot do another's
//! damage.
//!
//! | run | writes | deletes | reads |
//! |---|---|---|---|
//! | backup (and the operator's status job) | snapshots and their manifests, `latest.json` | snapshots, manifests, segments (retention) | `latest.json`, manifests, the restore order |
//! | maintenance | a snapshot before defragmenting, its manifest, `latest.json` | nothing | `latest.json` |
//! | capture | segments, a snapshot past the segment bound, its manifest, `latest.json` | segments only (those a merge replaced) | `latest.json` |
//!
//! Retention is the backup run's alone: the snapshots the capture and the
//! maintenance run take delete nothing, so a capture's credentials can add
//! history but never remove a snapshot. No role writes under `restore/`: the
//! nodes acknowledge there, the operators order there, and the bucket policy
//! refuses anyone else the order and the start-empty permit
//! ([`crate::backup_bucket`]). Every key pattern comes from the core's
//! [`BackupLayout`], the same one the programs write by.

use serde_json::{json, Value};

use crate::intrinsics::{get_att, sub};
use crate::names::logical::BACKUP_BUCKET;
use crate::names::BACKUP_PREFIX;
use crate::policy::{allow, allow_when};
use etcd_aws_core::backup::manifest::BackupLayout;

/// Which run of the backup code a role is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupRun {
    Backup,
    Maintenance,
    Capture,
}

fn layout() -> BackupLayout {
    BackupLayout::new(BACKUP_PREFIX)
}

/// The objects under `key` (a key, or a pattern with `*`) in the bucket.
fn objects(key: &str) -> Value {
    sub(&format!("${{{BACKUP_BUCKET}.Arn}}/{key}"))
}

fn every_snapshot() -> Value {
    objects(&format!("{}*", layout().snapshots_prefix()))
}

fn every_segment() -> Value {
    objects(&format!("{}*", layout().segments_prefix()))
}

fn pointer() -> Value {
    objects(&layout().pointer_key())
}

/// A snapshot and its manifest share the snapshots' prefix; a multipart
/// upload's every call is `s3:PutObject`, and a failed one is aborted.
fn write_snapshots() -> Value {
    allow(
        "WriteSnapshots",
        &["s3:PutObject", "s3:AbortMultipartUpload"],
        vec![every_snapshot()],
    )
}

/// `latest.json`, written last, names the newest backup.
fn publish_newest_backup() -> Value {
    allow("PublishNewestBackup", &["s3:PutObject"], vec![pointer()])
}

fn read_newest_backup() -> Value {
    allow("ReadNewestBackup", &["s3:GetObject"], vec![pointer()])
}

/// Listing the prefix also makes S3 answer a read of a missing object (no
/// backup yet) with "no such key" rather than "access denied".
fn list_backups() -> Value {
    allow_when(
        "ListBackups",
        &["s3:ListBucket"],
        vec![get_att(BACKUP_BUCKET, "Arn")],
        json!({ "StringLike": { "s3:prefix": [format!("{BACKUP_PREFIX}*")] } }),
    )
}

/// The backup run's own grants: it reads every manifest and the restore
/// order (whose snapshots it keeps), and alone deletes what retention no
/// longer keeps, snapshots and the segments they supersede.
fn backup_only() -> Vec<Value> {
    let layout = layout();
    vec![
        allow(
            "ReadManifestsAndRestoreOrder",
            &["s3:GetObject"],
            vec![
                pointer(),
                objects(&format!("{}*.manifest.json", layout.snapshots_prefix())),
                objects(&layout.restore_order_key()),
            ],
        ),
        allow(
            "ThinBackups",
            &["s3:DeleteObject"],
            vec![every_snapshot(), every_segment()],
        ),
    ]
}

/// The capture's own grants: it stores segments and deletes the small ones
/// a merge replaced, never anything else.
fn capture_only() -> Vec<Value> {
    vec![
        read_newest_backup(),
        allow(
            "WriteSegments",
            &["s3:PutObject", "s3:DeleteObject"],
            vec![every_segment()],
        ),
    ]
}

/// The bucket statements of `run`'s role (the key's, the group's and the
/// certificate's are the caller's).
pub fn bucket_statements(run: BackupRun) -> Vec<Value> {
    let mut statements = vec![write_snapshots(), publish_newest_backup(), list_backups()];
    statements.extend(match run {
        BackupRun::Backup => backup_only(),
        BackupRun::Maintenance => vec![read_newest_backup()],
        BackupRun::Capture => capture_only(),
    });
    statements
}
