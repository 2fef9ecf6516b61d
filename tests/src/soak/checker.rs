//! What the soak's checking workload was promised, and what the cluster
//! serves, compared: pure, so every rule is a table row.
//!
//! The promises: every acknowledged put stays (until an acknowledged delete
//! of it), every acknowledged delete stays deleted, a transaction's keys are
//! all there or none, a leased key is gone once its lease ran out, and one
//! cluster serves at a time. The one exception: when every instance and disk
//! was lost, what the lost cluster acknowledged within the loss window before
//! the loss may be missing; the checker counts those and says how old they
//! were.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// What an acknowledged operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
    },
    /// Deletes a key an earlier acknowledged put wrote.
    Delete {
        key: String,
    },
    /// Puts every key in one transaction.
    Txn {
        keys: Vec<String>,
    },
    /// Puts a key attached to a lease of `ttl`, never kept alive.
    Leased {
        key: String,
        ttl: Duration,
    },
}

/// One operation the cluster acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub seq: u64,
    pub op: Op,
    pub revision: i64,
    pub cluster_id: u64,
    pub at: Instant,
}

/// Every instance and disk lost at `at`; the cluster that served then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalLoss {
    pub at: Instant,
    pub lost_cluster: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// What a total loss may lose: acknowledgements at most this old.
    pub loss_window: Duration,
    /// Beyond a lease's TTL, how long a leased key may take to go (the
    /// leader revokes expired leases on its own schedule).
    pub lease_grace: Duration,
}

/// What the cluster served when it was read.
#[derive(Debug, Clone)]
pub struct Read {
    pub keys: HashSet<String>,
    pub at: Instant,
    /// Since when the cluster has been healthy (a new leader renews every
    /// lease, and a restore grants them anew).
    pub healthy_since: Instant,
}

/// A broken promise, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// An acknowledged put (or transaction) is missing.
    Lost { seq: u64, key: String },
    /// An acknowledged delete was undone.
    Undeleted { seq: u64, key: String },
    /// Some but not all of a transaction's keys are there.
    Torn { seq: u64, present: Vec<String> },
    /// A leased key outlived its lease.
    OutlivedLease { seq: u64, key: String },
    /// Acknowledgements came from an older cluster after a newer one had
    /// served: two clusters at once.
    TwoClusters { older: u64, newer: u64 },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Lost { seq, key } => write!(f, "acknowledged write {seq} ({key}) is missing"),
            Broken::Undeleted { seq, key } => {
                write!(f, "acknowledged delete {seq} of {key} was undone")
            }
            Broken::Torn { seq, present } => write!(
                f,
                "transaction {seq} is torn: only {} of its keys are there",
                present.join(", ")
            ),
            Broken::OutlivedLease { seq, key } => {
                write!(f, "leased key {key} (write {seq}) outlived its lease")
            }
            Broken::TwoClusters { older, newer } => write!(
                f,
                "cluster {older:x} acknowledged writes after cluster {newer:x} had: two clusters at once"
            ),
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub broken: Vec<Broken>,
    /// Acknowledged operations a total loss took, as allowed: how many, and
    /// the oldest's age at the loss.
    pub lost_in_window: usize,
    pub oldest_lost_age: Option<Duration>,
}

