//! A restore of the running cluster, as the operator's `restore` command
//! orders it and the nodes carry it out. The order lives in the backup bucket
//! (`<prefix>restore/order.json`), so an interrupted restore is resumed by
//! running the command again, and a node that starts in the middle of one
//! finds out what to do.
//!
//! The phases, in order:
//! 0. [`Phase::SafetyBackup`]: the command backs the cluster up as it is, so
//!    the restore can be undone; the order already protects the snapshot to
//!    restore from retention. The nodes carry on.
//! 1. [`Phase::Quarantine`]: every node stops its etcd, moves its data
//!    directory aside (never deleting it) and acknowledges with an object
//!    `<prefix>restore/<id>/<role id>:<instance id>` ([`Acknowledger`]); no
//!    member serves, so no client reads or writes anything meanwhile.
//! 2. [`Phase::Restore`]: the command saw every node of the group acknowledge.
//!    The nodes observe the group again and find no cluster: the seed restores
//!    the order's target and forms the cluster from it, the others join it, as
//!    after a total loss. Clients come back once the seed serves.
//! 3. [`Phase::Done`]: the restored cluster is whole and a backup of it is
//!    stored, so a later total loss restores that and not the order's target.
//!
//! What a node does about an order is [`node_step`]'s decision: pure, tested
//! below.

use crate::etcd::ids::ClusterId;
use serde::{Deserialize, Serialize};

use crate::backup::manifest::{BackupLayout, BackupManifest};
use crate::contract::names::bucket::RESTORE_DIR;

/// The order format this code writes and reads.
pub const FORMAT: u32 = 1;

/// Where a restore goes back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreTarget {
    /// Exactly this snapshot (its object key), without replaying anything after it.
    Backup(String),
    /// The newest snapshot at or before this revision, then the captured
    /// changes up to and including it.
    Revision(i64),
}

impl std::fmt::Display for RestoreTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreTarget::Backup(key) => write!(f, "backup {key}"),
            RestoreTarget::Revision(revision) => write!(f, "revision {revision}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    SafetyBackup,
    Quarantine,
    Restore,
    Done,
}

/// The order, as stored in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOrder {
    pub format: u32,
    /// Tells this restore's acknowledgements apart from an earlier one's.
    pub id: String,
    pub target: RestoreTarget,
    /// The backup of the cluster as it was just before the restore (restoring
    /// it undoes the restore); `None` until it is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyBackup>,
    pub phase: Phase,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Set once done: the restored cluster's id and the revision the restore
    /// reached (before the bump).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Restored>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyBackup {
    pub key: String,
    /// The cluster being restored (the restored one has another).
    pub cluster_id: ClusterId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    pub cluster_id: ClusterId,
    pub revision: i64,
    /// Seconds since the epoch.
    pub finished_at: i64,
}

impl crate::contract::signed::Instruction for RestoreOrder {
    const KIND: &'static str = "restore_order";
}

/// What a node does about the order in the bucket, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStep {
    /// No restore is under way: carry on as usual.
    Carry,
    /// Stop etcd, move the data directory aside and acknowledge.
    Quarantine,
    /// Acknowledged already: keep etcd stopped until the restore phase.
    Hold,
    /// Observe and decide as usual; a seed forms from this target.
    Restore(RestoreTarget),
}

/// The one rule for what a node does about `order`, given whether this node
/// has acknowledged its quarantine.
pub fn node_step(order: Option<&RestoreOrder>, acknowledged: bool) -> NodeStep {
    match order {
        None => NodeStep::Carry,
        Some(order) => match order.phase {
            Phase::SafetyBackup | Phase::Done => NodeStep::Carry,
            Phase::Quarantine if acknowledged => NodeStep::Hold,
            Phase::Quarantine => NodeStep::Quarantine,
            Phase::Restore => NodeStep::Restore(order.target.clone()),
        },
    }
}

/// The snapshots retention must keep for `order`: its safety backup (it
/// undoes the restore, until the next one), and while the restore is under
/// way the snapshot its seed restores: the one named, or the newest at or
/// before the revision (the captured changes after it stay with it).
pub fn protected_backups<'a>(
    order: &'a RestoreOrder,
    manifests: &'a [BackupManifest],
) -> Vec<&'a str> {
    let mut protected: Vec<&str> = order.safety.iter().map(|s| s.key.as_str()).collect();
    if order.phase != Phase::Done {
        match &order.target {
            RestoreTarget::Backup(key) => protected.push(key.as_str()),
            RestoreTarget::Revision(revision) => protected.extend(
                manifests
                    .iter()
                    .filter(|m| m.revision <= *revision)
                    .max_by_key(|m| (m.revision, m.created_at))
                    .map(|m| m.key.as_str()),
            ),
        }
    }
    protected
}

impl BackupLayout {
    pub fn restore_order_key(&self) -> String {
        format!("{}{RESTORE_DIR}order.json", self.prefix())
    }

    /// Where the nodes acknowledge order `id`'s quarantine.
    pub fn quarantine_acks_prefix(&self, id: &str) -> String {
        format!("{}{RESTORE_DIR}{id}/", self.prefix())
    }

    pub fn quarantine_ack_key(&self, id: &str, node: &Acknowledger) -> String {
        format!("{}{}", self.quarantine_acks_prefix(id), node.name())
    }
}

/// A node as it signs its acknowledgement of a quarantine: the IAM user id of
/// its role session on EC2, `<role id>:<instance id>` (an instance profile's
/// session is named after the instance). The acknowledgement's object is
/// named exactly that, so the node role's policy can grant the one object
/// `restore/*/${aws:userid}` and AWS refuses a node acknowledging for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledger {
    /// The node role's unique id (`AROA…`, CloudFormation's `RoleId`).
    pub role_id: String,
    pub instance_id: String,
}

