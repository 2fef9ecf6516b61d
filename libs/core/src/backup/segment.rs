//! The continuous backup's unit: a segment holds every change of a contiguous
//! range of revisions after a snapshot, in order, each revision's events
//! together (one transaction is one revision), with the leases its keys hold.
//!
//! Stored as zstd-compressed JSON under
//! `segments/<last revision>-<first revision>-<cluster id>-<sha256>.seg.zst`:
//! the key sorts by the last revision it covers (so listing after a revision
//! is one prefix scan), names the range and the cluster whose history it is
//! (so a plan needs no download, and never takes one cluster's changes for
//! another's: see [`crate::backup::replay`]) and the SHA-256 of the stored
//! bytes (so a restore verifies each segment without a manifest). Two
//! captures that flush the same range write the same bytes under the same key:
//! a repeated segment changes nothing. Segments stored before keys named the
//! cluster (`<last>-<first>-<sha256>.seg.zst`) still parse, with no cluster:
//! only the cluster id inside them says whose they are.

use crate::etcd::ids::ClusterId;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The format's version, checked when a segment is read.
pub const FORMAT: u32 = 1;

/// Where segments live under the backup prefix.
pub const SEGMENTS_DIR: &str = "segments/";

/// One key's change in a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    Put {
        #[serde(with = "bytes_base64")]
        key: Vec<u8>,
        #[serde(with = "bytes_base64")]
        value: Vec<u8>,
        /// The lease the key is attached to; 0 for none.
        #[serde(default, skip_serializing_if = "is_zero")]
        lease: i64,
    },
    Delete {
        #[serde(with = "bytes_base64")]
        key: Vec<u8>,
    },
}

/// Every change of one revision: applied together, or not at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionChange {
    pub revision: i64,
    pub changes: Vec<Change>,
    /// Milliseconds since the epoch when the capture received the revision,
    /// a few milliseconds after etcd acknowledged it: what a restore to a
    /// point in time goes by. 0 when unknown.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seen_at_ms: i64,
}

/// The TTL recorded for a lease whose TTL the capture could not ask (etcd did
/// not answer), and granted on replay to a lease no segment records: long
/// enough for a client to renew it after a restore, short enough that an
/// abandoned lease's keys go soon.
pub const UNKNOWN_LEASE_TTL: i64 = 60;

/// The TTL recorded for a lease already gone when its keys were flushed: its
/// keys' deletes follow in the history; should they be lost, the keys expire
/// at once after a restore, as they did on the lost cluster.
pub const GONE_LEASE_TTL: i64 = 1;

/// A lease a captured key holds, with the TTL it was granted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub id: i64,
    pub ttl_seconds: i64,
}

/// A contiguous range of revisions `first..=last` of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub format: u32,
    pub cluster_id: ClusterId,
    pub first: i64,
    pub last: i64,
    /// Seconds since the epoch when the segment was flushed: every revision in it
    /// was acknowledged by then.
    pub flushed_at: i64,
    pub revisions: Vec<RevisionChange>,
    pub leases: Vec<LeaseGrant>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    #[error("segment {key}: stored bytes have SHA-256 {actual}, its key names {expected}")]
    Checksum {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("segment {key} is damaged: {reason}")]
    Damaged { key: String, reason: String },
    #[error("segment {key} is format {found}; this release reads format {FORMAT}")]
    Format { key: String, found: u32 },
    #[error("segment {key} claims revisions {first}..={last} but holds {reason}")]
    Range {
        key: String,
        first: i64,
        last: i64,
        reason: String,
    },
}

/// What a segment's key says of it, read without downloading it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentRef {
    pub last: i64,
    pub first: i64,
    pub sha256: String,
    pub key: String,
    /// The cluster whose changes it holds; `None` for a segment stored
    /// before keys named it (only its contents say).
    pub cluster_id: Option<ClusterId>,
}

impl SegmentRef {
    /// Reads `<prefix>segments/<last>-<first>-<cluster id>-<sha256>.seg.zst`,
    /// or the older `<last>-<first>-<sha256>.seg.zst`; `None` for any other
    /// key (a stray upload is not a segment).
    pub fn parse(key: &str) -> Option<SegmentRef> {
        let name = key.rsplit('/').next()?.strip_suffix(".seg.zst")?;
        let parts: Vec<&str> = name.split('-').collect();
        let (last, first, cluster, sha256) = match parts.as_slice() {
            [last, first, sha256] => (last, first, None, sha256),
            [last, first, cluster, sha256] => (last, first, Some(cluster), sha256),
            _ => return None,
        };
        let hex = |text: &str, len: std::ops::RangeInclusive<usize>| {
            len.contains(&text.len()) && text.chars().all(|c| c.is_ascii_hexdigit())
        };
        let cluster_id = match cluster {
            Some(text) if hex(text, 1..=16) => Some(text.parse().ok()?),
            Some(_) => return None,
            None => None,
        };
        let (last, first): (i64, i64) = (last.parse().ok()?, first.parse().ok()?);
        (hex(sha256, 64..=64) && first <= last && first > 0).then(|| SegmentRef {
            last,
            first,
            sha256: (*sha256).to_owned(),
            key: key.to_owned(),
            cluster_id,
        })
    }
}

