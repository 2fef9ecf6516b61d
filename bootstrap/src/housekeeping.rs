//! Looking after the node's disk: the data directories moved aside earlier
//! go when [`disk::prune`] says (by age, or sooner when space runs short),
//! each said with the `moved_aside_pruned` event.

use std::path::Path;

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
