//! Which segments a restore replays after its snapshot, decided from their keys
//! alone: pure, so every gap and overlap has a table test.
//!
//! Captures may overlap (two invocations flushing the same revisions) and may
//! leave a gap (a capture that fell behind etcd's compaction): the plan takes
//! segments in revision order, skips what is already covered, and stops at the
//! first revision no segment holds, naming the range that is missing. It never
//! replays across a gap: a later change applied without the ones before it
//! would be a state the cluster never had.

use crate::segment::SegmentRef;

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
}

/// Plans the replay of `segments` onto a snapshot at revision `snapshot`.
pub fn plan(snapshot: i64, segments: &[SegmentRef], target: ReplayTarget) -> ReplayPlan {
    let limit = match target {
        ReplayTarget::Latest => i64::MAX,
        ReplayTarget::Revision(revision) => revision,
    };
    let mut ordered: Vec<&SegmentRef> = segments.iter().filter(|s| s.last > snapshot).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: i64, last: i64) -> SegmentRef {
        SegmentRef {
            last,
            first,
            sha256: "0".repeat(64),
            key: format!("s/{last}-{first}"),
        }
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
    fn segments_a_kept_snapshot_holds_are_superseded() {
        let old = superseded(20, &[seg(1, 10), seg(11, 20), seg(15, 25)]);
        assert_eq!(
            old.iter().map(|s| (s.first, s.last)).collect::<Vec<_>>(),
            vec![(1, 10), (11, 20)]
        );
    }
}
