//! `restore`: brings the running cluster back to a backup, a revision or a
//! time, through the bucket and the backup function (see
//! [`etcd_aws_core::contract::restore_order`] for what the nodes do).
//!
//! 1. The order, then a safety backup of the cluster as it is, so the
//!    restore can be undone (`restore --backup <its key>`); the order keeps
//!    retention away from the snapshot to restore meanwhile.
//! 2. The order, phase quarantine: every node stops etcd and moves its data
//!    aside; the command waits until every live instance of the group says
//!    it is out. From here no client reads or writes.
//! 3. Phase restore: the seed restores the target and forms a new cluster
//!    (revisions bumped, marked compacted); the others join. Clients are back
//!    once the seed serves. The command waits for a whole, new cluster.
//! 4. A backup of the restored cluster, then phase done.
//!
//! Every step reads its state from the bucket first, so a command that was
//! interrupted is run again with the same target and carries on where it
//! stopped.

use std::collections::BTreeSet;
use std::time::Duration;

use etcd_aws_core::backup::replay::{plan, Lineage, ReplayTarget};
use etcd_aws_core::clock::utc_stamp;
use etcd_aws_core::contract::cluster_report::ClusterReport;
use etcd_aws_core::contract::restore_order::{
    self, Phase, RestoreOrder, RestoreTarget, Restored, SafetyBackup,
};
use etcd_aws_core::etcd::ids::ClusterId;
use etcd_aws_io::aws::discovery::{DiscoveryError, GroupDiscovery};
use etcd_aws_io::aws::order_key::{OrderKey, OrderKeyError};
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use tokio::time::Instant;

use super::function::{BackupFunction, InvokeError};
use super::progress::Progress;
use etcd_aws_core::clock;

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    Backup(String),
    Revision(i64),
    /// Milliseconds since the epoch.
    Time(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] BackupStoreError),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    #[error(transparent)]
    Signing(#[from] OrderKeyError),
    #[error("cannot read the group's instances: {0}")]
    Discovery(#[from] DiscoveryError),
    #[error("backup {key} has no manifest in the bucket; `etcd-aws-cfn backups list` shows the backups there are")]
    NoSuchBackup { key: String },
    #[error("no snapshot was taken at or before revision {revision}; `etcd-aws-cfn backups list` shows the revisions a restore can reach")]
    NothingBefore { revision: i64 },
    #[error("revision {revision} cannot be reached: from snapshot {snapshot} the captured changes reach revision {reach}; `etcd-aws-cfn backups list` shows the revisions a restore can reach")]
    Unreachable {
        revision: i64,
        snapshot: String,
        reach: i64,
    },
    #[error("restore order {id} to {target} is in progress (phase {phase:?}); run this command again with the same target to finish it")]
    InProgress {
        id: String,
        target: RestoreTarget,
        phase: Phase,
    },
    #[error("the safety backup {key} has no manifest, so the restore did not start; run the command again")]
    SafetyBackupMissing { key: String },
    #[error("{what} did not happen within {waited:?}: {state}. The order stays in the bucket: run this command again to carry on")]
    TimedOut {
        what: &'static str,
        waited: Duration,
        state: String,
    },
}

/// What a finished restore did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub order_id: String,
    pub target: RestoreTarget,
    /// The revision the cluster went back to (before the bump).
    pub revision: i64,
    /// When the cluster had acknowledged it, RFC 3339 (UTC), when the backups say.
    pub time: Option<String>,
    /// The restored cluster; `None` when an earlier run finished the restore
    /// and the order does not say.
    pub cluster_id: Option<ClusterId>,
    pub safety_backup: String,
    pub backup_of_restored: String,
    /// From the first node out to the restored cluster serving, as this
    /// command saw it; `None` when an earlier run of it saw the start.
    pub clients_out_seconds: Option<f64>,
}

/// A target a restore can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What the nodes restore.
    pub target: RestoreTarget,
    /// The revision the cluster goes back to (before the bump).
    pub revision: i64,
    /// When the cluster had acknowledged it (milliseconds since the epoch),
    /// as far as the backups say.
    pub time_ms: Option<i64>,
    /// A sentence saying what it is, for the confirmation and the log.
    pub described: String,
}

/// The target as the nodes restore it, checked against what the bucket holds.
pub async fn resolve(store: &BackupStore, requested: &Requested) -> Result<Resolved, RestoreError> {
    match requested {
        Requested::Backup(key) => {
            let manifest = store
                .manifest_of(key)
                .await?
                .ok_or_else(|| RestoreError::NoSuchBackup { key: key.clone() })?;
            Ok(Resolved {
                target: RestoreTarget::Backup(key.clone()),
                revision: manifest.revision,
                time_ms: Some(manifest.created_at.saturating_mul(1000)),
                described: format!(
                    "backup {key} (revision {}, taken {}), without the changes captured after it",
                    manifest.revision,
                    utc_stamp(manifest.created_at)
                ),
            })
        }
        Requested::Revision(revision) => reachable(store, *revision, None).await,
        Requested::Time(time_ms) => {
            let revision = store.revision_at(*time_ms).await?;
            reachable(store, revision, Some(*time_ms)).await
        }
    }
}

