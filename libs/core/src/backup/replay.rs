//! Which segments a restore replays after its snapshot, decided from their keys
//! alone: pure, so every gap and overlap has a table test.
//!
//! Captures may overlap (two invocations flushing the same revisions) and may
//! leave a gap (a capture that fell behind etcd's compaction): the plan takes
//! segments in revision order, skips what is already covered, and stops at the
//! first revision no segment holds, naming the range that is missing. It never
//! replays across a gap: a later change applied without the ones before it
//! would be a state the cluster never had.
//!
//! Nor does it replay one cluster's changes onto another's snapshot: a
//! revision number means something only within the cluster that counted it.
//! The lineage is the cluster id. A snapshot's manifest names the cluster it
//! was taken from, a segment's key the cluster whose watch produced it. A
//! restored cluster is a new cluster (a new id): what it holds of the cluster
//! it was restored from was replayed into it at the restore, up to the
//! target, and the rest was left out on purpose. Its own history starts with
//! the snapshot the capture takes of it before capturing anything (the
//! capture finds no snapshot of that cluster), so each of its segments
//! follows a snapshot of its own, and the plan for a snapshot takes only the
//! segments of the snapshot's cluster ([`Lineage`]), whatever their
//! revisions.

use std::collections::HashSet;

use crate::backup::segment::{Change, RevisionChange, SegmentRef};
use crate::etcd::ids::ClusterId;

/// Whose segments a plan takes: the snapshot's cluster's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage {
    /// The cluster the snapshot was taken from.
    pub cluster: ClusterId,
    pub unlabelled: Unlabelled,
}

/// What becomes of a segment stored before keys named the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlabelled {
    /// Taken: its reader checks the cluster id inside it and passes it over
    /// when it is another cluster's. A restore reads every segment it
    /// replays, and losing a cluster's only captured changes over an
    /// unlabelled key would be a loss of data.
    CheckedOnRead,
    /// Left out: the capture, which reads none, captures those revisions
    /// again from etcd, or closes the gap with a snapshot when etcd has
    /// compacted them.
    Skipped,
}

impl Lineage {
    /// The plan of a restore of a snapshot of `cluster`.
    pub fn restore(cluster: ClusterId) -> Self {
        Self {
            cluster,
            unlabelled: Unlabelled::CheckedOnRead,
        }
    }

    /// Where the capture of `cluster` starts.
    pub fn capture(cluster: ClusterId) -> Self {
        Self {
            cluster,
            unlabelled: Unlabelled::Skipped,
        }
    }

    /// Whether `segment` may follow a snapshot of this lineage.
    pub fn takes(&self, segment: &SegmentRef) -> bool {
        match segment.cluster_id {
            Some(cluster) => cluster == self.cluster,
            None => self.unlabelled == Unlabelled::CheckedOnRead,
        }
    }
}

/// How far a restore goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayTarget {
    /// Everything captured.
    Latest,
    /// Up to and including this revision.
    Revision(i64),
}

/// What to replay after a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPlan {
    /// In order; each one's revisions above `from` and up to `until` are applied.
    pub segments: Vec<SegmentRef>,
    /// The snapshot's revision: revisions at or below it are in the snapshot.
    pub from: i64,
    /// The revision the restore ends at.
    pub until: i64,
    /// Revisions after `until` that segments hold but a gap cuts off: `(first
    /// missing, last one held beyond)`.
    pub cut_off_by_gap: Option<(i64, i64)>,
    /// Segments past the snapshot's revision that the lineage left out
    /// (another cluster's, or unlabelled ones the capture skips).
    pub left_out: usize,
}

