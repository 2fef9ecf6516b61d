//! The continuous backup's segments in the backup bucket (the stand-in's S3):
//! written once per range and content, listed by revision, read back verified.

use aws_sdk_s3::primitives::ByteStream;
use etcd_aws_core::backup::segment::{Change, LeaseGrant, RevisionChange, Segment, FORMAT};
use etcd_aws_core::etcd::ids::ClusterId;
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};
use etcd_aws_tests::stand_in::StandIn;

fn segment(first: i64, last: i64) -> Segment {
    Segment {
        format: FORMAT,
        cluster_id: ClusterId(0xc1),
        first,
        last,
        flushed_at: 1_700_000_000,
        revisions: (first..=last)
            .map(|revision| RevisionChange {
                revision,
                changes: vec![Change::Put {
                    key: format!("k{revision}").into_bytes(),
                    value: b"v".to_vec(),
                    lease: 7,
                }],
                seen_at_ms: 0,
            })
            .collect(),
        leases: vec![LeaseGrant {
            id: 7,
            ttl_seconds: 60,
        }],
    }
}

#[tokio::test]
async fn segments_are_listed_by_revision_and_read_back_as_written() -> anyhow::Result<()> {
    let stand_in = StandIn::start_without_instances().await?;
    let sdk = stand_in.sdk_config().await;
    let store = BackupStore::new(&sdk, stand_in.bucket(), "backups/");
    store.put_segment(&segment(21, 30)).await?;
    store.put_segment(&segment(11, 20)).await?;
    // Not a segment: skipped, not an error.
    aws_sdk_s3::Client::new(&sdk)
        .put_object()
        .bucket(stand_in.bucket())
        .key("backups/segments/README")
        .body(ByteStream::from_static(b"not a segment"))
        .send()
        .await?;

    let listed = store.segments().await?;
    let ranges: Vec<(i64, i64)> = listed.iter().map(|s| (s.first, s.last)).collect();
    assert_eq!(ranges, vec![(11, 20), (21, 30)]);
    assert_eq!(store.read_segment(&listed[0]).await?, segment(11, 20));
    Ok(())
}

#[tokio::test]
async fn the_same_range_flushed_twice_is_one_object() -> anyhow::Result<()> {
    let stand_in = StandIn::start_without_instances().await?;
    let store = BackupStore::new(&stand_in.sdk_config().await, stand_in.bucket(), "backups/");
    let first = store.put_segment(&segment(5, 9)).await?;
    let again = store.put_segment(&segment(5, 9)).await?;
    assert_eq!(first, again);
    assert_eq!(store.segments().await?, vec![first]);
    Ok(())
}

#[tokio::test]
async fn a_segment_whose_bytes_changed_in_the_bucket_is_refused_as_damaged() -> anyhow::Result<()> {
    let stand_in = StandIn::start_without_instances().await?;
    let sdk = stand_in.sdk_config().await;
    let store = BackupStore::new(&sdk, stand_in.bucket(), "backups/");
    let reference = store.put_segment(&segment(5, 9)).await?;
    aws_sdk_s3::Client::new(&sdk)
        .put_object()
        .bucket(stand_in.bucket())
        .key(&reference.key)
        .body(ByteStream::from_static(b"overwritten"))
        .send()
        .await?;
    match store.read_segment(&reference).await {
        Err(BackupStoreError::Damaged { reason, .. }) => {
            assert!(reason.contains("SHA-256"), "{reason}")
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
    store.delete_segment(&reference).await?;
    assert_eq!(store.segments().await?, vec![]);
    Ok(())
}
