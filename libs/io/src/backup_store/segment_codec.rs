//! A segment as it is stored: zstd-compressed JSON under the key that names
//! its range, its cluster and the SHA-256 of the stored bytes
//! ([`Segment::key`]), so a restore verifies each segment before it trusts
//! it, without a manifest.

use etcd_aws_core::backup::segment::{Segment, SegmentError, SegmentRef};
use sha2::{Digest, Sha256};

use super::hex;

/// The zstd level of stored segments: small segments, written every second.
const LEVEL: i32 = 3;

/// The stored bytes and the key they go under. The same range and changes
/// give the same key and bytes, so a repeated flush changes nothing.
pub fn encode(segment: &Segment, prefix: &str) -> Result<(String, Vec<u8>), SegmentError> {
    segment.check("(new segment)")?;
    let damaged = |reason: String| SegmentError::Damaged {
        key: "(new segment)".into(),
        reason,
    };
    let json = serde_json::to_vec(segment).map_err(|e| damaged(e.to_string()))?;
    let stored = zstd::encode_all(json.as_slice(), LEVEL).map_err(|e| damaged(e.to_string()))?;
    let key = segment.key(prefix, &hex(&Sha256::digest(&stored)));
    Ok((key, stored))
}

/// Reads stored bytes, verifying them against the checksum their key names
/// and the range it names.
pub fn decode(reference: &SegmentRef, stored: &[u8]) -> Result<Segment, SegmentError> {
    let actual = hex(&Sha256::digest(stored));
    if actual != reference.sha256 {
        return Err(SegmentError::Checksum {
            key: reference.key.clone(),
            expected: reference.sha256.clone(),
            actual,
        });
    }
    let damaged = |reason: String| SegmentError::Damaged {
        key: reference.key.clone(),
        reason,
    };
    let json = zstd::decode_all(stored).map_err(|e| damaged(e.to_string()))?;
    let segment: Segment = serde_json::from_slice(&json).map_err(|e| damaged(e.to_string()))?;
    segment.check_read(reference)?;
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use etcd_aws_core::backup::segment::{Change, LeaseGrant, RevisionChange};
    use etcd_aws_core::test_support::segment;

    use super::*;

    #[test]
    fn a_segment_reads_back_as_written_with_binary_keys_leases_and_transactions() {
        let written = Segment {
            revisions: vec![
                RevisionChange {
                    revision: 11,
                    changes: vec![
                        Change::Put {
                            key: vec![0, 255, b'/'],
                            value: vec![1, 2, 3],
                            lease: 7,
                        },
                        Change::Delete {
                            key: b"gone".to_vec(),
                        },
                    ],
                    seen_at_ms: 1_700_000_000_123,
                },
                RevisionChange {
                    revision: 12,
                    changes: vec![Change::Delete { key: b"a".to_vec() }],
                    seen_at_ms: 0,
                },
            ],
            leases: vec![LeaseGrant {
                id: 7,
                ttl_seconds: 30,
            }],
            ..segment(11, 12, &[])
        };
        let (key, stored) = encode(&written, "backups/").expect("encodes");
        let reference = SegmentRef::parse(&key).expect("its own key parses");
        assert_eq!((reference.first, reference.last), (11, 12));
        assert_eq!(decode(&reference, &stored), Ok(written));
    }

    #[test]
    fn the_same_range_and_changes_give_the_same_key_and_bytes() {
        assert_eq!(
            encode(&segment(3, 4, &[3, 4]), "p/").expect("encodes"),
            encode(&segment(3, 4, &[3, 4]), "p/").expect("encodes")
        );
    }

    #[test]
    fn a_changed_byte_is_refused_by_its_checksum() {
        let (key, mut stored) = encode(&segment(3, 4, &[3, 4]), "p/").expect("encodes");
        let last = stored.len() - 1;
        stored[last] ^= 1;
        let reference = SegmentRef::parse(&key).expect("parses");
        assert!(matches!(
            decode(&reference, &stored),
            Err(SegmentError::Checksum { .. })
        ));
    }

    #[test]
    fn a_segment_that_breaks_its_own_order_is_never_stored() {
        assert!(matches!(
            encode(&segment(3, 4, &[4, 3]), "p/"),
            Err(SegmentError::Range { .. })
        ));
    }
}
