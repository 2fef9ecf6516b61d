//! Backups as an earlier run of the backup function would have left them,
//! for tests of retention and restore that need history.

use etcd_aws_core::backup::manifest::{BackupLayout, BackupManifest, Compression};
use etcd_aws_core::etcd::ids::ClusterId;
use etcd_aws_io::backup_store::{hex, BackupStore};
use sha2::{Digest, Sha256};

/// Writes `body` as an uncompressed snapshot `age` seconds old at `revision`,
/// then its manifest; `latest.json` is left alone.
pub async fn plant_backup(
    store: &BackupStore,
    age: i64,
    revision: i64,
    body: Vec<u8>,
) -> anyhow::Result<BackupManifest> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let created_at = i64::try_from(now.as_secs())? - age;
    let key = store
        .layout()
        .snapshot_key(created_at, revision, "planted", Compression::None);
    let manifest = BackupManifest {
        key: key.clone(),
        sha256: hex(&Sha256::digest(&body)),
        stored_bytes: body.len() as u64,
        snapshot_bytes: body.len() as u64,
        compression: Compression::None,
        revision,
        cluster_id: ClusterId(1),
        member_count: 3,
        etcd_version: "3.5.16".into(),
        created_at,
    };
    for (object_key, bytes) in [
        (key.clone(), body),
        (
            BackupLayout::manifest_key(&key),
            serde_json::to_vec(&manifest)?,
        ),
    ] {
        store
            .s3()
            .put_object()
            .bucket(store.bucket())
            .key(object_key)
            .body(bytes.into())
            .send()
            .await?;
    }
    Ok(manifest)
}
