//! Revisions only ever go up: how far a restore bumps the restored cluster's
//! revision, and which restore tools may carry a restore out at all.
//!
//! A watcher (Kubernetes' informers, any client that resumes a watch "after
//! revision N") takes a revision it has seen to mean one state of the
//! keyspace. A restored cluster that serves a revision number some earlier
//! cluster of the same bucket already served, for another change, makes such
//! a watcher skip changes silently. So every restore starts the restored
//! cluster past the highest revision the bucket has ever recorded (any
//! snapshot, any captured segment, any restore order), by a margin that
//! covers what a cluster wrote after its last record reached the bucket, and
//! marks everything below compacted: a watcher resuming from an older
//! revision is told so and lists afresh.
//!
//! The bump is added to the snapshot's own revision: relative to the
//! *snapshot*, not to the bucket, is what `etcdutl snapshot restore
//! --bump-revision` takes. Undoing a restore (restoring the safety backup of
//! the cluster it replaced) is where the two differ: the restored cluster
//! counted on past the safety backup's revision plus any fixed bump once it
//! took enough writes, and a fixed bump would hand its revisions out again.

use std::collections::BTreeSet;

/// How far past the highest recorded revision a restored cluster starts: far
/// beyond what any cluster wrote after its last record reached the bucket (a
/// billion revisions is over three years at 10,000 writes a second), far
/// below the 2^63 revisions etcd counts to (over nine billion restores).
pub const MARGIN: i64 = 1_000_000_000;

