//! The backup function against a real three-node cluster and S3 in moto:
//! what it uploads, what it refuses to publish, what it deletes (and, on a
//! bucket with Object Lock, what it cannot), what it reports.

use std::time::Duration;

use anyhow::{bail, Context};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use aws_sdk_s3::Client as S3Client;
use etcd_aws_backup::config::MIN_PART_SIZE;
use etcd_aws_backup::{
    run_backup, take_backup, BackupAction, BackupConfig, BackupError, BackupOutcome,
};
use etcd_aws_core::backup::manifest::{BackupLayout, BackupManifest, Compression};
use etcd_aws_io::backup_store::{hex, BackupStore};
use etcd_aws_io::etcd::admin::{EtcdAdmin, EtcdTimeouts};
use etcd_aws_tests::lambda::{FunctionSpec, LambdaFunction};
use etcd_aws_tests::paths::etcd_tool;
use etcd_aws_tests::planted_backup::plant_backup;
use etcd_aws_tests::sim_cluster::SimCluster;
use etcd_aws_tests::stand_in::FaultRule;
use sha2::{Digest, Sha256};

const HEALTHY_WITHIN: Duration = Duration::from_secs(90);
const RUN_WITHIN: Duration = Duration::from_secs(120);
const MIB: usize = 1024 * 1024;
const DAY: i64 = 86_400;

async fn healthy_cluster() -> anyhow::Result<SimCluster> {
    let cluster = SimCluster::start(3).await?;
    if let Err(error) = cluster.wait_healthy(3, HEALTHY_WITHIN).await {
        bail!("{error:#}\n{}", cluster.logs());
    }
    Ok(cluster)
}

/// The defaults, with S3's smallest parts so a few MiB make several parts.
fn config(cluster: &SimCluster) -> BackupConfig {
    let mut config = BackupConfig::new(
        cluster.stand_in.group_name(),
        cluster.stand_in.bucket(),
        cluster.stand_in.functions_tls(),
    );
    config.part_size = MIN_PART_SIZE;
    config
}

async fn store(cluster: &SimCluster, config: &BackupConfig) -> BackupStore {
    BackupStore::new(
        &cluster.stand_in.sdk_config().await,
        &config.bucket,
        &config.prefix,
    )
}

async fn backup(cluster: &SimCluster, config: &BackupConfig) -> anyhow::Result<BackupOutcome> {
    let sdk = cluster.stand_in.sdk_config().await;
    Ok(tokio::time::timeout(RUN_WITHIN, run_backup(config, &sdk))
        .await
        .context("the backup run hung")??)
}

fn uploaded(outcome: &BackupOutcome) -> anyhow::Result<BackupManifest> {
    match &outcome.action {
        BackupAction::Uploaded(manifest) => Ok(manifest.clone()),
        other => bail!("expected an upload, got {other:?}"),
    }
}

/// Values that do not compress (random bytes), so the stored size stays
/// near the database size whatever the compression.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

/// Writes `count` values of `size` bytes; returns the revision after the last.
async fn write(cluster: &SimCluster, tag: &str, count: usize, size: usize) -> anyhow::Result<i64> {
    let mut client =
        etcd_client::Client::connect(cluster.client_urls(), Some(cluster.client_options())).await?;
    let mut revision = 0;
    for i in 0..count {
        let response = client
            .put(
                format!("/app/{tag}/{i:04}"),
                noise(size, i as u64 + 1),
                None,
            )
            .await?;
        revision = response.header().map_or(0, |h| h.revision());
    }
    Ok(revision)
}