impl Segment {
    /// Checks what a reader relies on: the format, the range, and revisions in
    /// strictly increasing order inside it.
    pub fn check(&self, key: &str) -> Result<(), SegmentError> {
        if self.format != FORMAT {
            return Err(SegmentError::Format {
                key: key.to_owned(),
                found: self.format,
            });
        }
        let range = |reason: String| SegmentError::Range {
            key: key.to_owned(),
            first: self.first,
            last: self.last,
            reason,
        };
        let mut previous = self.first - 1;
        for revision in &self.revisions {
            if revision.revision <= previous || revision.revision > self.last {
                return Err(range(format!(
                    "revision {} after {previous}",
                    revision.revision
                )));
            }
            previous = revision.revision;
        }
        Ok(())
    }

    /// The key the stored bytes go under: the range, the cluster, and the
    /// SHA-256 of the stored (compressed) bytes, which a reader verifies
    /// before trusting them.
    pub fn key(&self, prefix: &str, stored_sha256: &str) -> String {
        format!(
            "{prefix}{SEGMENTS_DIR}{:020}-{:020}-{:016x}-{stored_sha256}.seg.zst",
            self.last, self.first, self.cluster_id.0
        )
    }

    /// A segment read back under `reference` must hold the range (and the
    /// cluster) its key names, in order.
    pub fn check_read(&self, reference: &SegmentRef) -> Result<(), SegmentError> {
        if let Some(named) = reference
            .cluster_id
            .filter(|named| *named != self.cluster_id)
        {
            return Err(SegmentError::Damaged {
                key: reference.key.clone(),
                reason: format!(
                    "its key names cluster {named}, it holds cluster {}'s changes",
                    self.cluster_id
                ),
            });
        }
        if (self.first, self.last) != (reference.first, reference.last) {
            return Err(SegmentError::Range {
                key: reference.key.clone(),
                first: reference.first,
                last: reference.last,
                reason: format!("{}..={} inside", self.first, self.last),
            });
        }
        self.check(&reference.key)
    }
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

mod bytes_base64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::segment;

    const SHA: &str = "00000000000000000000000000000000000000000000000000000000000000ab";

    #[test]
    fn keys_sort_by_last_revision_and_name_the_range() {
        let key = segment(5, 900, &[5, 900]).key("p/", SHA);
        assert!(
            key.starts_with(
                "p/segments/00000000000000000900-00000000000000000005-00000000000000c1-"
            ),
            "{key}"
        );
        assert!(key < segment(901, 1000, &[901]).key("p/", SHA));
    }

    #[test]
    fn a_segments_own_key_parses_back_to_its_range_cluster_and_checksum() {
        let key = segment(11, 12, &[11]).key("backups/", SHA);
        let reference = SegmentRef::parse(&key).expect("its own key parses");
        assert_eq!((reference.first, reference.last), (11, 12));
        assert_eq!(reference.cluster_id, Some(ClusterId(0xc1)));
        assert_eq!(reference.sha256, SHA);
    }

    #[test]
    fn a_key_stored_before_keys_named_the_cluster_parses_without_one() {
        let key = format!("p/segments/00000000000000000012-00000000000000000011-{SHA}.seg.zst");
        let reference = SegmentRef::parse(&key).expect("the older key parses");
        assert_eq!((reference.first, reference.last), (11, 12));
        assert_eq!(reference.cluster_id, None);
    }

    #[test]
    fn a_segment_read_under_a_key_naming_another_cluster_is_refused() {
        let key = Segment {
            cluster_id: ClusterId(0xc2),
            ..segment(3, 4, &[3])
        }
        .key("p/", SHA);
        let reference = SegmentRef::parse(&key).expect("parses");
        assert!(matches!(
            segment(3, 4, &[3]).check_read(&reference),
            Err(SegmentError::Damaged { .. })
        ));
    }

    #[test]
    fn revisions_out_of_order_or_out_of_range_are_refused() {
        for revisions in [&[4, 3][..], &[3, 3], &[2], &[5]] {
            assert!(
                matches!(
                    segment(3, 4, revisions).check("k"),
                    Err(SegmentError::Range { .. })
                ),
                "{revisions:?}"
            );
        }
    }

    #[test]
    fn a_segment_read_under_a_key_naming_another_range_is_refused() {
        let key = segment(3, 4, &[3]).key("p/", SHA);
        let reference = SegmentRef::parse(&key).expect("parses");
        assert!(matches!(
            segment(3, 5, &[3]).check_read(&reference),
            Err(SegmentError::Range { .. })
        ));
        assert_eq!(segment(3, 4, &[3]).check_read(&reference), Ok(()));
    }

    #[test]
    fn another_format_is_refused_with_the_one_this_release_reads() {
        let newer = Segment {
            format: FORMAT + 1,
            ..segment(3, 4, &[3])
        };
        assert!(matches!(
            newer.check("k"),
            Err(SegmentError::Format { found, .. }) if found == FORMAT + 1
        ));
    }

    #[test]
    fn other_keys_are_not_segments() {
        for key in [
            "p/segments/notes.txt",
            "p/segments/10-20-abc.seg.zst",
            "p/segments/00000000000000000010-00000000000000000020-0000000000000000000000000000000000000000000000000000000000000000.seg.zst",
            "p/segments/00000000000000000020-00000000000000000010-not-hex-0000000000000000000000000000000000000000000000000000000000000000.seg.zst",
            "p/segments/00000000000000000020-00000000000000000010-00000000000000000c1-0000000000000000000000000000000000000000000000000000000000000000.seg.zst",
        ] {
            assert_eq!(SegmentRef::parse(key), None, "{key}");
        }
    }
}