/// Plans the replay of `segments` onto a snapshot at revision `snapshot`,
/// taken from `lineage`'s cluster.
pub fn plan(
    snapshot: i64,
    lineage: Lineage,
    segments: &[SegmentRef],
    target: ReplayTarget,
) -> ReplayPlan {
    let limit = match target {
        ReplayTarget::Latest => i64::MAX,
        ReplayTarget::Revision(revision) => revision,
    };
    let (mut ordered, left_out): (Vec<&SegmentRef>, Vec<&SegmentRef>) = segments
        .iter()
        .filter(|s| s.last > snapshot)
        .partition(|s| lineage.takes(s));
    // By first revision, the widest first among equals, so a segment that covers
    // another is taken and the covered one skipped.
    ordered.sort_by(|a, b| {
        (a.first, std::cmp::Reverse(a.last)).cmp(&(b.first, std::cmp::Reverse(b.last)))
    });
    let mut chosen = Vec::new();
    let mut until = snapshot;
    for segment in &ordered {
        if until >= limit {
            break;
        }
        if segment.last <= until {
            continue; // covered already
        }
        if segment.first > until + 1 {
            break; // a gap
        }
        chosen.push((*segment).clone());
        until = segment.last.min(limit);
    }
    let beyond = ordered
        .iter()
        .map(|s| s.last)
        .max()
        .unwrap_or(snapshot)
        .min(limit);
    let cut_off_by_gap = (beyond > until).then_some((until + 1, beyond));
    ReplayPlan {
        segments: chosen,
        from: snapshot,
        until,
        cut_off_by_gap,
        left_out: left_out.len(),
    }
}

/// Segments that no longer matter once a snapshot at `snapshot` is kept: every
/// revision they hold is in it.
pub fn superseded(snapshot: i64, segments: &[SegmentRef]) -> Vec<SegmentRef> {
    segments
        .iter()
        .filter(|s| s.last <= snapshot)
        .cloned()
        .collect()
}

/// Bounds on one replay transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_operations: usize,
    pub max_bytes: usize,
}