async fn snapshot_keys(s3: &S3Client, config: &BackupConfig) -> anyhow::Result<Vec<String>> {
    let listed = s3
        .list_objects_v2()
        .bucket(&config.bucket)
        .prefix(BackupLayout::new(&config.prefix).snapshots_prefix())
        .send()
        .await?;
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    Ok(keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backups_manifest_matches_the_object_it_names() -> anyhow::Result<()> {
    // Given a cluster holding some 12 MiB,
    let cluster = healthy_cluster().await?;
    let revision = write(&cluster, "bulk", 12, MIB).await?;
    let config = config(&cluster);

    // when the function runs,
    let manifest = uploaded(&backup(&cluster, &config).await?)?;

    // the manifest records the cluster as it is,
    let seen = cluster.snapshot().await?;
    assert_eq!(manifest.revision, revision);
    assert_eq!(manifest.cluster_id, seen.cluster_id);
    assert_eq!(manifest.member_count, 3);
    assert!(manifest.etcd_version.starts_with("3."), "{manifest:?}");
    assert_eq!(manifest.compression, Compression::Zstd);
    // and exactly the stored object's size and SHA-256, which was uploaded in parts,
    let store = store(&cluster, &config).await;
    let object = store
        .s3()
        .get_object()
        .bucket(&config.bucket)
        .key(&manifest.key)
        .send()
        .await?;
    let etag = object
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    let stored = object.body.collect().await?.into_bytes();
    assert_eq!(stored.len() as u64, manifest.stored_bytes);
    assert_eq!(hex(&Sha256::digest(&stored)), manifest.sha256);
    let parts: usize = etag
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(1);
    assert!(parts >= 3, "uploaded in {parts} parts (ETag {etag})");
    // and latest.json names it.
    assert_eq!(store.pointer().await?, Some(manifest.clone()));

    // The object is an etcd snapshot of that revision, as etcdutl reads it.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("snapshot.db");
    store.download_verified(&manifest, &db).await?;
    assert_eq!(std::fs::metadata(&db)?.len(), manifest.snapshot_bytes);
    let status = tokio::process::Command::new(etcd_tool("etcdutl")?)
        .args(["snapshot", "status", "--write-out", "json"])
        .arg(&db)
        .output()
        .await?;
    let report: serde_json::Value = serde_json::from_slice(&status.stdout)
        .with_context(|| String::from_utf8_lossy(&status.stderr).into_owned())?;
    assert_eq!(report["revision"], serde_json::json!(revision), "{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_revision_uploads_nothing_the_second_time() -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 10, 1_000).await?;
    let config = config(&cluster);
    let first = uploaded(&backup(&cluster, &config).await?)?;
    let store = store(&cluster, &config).await;
    let objects_after_first = snapshot_keys(store.s3(), &config).await?;

    // With no write in between, the second run finds the same revision
    let second = backup(&cluster, &config).await?;

    // and reports the existing backup without adding an object.
    assert_eq!(second.action, BackupAction::Unchanged(first.clone()));
    assert_eq!(
        snapshot_keys(store.s3(), &config).await?,
        objects_after_first
    );
    assert_eq!(store.pointer().await?, Some(first));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_revision_is_backed_up_anew_once_its_backup_is_old_enough(
) -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 10, 1_000).await?;
    let config = BackupConfig {
        refresh_after: Duration::ZERO,
        ..config(&cluster)
    };
    let first = uploaded(&backup(&cluster, &config).await?)?;

    // With no write in between but a backup already as old as the bound,
    let second = uploaded(&backup(&cluster, &config).await?)?;

    // the second run takes a new one of the same revision, under a key of its own.
    assert_eq!(second.revision, first.revision);
    assert_ne!(second.key, first.key);
    let store = store(&cluster, &config).await;
    assert_eq!(store.pointer().await?, Some(second));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_part_error_mid_upload_publishes_nothing_and_leaves_no_open_upload(
) -> anyhow::Result<()> {
    // Given a published backup, and new writes since,
    let cluster = healthy_cluster().await?;
    write(&cluster, "bulk", 12, MIB).await?;
    let config = config(&cluster);
    let first = uploaded(&backup(&cluster, &config).await?)?;
    let objects_before = {
        let store = store(&cluster, &config).await;
        snapshot_keys(store.s3(), &config).await?
    };
    write(&cluster, "more", 2, MIB).await?;

    // when S3 accepts the first part of the next upload and fails every one
    // after it (more often than the SDK retries),
    let faults = cluster.stand_in.faults();
    faults.inject(FaultRule::delay("s3", "UploadPart", Duration::ZERO));
    faults.inject(FaultRule::error("s3", "UploadPart", 500, "InternalError", "injected").times(50));
    let failed = tokio::time::timeout(
        RUN_WITHIN,
        run_backup(&config, &cluster.stand_in.sdk_config().await),
    )
    .await
    .context("the failing run hung")?;

    // the run fails, naming the upload, after the errors really hit,
    assert!(faults.pending() < 50, "no injected error was used");
    match failed {
        Err(BackupError::Upload(error)) => assert_eq!(error.operation, "UploadPart"),
        other => bail!("expected an UploadPart error, got {other:?}"),
    }
    // latest.json still names the previous backup, no object or manifest was added,
    let store = store(&cluster, &config).await;
    assert_eq!(store.pointer().await?, Some(first.clone()));
    assert_eq!(snapshot_keys(store.s3(), &config).await?, objects_before);
    // and the multipart upload was aborted.
    let open = store
        .s3()
        .list_multipart_uploads()
        .bucket(&config.bucket)
        .send()
        .await?;
    assert!(
        open.uploads().is_empty(),
        "open uploads: {:?}",
        open.uploads()
    );

    // Once S3 recovers, the next run publishes the newer revision.
    faults.clear();
    let next = uploaded(&backup(&cluster, &config).await?)?;
    assert!(next.revision > first.revision);
    assert_eq!(store.pointer().await?, Some(next));
    Ok(())
}

/// Every snapshot key and manifest key of `backups`, sorted as a listing is.
fn stored_keys(backups: &[&BackupManifest]) -> Vec<String> {
    let mut keys: Vec<String> = backups
        .iter()
        .flat_map(|m| [m.key.clone(), BackupLayout::manifest_key(&m.key)])
        .collect();
    keys.sort();
    keys
}

/// A retention policy of the newest backup only.
fn newest_only(config: &mut BackupConfig) {
    config.retention.keep_last = 1;
    config.retention.hourly_hours = 0;
    config.retention.daily_days = 0;
}

/// A backup as an earlier run would have left it, `age` seconds old.
async fn plant(store: &BackupStore, age: i64, revision: i64) -> anyhow::Result<BackupManifest> {
    plant_backup(store, age, revision, noise(64, revision as u64)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_the_policy_says() -> anyhow::Result<()> {
    // Given backups 3, 5, 10 and 12 days old, and a policy of the newest one
    // plus one a day for a week,
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 5, 1_000).await?;
    let mut config = config(&cluster);
    config.retention.keep_last = 1;
    config.retention.hourly_hours = 0;
    config.retention.daily_days = 7;
    let store = store(&cluster, &config).await;
    let three = plant(&store, 3 * DAY, 1).await?;
    let five = plant(&store, 5 * DAY, 2).await?;
    let ten = plant(&store, 10 * DAY, 3).await?;
    let twelve = plant(&store, 12 * DAY, 4).await?;

    // when a run uploads a new backup,
    let outcome = backup(&cluster, &config).await?;
    let new = uploaded(&outcome)?;

    // exactly the two older than a week are deleted, oldest first,
    assert_eq!(outcome.deleted, vec![twelve.key.clone(), ten.key.clone()]);
    assert!(outcome.retention_errors.is_empty(), "{outcome:?}");
    // and the bucket holds the new backup and the two within the week, each
    // with its manifest.
    assert_eq!(
        snapshot_keys(store.s3(), &config).await?,
        stored_keys(&[&new, &three, &five])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_for_the_capture_or_maintenance_deletes_no_backup() -> anyhow::Result<()> {
    // Given a backup 12 days old and a policy that keeps only the newest,
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 5, 1_000).await?;
    let mut config = config(&cluster);
    newest_only(&mut config);
    let store = store(&cluster, &config).await;
    let old = plant(&store, 12 * DAY, 1).await?;

    // when the capture or the maintenance run takes a snapshot (their roles
    // may not delete one),
    let sdk = cluster.stand_in.sdk_config().await;
    let outcome = tokio::time::timeout(RUN_WITHIN, take_backup(&config, &sdk))
        .await
        .context("the snapshot hung")??;
    let new = uploaded(&outcome)?;

    // the old backup stays for the next backup run to thin.
    assert!(outcome.deleted.is_empty(), "{outcome:?}");
    assert_eq!(
        snapshot_keys(store.s3(), &config).await?,
        stored_keys(&[&new, &old])
    );
    Ok(())
}

/// The stand-in's bucket again, as `--backup-lock-days 1` makes it: Object
/// Lock on, every new version locked in governance mode for a day.
async fn locked_bucket(cluster: &SimCluster) -> anyhow::Result<String> {
    let bucket = format!("{}-locked", cluster.stand_in.bucket());
    let s3 = S3Client::new(&cluster.stand_in.sdk_config().await);
    s3.create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await?;
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await?;
    s3.put_object_lock_configuration()
        .bucket(&bucket)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await?;
    Ok(bucket)
}

/// A run with a policy of the newest only, over a backup 12 days old, on a
/// locked bucket: what it reported, and the old backup.
async fn retention_on_a_locked_bucket(
    cluster: &SimCluster,
) -> anyhow::Result<(BackupOutcome, BackupManifest, BackupStore)> {
    write(cluster, "small", 5, 1_000).await?;
    let mut config = config(cluster);
    config.bucket = locked_bucket(cluster).await?;
    newest_only(&mut config);
    let store = store(cluster, &config).await;
    let old = plant(&store, 12 * DAY, 1).await?;
    let outcome = backup(cluster, &config).await?;
    uploaded(&outcome)?;
    Ok((outcome, old, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_a_locked_bucket_deletes_what_the_policy_says_without_an_error(
) -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    let (outcome, old, store) = retention_on_a_locked_bucket(&cluster).await?;
    assert!(outcome.retention_errors.is_empty(), "{outcome:?}");
    assert_eq!(outcome.deleted, vec![old.key.clone()]);
    let left: Vec<String> = store
        .manifests()
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert!(!left.contains(&old.key), "{left:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_retention_deleted_from_a_locked_bucket_keeps_its_version_until_the_lock_ends(
) -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    let (_, old, store) = retention_on_a_locked_bucket(&cluster).await?;
    // The deletion only put a delete marker on top of the locked version,
    let versions = store
        .s3()
        .list_object_versions()
        .bucket(store.bucket())
        .prefix(&old.key)
        .send()
        .await?;
    let kept: Vec<&str> = versions
        .versions()
        .iter()
        .filter(|v| v.key() == Some(old.key.as_str()))
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(kept.len(), 1, "{versions:?}");
    assert!(
        versions
            .delete_markers()
            .iter()
            .any(|m| m.key() == Some(old.key.as_str()) && m.is_latest() == Some(true)),
        "{versions:?}"
    );
    // which nobody can remove before its lock ends.
    let removed = store
        .s3()
        .delete_object()
        .bucket(store.bucket())
        .key(&old.key)
        .version_id(kept[0])
        .send()
        .await;
    let refused = removed.as_ref().err().and_then(|e| e.as_service_error());
    assert_eq!(
        refused.and_then(|e| e.code()),
        Some("AccessDenied"),
        "a locked version was removed, or refused for another reason: {removed:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metric_line_reports_the_backup_under_the_alarms_names() -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 5, 1_000).await?;
    let config = config(&cluster);
    let outcome = backup(&cluster, &config).await?;
    let manifest = uploaded(&outcome)?;

    let line: serde_json::Value = serde_json::from_str(&outcome.emf_line)?;
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "EtcdAws");
    assert_eq!(directive["Dimensions"], serde_json::json!([["GroupName"]]));
    assert_eq!(line["GroupName"], cluster.stand_in.group_name());
    // The age is the new backup's own: taken at the start of this run.
    let age = line["BackupAgeSeconds"].as_f64().unwrap_or(-1.0);
    assert!(
        (0.0..=outcome.metrics.duration_seconds + 1.0).contains(&age),
        "age {age} after a run of {} s",
        outcome.metrics.duration_seconds
    );
    assert_eq!(
        line["BackupBytes"],
        serde_json::json!(manifest.stored_bytes)
    );
    assert_eq!(line["BackupRevision"], serde_json::json!(manifest.revision));
    let duration = line["BackupDurationSeconds"].as_f64().unwrap_or(-1.0);
    assert!(
        duration > 0.0 && duration < RUN_WITHIN.as_secs_f64(),
        "{line}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_is_taken_from_a_follower() -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 5, 1_000).await?;
    let outcome = backup(&cluster, &config(&cluster)).await?;

    let url = cluster
        .client_urls()
        .into_iter()
        .next()
        .context("no node")?;
    let leader = EtcdAdmin::connect(
        &[url],
        &cluster.stand_in.etcd_access(EtcdTimeouts::default()),
    )
    .await?
    .status()
    .await?
    .leader_id;
    assert!(!outcome.from_leader, "{outcome:?}");
    assert_ne!(Some(outcome.member_id), leader, "{outcome:?}");
    let members = cluster.snapshot_via(&outcome.endpoint).await?.members;
    assert!(
        members.iter().any(|m| m.id == outcome.member_id),
        "{members:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_quorum_is_not_backed_up() -> anyhow::Result<()> {
    // Given a cluster that lost two of its three members,
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 5, 1_000).await?;
    let ids = cluster.instance_ids();
    for id in ids.iter().take(2) {
        cluster.remove_node(id);
    }
    let config = config(&cluster);

    // a run refuses to snapshot the survivor, whose data may be stale,
    let result = tokio::time::timeout(
        RUN_WITHIN,
        run_backup(&config, &cluster.stand_in.sdk_config().await),
    )
    .await
    .context("the run hung")?;
    assert!(
        matches!(
            result,
            Err(BackupError::NoHealthyMember { .. } | BackupError::NoQuorum(_))
        ),
        "{result:?}"
    );
    // and publishes nothing.
    assert_eq!(store(&cluster, &config).await.pointer().await?, None);
    Ok(())
}

/// The function binary as Lambda runs it: Runtime API, environment, stdout.
async fn lambda_function(
    cluster: &SimCluster,
    logs: &tempfile::TempDir,
) -> anyhow::Result<LambdaFunction> {
    let mut env = cluster.stand_in.env();
    env.extend(cluster.stand_in.functions_tls_env());
    for (name, value) in [
        ("ETCD_AWS_GROUP_NAME", cluster.stand_in.group_name()),
        ("ETCD_BACKUP_BUCKET", cluster.stand_in.bucket()),
        ("ETCD_BACKUP_PART_MIB", "5"),
        ("ETCD_BACKUP_SNAPSHOT_TIMEOUT", "50s"),
    ] {
        env.push((name.to_owned(), value.to_owned()));
    }
    LambdaFunction::start(FunctionSpec {
        binary: "etcd-aws-backup".to_owned(),
        function_name: "etcd-backup".to_owned(),
        timeout: Duration::from_secs(60),
        env,
        log_file: logs.path().join("backup.log"),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_backs_up_on_a_scheduled_event_and_logs_the_metric_line(
) -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    let revision = write(&cluster, "small", 5, 1_000).await?;
    let logs = tempfile::tempdir()?;
    let function = lambda_function(&cluster, &logs).await?;

    let answer = function
        .invoke(&serde_json::json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-01-01T00:00:00Z",
            "region": cluster.stand_in.region(),
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/etcd-backup"],
            "detail": {}
        }))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", function.log()))?;

    assert_eq!(answer["uploaded"], true, "{answer}");
    assert_eq!(answer["revision"], serde_json::json!(revision), "{answer}");
    let metric_lines: Vec<serde_json::Value> = function
        .log_records()
        .into_iter()
        .filter(|record| record.get("_aws").is_some())
        .collect();
    assert_eq!(metric_lines.len(), 1, "{}", function.log());
    assert_eq!(
        metric_lines[0]["BackupRevision"],
        serde_json::json!(revision)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_accepts_any_payload_as_a_request_to_back_up() -> anyhow::Result<()> {
    let cluster = healthy_cluster().await?;
    write(&cluster, "small", 5, 1_000).await?;
    let logs = tempfile::tempdir()?;
    let function = lambda_function(&cluster, &logs).await?;

    let answer = function
        .invoke(&serde_json::json!("back up now, please"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", function.log()))?;

    assert_eq!(answer["uploaded"], true, "{answer}");
    Ok(())
}
