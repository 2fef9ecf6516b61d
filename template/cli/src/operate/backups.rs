//! `backups list`: the snapshots in the bucket and the revisions a restore
//! can reach through them and the captured changes after them.

use etcd_aws_core::backup::manifest::BackupManifest;
use etcd_aws_core::backup::replay::{plan, Lineage, ReplayTarget};
use etcd_aws_core::backup::segment::SegmentRef;
use etcd_aws_core::etcd::ids::ClusterId;
use serde::Serialize;

/// Whether a snapshot's stored bytes were checked against its manifest's
/// SHA-256 (only with `--verify`: it downloads every snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verified {
    NotChecked,
    Intact,
    Damaged(String),
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verified::NotChecked => f.write_str("not checked"),
            Verified::Intact => f.write_str("intact"),
            Verified::Damaged(reason) => write!(f, "DAMAGED: {reason}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRow {
    pub key: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    pub revision: i64,
    pub stored_bytes: u64,
    pub kind: &'static str,
    pub cluster_id: ClusterId,
    pub verified: Verified,
}

/// Revisions a restore can reach without a hole: from a snapshot's revision
/// to the last captured change that follows it without a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stretch {
    pub from_revision: i64,
    pub until_revision: i64,
    /// When the stretch's first snapshot was taken, seconds since the epoch.
    pub from_time: i64,
}

/// The restorable stretches, oldest first; overlapping ones merged.
pub fn coverage(manifests: &[BackupManifest], segments: &[SegmentRef]) -> Vec<Stretch> {
    let mut stretches: Vec<Stretch> = manifests
        .iter()
        .map(|m| Stretch {
            from_revision: m.revision,
            until_revision: plan(
                m.revision,
                Lineage::restore(m.cluster_id),
                segments,
                ReplayTarget::Latest,
            )
            .until,
            from_time: m.created_at,
        })
        .collect();
    stretches.sort_by_key(|s| (s.from_revision, s.from_time));
    let mut merged: Vec<Stretch> = Vec::new();
    for stretch in stretches {
        match merged.last_mut() {
            Some(last) if stretch.from_revision <= last.until_revision => {
                last.until_revision = last.until_revision.max(stretch.until_revision);
            }
            _ => merged.push(stretch),
        }
    }
    merged
}

pub fn rows(manifests: &[BackupManifest]) -> Vec<BackupRow> {
    manifests
        .iter()
        .map(|m| BackupRow {
            key: m.key.clone(),
            created_at: m.created_at,
            revision: m.revision,
            stored_bytes: m.stored_bytes,
            kind: "snapshot",
            cluster_id: m.cluster_id,
            verified: Verified::NotChecked,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use etcd_aws_core::backup::manifest::Compression;

    use super::*;

    fn manifest(revision: i64, created_at: i64) -> BackupManifest {
        BackupManifest {
            key: format!("backups/snapshots/r{revision}.db"),
            sha256: "0".repeat(64),
            stored_bytes: 10,
            snapshot_bytes: 10,
            compression: Compression::None,
            revision,
            cluster_id: ClusterId(0xc1),
            member_count: 3,
            etcd_version: "3.5.16".into(),
            created_at,
        }
    }

    fn segment(first: i64, last: i64) -> SegmentRef {
        SegmentRef::parse(&format!(
            "backups/segments/{last:020}-{first:020}-00000000000000c1-{}.seg.zst",
            "a".repeat(64)
        ))
        .expect("a segment key")
    }

    #[test]
    fn a_snapshot_without_segments_reaches_only_its_own_revision() {
        assert_eq!(
            coverage(&[manifest(10, 100)], &[]),
            vec![Stretch {
                from_revision: 10,
                until_revision: 10,
                from_time: 100
            }]
        );
    }

    #[test]
    fn segments_after_a_snapshot_extend_its_reach_up_to_the_first_gap() {
        let segments = [segment(11, 20), segment(21, 30), segment(40, 50)];
        assert_eq!(
            coverage(&[manifest(10, 100)], &segments)[0].until_revision,
            30
        );
    }

    #[test]
    fn a_snapshot_past_a_gap_starts_a_stretch_of_its_own() {
        let segments = [segment(11, 20), segment(41, 50)];
        let stretches = coverage(&[manifest(40, 200), manifest(10, 100)], &segments);
        assert_eq!(
            stretches
                .iter()
                .map(|s| (s.from_revision, s.until_revision))
                .collect::<Vec<_>>(),
            vec![(10, 20), (40, 50)]
        );
    }

    #[test]
    fn snapshots_inside_one_stretch_merge_into_it() {
        let segments = [segment(11, 30)];
        let stretches = coverage(&[manifest(20, 200), manifest(10, 100)], &segments);
        assert_eq!(stretches.len(), 1);
        assert_eq!(
            (stretches[0].from_revision, stretches[0].until_revision),
            (10, 30)
        );
    }
}
