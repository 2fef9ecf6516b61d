//! The commands' reads: what `status` and `backups list` gather from the
//! function, the bucket and the queues before the pure parts judge and show it.

use etcd_aws_io::backup_store::{BackupStore, BackupStoreError};

use super::backups::{coverage, rows, BackupRow, Stretch, Verified};
use super::function::{BackupFunction, InvokeError};
use super::function_errors::recent_errors;
use super::stack::StackParts;
use super::status::{loss_window_seconds, problems, Capture, Limits, NewestBackup, StatusView};
use super::unix_seconds;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Store(#[from] BackupStoreError),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
}

pub async fn status(
    config: &aws_config::SdkConfig,
    parts: &StackParts,
    store: &BackupStore,
    limits: &Limits,
    errors_window: std::time::Duration,
) -> Result<StatusView, CommandError> {
    let function = BackupFunction::new(config, &parts.backup_function);
    let cluster = function.status().await?;
    let newest_backup = store.manifests().await?.first().map(|m| NewestBackup {
        key: m.key.clone(),
        revision: m.revision,
        age_seconds: unix_seconds() - m.created_at,
    });
    let segments = store.segments().await?;
    let newest_segment = segments.iter().max_by_key(|s| s.last);
    let captured_until = newest_segment.map(|s| s.last);
    let held = captured_until.max(newest_backup.as_ref().map(|b| b.revision));
    let behind_revisions = cluster
        .revision
        .zip(held)
        .map(|(now, held)| (now - held).max(0));
    let segment_held_at = match newest_segment {
        Some(segment) => store
            .read_segment(segment)
            .await?
            .revisions
            .last()
            .map(|r| r.seen_at_ms),
        None => None,
    };
    let snapshot_held_at = newest_backup
        .as_ref()
        .map(|b| (unix_seconds() - b.age_seconds) * 1000);
    let capture = Capture {
        captured_until,
        behind_revisions,
        loss_window_seconds: loss_window_seconds(
            behind_revisions,
            segment_held_at.max(snapshot_held_at),
            unix_seconds() * 1000,
        ),
    };
    let sqs = aws_sdk_sqs::Client::new(config);
    let errors_window_seconds = errors_window.as_secs() as i64;
    let function_errors = recent_errors(
        &aws_sdk_cloudwatchlogs::Client::new(config),
        &parts.function_log_groups,
        (unix_seconds() - errors_window_seconds) * 1000,
    )
    .await;
    let mut view = StatusView {
        cluster,
        newest_backup,
        capture,
        lifecycle_queue_depth: queue_depth(&sqs, parts.lifecycle_queue_url.as_deref()).await,
        dead_letters: queue_depth(&sqs, parts.dead_letter_queue_url.as_deref()).await,
        function_errors,
        function_errors_window_seconds: errors_window_seconds,
        problems: Vec::new(),
    };
    view.problems = problems(&view, limits);
    Ok(view)
}

/// Messages waiting in a queue; `None` (shown as "not read") when the queue
/// is not known or cannot be read, which the log says.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: Option<&str>) -> Option<u64> {
    let url = url?;
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await;
    match answer {
        Ok(answer) => answer
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok()),
        Err(e) => {
            tracing::warn!(queue = url, error = %etcd_aws_io::aws::error::read(&e).summary, "cannot read the queue's depth");
            None
        }
    }
}

/// The backups, newest first, and the stretches of revisions a restore reaches.
pub async fn backups(
    store: &BackupStore,
    verify: bool,
) -> Result<(Vec<BackupRow>, Vec<Stretch>), CommandError> {
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
                Err(e) => return Err(e.into()),
            };
            let _ = std::fs::remove_file(&file);
        }
    }
    Ok((listed, coverage(&manifests, &segments)))
}