async fn reachable(
    store: &BackupStore,
    revision: i64,
    asked_time_ms: Option<i64>,
) -> Result<Resolved, RestoreError> {
    let manifests = store.manifests().await?;
    let snapshot = manifests
        .iter()
        .filter(|m| m.revision <= revision)
        .max_by_key(|m| (m.revision, m.created_at))
        .ok_or(RestoreError::NothingBefore { revision })?;
    let segments = store.segments().await?;
    let reach = plan(
        snapshot.revision,
        Lineage::restore(snapshot.cluster_id),
        &segments,
        ReplayTarget::Revision(revision),
    );
    if reach.until < revision {
        return Err(RestoreError::Unreachable {
            revision,
            snapshot: snapshot.key.clone(),
            reach: reach.until,
        });
    }
    let when = asked_time_ms.map_or_else(String::new, |ms| {
        format!(", the last change acknowledged by {}", utc_stamp(ms / 1000))
    });
    Ok(Resolved {
        target: RestoreTarget::Revision(revision),
        revision,
        time_ms: store.revision_time(revision).await?,
        described: format!(
            "revision {revision}{when}: snapshot {} (revision {}) and {} captured segments after it",
            snapshot.key,
            snapshot.revision,
            reach.segments.len()
        ),
    })
}

/// How the command waits.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    pub poll: Duration,
    /// Bound on each wait (the quarantine, the restored cluster).
    pub timeout: Duration,
}

pub struct RestoreRun<'a> {
    pub store: &'a BackupStore,
    /// Signs every order this command writes: the nodes obey no other.
    pub signing: &'a OrderKey,
    pub function: &'a BackupFunction,
    pub discovery: GroupDiscovery,
    pub group: String,
    pub waits: Waits,
    pub progress: &'a Progress,
}

