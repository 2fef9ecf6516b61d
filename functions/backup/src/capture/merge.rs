//! What a capture run stored, to be stored again as one segment.
//!
//! A run flushes a small segment every second while changes arrive: an hour
//! is 3,600 objects, and a restore reads each. So the run keeps what it
//! flushed and, at its end (or once that passes a size bound), stores it as
//! one segment covering the whole range, then deletes the small ones. The
//! restore's plan takes the widest segment among those that start at a
//! revision and skips what it covers, so until the small ones are deleted
//! they are merely not read. Pure: the run does the storing.

use etcd_aws_core::etcd::ids::ClusterId;
use std::collections::BTreeMap;

use etcd_aws_core::backup::segment::{
    Change, LeaseGrant, RevisionChange, Segment, SegmentRef, FORMAT,
};

/// The contiguous segments a run stored since it started, or since the last
/// merge or gap.
#[derive(Debug, Default, Clone)]
pub struct RunLog {
    revisions: Vec<RevisionChange>,
    leases: BTreeMap<i64, i64>,
    stored: Vec<SegmentRef>,
    first: i64,
    last: i64,
    bytes: usize,
}

impl RunLog {
    /// Notes a stored segment. One that does not follow the last (the run
    /// started over after a gap) starts the log afresh: a merged segment
    /// never spans a hole.
    pub fn record(&mut self, segment: &Segment, stored: SegmentRef) {
        if self.stored.is_empty() || segment.first != self.last + 1 {
            *self = RunLog {
                first: segment.first,
                ..RunLog::default()
            };
        }
        self.revisions.extend(segment.revisions.iter().cloned());
        self.leases
            .extend(segment.leases.iter().map(|l| (l.id, l.ttl_seconds)));
        self.bytes += segment
            .revisions
            .iter()
            .flat_map(|r| &r.changes)
            .map(|change| match change {
                Change::Put { key, value, .. } => key.len() + value.len(),
                Change::Delete { key } => key.len(),
            })
            .sum::<usize>();
        self.stored.push(stored);
        self.last = segment.last;
    }

    /// The bytes of keys and values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets everything (a gap: what came before is in a snapshot now).
    pub fn clear(&mut self) {
        *self = RunLog::default();
    }

    /// The one segment that replaces the stored ones, and the ones it
    /// replaces; `None` when there is nothing to merge (one segment or none).
    /// The log is empty afterwards.
    pub fn merge(
        &mut self,
        cluster_id: ClusterId,
        flushed_at: i64,
    ) -> Option<(Segment, Vec<SegmentRef>)> {
        if self.stored.len() < 2 {
            self.clear();
            return None;
        }
        let log = std::mem::take(self);
        let merged = Segment {
            format: FORMAT,
            cluster_id,
            first: log.first,
            last: log.last,
            flushed_at,
            revisions: log.revisions,
            leases: log
                .leases
                .into_iter()
                .map(|(id, ttl_seconds)| LeaseGrant { id, ttl_seconds })
                .collect(),
        };
        Some((merged, log.stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first: i64, last: i64, leases: &[(i64, i64)]) -> (Segment, SegmentRef) {
        let segment = Segment {
            format: FORMAT,
            cluster_id: ClusterId(0xc1),
            first,
            last,
            flushed_at: 0,
            revisions: (first..=last)
                .map(|revision| RevisionChange {
                    revision,
                    changes: vec![Change::Put {
                        key: b"k".to_vec(),
                        value: b"v".to_vec(),
                        lease: 0,
                    }],
                    seen_at_ms: 0,
                })
                .collect(),
            leases: leases
                .iter()
                .map(|&(id, ttl_seconds)| LeaseGrant { id, ttl_seconds })
                .collect(),
        };
        let reference = SegmentRef {
            last,
            first,
            sha256: "0".repeat(64),
            key: format!("s/{last}-{first}"),
            cluster_id: Some(ClusterId(0xc1)),
        };
        (segment, reference)
    }

    #[test]
    fn contiguous_segments_merge_into_one_covering_them_all() {
        let mut log = RunLog::default();
        for (first, last) in [(11, 12), (13, 15), (16, 16)] {
            let (segment, reference) = segment(first, last, &[]);
            log.record(&segment, reference);
        }
        let (merged, replaced) = log
            .merge(ClusterId(0xc1), 99)
            .expect("three segments merge");
        assert_eq!(
            (merged.first, merged.last, merged.revisions.len()),
            (11, 16, 6)
        );
        assert_eq!(replaced.len(), 3);
        assert!(
            log.merge(ClusterId(0xc1), 99).is_none(),
            "the log is empty after a merge"
        );
    }

    #[test]
    fn one_segment_is_left_as_it_is() {
        let mut log = RunLog::default();
        let (segment, reference) = segment(11, 12, &[]);
        log.record(&segment, reference);
        assert!(log.merge(ClusterId(0xc1), 99).is_none());
    }

    #[test]
    fn a_segment_after_a_hole_starts_the_log_afresh() {
        let mut log = RunLog::default();
        for (first, last) in [(11, 12), (13, 14), (30, 31), (32, 33)] {
            let (segment, reference) = segment(first, last, &[]);
            log.record(&segment, reference);
        }
        let (merged, replaced) = log.merge(ClusterId(0xc1), 99).expect("merges");
        assert_eq!((merged.first, merged.last, replaced.len()), (30, 33, 2));
    }

    #[test]
    fn the_merged_segment_records_every_lease_once() {
        let mut log = RunLog::default();
        for (first, last, leases) in [(11, 11, &[(7, 30)][..]), (12, 12, &[(7, 30), (9, 5)])] {
            let (segment, reference) = segment(first, last, leases);
            log.record(&segment, reference);
        }
        let (merged, _) = log.merge(ClusterId(0xc1), 99).expect("merges");
        assert_eq!(
            merged.leases,
            vec![
                LeaseGrant {
                    id: 7,
                    ttl_seconds: 30
                },
                LeaseGrant {
                    id: 9,
                    ttl_seconds: 5
                }
            ]
        );
    }
}
