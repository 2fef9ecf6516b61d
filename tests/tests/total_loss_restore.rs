//! Scenarios: every node is lost at once, disks included. The replacement
//! group restores the newest valid backup by itself, and never forms an
//! empty cluster over a bucket that holds an earlier cluster's history.

use etcd_aws_core::contract::events;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use etcd_aws_backup::{run_backup, BackupAction, BackupConfig};
use etcd_aws_core::backup::manifest::{BackupLayout, BackupManifest, Compression};
use etcd_aws_io::backup_store::{hex, BackupStore};
use etcd_aws_tests::agent_log;
use etcd_aws_tests::functions::JobOnSchedule;
use etcd_aws_tests::operator::OperatorCommand;
use etcd_aws_tests::sim_cluster::{wait_for, SimCluster};
use etcd_client::PutOptions;
use sha2::{Digest, Sha256};

const SETTLE: Duration = Duration::from_secs(120);

async fn backup(cluster: &SimCluster) -> anyhow::Result<BackupManifest> {
    let config = BackupConfig::new(
        cluster.stand_in.group_name(),
        cluster.stand_in.bucket(),
        cluster.stand_in.functions_tls(),
    );
    let outcome = run_backup(&config, &cluster.stand_in.sdk_config().await).await?;
    match outcome.action {
        BackupAction::Uploaded(manifest) => Ok(manifest),
        BackupAction::Unchanged(manifest) => {
            anyhow::bail!("expected a new backup, got unchanged {}", manifest.key)
        }
    }
}

