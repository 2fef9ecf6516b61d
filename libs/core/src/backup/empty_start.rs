//! Whether a seed that finds no snapshot may form an empty cluster.
//!
//! A bucket without snapshots is a new cluster's, or one whose snapshots went
//! (a wrong prefix, a lifecycle rule, a bucket emptied by mistake). Forming
//! empty over the second kind would lose every key without a word, and the
//! backups would then store the empty cluster as the newest. So a seed forms
//! empty only over a bucket that holds nothing of an earlier cluster (no
//! captured changes, no pointer to a snapshot, no restore order, no deleted
//! backup the versioned bucket still shows), or when an operator allowed it
//! (`etcd-aws-cfn start-empty`) for the history exactly as it is now. The
//! permit names that history, so it is spent by the new cluster's first
//! captured change: a later loss is judged afresh.
//!
//! Deleted backups count only here, where no snapshot is listed: retention
//! deletes old snapshots and segments all the time, and a bucket with a
//! current snapshot is restored from, whatever it deleted before.

use std::collections::BTreeSet;

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
    /// Backups deleted but still shown by the versioned bucket.
    pub deleted: DeletedBackups,
}

/// What a versioned bucket shows of deleted backups: keys whose newest
/// version is a delete marker (their older versions can be brought back by
/// deleting the marker), as far as a bounded listing read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedBackups {
    /// Snapshots, a snapshot and its manifest counting once.
    pub snapshots: usize,
    pub segments: usize,
    /// The pointer to the newest snapshot (`latest.json`).
    pub pointer: bool,
    /// The listing stopped before its end: there may be more.
    pub more: bool,
}

impl DeletedBackups {
    /// Sorts the keys whose newest version is a delete marker by what they
    /// were. Other keys under the prefix are no backup: the restore
    /// directory's objects are the operators' instructions and the nodes'
    /// acknowledgements, replaced and deleted in the normal course (writing
    /// a start-empty permit there must not change the history it names).
    pub fn of_markers<'a>(
        layout: &BackupLayout,
        deleted_keys: impl IntoIterator<Item = &'a str>,
        more: bool,
    ) -> Self {
        let (snapshots, segments, pointer) = (
            layout.snapshots_prefix(),
            layout.segments_prefix(),
            layout.pointer_key(),
        );
        let mut found = DeletedBackups {
            more,
            ..DeletedBackups::default()
        };
        let mut snapshot_keys = BTreeSet::new();
        for key in deleted_keys {
            if key == pointer {
                found.pointer = true;
            } else if key.starts_with(&segments) {
                found.segments += 1;
            } else if key.starts_with(&snapshots) {
                let snapshot = key
                    .strip_suffix(BackupLayout::MANIFEST_SUFFIX)
                    .unwrap_or(key);
                snapshot_keys.insert(snapshot);
            }
        }
        found.snapshots = snapshot_keys.len();
        found
    }

    fn is_empty(&self) -> bool {
        self.snapshots == 0 && self.segments == 0 && !self.pointer
    }

    fn describe(&self) -> String {
        format!(
            "deleted {}{} snapshots, {}{} segments, pointer {}",
            self.snapshots,
            if self.more { "+" } else { "" },
            self.segments,
            if self.more { "+" } else { "" },
            if self.pointer {
                "deleted"
            } else {
                "not deleted"
            },
        )
    }
}