/// The revisions in `(after, until]` of `revisions`, cut into transactions
/// for a replay onto a private etcd: in order, each within `limits`, none
/// changing one key twice (etcd refuses that). Nothing reads the private
/// etcd until the replay is over, so several revisions may share a
/// transaction, and a revision too large for one may span several; what the
/// cluster serves afterwards is the same.
pub fn batches(
    revisions: &[RevisionChange],
    after: i64,
    until: i64,
    limits: BatchLimits,
) -> Vec<Vec<Change>> {
    let mut batches = Vec::new();
    let mut current: Vec<Change> = Vec::new();
    let mut keys: HashSet<Vec<u8>> = HashSet::new();
    let mut bytes = 0;
    let wanted = revisions
        .iter()
        .filter(|r| r.revision > after && r.revision <= until);
    for change in wanted.flat_map(|r| &r.changes) {
        let (key, size) = match change {
            Change::Put { key, value, .. } => (key, key.len() + value.len()),
            Change::Delete { key } => (key, key.len()),
        };
        let full = current.len() >= limits.max_operations.max(1)
            || (bytes + size > limits.max_bytes && !current.is_empty());
        if full || keys.contains(key) {
            batches.push(std::mem::take(&mut current));
            keys.clear();
            bytes = 0;
        }
        keys.insert(key.clone());
        bytes += size;
        current.push(change.clone());
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: ClusterId = ClusterId(0xa);
    const THEIRS: ClusterId = ClusterId(0xb);

    fn seg(first: i64, last: i64) -> SegmentRef {
        of(OURS, first, last)
    }

    fn of(cluster: ClusterId, first: i64, last: i64) -> SegmentRef {
        SegmentRef {
            cluster_id: Some(cluster),
            ..unlabelled(first, last)
        }
    }

    fn unlabelled(first: i64, last: i64) -> SegmentRef {
        SegmentRef {
            last,
            first,
            sha256: "0".repeat(64),
            key: format!("s/{last}-{first}"),
            cluster_id: None,
        }
    }

    fn plan(snapshot: i64, segments: &[SegmentRef], target: ReplayTarget) -> ReplayPlan {
        super::plan(snapshot, Lineage::restore(OURS), segments, target)
    }

    fn ranges(plan: &ReplayPlan) -> Vec<(i64, i64)> {
        plan.segments.iter().map(|s| (s.first, s.last)).collect()
    }

    #[test]
    fn contiguous_segments_after_the_snapshot_are_replayed_in_order() {
        let p = plan(
            10,
            &[seg(21, 30), seg(11, 20), seg(31, 35)],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), vec![(11, 20), (21, 30), (31, 35)]);
        assert_eq!((p.until, p.cut_off_by_gap), (35, None));
    }

    #[test]
    fn segments_the_snapshot_holds_are_skipped_and_one_it_cuts_into_is_kept() {
        let p = plan(
            15,
            &[seg(1, 10), seg(11, 20), seg(21, 30)],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), vec![(11, 20), (21, 30)]);
        assert_eq!(p.until, 30);
    }

    #[test]
    fn overlapping_and_repeated_segments_are_each_revision_once() {
        let p = plan(
            10,
            &[
                seg(11, 20),
                seg(11, 20),
                seg(15, 25),
                seg(11, 14),
                seg(26, 30),
            ],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), vec![(11, 20), (15, 25), (26, 30)]);
        assert_eq!(p.until, 30);
    }

    #[test]
    fn a_gap_stops_the_replay_and_names_what_it_cuts_off() {
        let p = plan(
            10,
            &[seg(11, 20), seg(25, 30), seg(31, 40)],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), vec![(11, 20)]);
        assert_eq!((p.until, p.cut_off_by_gap), (20, Some((21, 40))));
    }

    #[test]
    fn a_gap_right_after_the_snapshot_replays_nothing() {
        let p = plan(10, &[seg(12, 20)], ReplayTarget::Latest);
        assert_eq!(ranges(&p), Vec::<(i64, i64)>::new());
        assert_eq!((p.until, p.cut_off_by_gap), (10, Some((11, 20))));
    }

    #[test]
    fn a_target_revision_stops_inside_a_segment() {
        let p = plan(10, &[seg(11, 20), seg(21, 30)], ReplayTarget::Revision(24));
        assert_eq!(ranges(&p), vec![(11, 20), (21, 30)]);
        assert_eq!((p.until, p.cut_off_by_gap), (24, None));
    }

    #[test]
    fn a_target_before_a_gap_is_reached_in_full() {
        let p = plan(10, &[seg(11, 20), seg(25, 30)], ReplayTarget::Revision(18));
        assert_eq!((p.until, p.cut_off_by_gap), (18, None));
    }

    #[test]
    fn no_segments_restore_the_snapshot_as_it_is() {
        let p = plan(10, &[], ReplayTarget::Latest);
        assert_eq!((p.until, p.cut_off_by_gap, p.segments.len()), (10, None, 0));
    }

    #[test]
    fn another_clusters_segments_are_never_replayed_whatever_their_revisions() {
        // The lost cluster's segments reach 201; the restored one (restored
        // without a bump) sits at revision 2 and captured 3..=100 itself.
        let p = super::plan(
            2,
            Lineage::restore(OURS),
            &[
                of(THEIRS, 3, 120),
                of(THEIRS, 121, 201),
                seg(3, 50),
                seg(51, 100),
            ],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), vec![(3, 50), (51, 100)]);
        assert_eq!((p.until, p.cut_off_by_gap, p.left_out), (100, None, 2));
    }

    #[test]
    fn another_clusters_segments_neither_fill_a_gap_nor_count_as_cut_off() {
        let p = super::plan(
            10,
            Lineage::restore(OURS),
            &[seg(11, 20), of(THEIRS, 21, 30), seg(31, 40)],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), vec![(11, 20)]);
        assert_eq!((p.until, p.cut_off_by_gap), (20, Some((21, 40))));

        let theirs_only = super::plan(
            10,
            Lineage::restore(OURS),
            &[of(THEIRS, 11, 30)],
            ReplayTarget::Latest,
        );
        assert_eq!((theirs_only.until, theirs_only.cut_off_by_gap), (10, None));
    }

    #[test]
    fn a_restore_takes_unlabelled_segments_for_their_reader_to_check() {
        let p = super::plan(
            10,
            Lineage::restore(OURS),
            &[unlabelled(11, 20), seg(21, 30)],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), vec![(11, 20), (21, 30)]);
    }

    #[test]
    fn the_capture_starts_only_after_segments_whose_key_names_its_cluster() {
        // Unlabelled and foreign segments could hold any cluster's
        // revisions: the capture starts after its own snapshot instead.
        let p = super::plan(
            10,
            Lineage::capture(OURS),
            &[unlabelled(11, 20), of(THEIRS, 11, 500), seg(21, 30)],
            ReplayTarget::Latest,
        );
        assert_eq!(ranges(&p), Vec::<(i64, i64)>::new());
        assert_eq!((p.until, p.left_out), (10, 2));
        let own = super::plan(
            10,
            Lineage::capture(OURS),
            &[seg(11, 20), of(THEIRS, 11, 500)],
            ReplayTarget::Latest,
        );
        assert_eq!(own.until, 20);
    }

    const LIMITS: BatchLimits = BatchLimits {
        max_operations: 3,
        max_bytes: 1_000,
    };

    fn put(key: &str) -> Change {
        Change::Put {
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            lease: 0,
        }
    }

    fn revision(revision: i64, keys: &[&str]) -> RevisionChange {
        RevisionChange {
            revision,
            changes: keys.iter().map(|k| put(k)).collect(),
            seen_at_ms: 0,
        }
    }

    fn keys(batches: &[Vec<Change>]) -> Vec<Vec<String>> {
        batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .map(|change| match change {
                        Change::Put { key, .. } | Change::Delete { key } => {
                            String::from_utf8_lossy(key).into_owned()
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn revisions_share_a_transaction_until_it_is_full() {
        let revisions = [
            revision(11, &["a"]),
            revision(12, &["b", "c"]),
            revision(13, &["d"]),
        ];
        assert_eq!(
            keys(&batches(&revisions, 10, 13, LIMITS)),
            vec![vec!["a", "b", "c"], vec!["d"]]
        );
    }

    #[test]
    fn a_key_changed_again_starts_a_new_transaction() {
        let revisions = [revision(11, &["a"]), revision(12, &["a"])];
        assert_eq!(
            keys(&batches(&revisions, 10, 12, LIMITS)),
            vec![vec!["a"], vec!["a"]]
        );
    }

    #[test]
    fn only_revisions_after_the_snapshot_and_up_to_the_target_are_taken() {
        let revisions = [
            revision(10, &["in-snapshot"]),
            revision(11, &["a"]),
            revision(12, &["after-target"]),
        ];
        assert_eq!(keys(&batches(&revisions, 10, 11, LIMITS)), vec![vec!["a"]]);
    }

    #[test]
    fn a_large_value_fills_a_transaction_by_bytes() {
        let big = Change::Put {
            key: b"big".to_vec(),
            value: vec![0; 999],
            lease: 0,
        };
        let revisions = [
            revision(11, &["a"]),
            RevisionChange {
                revision: 12,
                changes: vec![big],
                seen_at_ms: 0,
            },
        ];
        assert_eq!(
            keys(&batches(&revisions, 10, 12, LIMITS)),
            vec![vec!["a"], vec!["big"]]
        );
    }

    #[test]
    fn segments_a_kept_snapshot_holds_are_superseded() {
        let old = superseded(20, &[seg(1, 10), seg(11, 20), seg(15, 25)]);
        assert_eq!(
            old.iter().map(|s| (s.first, s.last)).collect::<Vec<_>>(),
            vec![(1, 10), (11, 20)]
        );
    }
}
