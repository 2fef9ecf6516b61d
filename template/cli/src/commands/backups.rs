//! `etcd-aws-cfn backups list`: every snapshot and the stretches of revisions
//! a restore can reach with the captured changes.

use clap::Subcommand;
use etcd_aws_core::clock::utc_stamp;
use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};

use crate::cli::OperateArgs;
use crate::operate::backups::{coverage, rows, BackupRow, Stretch, Verified};

#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// Every snapshot (time, revision, size, cluster, checksum) and the stretches of
    /// revisions a restore can reach with the captured changes.
    ///
    /// Example:  etcd-aws-cfn backups list --verify
    #[command(verbatim_doc_comment)]
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub operate: OperateArgs,
    /// Download every snapshot and check it against its manifest's SHA-256.
    #[arg(long, env = "ETCD_AWS_VERIFY")]
    pub verify: bool,
}

/// Lists the backups, checked against their checksums with `--verify`.
pub async fn run(command: &BackupsCommand) -> anyhow::Result<()> {
    let BackupsCommand::List(args) = command;
    list(args).await
}

async fn list(args: &ListArgs) -> anyhow::Result<()> {
    let (_, _, store) = args.operate.connect().await?;
    let (rows, stretches) = gather(&store, args.verify).await?;
    let mut table = format!(
        "{:<17} {:>12} {:>12} {:<9} {:<17} {:<12} KEY\n",
        "TAKEN", "REVISION", "BYTES", "KIND", "CLUSTER", "CHECKSUM"
    );
    for row in &rows {
        table.push_str(&format!(
            "{:<17} {:>12} {:>12} {:<9} {:<17} {:<12} {}\n",
            utc_stamp(row.created_at),
            row.revision,
            row.stored_bytes,
            row.kind,
            row.cluster_id,
            row.verified.to_string(),
            row.key
        ));
    }
    for stretch in &stretches {
        table.push_str(&format!(
            "point in time: revisions {} to {} (from the snapshot taken {})\n",
            stretch.from_revision,
            stretch.until_revision,
            utc_stamp(stretch.from_time)
        ));
    }
    args.operate.output.print(
        &serde_json::json!({"backups": rows, "point_in_time": stretches}),
        &table,
    )
}

/// The backups, newest first, and the stretches of revisions a restore reaches.
async fn gather(
    store: &BackupStore,
    verify: bool,
) -> Result<(Vec<BackupRow>, Vec<Stretch>), BackupStoreError> {
    let manifests = store.manifests().await?;
    let segments = store.segments().await?;
    let mut listed = rows(&manifests);
    if verify {
        let scratch = tempfile::tempdir().map_err(|source| BackupStoreError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        for (row, manifest) in listed.iter_mut().zip(&manifests) {
            let file = scratch.path().join("snapshot.db");
            row.verified = match store.download_verified(manifest, &file).await {
                Ok(()) => Verified::Intact,
                Err(BackupStoreError::Damaged { reason, .. }) => Verified::Damaged(reason),
                Err(e) => return Err(e),
            };
            let _ = std::fs::remove_file(&file);
        }
    }
    Ok((listed, coverage(&manifests, &segments)))
}
