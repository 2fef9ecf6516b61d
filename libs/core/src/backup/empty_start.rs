//! Whether a seed that finds no snapshot may form an empty cluster.
//!
//! A bucket without snapshots is a new cluster's, or one whose snapshots went
//! (a wrong prefix, a lifecycle rule, a bucket emptied by mistake). Forming
//! empty over the second kind would lose every key without a word, and the
//! backups would then store the empty cluster as the newest. So a seed forms
//! empty only over a bucket that holds nothing of an earlier cluster (no
//! captured changes, no pointer to a snapshot, no restore order), or when an
//! operator allowed it (`etcd-aws-cfn start-empty`) for the history exactly as
//! it is now. The permit names that history, so it is spent by the new
//! cluster's first captured change: a later loss is judged afresh.

use serde::{Deserialize, Serialize};

use crate::backup::manifest::BackupLayout;
use crate::contract::names::bucket::RESTORE_DIR;

impl BackupLayout {
    /// Where `etcd-aws-cfn start-empty` leaves its permit, beside the
    /// restore orders.
    pub fn empty_start_permit_key(&self) -> String {
        format!("{}{RESTORE_DIR}empty-start.json", self.prefix())
    }
}

/// What the bucket holds of an earlier cluster besides snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketHistory {
    /// Segments of captured changes, and the highest revision they reach.
    pub segments: usize,
    pub newest_segment_revision: Option<i64>,
    /// The pointer to the newest snapshot (`latest.json`) exists.
    pub pointer: bool,
    /// The id of the restore order in the bucket, if one is.
    pub restore_order: Option<String>,
}

impl BucketHistory {
    /// What an operator is shown, and what a permit names: one line that
    /// changes whenever the history does.
    pub fn describe(&self) -> String {
        format!(
            "{} segments up to revision {}, pointer {}, restore order {}",
            self.segments,
            self.newest_segment_revision
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            if self.pointer { "present" } else { "absent" },
            self.restore_order.as_deref().unwrap_or("none"),
        )
    }

    /// What of it says a cluster lived here, one phrase each.
    fn traces(&self) -> Vec<String> {
        let mut found = Vec::new();
        if self.segments > 0 {
            found.push(format!(
                "{} segments of captured changes (up to revision {})",
                self.segments,
                self.newest_segment_revision.unwrap_or_default()
            ));
        }
        if self.pointer {
            found.push("the pointer to a newest snapshot (latest.json)".to_owned());
        }
        if let Some(id) = &self.restore_order {
            found.push(format!("restore order {id}"));
        }
        found
    }
}

/// An operator's leave to form an empty cluster over this history, as
/// `etcd-aws-cfn start-empty` writes it into the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyStartPermit {
    /// [`BucketHistory::describe`] of the history it abandons.
    pub history: String,
    /// Who gave it (the operator's AWS identity) and when (seconds since the epoch).
    pub by: String,
    pub at: i64,
}

impl crate::contract::signed::Instruction for EmptyStartPermit {
    const KIND: &'static str = "empty_start_permit";
}

/// What the seed does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmptyStart {
    /// Nothing of an earlier cluster: a new cluster starts empty.
    Form,
    /// An operator abandoned this history.
    FormAsPermitted,
    /// Something of an earlier cluster is here: forming empty would lose it.
    /// `traces` says what; a permit for another history is `stale_permit`.
    Refuse {
        traces: Vec<String>,
        stale_permit: bool,
    },
}

/// The seed's choice over a bucket without snapshots.
pub fn decide(history: &BucketHistory, permit: Option<&EmptyStartPermit>) -> EmptyStart {
    let traces = history.traces();
    if traces.is_empty() {
        return EmptyStart::Form;
    }
    match permit {
        Some(permit) if permit.history == history.describe() => EmptyStart::FormAsPermitted,
        permit => EmptyStart::Refuse {
            traces,
            stale_permit: permit.is_some(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_segments() -> BucketHistory {
        BucketHistory {
            segments: 4,
            newest_segment_revision: Some(201),
            ..BucketHistory::default()
        }
    }

    fn permit_for(history: &BucketHistory) -> EmptyStartPermit {
        EmptyStartPermit {
            history: history.describe(),
            by: "arn:aws:iam::111122223333:role/operator".to_owned(),
            at: 1_800_000_000,
        }
    }

    #[test]
    fn a_bucket_with_nothing_of_an_earlier_cluster_forms_empty() {
        assert_eq!(decide(&BucketHistory::default(), None), EmptyStart::Form);
    }

    #[test]
    fn any_trace_of_an_earlier_cluster_refuses_an_empty_start() {
        let cases = [
            with_segments(),
            BucketHistory {
                pointer: true,
                ..BucketHistory::default()
            },
            BucketHistory {
                restore_order: Some("r-1".to_owned()),
                ..BucketHistory::default()
            },
        ];
        for history in cases {
            match decide(&history, None) {
                EmptyStart::Refuse {
                    traces,
                    stale_permit: false,
                } => assert_eq!(traces.len(), 1, "{history:?}"),
                other => panic!("{history:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_operators_permit_for_this_history_forms_empty() {
        let history = with_segments();
        assert_eq!(
            decide(&history, Some(&permit_for(&history))),
            EmptyStart::FormAsPermitted
        );
    }

    #[test]
    fn a_permit_is_spent_once_the_history_changes() {
        let history = with_segments();
        let permit = permit_for(&history);
        // The new cluster captured a change: a later loss is judged afresh.
        let later = BucketHistory {
            segments: 5,
            newest_segment_revision: Some(3),
            ..history
        };
        assert_eq!(
            decide(&later, Some(&permit)),
            EmptyStart::Refuse {
                traces: later.traces(),
                stale_permit: true
            }
        );
    }

    #[test]
    fn the_description_changes_with_every_part_of_the_history() {
        let base = with_segments();
        let variants = [
            BucketHistory {
                segments: 5,
                ..base.clone()
            },
            BucketHistory {
                newest_segment_revision: Some(202),
                ..base.clone()
            },
            BucketHistory {
                pointer: true,
                ..base.clone()
            },
            BucketHistory {
                restore_order: Some("r-2".to_owned()),
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(variant.describe(), base.describe(), "{variant:?}");
        }
    }
}
