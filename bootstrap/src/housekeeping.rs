//! Looking after the node's disk: the data directories moved aside earlier
//! go when [`disk::prune`] says (by age, or sooner when space runs short),
//! each said with the `moved_aside_pruned` event; and how full the disk is
//! gets said with the `data_disk_use` event, which the stack alarms on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_aws_core::clock;
use etcd_aws_core::contract::events;
use etcd_aws_core::etcd::disk::{self, PrunePolicy};
use etcd_aws_io::data_dir;

/// Deletes what [`disk::prune`] says of the data directories moved aside
/// beside `data_dir`. Housekeeping: a failure is logged, and etcd starts
/// all the same.
pub fn prune_moved_aside(data_dir: &Path, policy: PrunePolicy) {
    let found = data_dir::moved_aside(data_dir).and_then(|moved| {
        let disk = data_dir::disk_of(data_dir)?;
        Ok((moved, disk))
    });
    let (moved, disk) = match found {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "cannot look at the data directories moved aside; keeping them");
            return;
        }
    };
    for (dir, reason) in disk::prune(&moved, disk, clock::now_unix_seconds(), policy) {
        match data_dir::remove_moved_aside(data_dir, &dir.name) {
            Ok(()) => tracing::info!(
                event = events::MOVED_ASIDE_PRUNED,
                name = %dir.name,
                moved_at = dir.moved_at,
                bytes = dir.bytes,
                reason = reason.as_str(),
                "deleted a data directory moved aside earlier"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot delete a data directory moved aside earlier")
            }
        }
    }
}

/// Says how full the data directory's disk is, now and every `every`, for
/// as long as the agent runs (etcd's own quota alarm watches its database,
/// not the disk under it and the logs beside it). A disk that cannot be
/// measured is said once per failure and tried again next time.
pub async fn report_disk_use(data_dir: PathBuf, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        report_disk_use_once(&data_dir);
    }
}

/// One report of [`report_disk_use`].
pub fn report_disk_use_once(data_dir: &Path) {
    let disk = match data_dir::disk_of(data_dir) {
        Ok(disk) => disk,
        Err(error) => {
            tracing::warn!(%error, "cannot measure the data disk; its use goes unreported until the next try");
            return;
        }
    };
    let used_percent = disk.used_percent();
    let (free_bytes, total_bytes) = (disk.free_bytes, disk.total_bytes);
    let path = data_dir.display();
    if disk.past_alarm() {
        tracing::warn!(
            event = events::DATA_DISK_USE,
            used_percent,
            free_bytes,
            total_bytes,
            %path,
            threshold_percent = disk::USED_ALARM_PERCENT,
            "the data disk is filling up: free space (moved-aside data directories, `<data dir>.removed-*`, old logs) or grow the volume before etcd runs out of room"
        );
    } else {
        tracing::info!(
            event = events::DATA_DISK_USE,
            used_percent,
            free_bytes,
            total_bytes,
            %path,
            "data disk use"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn moved_aside_directories_past_their_retention_are_deleted_and_the_rest_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let data_dir = root.path().join("etcd");
        std::fs::create_dir_all(&data_dir).expect("the live directory");
        let now = clock::now_unix_seconds();
        let old = root.path().join(format!("etcd.removed-{}", now - 8 * DAY));
        let recent = root.path().join(format!("etcd.removed-{}", now - DAY));
        for dir in [&old, &recent] {
            std::fs::create_dir_all(dir.join("member")).expect("mkdir");
        }
        prune_moved_aside(
            &data_dir,
            PrunePolicy {
                keep_for_seconds: 7 * DAY,
                min_free_percent: 0,
            },
        );
        assert!(!old.exists(), "past the retention");
        assert!(recent.exists(), "within the retention");
        assert!(data_dir.exists(), "the live directory is never touched");
    }
}