/// The check of every operation acknowledged before the read began against
/// the read. `in_doubt` are the operations the writer tried until the read
/// ended without an acknowledgement before it began: acknowledged during
/// the read, or still trying. A delete among them may or may not have
/// happened yet, so its key may be either way.
pub fn check(
    acked: &[Acked],
    in_doubt: &[Op],
    read: &Read,
    losses: &[TotalLoss],
    rules: &Rules,
) -> Findings {
    let mut findings = Findings::default();
    let mut allowed = |ack: &Acked| -> bool {
        let Some(age) = allowed_loss(ack, losses, rules) else {
            return false;
        };
        findings.lost_in_window += 1;
        findings.oldest_lost_age = findings.oldest_lost_age.max(Some(age));
        true
    };
    let mut broken = Vec::new();
    // The last acknowledged delete of each key decides whether it should be there.
    let deleted: BTreeMap<&str, &Acked> = acked
        .iter()
        .filter_map(|ack| match &ack.op {
            Op::Delete { key } => Some((key.as_str(), ack)),
            _ => None,
        })
        .collect();
    let maybe_deleted: HashSet<&str> = in_doubt
        .iter()
        .filter_map(|op| match op {
            Op::Delete { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    for ack in acked {
        match &ack.op {
            Op::Put { key } if maybe_deleted.contains(key.as_str()) => {}
            Op::Put { key } => match deleted.get(key.as_str()) {
                Some(delete) if delete.seq > ack.seq => {
                    if read.keys.contains(key) && !allowed(delete) {
                        broken.push(Broken::Undeleted {
                            seq: delete.seq,
                            key: key.clone(),
                        });
                    }
                }
                _ => {
                    if !read.keys.contains(key) && !allowed(ack) {
                        broken.push(Broken::Lost {
                            seq: ack.seq,
                            key: key.clone(),
                        });
                    }
                }
            },
            Op::Txn { keys } => {
                let present: Vec<String> = keys
                    .iter()
                    .filter(|k| read.keys.contains(*k))
                    .cloned()
                    .collect();
                if present.is_empty() {
                    if !allowed(ack) {
                        broken.push(Broken::Lost {
                            seq: ack.seq,
                            key: keys.join("+"),
                        });
                    }
                } else if present.len() < keys.len() {
                    broken.push(Broken::Torn {
                        seq: ack.seq,
                        present,
                    });
                }
            }
            Op::Leased { key, ttl } => {
                let due = ack.at.max(read.healthy_since) + *ttl + rules.lease_grace;
                if read.at > due && read.keys.contains(key) {
                    broken.push(Broken::OutlivedLease {
                        seq: ack.seq,
                        key: key.clone(),
                    });
                }
            }
            Op::Delete { .. } => {}
        }
    }
    broken.extend(two_clusters(acked));
    findings.broken = broken;
    findings
}

/// An answer already on its way when the nodes died still arrives: the
/// lost cluster's acknowledgements this long after the loss were sent
/// before it.
const IN_FLIGHT: Duration = Duration::from_secs(1);

/// The age at the loss, when a total loss may have taken this acknowledgement.
fn allowed_loss(ack: &Acked, losses: &[TotalLoss], rules: &Rules) -> Option<Duration> {
    losses
        .iter()
        .filter(|loss| loss.lost_cluster == ack.cluster_id && ack.at <= loss.at + IN_FLIGHT)
        .map(|loss| loss.at.saturating_duration_since(ack.at))
        .find(|age| *age <= rules.loss_window)
}

/// Clusters seen acknowledging after a newer one had: each cluster's
/// acknowledgements must come in one stretch, oldest cluster first.
pub fn two_clusters(acked: &[Acked]) -> Vec<Broken> {
    let mut by_time: Vec<&Acked> = acked.iter().collect();
    by_time.sort_by_key(|ack| ack.at);
    let mut order: Vec<u64> = Vec::new();
    let mut found = Vec::new();
    for ack in by_time {
        match order.iter().position(|id| *id == ack.cluster_id) {
            None => order.push(ack.cluster_id),
            Some(index) if index + 1 < order.len() => {
                let finding = Broken::TwoClusters {
                    older: ack.cluster_id,
                    newer: order[index + 1],
                };
                if !found.contains(&finding) {
                    found.push(finding);
                }
            }
            Some(_) => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        loss_window: Duration::from_secs(5),
        lease_grace: Duration::from_secs(3),
    };

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn acked(seq: u64, op: Op, cluster_id: u64, at: Instant) -> Acked {
        Acked {
            seq,
            op,
            revision: seq as i64 + 1,
            cluster_id,
            at,
        }
    }

    fn put(seq: u64, t: Instant) -> Acked {
        acked(
            seq,
            Op::Put {
                key: format!("p/{seq}"),
            },
            1,
            t,
        )
    }

    fn read(keys: &[&str], at: Instant) -> Read {
        Read {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            at,
            healthy_since: at,
        }
    }

    #[test]
    fn every_acknowledged_put_present_is_no_finding() {
        let t = Instant::now();
        let findings = check(
            &[put(0, t), put(1, t)],
            &[],
            &read(&["p/0", "p/1"], t),
            &[],
            &RULES,
        );
        assert_eq!(findings, Findings::default());
    }

    #[test]
    fn a_missing_put_without_a_total_loss_is_lost() {
        let t = Instant::now();
        let findings = check(
            &[put(0, t), put(1, t)],
            &[],
            &read(&["p/0"], t),
            &[],
            &RULES,
        );
        assert_eq!(
            findings.broken,
            vec![Broken::Lost {
                seq: 1,
                key: "p/1".into()
            }]
        );
    }

    #[test]
    fn a_total_loss_may_take_what_the_lost_cluster_acknowledged_inside_the_window() {
        let t = Instant::now();
        let loss = TotalLoss {
            at: at(t, 10),
            lost_cluster: 1,
        };
        let acks = [put(0, at(t, 1)), put(1, at(t, 7)), put(2, at(t, 9))];
        let findings = check(&acks, &[], &read(&["p/0"], at(t, 30)), &[loss], &RULES);
        assert!(findings.broken.is_empty(), "{:?}", findings.broken);
        assert_eq!(findings.lost_in_window, 2);
        assert_eq!(findings.oldest_lost_age, Some(Duration::from_secs(3)));
    }

    #[test]
    fn an_answer_in_flight_when_the_nodes_died_is_inside_the_window() {
        let t = Instant::now();
        let loss = TotalLoss {
            at: at(t, 10),
            lost_cluster: 1,
        };
        let arrived_after = put(0, t + Duration::from_millis(10_200));
        let findings = check(
            &[arrived_after],
            &[],
            &read(&[], at(t, 30)),
            &[loss],
            &RULES,
        );
        assert!(findings.broken.is_empty(), "{:?}", findings.broken);
        assert_eq!(findings.oldest_lost_age, Some(Duration::ZERO));
        let much_later = put(1, at(t, 12));
        assert_eq!(
            check(&[much_later], &[], &read(&[], at(t, 30)), &[loss], &RULES)
                .broken
                .len(),
            1
        );
    }

    #[test]
    fn a_total_loss_may_not_take_what_is_older_than_the_window() {
        let t = Instant::now();
        let loss = TotalLoss {
            at: at(t, 10),
            lost_cluster: 1,
        };
        let findings = check(
            &[put(0, at(t, 1))],
            &[],
            &read(&[], at(t, 30)),
            &[loss],
            &RULES,
        );
        assert_eq!(
            findings.broken,
            vec![Broken::Lost {
                seq: 0,
                key: "p/0".into()
            }]
        );
    }

    #[test]
    fn a_total_loss_may_not_take_what_the_restored_cluster_acknowledged() {
        let t = Instant::now();
        let loss = TotalLoss {
            at: at(t, 10),
            lost_cluster: 1,
        };
        let after = acked(0, Op::Put { key: "p/0".into() }, 2, at(t, 8));
        let findings = check(&[after], &[], &read(&[], at(t, 30)), &[loss], &RULES);
        assert_eq!(findings.broken.len(), 1);
    }

    #[test]
    fn a_deleted_key_must_stay_deleted() {
        let t = Instant::now();
        let acks = [put(0, t), acked(1, Op::Delete { key: "p/0".into() }, 1, t)];
        assert!(check(&acks, &[], &read(&[], t), &[], &RULES)
            .broken
            .is_empty());
        assert_eq!(
            check(&acks, &[], &read(&["p/0"], t), &[], &RULES).broken,
            vec![Broken::Undeleted {
                seq: 1,
                key: "p/0".into()
            }]
        );
    }

    #[test]
    fn a_key_whose_delete_is_in_doubt_may_be_there_or_not() {
        let t = Instant::now();
        let acks = [put(0, t)];
        let deleting = [Op::Delete { key: "p/0".into() }];
        assert!(check(&acks, &deleting, &read(&[], t), &[], &RULES)
            .broken
            .is_empty());
        assert!(check(&acks, &deleting, &read(&["p/0"], t), &[], &RULES)
            .broken
            .is_empty());
    }

    #[test]
    fn a_delete_inside_the_loss_window_may_be_undone_by_a_total_loss() {
        let t = Instant::now();
        let acks = [
            put(0, at(t, 1)),
            acked(1, Op::Delete { key: "p/0".into() }, 1, at(t, 9)),
        ];
        let loss = TotalLoss {
            at: at(t, 10),
            lost_cluster: 1,
        };
        let findings = check(&acks, &[], &read(&["p/0"], at(t, 20)), &[loss], &RULES);
        assert!(findings.broken.is_empty());
        assert_eq!(findings.lost_in_window, 1);
    }

    #[test]
    fn a_transaction_is_whole_or_absent_never_torn() {
        let t = Instant::now();
        let txn = acked(
            0,
            Op::Txn {
                keys: vec!["t/0/a".into(), "t/0/b".into()],
            },
            1,
            t,
        );
        let acks = [txn];
        assert!(
            check(&acks, &[], &read(&["t/0/a", "t/0/b"], t), &[], &RULES)
                .broken
                .is_empty()
        );
        assert_eq!(
            check(&acks, &[], &read(&["t/0/b"], t), &[], &RULES).broken,
            vec![Broken::Torn {
                seq: 0,
                present: vec!["t/0/b".into()]
            }]
        );
        assert_eq!(
            check(&acks, &[], &read(&[], t), &[], &RULES).broken,
            vec![Broken::Lost {
                seq: 0,
                key: "t/0/a+t/0/b".into()
            }]
        );
    }

    #[test]
    fn a_leased_key_must_be_gone_once_its_lease_and_the_grace_ran_out() {
        let t = Instant::now();
        let leased = acked(
            0,
            Op::Leased {
                key: "l/0".into(),
                ttl: Duration::from_secs(4),
            },
            1,
            t,
        );
        let acks = [leased];
        let healthy_all_along = |keys: &[&str], secs| Read {
            healthy_since: t,
            ..read(keys, at(t, secs))
        };
        let early = healthy_all_along(&["l/0"], 6);
        assert!(check(&acks, &[], &early, &[], &RULES).broken.is_empty());
        let late = healthy_all_along(&["l/0"], 8);
        assert_eq!(
            check(&acks, &[], &late, &[], &RULES).broken,
            vec![Broken::OutlivedLease {
                seq: 0,
                key: "l/0".into()
            }]
        );
        assert!(check(&acks, &[], &healthy_all_along(&[], 8), &[], &RULES)
            .broken
            .is_empty());
    }

    #[test]
    fn a_lease_counts_from_when_the_cluster_was_healthy_again() {
        let t = Instant::now();
        let acks = [acked(
            0,
            Op::Leased {
                key: "l/0".into(),
                ttl: Duration::from_secs(4),
            },
            1,
            t,
        )];
        let after_an_outage = Read {
            keys: ["l/0".to_owned()].into_iter().collect(),
            at: at(t, 20),
            healthy_since: at(t, 15),
        };
        assert!(check(&acks, &[], &after_an_outage, &[], &RULES)
            .broken
            .is_empty());
    }

    #[test]
    fn an_older_cluster_acknowledging_after_a_newer_one_is_two_clusters() {
        let t = Instant::now();
        let acks = [
            acked(0, Op::Put { key: "p/0".into() }, 1, at(t, 1)),
            acked(1, Op::Put { key: "p/1".into() }, 2, at(t, 2)),
            acked(2, Op::Put { key: "p/2".into() }, 1, at(t, 3)),
        ];
        assert_eq!(
            two_clusters(&acks),
            vec![Broken::TwoClusters { older: 1, newer: 2 }]
        );
        assert!(two_clusters(&acks[..2]).is_empty());
    }
}
