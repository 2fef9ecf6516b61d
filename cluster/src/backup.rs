//! Backups as the bootstrap decision sees them.

/// A backup that can be restored: where it is and the etcd revision it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRef {
    /// Object key of the snapshot in the backup bucket.
    pub key: String,
    /// The etcd revision the snapshot was taken at.
    pub revision: i64,
}
