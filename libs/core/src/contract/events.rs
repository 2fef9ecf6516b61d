//! The `event` field of the agent's log lines (and of a few of the
//! functions'): what a node did or met, named
//! once, so that the stack's metric filters (`{ $.event = "..." }`), an
//! operator's Logs Insights query and the scenario tests match the event
//! rather than the wording of the message, which may change. Every line keeps
//! its message for people.
//!
//! The first group is what an operator must hear of after the fact (each has
//! a metric filter and an alarm in the stack); the second narrates a node's
//! life (formed, joined, promoted, waiting and why).

/// The field's name in the JSON line (the tracing field `event`).
pub const FIELD: &str = "event";
/// The agent stopped because a wait passed `--wait-timeout`.
pub const GAVE_UP_WAITING: &str = "gave_up_waiting";
/// A backup failed its checks at restore and was refused.
pub const BACKUP_DAMAGED: &str = "backup_damaged";
/// The restore fell back to an older backup: writes after it are lost.
pub const OLDER_BACKUP_RESTORED: &str = "older_backup_restored";
/// A seed found no snapshot but an earlier cluster's history in the bucket
/// and waits rather than form an empty cluster; the line's `reason` says what
/// it found and what to run (`etcd-aws-cfn start-empty`), and its fields
/// count it: `segments`, `pointer`, `restore_order`, and what the versioned
/// bucket shows deleted, `deleted_snapshots`, `deleted_segments`,
/// `deleted_pointer`.
pub const EMPTY_START_REFUSED: &str = "empty_start_refused";
/// A node refused an operator's instruction in the bucket (a restore order,
/// a start-empty permit) that the stack's order-signing key did not sign; the
/// line's `refusal` field says why ([`crate::contract::signed::Refusal::code`]).
pub const INSTRUCTION_REFUSED: &str = "instruction_refused";
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

// What a node does, in the order a node's life meets them.

/// The agent runs etcd without TLS (`--insecure-plaintext`, labs only).
pub const INSECURE_PLAINTEXT: &str = "insecure_plaintext";
/// A peer refused this node's TLS handshake, or this node refused the
/// peer's: the peer is counted as silent.
pub const PEER_TLS_REFUSED: &str = "peer_tls_refused";
/// The agent waits without etcd running; the line's `wait` field says why
/// (the reason's kind, such as `waiting_for_seed` or `peers_unconfirmed`).
pub const WAITING: &str = "waiting";
/// The seed formed a new one-member cluster (from a backup when the bucket
/// holds one: see [`RESTORED_BACKUP`]).
pub const FORMED: &str = "formed";
/// A restore put a backup in place for the cluster the seed forms; the line
/// carries the backup's `key` and `revision`.
pub const RESTORED_BACKUP: &str = "restored_backup";
/// A restore revoked the leases it brought back (`--restore-leases revoke`);
/// the line's `revoked` field counts them.
pub const LEASES_REVOKED: &str = "leases_revoked";
/// The agent deleted a data directory moved aside earlier; the line's
/// `reason` is `age` (older than `--moved-aside-retention`) or `space` (the
/// disk was short of `--min-free-disk-percent`).
pub const MOVED_ASIDE_PRUNED: &str = "moved_aside_pruned";
/// A joiner removed a member whose instance left the group.
pub const REMOVED_DEPARTED_MEMBER: &str = "removed_departed_member";
/// This node was added to the cluster as a learner (or its earlier addition
/// reused) and starts etcd to join.
pub const JOINED_AS_LEARNER: &str = "joined_as_learner";
/// This node's data belongs to a current member: etcd restarts on it.
pub const RESTARTED_ON_OWN_DATA: &str = "restarted_on_own_data";
/// This node's learner was promoted to a voting member.
pub const PROMOTED: &str = "promoted";
/// This node is a healthy voting member (readiness signalled).
pub const READY: &str = "ready";
/// This member's cluster lost quorum, and (a later line) got it back.
pub const QUORUM_LOST: &str = "quorum_lost";
pub const QUORUM_BACK: &str = "quorum_back";
/// Quorum is lost and this member will not force a new cluster; the line's
/// `wait` field says why (such as `members_may_return`).
pub const RECOVERY_WAITING: &str = "recovery_waiting";

// While etcd runs, besides quorum.

/// How full the data disk is, said at start and every
/// [`crate::etcd::disk::USE_REPORT_INTERVAL_SECONDS`] (a warning past
/// [`crate::etcd::disk::USED_ALARM_PERCENT`]). Its numeric fields
/// `used_percent`, `free_bytes` and `total_bytes` are what the stack's metric
/// filter reads ([`crate::contract::metrics::from_node_logs::DATA_DISK_USED`]), so they keep
/// their names.
pub const DATA_DISK_USE: &str = "data_disk_use";

/// This node renewed its certificate in place (etcd not restarted); the line
/// carries `valid_until` and `next_renewal`.
pub const CERTIFICATE_RENEWED: &str = "certificate_renewed";
/// A renewal failed; the line says why and when the next attempt is
/// (`retry_in_seconds`). The certificate in use stays until it expires.
pub const CERTIFICATE_RENEWAL_FAILED: &str = "certificate_renewal_failed";
/// This node's certificate has expired (its renewals failed): clients and
/// peers refuse it, and the agent can no longer judge quorum, which it says
/// instead of calling it a quorum loss. The line carries `valid_until`.
pub const CERTIFICATE_EXPIRED: &str = "certificate_expired";
/// A peer's certificate is refused for its dates (expired, or not valid yet),
/// named once per peer per quorum loss by a look that runs beside the quorum
/// watch; the line carries `peer` and `problem`.
pub const PEER_CERTIFICATE_INVALID: &str = "peer_certificate_invalid";
/// This node renewed the functions' client certificate in their secret (the
/// first node whose turn came); the line carries `valid_until`.
pub const FUNCTIONS_CERTIFICATE_RENEWED: &str = "functions_certificate_renewed";
/// A renewal of the functions' certificate failed; the line says why and
/// when the next attempt is (`retry_in_seconds`).
pub const FUNCTIONS_CERTIFICATE_RENEWAL_FAILED: &str = "functions_certificate_renewal_failed";
/// A CA rotation's stage changes what this member trusts and its turn came:
/// the agent restarts its etcd (the line carries `rotation` and `stage`).
pub const CA_TRUST_RESTART: &str = "ca_trust_restart";
/// This member serves what a CA rotation's stage asks and acknowledged it in
/// the bucket (`rotation`, `stage`).
pub const CA_ROTATION_STAGE_REACHED: &str = "ca_rotation_stage_reached";
/// A CA rotation waits on this member: for its turn, its peers' health or
/// the CA secret; `reason` says which, once per change.
pub const CA_ROTATION_WAITING: &str = "ca_rotation_waiting";
/// The lifecycle function found a new certificate in its secret (the nodes
/// renewed it) and presents it from now on, in the same execution environment.
pub const CLIENT_CERTIFICATE_REFRESHED: &str = "client_certificate_refreshed";