impl RestoreRun<'_> {
    pub async fn run(&self, resolved: &Resolved) -> Result<Outcome, RestoreError> {
        let mut order = self.order_for(resolved.target.clone()).await?;
        let time = resolved.time_ms.map(rfc3339);
        if order.phase == Phase::SafetyBackup {
            self.safety_backup(&mut order).await?;
        }
        let mut out_since = None;
        if order.phase == Phase::Quarantine {
            out_since = Some(self.quarantine(&order).await?);
            order.phase = Phase::Restore;
            self.write(&order).await?;
            self.progress.step(
                "restore",
                "every node is out: the seed restores the target and forms the cluster, the others join it",
            );
        }
        if order.phase == Phase::Restore {
            let report = self.restored_cluster(&order).await?;
            let clients_out = out_since.map(|since: Instant| since.elapsed().as_secs_f64());
            let cluster_id = report.cluster_id.unwrap_or_default();
            self.progress.step(
                "backup",
                format!("cluster {cluster_id} is whole; backing it up, so a later total loss restores it and not the order's target"),
            );
            let backup = self.function.backup().await?;
            let revision = match &order.target {
                RestoreTarget::Revision(revision) => *revision,
                RestoreTarget::Backup(key) => {
                    self.store.manifest_of(key).await?.map_or(0, |m| m.revision)
                }
            };
            order.phase = Phase::Done;
            order.restored = Some(Restored {
                cluster_id,
                revision,
                finished_at: clock::now_unix_seconds(),
            });
            self.write(&order).await?;
            return Ok(Outcome {
                order_id: order.id.clone(),
                target: order.target.clone(),
                revision,
                time,
                cluster_id: Some(cluster_id),
                safety_backup: safety_key(&order),
                backup_of_restored: backup.key,
                clients_out_seconds: clients_out,
            });
        }
        // Done already: an earlier run finished it between our reads.
        Ok(Outcome {
            safety_backup: safety_key(&order),
            order_id: order.id,
            target: order.target,
            revision: order.restored.as_ref().map_or(0, |r| r.revision),
            time,
            cluster_id: order.restored.as_ref().map(|r| r.cluster_id),
            backup_of_restored: String::new(),
            clients_out_seconds: None,
        })
    }

    /// Signs `order` and puts it in the bucket.
    async fn write(&self, order: &RestoreOrder) -> Result<(), RestoreError> {
        let signed = self.signing.sign(order).await?;
        Ok(self.store.put_restore_order(&signed).await?)
    }

    /// The order in the bucket, if an operator signed it; one that no
    /// operator signed is no order to carry on (the nodes ignore it too),
    /// and the next order this command writes replaces it.
    async fn signed_order(&self) -> Result<Option<RestoreOrder>, RestoreError> {
        let Some(stored) = self.store.restore_order().await? else {
            return Ok(None);
        };
        match self.signing.verifier().await?.open::<RestoreOrder>(&stored) {
            Ok(order) => Ok(Some(order)),
            Err(refusal) => {
                self.progress.step(
                    "unsigned order",
                    format!(
                        "{} holds an order no operator signed ({refusal}); the nodes ignored it and this command replaces it. Find out who wrote it: CloudTrail's S3 data events name them",
                        self.store.layout().restore_order_key()
                    ),
                );
                Ok(None)
            }
        }
    }

    /// The order in progress for this target, or a new one after a safety backup.
    async fn order_for(&self, target: RestoreTarget) -> Result<RestoreOrder, RestoreError> {
        if let Some(order) = self.signed_order().await? {
            if order.phase != Phase::Done {
                if order.target != target {
                    return Err(RestoreError::InProgress {
                        id: order.id,
                        target: order.target,
                        phase: order.phase,
                    });
                }
                self.progress.step(
                    "resume",
                    format!(
                        "restore order {} is in phase {:?}; carrying on",
                        order.id, order.phase
                    ),
                );
                return Ok(order);
            }
        }
        let now = clock::now_unix_seconds();
        let order = RestoreOrder {
            format: restore_order::FORMAT,
            id: format!("{}-{}", utc_stamp(now), std::process::id()),
            target,
            safety: None,
            phase: Phase::SafetyBackup,
            created_at: now,
            restored: None,
        };
        // Written first: from now on retention keeps the snapshot to restore.
        self.write(&order).await?;
        Ok(order)
    }

    /// Backs the cluster up as it is, then orders the quarantine.
    async fn safety_backup(&self, order: &mut RestoreOrder) -> Result<(), RestoreError> {
        self.progress.step(
            "safety backup",
            "backing up the cluster as it is now, so the restore can be undone",
        );
        let safety = self.function.backup().await?;
        let manifest = self.store.manifest_of(&safety.key).await?.ok_or_else(|| {
            RestoreError::SafetyBackupMissing {
                key: safety.key.clone(),
            }
        })?;
        self.progress.step(
            "safety backup",
            format!(
                "{} (revision {}); `restore --backup {}` undoes this restore",
                safety.key, safety.revision, safety.key
            ),
        );
        order.safety = Some(SafetyBackup {
            key: safety.key,
            cluster_id: manifest.cluster_id,
        });
        order.phase = Phase::Quarantine;
        self.write(order).await?;
        self.progress.step(
            "quarantine",
            format!("order {} written: every node stops its etcd", order.id),
        );
        Ok(())
    }

    /// Waits until every live instance of the group acknowledged the
    /// quarantine; returns when the first one did.
    async fn quarantine(&self, order: &RestoreOrder) -> Result<Instant, RestoreError> {
        let started = Instant::now();
        let mut first_out = None;
        let mut last_count = usize::MAX;
        loop {
            let instances = self.discovery.instances(&self.group).await?;
            let live: BTreeSet<String> = instances
                .iter()
                .filter(|i| i.is_live())
                .map(|i| i.id.clone())
                .collect();
            let acks: BTreeSet<String> = self
                .store
                .quarantine_acks(&order.id)
                .await?
                .into_iter()
                .collect();
            let out = live.intersection(&acks).count();
            if !acks.is_empty() {
                first_out.get_or_insert_with(Instant::now);
            }
            if out != last_count {
                self.progress.step(
                    "quarantine",
                    format!("{out} of {} nodes stopped", live.len()),
                );
                last_count = out;
            }
            if !live.is_empty() && live.is_subset(&acks) {
                return Ok(first_out.unwrap_or_else(Instant::now));
            }
            if started.elapsed() >= self.waits.timeout {
                let missing: Vec<&String> = live.difference(&acks).collect();
                return Err(RestoreError::TimedOut {
                    what: "every node stopping",
                    waited: self.waits.timeout,
                    state: format!("instances {missing:?} did not acknowledge (is their agent running, and of this version?)"),
                });
            }
            tokio::time::sleep(self.waits.poll).await;
        }
    }

    /// Waits for a new cluster whose every live instance is a voting member
    /// that answers, with a leader.
    async fn restored_cluster(&self, order: &RestoreOrder) -> Result<ClusterReport, RestoreError> {
        let started = Instant::now();
        let mut last_state = String::new();
        loop {
            let state = match self.function.status().await {
                Ok(report) => match restored_state(&report, from_cluster_id(order)) {
                    Ok(()) => return Ok(report),
                    Err(state) => state,
                },
                Err(e) => format!("the status job failed: {e}"),
            };
            if state != last_state {
                self.progress.step("restore", &state);
                last_state = state;
            }
            if started.elapsed() >= self.waits.timeout {
                return Err(RestoreError::TimedOut {
                    what: "the restored cluster becoming whole",
                    waited: self.waits.timeout,
                    state: last_state,
                });
            }
            tokio::time::sleep(self.waits.poll).await;
        }
    }
}

