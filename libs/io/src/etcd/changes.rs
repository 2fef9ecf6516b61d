//! etcd's history as the continuous backup sees it: read as a watch of every
//! key from a revision on (the capture), written back one revision per
//! transaction (the replay after a restore). Both speak [`segment::Change`],
//! so what is captured is exactly what is replayed.
//!
//! [`segment::Change`]: etcd_aws_core::backup::segment::Change

use etcd_client::{
    Compare, EventType, LeaseGrantOptions, PutOptions, Txn, TxnOp, WatchOptions, WatchStream,
};

use crate::etcd::admin::{bounded, EtcdAdmin};
use crate::etcd::error::{EtcdError, EtcdErrorKind};
use etcd_aws_core::backup::segment::{Change, LeaseGrant};

/// The largest watch answer read. A watch that catches up sends up to 1,000
/// revisions in one answer, whole (etcd splits an answer only when asked to,
/// and then a revision's events may straddle two): 4 MiB, the gRPC default,
/// is 4 KiB a revision, less than many Kubernetes objects.
pub const WATCH_MESSAGE_LIMIT: usize = 64 * 1024 * 1024;

/// What one watch answer brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// Changes in revision order, each with its revision; the events of one
    /// revision are adjacent.
    Changes(Vec<(i64, Change)>),
    /// etcd no longer holds the history the watch asked for: everything up to
    /// `compact_revision` is compacted away, and the watch is over.
    Compacted { compact_revision: i64 },
    /// The watch was created, or etcd reports progress: nothing changed.
    Quiet,
    /// The watch is over for another reason (the member shuts down, the
    /// stream closed); `reason` says which.
    Ended { reason: String },
}

/// A watch of every key, opened by [`EtcdAdmin::watch_changes`].
pub struct ChangeWatch {
    stream: WatchStream,
    endpoints: String,
}

impl ChangeWatch {
    /// The next answer. Waits as long as nothing changes: bound it with a timer.
    pub async fn next(&mut self) -> Result<Watched, EtcdError> {
        let response = match self.stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => {
                return Ok(Watched::Ended {
                    reason: "the watch stream closed".into(),
                })
            }
            Err(e) => return Err(EtcdError::new("Watch", &self.endpoints, &e)),
        };
        if response.compact_revision() != 0 {
            return Ok(Watched::Compacted {
                compact_revision: response.compact_revision(),
            });
        }
        if response.canceled() {
            return Ok(Watched::Ended {
                reason: format!("etcd cancelled the watch: {}", response.cancel_reason()),
            });
        }
        let changes: Vec<(i64, Change)> = response
            .events()
            .iter()
            .filter_map(|event| {
                let kv = event.kv()?;
                let change = match event.event_type() {
                    EventType::Put => Change::Put {
                        key: kv.key().to_vec(),
                        value: kv.value().to_vec(),
                        lease: kv.lease(),
                    },
                    EventType::Delete => Change::Delete {
                        key: kv.key().to_vec(),
                    },
                };
                // A delete's key-value carries the revision of the delete.
                Some((kv.mod_revision(), change))
            })
            .collect();
        Ok(if changes.is_empty() {
            Watched::Quiet
        } else {
            Watched::Changes(changes)
        })
    }
}

impl EtcdAdmin {
    /// Watches every key from `from_revision` on (inclusive), with progress
    /// notifications so a quiet cluster still answers now and then.
    pub async fn watch_changes(&mut self, from_revision: i64) -> Result<ChangeWatch, EtcdError> {
        let options = WatchOptions::new()
            .with_all_keys()
            .with_start_revision(from_revision)
            .with_progress_notify();
        let mut watch = self
            .client
            .watch_client()
            .max_decoding_message_size(WATCH_MESSAGE_LIMIT);
        let stream = bounded(
            self.deadline,
            &self.endpoints,
            "Watch",
            watch.watch(vec![0u8], Some(options)),
        )
        .await?;
        Ok(ChangeWatch {
            stream,
            endpoints: self.endpoints.clone(),
        })
    }

    /// The TTL lease `id` was granted with; `None` when the lease is gone
    /// (its keys' deletes are in the history then).
    pub async fn lease_granted_ttl(&mut self, id: i64) -> Result<Option<i64>, EtcdError> {
        let answer = bounded(
            self.deadline,
            &self.endpoints,
            "LeaseTimeToLive",
            self.client.lease_time_to_live(id, None),
        )
        .await;
        match answer {
            // etcd answers a lease it does not know with a TTL of -1.
            Ok(response) if response.ttl() < 0 => Ok(None),
            Ok(response) => Ok(Some(response.granted_ttl())),
            Err(e) if e.kind == EtcdErrorKind::LeaseNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Grants `lease` under its own id, unless a lease with that id exists
    /// (restored with the snapshot, or granted by an earlier revision).
    pub async fn grant_lease(&mut self, lease: LeaseGrant) -> Result<(), EtcdError> {
        let answer = bounded(
            self.deadline,
            &self.endpoints,
            "LeaseGrant",
            self.client.lease_grant(
                lease.ttl_seconds,
                Some(LeaseGrantOptions::new().with_id(lease.id)),
            ),
        )
        .await;
        match answer {
            Err(e) if e.kind == EtcdErrorKind::LeaseExists => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Every lease the cluster holds.
    pub async fn lease_ids(&mut self) -> Result<Vec<i64>, EtcdError> {
        let answer = bounded(
            self.deadline,
            &self.endpoints,
            "LeaseLeases",
            self.client.leases(),
        )
        .await?;
        Ok(answer.leases().iter().map(|lease| lease.id()).collect())
    }

    /// Revokes a lease, deleting every key attached to it; a lease already
    /// gone counts as revoked.
    pub async fn revoke_lease(&mut self, id: i64) -> Result<(), EtcdError> {
        let answer = bounded(
            self.deadline,
            &self.endpoints,
            "LeaseRevoke",
            self.client.lease_revoke(id),
        )
        .await;
        match answer {
            Err(e) if e.kind == EtcdErrorKind::LeaseNotFound => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Applies changes as one transaction: all of them, or none. No key may
    /// appear twice ([`etcd_aws_core::backup::replay::batches`] cuts them so), and the leases
    /// the puts name must be granted first ([`EtcdAdmin::grant_lease`]).
    pub async fn apply(&mut self, changes: &[Change]) -> Result<(), EtcdError> {
        let operations: Vec<TxnOp> = changes
            .iter()
            .map(|change| match change {
                Change::Put { key, value, lease } => {
                    let options = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
                    TxnOp::put(key.clone(), value.clone(), options)
                }
                Change::Delete { key } => TxnOp::delete(key.clone(), None),
            })
            .collect();
        let txn = Txn::new().when(Vec::<Compare>::new()).and_then(operations);
        bounded(self.deadline, &self.endpoints, "Txn", self.client.txn(txn)).await?;
        Ok(())
    }
}