async fn value(cluster: &SimCluster, key: &str) -> anyhow::Result<Option<String>> {
    let response = cluster.client().await?.get(key, None).await?;
    Ok(response
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

/// A healthy cluster with two backups: `first` is in both, `second` only in
/// the newest, which is returned.
async fn cluster_with_two_backups() -> anyhow::Result<(SimCluster, BackupManifest)> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    cluster
        .client()
        .await?
        .put("first", "in both backups", None)
        .await?;
    backup(&cluster).await?;
    cluster
        .client()
        .await?
        .put("second", "only in the newest", None)
        .await?;
    let newest = backup(&cluster).await?;
    Ok((cluster, newest))
}

async fn assert_restored_the_older_backup(cluster: &SimCluster) -> anyhow::Result<()> {
    assert_eq!(
        value(cluster, "first").await?.as_deref(),
        Some("in both backups")
    );
    assert_eq!(
        value(cluster, "second").await?,
        None,
        "a write only the damaged backup held"
    );
    Ok(())
}

async fn store(cluster: &SimCluster) -> BackupStore {
    BackupStore::new(
        &cluster.stand_in.sdk_config().await,
        cluster.stand_in.bucket(),
        "backups/",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_group_restores_every_write_up_to_the_backup_and_nothing_after(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;

    // Keys, one of them attached to a lease, then a backup...
    let mut client = cluster.client().await?;
    for i in 0..20 {
        client
            .put(format!("before/{i}"), format!("v{i}"), None)
            .await?;
    }
    let lease = client.lease_grant(600, None).await?.id();
    client
        .put(
            "leased/key",
            "lives with its lease",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    let manifest = backup(&cluster).await?;
    // ...and writes after it, which no backup holds.
    for i in 0..5 {
        client.put(format!("after/{i}"), "unbacked", None).await?;
    }
    drop(client);

    // Every instance and its disk is lost; the group launches three new ones.
    let lost = cluster.lose_every_instance().await?;
    let restored = cluster.wait_healthy(3, SETTLE).await?;
    assert!(
        restored.members.iter().all(|m| !lost.contains(&m.name)),
        "an old member survived"
    );
    assert!(
        agent_log::has_event(&cluster.logs(), events::RESTORED_BACKUP),
        "{}",
        cluster.logs()
    );

    // Everything up to the backup's revision is back, with its value...
    for i in 0..20 {
        assert_eq!(
            value(&cluster, &format!("before/{i}")).await?,
            Some(format!("v{i}")),
            "before/{i}"
        );
    }
    // ...the leased key went with its lease, which the restore revoked
    // before the cluster served (the default `--restore-leases revoke`): a
    // holder of a lock or an election acquires afresh...
    let mut client = cluster.client().await?;
    let leased = client.get("leased/key", None).await?;
    assert_eq!(
        leased.count(),
        0,
        "the leased key outlived its revoked lease"
    );
    let ttl = client.lease_time_to_live(lease, None).await?;
    assert!(ttl.ttl() <= 0, "lease {lease:x} is alive after the restore");
    // ...no node of the restored cluster reported a quorum loss while its
    // joiners published themselves (the seed served throughout)...
    for id in cluster.instance_ids() {
        let log = cluster.with_node(&id, |n| n.log())?;
        assert!(
            !agent_log::has_event(&log, events::QUORUM_LOST),
            "{id} reported a quorum loss:\n{log}"
        );
    }
    // ...and nothing written after the backup is claimed.
    for i in 0..5 {
        assert_eq!(
            value(&cluster, &format!("after/{i}")).await?,
            None,
            "after/{i} was never backed up"
        );
    }
    let revision = client
        .get("before/0", None)
        .await?
        .header()
        .map_or(0, |h| h.revision());
    assert!(
        revision >= manifest.revision,
        "restored revision {revision} < backup revision {}",
        manifest.revision
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_newest_backup_is_refused_and_the_previous_one_restored() -> anyhow::Result<()> {
    let (cluster, newest) = cluster_with_two_backups().await?;

    // Bytes of the newest snapshot rot in the bucket; its manifest still
    // records the original checksum.
    let store = store(&cluster).await;
    store
        .s3()
        .put_object()
        .bucket(store.bucket())
        .key(&newest.key)
        .body(ByteStream::from(vec![0u8; 4096]))
        .send()
        .await?;

    cluster.lose_every_instance().await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = cluster.logs();
    assert!(
        agent_log::has_event(&logs, events::BACKUP_DAMAGED),
        "the refusal must be loud:\n{logs}"
    );
    assert!(
        agent_log::has_event(&logs, events::OLDER_BACKUP_RESTORED),
        "{logs}"
    );
    assert_restored_the_older_backup(&cluster).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_backup_that_is_not_a_snapshot_is_refused_even_with_a_matching_checksum(
) -> anyhow::Result<()> {
    let (cluster, newest) = cluster_with_two_backups().await?;

    // Someone replaced the newest backup with something that is not an etcd
    // snapshot, and wrote a manifest that matches it.
    let store = store(&cluster).await;
    let garbage = b"this is not an etcd snapshot".repeat(100);
    store
        .s3()
        .put_object()
        .bucket(store.bucket())
        .key(&newest.key)
        .body(ByteStream::from(garbage.clone()))
        .send()
        .await?;
    let forged = BackupManifest {
        sha256: hex(&Sha256::digest(&garbage)),
        stored_bytes: garbage.len() as u64,
        snapshot_bytes: garbage.len() as u64,
        compression: Compression::None,
        ..newest.clone()
    };
    let body = serde_json::to_vec(&forged)?;
    store
        .s3()
        .put_object()
        .bucket(store.bucket())
        .key(BackupLayout::manifest_key(&newest.key))
        .body(ByteStream::from(body))
        .send()
        .await?;

    cluster.lose_every_instance().await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = cluster.logs();
    // The refusal names the check that failed.
    let refusals = agent_log::events(&logs, events::BACKUP_DAMAGED);
    assert!(
        refusals.iter().any(|line| line["reason"]
            .as_str()
            .is_some_and(|r| r.contains("etcdutl snapshot status failed"))),
        "{logs}"
    );
    assert_restored_the_older_backup(&cluster).await?;
    Ok(())
}

/// The agents' log lines of the instances running now.
fn current_logs(cluster: &SimCluster) -> anyhow::Result<String> {
    let mut logs = String::new();
    for id in cluster.instance_ids() {
        logs.push_str(&cluster.with_node(&id, |node| node.log())?);
    }
    Ok(logs)
}

/// The snapshots go (a lifecycle rule, a wrong prefix, a mistaken delete)
/// while the continuous backup's segments and the pointer stay; then every
/// node is lost. The seed does not form an empty cluster over that history:
/// it waits and says why and what to run, and only the operator's
/// `start-empty` lets it form one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_finding_captured_changes_but_no_snapshot_waits_for_the_operator_to_start_empty(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let stand_in = &cluster.stand_in;
    let capture = JobOnSchedule::capture(
        stand_in,
        Duration::from_secs(2),
        &[("ETCD_CAPTURE_DURATION", "3s")],
    )
    .await?;
    let store = BackupStore::new(&stand_in.sdk_config().await, stand_in.bucket(), "backups/");
    let client = cluster.client().await?;
    wait_for("a captured change in the bucket", SETTLE, || {
        let (store, client) = (&store, client.clone());
        async move {
            let mut client = client;
            client.put("lost", "with its snapshots", None).await?;
            anyhow::ensure!(!store.segments().await?.is_empty(), "no segment yet");
            Ok(())
        }
    })
    .await
    .map_err(|e| e.context(capture.log()))?;
    drop((capture, client));
    for manifest in store.manifests().await? {
        store.delete(&manifest).await?;
    }

    cluster.lose_every_instance().await?;
    wait_for("a seed to refuse an empty start", SETTLE, || async {
        let logs = current_logs(&cluster)?;
        anyhow::ensure!(
            agent_log::has_event(&logs, events::EMPTY_START_REFUSED),
            "not yet"
        );
        Ok(())
    })
    .await?;
    let logs = current_logs(&cluster)?;
    let reason =
        agent_log::first_field(&logs, events::EMPTY_START_REFUSED, "reason").unwrap_or_default();
    assert!(reason.contains("segments"), "{reason}");
    assert!(reason.contains("etcd-aws-cfn start-empty"), "{reason}");
    assert!(!agent_log::has_event(&logs, events::FORMED), "{logs}");

    let started = OperatorCommand::new(stand_in)
        .run(&["start-empty", "--yes"], SETTLE)
        .await?;
    assert!(started.succeeded(), "{started}");
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = current_logs(&cluster)?;
    assert_eq!(
        agent_log::first_field(&logs, events::FORMED, "from").as_deref(),
        Some("empty_permitted"),
        "{logs}"
    );
    assert_eq!(value(&cluster, "lost").await?, None);
    Ok(())
}

/// The bucket versioned, as the stack's is (the stand-in's is not by
/// default): a delete leaves a marker over the object's versions.
async fn version_the_bucket(store: &BackupStore) -> anyhow::Result<()> {
    store
        .s3()
        .put_bucket_versioning()
        .bucket(store.bucket())
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// Every backup deleted from the versioned bucket (a mistaken recursive
/// delete, say): nothing current under the prefix, only delete markers over
/// the snapshot, its manifest and the pointer; then every node is lost. The
/// seed does not take that for a new cluster's bucket: it waits, says what
/// it found, and forms only with the operator's `start-empty`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_finding_only_delete_markers_waits_for_the_operator_to_start_empty(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let store = store(&cluster).await;
    version_the_bucket(&store).await?;
    cluster
        .client()
        .await?
        .put("lost", "with the deleted backups", None)
        .await?;
    backup(&cluster).await?;
    for manifest in store.manifests().await? {
        store.delete(&manifest).await?;
    }
    store
        .s3()
        .delete_object()
        .bucket(store.bucket())
        .key(store.layout().pointer_key())
        .send()
        .await?;
    let current = store
        .s3()
        .list_objects_v2()
        .bucket(store.bucket())
        .prefix(store.layout().prefix())
        .send()
        .await?;
    assert_eq!(current.contents().len(), 0, "{current:?}");

    cluster.lose_every_instance().await?;
    wait_for("a seed to refuse an empty start", SETTLE, || async {
        let logs = current_logs(&cluster)?;
        anyhow::ensure!(
            agent_log::has_event(&logs, events::EMPTY_START_REFUSED),
            "not yet"
        );
        Ok(())
    })
    .await?;
    let logs = current_logs(&cluster)?;
    let refusal = agent_log::events(&logs, events::EMPTY_START_REFUSED)
        .into_iter()
        .next()
        .unwrap_or_default();
    assert_eq!(refusal["deleted_snapshots"], 1, "{refusal}");
    assert_eq!(refusal["deleted_pointer"], true, "{refusal}");
    // Nothing but the markers is left to go by.
    assert_eq!(refusal["segments"], 0, "{refusal}");
    assert_eq!(refusal["pointer"], false, "{refusal}");
    assert_eq!(refusal["restore_order"], false, "{refusal}");
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("etcd-aws-cfn start-empty"), "{reason}");
    assert!(!agent_log::has_event(&logs, events::FORMED), "{logs}");

    let started = OperatorCommand::new(&cluster.stand_in)
        .run(&["start-empty", "--yes"], SETTLE)
        .await?;
    assert!(started.succeeded(), "{started}");
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = current_logs(&cluster)?;
    assert_eq!(
        agent_log::first_field(&logs, events::FORMED, "from").as_deref(),
        Some("empty_permitted"),
        "{logs}"
    );
    assert_eq!(value(&cluster, "lost").await?, None);
    Ok(())
}

/// Retention deletes old snapshots all the time (`BackupStore::delete`, as
/// the backup function's retention calls it), and the versioned bucket keeps
/// a marker over each. Beside a current snapshot they hold nothing up: the
/// seed restores the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_markers_beside_a_snapshot_do_not_keep_the_seed_from_restoring_it(
) -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let store = store(&cluster).await;
    version_the_bucket(&store).await?;
    let mut client = cluster.client().await?;
    client.put("first", "in both backups", None).await?;
    let older = backup(&cluster).await?;
    client.put("second", "only in the newest", None).await?;
    backup(&cluster).await?;
    drop(client);
    store.delete(&older).await?;
    assert_eq!(store.history().await?.deleted.snapshots, 1);

    cluster.lose_every_instance().await?;
    cluster.wait_healthy(3, SETTLE).await?;
    let logs = current_logs(&cluster)?;
    assert_eq!(
        agent_log::first_field(&logs, events::FORMED, "from").as_deref(),
        Some("backup"),
        "{logs}"
    );
    assert!(
        !agent_log::has_event(&logs, events::EMPTY_START_REFUSED),
        "{logs}"
    );
    assert_eq!(
        value(&cluster, "second").await?.as_deref(),
        Some("only in the newest")
    );
    Ok(())
}

/// Nothing to abandon, nothing written: `start-empty` refuses when the
/// bucket holds snapshots (a seed restores them by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_empty_refuses_while_the_bucket_holds_snapshots() -> anyhow::Result<()> {
    let cluster = SimCluster::start(3).await?;
    cluster.wait_healthy(3, SETTLE).await?;
    backup(&cluster).await?;
    let refused = OperatorCommand::new(&cluster.stand_in)
        .run(&["start-empty", "--yes"], SETTLE)
        .await?;
    assert!(!refused.succeeded(), "{refused}");
    assert!(refused.stderr.contains("etcd-aws-cfn restore"), "{refused}");
    let store = BackupStore::new(
        &cluster.stand_in.sdk_config().await,
        cluster.stand_in.bucket(),
        "backups/",
    );
    assert_eq!(store.empty_start_permit().await?, None);
    Ok(())
}
