//! What the capture holds between flushes: the changes after the last flushed
//! revision, each revision's events together, and whether it is time to flush
//! them. Pure: the watch feeds it events, a clock tells it the time.

use etcd_aws_core::etcd::ids::ClusterId;
use std::collections::BTreeSet;
use std::time::Duration;

use etcd_aws_core::backup::segment::{Change, LeaseGrant, RevisionChange, Segment, FORMAT};
use tokio::time::Instant;

/// When held changes are flushed: once the oldest has waited `delay` (the loss
/// window's share of the capture), or once they reach `max_bytes`, whichever
/// comes first. Nothing is flushed while nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    pub delay: Duration,
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Pending {
    /// The last revision stored (flushed, or in the snapshot the capture started from).
    after: i64,
    revisions: Vec<RevisionChange>,
    bytes: usize,
    oldest: Option<Instant>,
}

impl Pending {
    pub fn new(after: i64) -> Self {
        Self {
            after,
            revisions: Vec::new(),
            bytes: 0,
            oldest: None,
        }
    }

    /// The last revision stored.
    pub fn after(&self) -> i64 {
        self.after
    }

    /// The newest revision held, or the last stored when nothing is: a watch
    /// resumes after it.
    pub fn last_revision(&self) -> i64 {
        self.revisions.last().map_or(self.after, |r| r.revision)
    }

    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }

    /// Holds one watch event of `revision`, received at `now` (`seen_at_ms`
    /// on the wall clock). Events of a revision arrive together and in order;
    /// one at or below what is stored is a repeat (a watch resumed from an
    /// older revision) and is dropped.
    pub fn add(&mut self, revision: i64, change: Change, now: Instant, seen_at_ms: i64) {
        if revision <= self.after || revision < self.last_revision() {
            return;
        }
        self.bytes += change_bytes(&change);
        match self.revisions.last_mut() {
            Some(last) if last.revision == revision => last.changes.push(change),
            _ => self.revisions.push(RevisionChange {
                revision,
                changes: vec![change],
                seen_at_ms,
            }),
        }
        self.oldest.get_or_insert(now);
    }

    /// Whether the held changes are due for a flush at `now`.
    pub fn due(&self, now: Instant, policy: &FlushPolicy) -> bool {
        match self.oldest {
            None => false,
            Some(oldest) => {
                self.bytes >= policy.max_bytes || now.duration_since(oldest) >= policy.delay
            }
        }
    }

    /// The leases the held puts are attached to, whose TTLs the segment records.
    pub fn lease_ids(&self) -> Vec<i64> {
        let ids: BTreeSet<i64> = self
            .revisions
            .iter()
            .flat_map(|r| &r.changes)
            .filter_map(|change| match change {
                Change::Put { lease, .. } if *lease != 0 => Some(*lease),
                _ => None,
            })
            .collect();
        ids.into_iter().collect()
    }

    /// The revisions held, and how long the oldest has waited at `now`.
    pub fn held(&self, now: Instant) -> (usize, Duration) {
        let waited = self
            .oldest
            .map_or(Duration::ZERO, |oldest| now.duration_since(oldest));
        (self.revisions.len(), waited)
    }

    /// The held changes as the segment that follows the last stored revision;
    /// `None` when nothing is held. They stay held until [`Pending::flushed`]
    /// says the segment is stored: a failed upload loses nothing.
    pub fn segment(
        &self,
        cluster_id: ClusterId,
        flushed_at: i64,
        leases: Vec<LeaseGrant>,
    ) -> Option<Segment> {
        let last = self.revisions.last()?.revision;
        Some(Segment {
            format: FORMAT,
            cluster_id,
            first: self.after + 1,
            last,
            flushed_at,
            revisions: self.revisions.clone(),
            leases,
        })
    }

    /// The segment ending at `last` is stored: what it held is dropped, and
    /// the next segment starts after it.
    pub fn flushed(&mut self, last: i64) {
        if last < self.after {
            return;
        }
        let kept: Vec<RevisionChange> = std::mem::take(&mut self.revisions)
            .into_iter()
            .filter(|r| r.revision > last)
            .collect();
        let oldest = self.oldest.filter(|_| !kept.is_empty());
        *self = Self::new(last);
        for revision in kept {
            self.bytes += revision.changes.iter().map(change_bytes).sum::<usize>();
            self.revisions.push(revision);
        }
        self.oldest = oldest;
    }
}

