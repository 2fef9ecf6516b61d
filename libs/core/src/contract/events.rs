//! The `event` field of the agent's log lines that an operator must hear of
//! after the fact: the stack's metric filters match it (`{ $.event = "..." }`)
//! rather than the wording of the message, which may change. Every line keeps
//! its message for people.

/// The field's name in the JSON line (the tracing field `event`).
pub const FIELD: &str = "event";
/// The agent stopped because a wait passed `--wait-timeout`.
pub const GAVE_UP_WAITING: &str = "gave_up_waiting";
/// A backup failed its checks at restore and was refused.
pub const BACKUP_DAMAGED: &str = "backup_damaged";
/// The restore fell back to an older backup: writes after it are lost.
pub const OLDER_BACKUP_RESTORED: &str = "older_backup_restored";
/// A survivor restarted etcd with `--force-new-cluster`.
pub const FORCE_NEW_CLUSTER: &str = "force_new_cluster";
/// etcd ended on its own (not stopped by the agent).
pub const ETCD_EXITED: &str = "etcd_exited";
/// etcd's corruption check refused this member's data, set aside.
pub const DATA_DIVERGED: &str = "data_diverged";
/// A restore could not replay every captured segment (one is missing or
/// damaged): the revisions after the last one it proved are lost.
pub const SEGMENTS_UNRECOVERABLE: &str = "segments_unrecoverable";
/// The capture found etcd's history compacted past what it had stored.
pub const CAPTURE_GAP: &str = "capture_gap";
