//! The backup format in S3, shared by the backup function and the restore.
//!
//! Under the prefix (default `backups/`):
//! - `snapshots/<UTC time>-r<revision>.db[.zst]`: an etcd snapshot, as taken
//!   by the maintenance snapshot API, optionally zstd-compressed;
//! - `snapshots/<same>.manifest.json`: its [`BackupManifest`], written only
//!   after the snapshot upload completed: a snapshot without a manifest is
//!   an interrupted upload and is never restored;
//! - `latest.json`: the manifest of the newest backup, written last.
//!
//! The checksum is over the stored bytes, so a restore verifies exactly what
//! it downloaded before it trusts it.

use crate::etcd::ids::ClusterId;
use serde::{Deserialize, Serialize};

use crate::clock;

/// What the decision needs of a backup: which one, and the revision it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRef {
    /// Object key of the snapshot in the backup bucket.
    pub key: String,
    /// The etcd revision the snapshot was taken at.
    pub revision: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
}

/// Everything recorded about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Object key of the snapshot.
    pub key: String,
    /// Lower-case hex SHA-256 of the stored object's bytes.
    pub sha256: String,
    /// Size of the stored object.
    pub stored_bytes: u64,
    /// Size of the snapshot before compression.
    pub snapshot_bytes: u64,
    pub compression: Compression,
    /// The etcd revision the snapshot holds.
    pub revision: i64,
    /// The cluster it was taken from.
    pub cluster_id: ClusterId,
    pub member_count: usize,
    pub etcd_version: String,
    /// When the snapshot was taken, seconds since the Unix epoch.
    pub created_at: i64,
}

impl BackupManifest {
    pub fn backup_ref(&self) -> BackupRef {
        BackupRef {
            key: self.key.clone(),
            revision: self.revision,
        }
    }
}

/// Where things live under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLayout {
    prefix: String,
}

impl BackupLayout {
    /// `prefix` is used as given, with a `/` added when missing ("" = bucket root).
    pub fn new(prefix: &str) -> Self {
        let prefix = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        Self { prefix }
    }

    /// The prefix everything lives under ("" for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn snapshots_prefix(&self) -> String {
        format!("{}snapshots/", self.prefix)
    }

    /// Where the continuous backup's segments live ([`crate::backup::segment`]).
    pub fn segments_prefix(&self) -> String {
        format!("{}{}", self.prefix, crate::backup::segment::SEGMENTS_DIR)
    }

    pub fn pointer_key(&self) -> String {
        format!("{}latest.json", self.prefix)
    }

    /// Keys sort by time, then revision, so a listing is already in age order;
    /// `run` tells apart the objects of runs at the same second and revision.
    pub fn snapshot_key(
        &self,
        created_at: i64,
        revision: i64,
        run: &str,
        compression: Compression,
    ) -> String {
        let extension = match compression {
            Compression::None => "db",
            Compression::Zstd => "db.zst",
        };
        format!(
            "{}{}-r{revision:020}-{run}.{extension}",
            self.snapshots_prefix(),
            clock::utc_stamp(created_at)
        )
    }

    /// What a snapshot's key becomes its manifest's with.
    pub const MANIFEST_SUFFIX: &'static str = ".manifest.json";

    pub fn manifest_key(snapshot_key: &str) -> String {
        format!("{snapshot_key}{}", Self::MANIFEST_SUFFIX)
    }

    pub fn is_manifest_key(key: &str) -> bool {
        key.ends_with(Self::MANIFEST_SUFFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_keys_sort_by_time_then_revision() {
        let layout = BackupLayout::new("backups");
        let a = layout.snapshot_key(1_000, 99, "b0", Compression::Zstd);
        let b = layout.snapshot_key(1_000, 100, "a0", Compression::Zstd);
        let c = layout.snapshot_key(2_000, 5, "a0", Compression::None);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a.starts_with("backups/snapshots/19700101T001640Z-r"), "{a}");
        assert!(a.ends_with("-b0.db.zst"), "{a}");
    }

    #[test]
    fn runs_at_the_same_second_and_revision_get_keys_of_their_own() {
        let layout = BackupLayout::new("backups");
        assert_ne!(
            layout.snapshot_key(1_000, 99, "run-a", Compression::Zstd),
            layout.snapshot_key(1_000, 99, "run-b", Compression::Zstd)
        );
    }

    #[test]
    fn prefix_gets_exactly_one_slash() {
        assert_eq!(BackupLayout::new("b").pointer_key(), "b/latest.json");
        assert_eq!(BackupLayout::new("b/").pointer_key(), "b/latest.json");
        assert_eq!(BackupLayout::new("").pointer_key(), "latest.json");
    }

    #[test]
    fn manifest_keys_are_recognised() {
        let key = BackupLayout::manifest_key("backups/snapshots/x.db");
        assert!(BackupLayout::is_manifest_key(&key));
        assert!(!BackupLayout::is_manifest_key("backups/snapshots/x.db"));
    }

    #[test]
    fn manifest_round_trips_through_json() {
        let manifest = BackupManifest {
            key: "k".into(),
            sha256: "ab".into(),
            stored_bytes: 1,
            snapshot_bytes: 2,
            compression: Compression::Zstd,
            revision: 3,
            cluster_id: ClusterId(0xc1),
            member_count: 3,
            etcd_version: "3.5.1".into(),
            created_at: 4,
        };
        let json = serde_json::to_string(&manifest).expect("serialize");
        assert!(json.contains("\"compression\":\"zstd\""), "{json}");
        assert_eq!(
            serde_json::from_str::<BackupManifest>(&json).expect("parse"),
            manifest
        );
    }
}