/// The restore tool's flags that make the restored revisions go up and tell
/// a watcher of an older revision that it was compacted.
pub const BUMP_FLAG: &str = "--bump-revision";
pub const MARK_COMPACTED_FLAG: &str = "--mark-compacted";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionError {
    #[error("the bucket records revision {highest}; a restored cluster would have to start past {highest} + {MARGIN}, beyond the revisions etcd can count (2^63 - 1); restore into a bucket (or prefix) of its own")]
    OutOfRevisions { highest: i64 },
    #[error("restore tool {tool} cannot bump revisions (its `snapshot restore --help` lists no {missing}): the restored cluster would serve revision numbers the lost one already served, and watchers resuming from them would miss changes. Restore with etcdutl 3.5.13 or later (--etcdutl-binary / ETCD_AWS_ETCDUTL_BINARY); etcd 3.4's etcdctl and etcdutl 3.5.0-3.5.12 have no --bump-revision")]
    ToolCannotBump { tool: String, missing: &'static str },
}

/// The `--bump-revision` for restoring a snapshot whose revision is
/// `snapshot_revision` into a bucket whose highest recorded revision is
/// `highest_recorded`: every revision of the restored cluster is then above
/// `highest_recorded + MARGIN`, and above `snapshot_revision + MARGIN`
/// when the snapshot is itself the highest record.
///
/// `snapshot_revision` may be a lower bound of the snapshot's revision (the
/// tool adds the bump to the revision it finds in the file): a higher
/// actual revision only starts the cluster higher. Negative figures (a
/// damaged manifest) count as 0.
pub fn bump(snapshot_revision: i64, highest_recorded: i64) -> Result<u64, RevisionError> {
    let snapshot = snapshot_revision.max(0);
    let highest = highest_recorded.max(snapshot);
    let start = highest
        .checked_add(MARGIN)
        .ok_or(RevisionError::OutOfRevisions { highest })?;
    // Both are non-negative and `start` is above `snapshot`.
    u64::try_from(start - snapshot).map_err(|_| RevisionError::OutOfRevisions { highest })
}

/// Whether the restore tool `tool`, whose `snapshot restore --help` lists
/// `listed`, may restore at all. A tool that lacks either flag is refused
/// rather than used without: a restore without a bump reuses revisions,
/// which no later step can repair (reaching the bump by writing would take
/// a billion transactions), and its cluster's history would share revision
/// numbers with the lost one's captured changes.
pub fn check_tool(tool: &str, listed: &BTreeSet<String>) -> Result<(), RevisionError> {
    match [BUMP_FLAG, MARK_COMPACTED_FLAG]
        .into_iter()
        .find(|flag| !listed.contains(*flag))
    {
        Some(missing) => Err(RevisionError::ToolCannotBump {
            tool: tool.to_owned(),
            missing,
        }),
        None => Ok(()),
    }
}

/// The arguments that bump a restore by `bump` and mark what lies below
/// compacted, for a tool [`check_tool`] accepts.
pub fn bump_arguments(
    tool: &str,
    listed: &BTreeSet<String>,
    bump: u64,
) -> Result<Vec<String>, RevisionError> {
    check_tool(tool, listed)?;
    Ok(vec![
        format!("{BUMP_FLAG}={bump}"),
        MARK_COMPACTED_FLAG.to_owned(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = MARGIN;

    #[test]
    fn the_restored_cluster_starts_a_margin_past_the_highest_recorded_revision() {
        // (snapshot, highest recorded, first revision the restored cluster may serve)
        let rows = [
            // A total loss: the newest snapshot and the lost cluster's segments after it.
            (100, 250, 250 + M),
            // The snapshot is the highest record.
            (100, 100, 100 + M),
            // Nothing recorded beyond the snapshot.
            (100, 0, 100 + M),
            // Undoing a restore: the safety backup is far below what the
            // restored cluster recorded since (it started past 1e9).
            (5_000, M + 9_000_000, M + 9_000_000 + M),
            // A restore to an old revision of a twice-restored lineage.
            (3, 2 * M + 40, 2 * M + 40 + M),
            // An empty cluster's snapshot.
            (0, 0, M),
        ];
        for (snapshot, highest, start) in rows {
            let bump = bump(snapshot, highest).expect("within etcd's revisions");
            assert_eq!(
                snapshot + i64::try_from(bump).expect("fits"),
                start,
                "snapshot {snapshot}, highest {highest}"
            );
        }
    }

    #[test]
    fn a_fixed_bump_would_reuse_revisions_the_restored_cluster_served_and_this_one_does_not() {
        // Restored at 50 + M, the cluster took 2,000 writes and recorded them;
        // then its restore is undone with the safety backup at revision 1,000.
        let (safety, restored_cluster_reached) = (1_000, 50 + M + 2_000);
        assert!(
            safety + M <= restored_cluster_reached,
            "the old rule's flaw"
        );
        let bump = bump(safety, restored_cluster_reached).expect("fits");
        assert!(safety + i64::try_from(bump).expect("fits") >= restored_cluster_reached + M);
    }

    #[test]
    fn negative_revisions_from_a_damaged_record_count_as_zero() {
        assert_eq!(bump(-5, -7), Ok(MARGIN as u64));
        assert_eq!(bump(10, -7), Ok(MARGIN as u64));
    }

    #[test]
    fn a_bucket_near_the_end_of_etcds_revisions_is_refused_not_wrapped() {
        let highest = i64::MAX - M + 1;
        assert_eq!(
            bump(5, highest),
            Err(RevisionError::OutOfRevisions { highest })
        );
        assert_eq!(bump(5, i64::MAX - M), Ok((i64::MAX - M - 5 + M) as u64));
    }

    fn listed(flags: &[&str]) -> BTreeSet<String> {
        flags.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn a_tool_that_knows_both_flags_bumps_and_marks_compacted() {
        let args = bump_arguments(
            "etcdutl",
            &listed(&["--data-dir", BUMP_FLAG, MARK_COMPACTED_FLAG]),
            42,
        );
        assert_eq!(
            args,
            Ok(vec![
                "--bump-revision=42".to_owned(),
                "--mark-compacted".to_owned()
            ])
        );
    }

    #[test]
    fn a_tool_without_either_flag_is_refused_naming_the_flag() {
        for (flags, missing) in [
            // etcd 3.4's etcdctl, etcdutl 3.5.0-3.5.12.
            (&["--data-dir", "--name"][..], BUMP_FLAG),
            (&[BUMP_FLAG][..], MARK_COMPACTED_FLAG),
            (&[MARK_COMPACTED_FLAG][..], BUMP_FLAG),
        ] {
            assert_eq!(
                bump_arguments("etcdctl", &listed(flags), 42),
                Err(RevisionError::ToolCannotBump {
                    tool: "etcdctl".into(),
                    missing
                }),
                "{flags:?}"
            );
        }
    }

    #[test]
    fn the_refusal_says_what_to_restore_with() {
        let error = bump_arguments("/usr/bin/etcdctl", &listed(&[]), 1)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("etcdutl 3.5.13 or later"), "{error}");
        assert!(error.contains("/usr/bin/etcdctl"), "{error}");
    }
}