impl Acknowledger {
    /// The acknowledgement's object name under the order's id.
    pub fn name(&self) -> String {
        format!("{}:{}", self.role_id, self.instance_id)
    }

    /// The instance an acknowledgement's object name speaks for; `None` for a
    /// name no node's role session writes (no role id, or an extra level).
    pub fn instance_of(name: &str) -> Option<&str> {
        let (role_id, instance_id) = name.rsplit_once(':')?;
        let well_formed = |part: &str| !part.is_empty() && !part.contains('/');
        (well_formed(role_id) && well_formed(instance_id)).then_some(instance_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(phase: Phase) -> RestoreOrder {
        RestoreOrder {
            format: FORMAT,
            id: "20261201T120000Z".into(),
            target: RestoreTarget::Revision(42),
            safety: Some(SafetyBackup {
                key: "backups/snapshots/x.db.zst".into(),
                cluster_id: ClusterId(0xabc),
            }),
            phase,
            created_at: 1,
            restored: None,
        }
    }

    #[test]
    fn without_an_order_while_its_safety_backup_is_taken_or_after_it_a_node_carries_on() {
        assert_eq!(node_step(None, false), NodeStep::Carry);
        assert_eq!(
            node_step(Some(&order(Phase::SafetyBackup)), false),
            NodeStep::Carry
        );
        assert_eq!(node_step(Some(&order(Phase::Done)), false), NodeStep::Carry);
        assert_eq!(node_step(Some(&order(Phase::Done)), true), NodeStep::Carry);
    }

    #[test]
    fn a_quarantine_stops_a_node_once_and_then_holds_it() {
        let quarantine = order(Phase::Quarantine);
        assert_eq!(node_step(Some(&quarantine), false), NodeStep::Quarantine);
        assert_eq!(node_step(Some(&quarantine), true), NodeStep::Hold);
    }

    #[test]
    fn the_restore_phase_lets_every_node_observe_with_the_target() {
        let restore = order(Phase::Restore);
        let expected = NodeStep::Restore(RestoreTarget::Revision(42));
        assert_eq!(node_step(Some(&restore), true), expected);
        // A node that joined the group after the quarantine never acknowledged
        // it; it has nothing to stop, and joins the restored cluster.
        assert_eq!(node_step(Some(&restore), false), expected);
    }

    #[test]
    fn an_order_reads_back_as_written() {
        let mut done = order(Phase::Done);
        done.target = RestoreTarget::Backup("backups/snapshots/a.db".into());
        done.restored = Some(Restored {
            cluster_id: ClusterId(0xdef),
            revision: 42,
            finished_at: 2,
        });
        let text = serde_json::to_string(&done).expect("serialises");
        assert!(text.contains(r#""phase":"done""#), "{text}");
        assert!(text.contains(r#""target":{"backup":"#), "{text}");
        let back: RestoreOrder = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, done);
    }

    fn manifest(key: &str, revision: i64) -> BackupManifest {
        BackupManifest {
            key: key.into(),
            sha256: String::new(),
            stored_bytes: 0,
            snapshot_bytes: 0,
            compression: crate::backup::manifest::Compression::None,
            revision,
            cluster_id: ClusterId(0xabc),
            member_count: 3,
            etcd_version: "3.5.16".into(),
            created_at: revision,
        }
    }

    #[test]
    fn a_restore_under_way_protects_its_safety_backup_and_the_snapshot_it_restores() {
        let manifests = [
            manifest("r10", 10),
            manifest("r40", 40),
            manifest("r50", 50),
        ];
        let mut under_way = order(Phase::Restore);
        assert_eq!(
            protected_backups(&under_way, &manifests),
            vec!["backups/snapshots/x.db.zst", "r40"]
        );
        under_way.target = RestoreTarget::Backup("r10".into());
        assert_eq!(
            protected_backups(&under_way, &manifests),
            vec!["backups/snapshots/x.db.zst", "r10"]
        );
    }

    #[test]
    fn before_its_safety_backup_an_order_protects_the_snapshot_it_will_restore() {
        let manifests = [manifest("r40", 40)];
        let mut starting = order(Phase::SafetyBackup);
        starting.safety = None;
        assert_eq!(protected_backups(&starting, &manifests), vec!["r40"]);
    }

    #[test]
    fn a_finished_restore_protects_only_the_backup_that_undoes_it() {
        let manifests = [manifest("r40", 40)];
        assert_eq!(
            protected_backups(&order(Phase::Done), &manifests),
            vec!["backups/snapshots/x.db.zst"]
        );
    }

    #[test]
    fn acknowledgements_live_under_the_orders_id_named_by_the_nodes_role_session() {
        let layout = BackupLayout::new("backups");
        assert_eq!(layout.restore_order_key(), "backups/restore/order.json");
        let node = Acknowledger {
            role_id: "AROAEXAMPLE".into(),
            instance_id: "i-0abc".into(),
        };
        assert_eq!(
            layout.quarantine_ack_key("r1", &node),
            "backups/restore/r1/AROAEXAMPLE:i-0abc"
        );
    }

    #[test]
    fn an_acknowledgement_speaks_only_for_the_instance_its_role_session_names() {
        for (name, instance) in [
            ("AROAEXAMPLE:i-0abc", Some("i-0abc")),
            // The role id itself holds no colon; the instance is the last part.
            ("AROA:EXTRA:i-0abc", Some("i-0abc")),
            // An object no node's session writes: it counts for nobody.
            ("i-0abc", None),
            (":i-0abc", None),
            ("AROAEXAMPLE:", None),
            ("AROAEXAMPLE:i-0abc/extra", None),
        ] {
            assert_eq!(Acknowledger::instance_of(name), instance, "{name}");
        }
    }
}