fn change_bytes(change: &Change) -> usize {
    match change {
        Change::Put { key, value, .. } => key.len() + value.len(),
        Change::Delete { key } => key.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: FlushPolicy = FlushPolicy {
        delay: Duration::from_secs(1),
        max_bytes: 100,
    };

    fn put(key: &str, lease: i64) -> Change {
        Change::Put {
            key: key.as_bytes().to_vec(),
            value: b"0123456789".to_vec(),
            lease,
        }
    }

    #[test]
    fn the_events_of_one_revision_stay_together() {
        let now = Instant::now();
        let mut pending = Pending::new(10);
        pending.add(11, put("a", 0), now, 0);
        pending.add(11, Change::Delete { key: b"b".to_vec() }, now, 0);
        pending.add(12, put("c", 0), now, 0);
        let segment = pending
            .segment(ClusterId(0xc1), 0, vec![])
            .expect("held changes");
        assert_eq!((segment.first, segment.last), (11, 12));
        assert_eq!(segment.revisions.len(), 2);
        assert_eq!(segment.revisions[0].changes.len(), 2);
    }

    #[test]
    fn repeats_of_stored_or_older_revisions_are_dropped() {
        let now = Instant::now();
        let mut pending = Pending::new(10);
        pending.add(9, put("old", 0), now, 0);
        pending.add(10, put("stored", 0), now, 0);
        assert!(pending.is_empty());
        pending.add(12, put("a", 0), now, 0);
        pending.add(11, put("late", 0), now, 0);
        let segment = pending
            .segment(ClusterId(0xc1), 0, vec![])
            .expect("held changes");
        assert_eq!(segment.revisions.len(), 1);
    }

    #[test]
    fn nothing_is_due_while_nothing_changes() {
        let pending = Pending::new(10);
        assert!(!pending.due(Instant::now() + Duration::from_secs(3600), &POLICY));
    }

    #[test]
    fn held_changes_are_due_once_the_oldest_has_waited_the_delay() {
        let start = Instant::now();
        let mut pending = Pending::new(10);
        pending.add(11, put("a", 0), start, 0);
        pending.add(12, put("b", 0), start + Duration::from_millis(900), 0);
        assert!(!pending.due(start + Duration::from_millis(999), &POLICY));
        assert!(pending.due(start + Duration::from_secs(1), &POLICY));
    }

    #[test]
    fn held_changes_are_due_at_once_past_the_size_bound() {
        let now = Instant::now();
        let mut pending = Pending::new(10);
        for revision in 11..=19 {
            pending.add(revision, put("k", 0), now, 0);
        }
        assert!(!pending.due(now, &POLICY), "99 bytes held");
        pending.add(20, put("k", 0), now, 0);
        assert!(pending.due(now, &POLICY), "110 bytes held");
    }

    #[test]
    fn segments_follow_each_other_without_a_gap() {
        let now = Instant::now();
        let mut pending = Pending::new(10);
        pending.add(11, put("a", 0), now, 0);
        let first = pending.segment(ClusterId(0xc1), 0, vec![]).expect("first");
        pending.flushed(first.last);
        assert_eq!(pending.after(), 11);
        pending.add(12, put("b", 0), now, 0);
        let second = pending.segment(ClusterId(0xc1), 0, vec![]).expect("second");
        pending.flushed(second.last);
        assert_eq!((first.last, second.first), (11, 12));
        assert_eq!(pending.segment(ClusterId(0xc1), 0, vec![]), None);
        assert!(!pending.due(now + Duration::from_secs(60), &POLICY));
    }

    #[test]
    fn a_segment_not_stored_stays_held_and_is_due_again() {
        let start = Instant::now();
        let mut pending = Pending::new(10);
        pending.add(11, put("a", 0), start, 0);
        let failed = pending.segment(ClusterId(0xc1), 0, vec![]).expect("held");
        pending.add(12, put("b", 0), start + Duration::from_millis(500), 0);
        let retried = pending
            .segment(ClusterId(0xc1), 0, vec![])
            .expect("still held");
        assert_eq!((failed.first, retried.first, retried.last), (11, 11, 12));
        assert!(pending.due(start + Duration::from_secs(1), &POLICY));
    }

    #[test]
    fn changes_that_arrived_during_an_upload_stay_held_after_it() {
        let start = Instant::now();
        let mut pending = Pending::new(10);
        pending.add(11, put("a", 0), start, 0);
        let uploading = pending.segment(ClusterId(0xc1), 0, vec![]).expect("held");
        pending.add(12, put("b", 0), start + Duration::from_millis(900), 0);
        pending.flushed(uploading.last);
        let next = pending
            .segment(ClusterId(0xc1), 0, vec![])
            .expect("the later change");
        assert_eq!((next.first, next.last), (12, 12));
        assert!(pending.due(start + Duration::from_secs(1), &POLICY));
    }

    #[test]
    fn the_leases_held_keys_are_attached_to_are_each_named_once() {
        let now = Instant::now();
        let mut pending = Pending::new(10);
        pending.add(11, put("a", 7), now, 0);
        pending.add(12, put("b", 7), now, 0);
        pending.add(13, put("c", 3), now, 0);
        pending.add(14, put("d", 0), now, 0);
        assert_eq!(pending.lease_ids(), vec![3, 7]);
    }
}