/// The key of the backup that undoes `order` (taken before its quarantine).
fn safety_key(order: &RestoreOrder) -> String {
    order
        .safety
        .as_ref()
        .map_or_else(String::new, |s| s.key.clone())
}

/// The cluster being restored, as its safety backup recorded it.
fn from_cluster_id(order: &RestoreOrder) -> Option<ClusterId> {
    order.safety.as_ref().map(|s| s.cluster_id)
}

/// `2026-12-01T10:00:00.123Z` for milliseconds since the epoch.
fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(clock::from_unix_millis(ms)).to_string()
}

/// Whether `report` shows the restored cluster whole; what it shows otherwise.
pub fn restored_state(
    report: &ClusterReport,
    from_cluster_id: Option<ClusterId>,
) -> Result<(), String> {
    let Some(cluster_id) = &report.cluster_id else {
        return Err(format!(
            "no member serves yet ({})",
            report.error.as_deref().unwrap_or("the seed is restoring")
        ));
    };
    if Some(*cluster_id) == from_cluster_id {
        return Err(format!(
            "cluster {cluster_id}, the one being restored, still answers"
        ));
    }
    let live = report.live_instances().count();
    let ready = report
        .live_instances()
        .filter(|i| {
            report
                .member_run_by(&i.id)
                .is_some_and(|m| m.serves_as_voter())
        })
        .count();
    if ready < live || report.leader_id.is_none() {
        return Err(format!(
            "cluster {cluster_id} serves; {ready} of {live} nodes are voting members"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use etcd_aws_core::contract::cluster_report::{
        ReportedInstance, ReportedMember, ReportedStatus,
    };
    use etcd_aws_core::etcd::ids::MemberId;
    use etcd_aws_core::membership::member::Standing;

    use super::*;

    const OLD: u64 = 1;
    const NEW: u64 = 2;

    fn report(cluster_id: Option<u64>, voters: usize, learners: usize) -> ClusterReport {
        let instances: Vec<ReportedInstance> = (0..3)
            .map(|n| ReportedInstance {
                id: format!("i-{n}"),
                private_ip: None,
                lifecycle_state: "InService".into(),
                live: true,
                availability_zone: None,
            })
            .collect();
        let members = (0..voters + learners)
            .map(|n| ReportedMember {
                id: MemberId(n as u64 + 1),
                name: format!("i-{n}"),
                instance: Some(format!("i-{n}")),
                standing: Standing::Live,
                peer_urls: vec![],
                is_learner: n >= voters,
                status: Some(ReportedStatus {
                    version: "3.5.16".into(),
                    revision: 1,
                    db_size: 1,
                    db_size_in_use: 1,
                    raft_term: 1,
                }),
            })
            .collect();
        ClusterReport {
            instances,
            members,
            cluster_id: cluster_id.map(ClusterId),
            leader_id: cluster_id.map(|_| MemberId(1)),
            revision: Some(1),
            alarms: vec![],
            quota_bytes: 1,
            cluster_version: None,
            certificates: Default::default(),
            error: None,
        }
    }

    #[test]
    fn a_new_cluster_with_every_node_a_voter_is_restored() {
        assert_eq!(
            restored_state(&report(Some(NEW), 3, 0), Some(ClusterId(OLD))),
            Ok(())
        );
    }

    #[test]
    fn the_old_cluster_answering_is_not_restored() {
        assert!(
            restored_state(&report(Some(OLD), 3, 0), Some(ClusterId(OLD)))
                .unwrap_err()
                .contains("the one being restored")
        );
    }

    #[test]
    fn a_seed_alone_or_with_learners_is_not_whole_yet() {
        assert_eq!(
            restored_state(&report(Some(NEW), 1, 2), Some(ClusterId(OLD))),
            Err("cluster 2 serves; 1 of 3 nodes are voting members".to_owned())
        );
    }

    #[test]
    fn no_member_serving_is_the_seed_still_restoring() {
        assert!(restored_state(&report(None, 0, 0), Some(ClusterId(OLD)))
            .unwrap_err()
            .starts_with("no member serves yet"));
    }
}