impl BucketHistory {
    /// What an operator is shown, and what a permit names: one line that
    /// changes whenever the history does.
    pub fn describe(&self) -> String {
        format!(
            "{} segments up to revision {}, pointer {}, restore order {}, {}",
            self.segments,
            self.newest_segment_revision
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            if self.pointer { "present" } else { "absent" },
            self.restore_order.as_deref().unwrap_or("none"),
            self.deleted.describe(),
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
        if !self.deleted.is_empty() {
            let deleted = &self.deleted;
            let mut what = Vec::new();
            let more = if deleted.more { " or more" } else { "" };
            if deleted.snapshots > 0 {
                what.push(format!("{}{more} snapshots", deleted.snapshots));
            }
            if deleted.segments > 0 {
                what.push(format!("{}{more} segments", deleted.segments));
            }
            if deleted.pointer {
                what.push("the pointer (latest.json)".to_owned());
            }
            found.push(format!(
                "delete markers over {} (a versioned bucket keeps what was deleted: \
                 deleting a marker, `aws s3api delete-object --key <key> --version-id <marker's id>`, \
                 brings its object back; `aws s3api list-object-versions` lists them)",
                what.join(", ")
            ));
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
            BucketHistory {
                deleted: deleted(1, 0, false),
                ..base.clone()
            },
            BucketHistory {
                deleted: deleted(0, 1, false),
                ..base.clone()
            },
            BucketHistory {
                deleted: DeletedBackups {
                    pointer: true,
                    ..DeletedBackups::default()
                },
                ..base.clone()
            },
            BucketHistory {
                deleted: deleted(0, 0, true),
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(variant.describe(), base.describe(), "{variant:?}");
        }
    }

    fn deleted(snapshots: usize, segments: usize, more: bool) -> DeletedBackups {
        DeletedBackups {
            snapshots,
            segments,
            pointer: false,
            more,
        }
    }

    #[test]
    fn delete_markers_alone_refuse_an_empty_start_and_say_how_to_undo_them() {
        let cases = [
            deleted(2, 0, false),
            deleted(0, 7, false),
            DeletedBackups {
                pointer: true,
                ..DeletedBackups::default()
            },
            deleted(1, 1, true),
        ];
        for deleted in cases {
            let history = BucketHistory {
                deleted: deleted.clone(),
                ..BucketHistory::default()
            };
            match decide(&history, None) {
                EmptyStart::Refuse {
                    traces,
                    stale_permit: false,
                } => {
                    assert_eq!(traces.len(), 1, "{deleted:?}: {traces:?}");
                    assert!(traces[0].contains("delete markers"), "{traces:?}");
                    assert!(traces[0].contains("--version-id"), "{traces:?}");
                }
                other => panic!("{deleted:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_operators_permit_abandons_deleted_backups_too() {
        let history = BucketHistory {
            deleted: deleted(3, 12, false),
            ..BucketHistory::default()
        };
        assert_eq!(
            decide(&history, Some(&permit_for(&history))),
            EmptyStart::FormAsPermitted
        );
    }

    #[test]
    fn markers_are_counted_by_the_backup_they_deleted() {
        let layout = BackupLayout::new("backups");
        let snapshot = "backups/snapshots/20261207T120000Z-r00000000000000000042-a0.db.zst";
        let manifest = format!("{snapshot}.manifest.json");
        let segment = "backups/segments/00000000000000000043-00000000000000000050-abc.seg";
        let cases: [(Vec<&str>, bool, DeletedBackups); 7] = [
            (vec![], false, DeletedBackups::default()),
            // A snapshot and its manifest are one backup.
            (vec![snapshot, &manifest], false, deleted(1, 0, false)),
            // A manifest deleted without its snapshot still names one.
            (vec![&manifest], false, deleted(1, 0, false)),
            (vec![segment], false, deleted(0, 1, false)),
            (
                vec!["backups/latest.json"],
                false,
                DeletedBackups {
                    pointer: true,
                    ..DeletedBackups::default()
                },
            ),
            // Instructions and acknowledgements come and go; writing a
            // permit must not change the history it names.
            (
                vec![
                    "backups/restore/order.json",
                    "backups/restore/empty-start.json",
                    "backups/restore/r-1/i-0abc",
                    "elsewhere/snapshots/x.db.zst",
                ],
                false,
                DeletedBackups::default(),
            ),
            (vec![segment], true, deleted(0, 1, true)),
        ];
        for (keys, more, expected) in cases {
            assert_eq!(
                DeletedBackups::of_markers(&layout, keys.iter().copied(), more),
                expected,
                "{keys:?}"
            );
        }
    }

    #[test]
    fn a_truncated_listing_is_said_to_be_a_lower_bound() {
        let history = BucketHistory {
            deleted: deleted(2, 0, true),
            ..BucketHistory::default()
        };
        let EmptyStart::Refuse { traces, .. } = decide(&history, None) else {
            panic!("a deleted snapshot refuses");
        };
        assert!(traces[0].contains("2 or more snapshots"), "{traces:?}");
    }
}
