//! The node's disk, as the agent looks after it. Data directories moved aside
//! (a stale member's, a quarantine's, a diverged one's) are kept for an
//! operator, but not for ever and not at the running member's expense; a
//! restore starts only when what it writes fits; and how full the disk is
//! gets said while etcd runs, for the stack to alarm on before etcd (whose
//! quota alarm watches its own database, not the disk) runs out of room.

/// What `move_aside` puts between the data directory's name and the time it
/// moved: `<data dir>.removed-<unix seconds>[-<n>]`.
pub const MOVED_ASIDE_MARK: &str = ".removed-";

/// etcd preallocates each write-ahead log file at this size.
const WAL_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A data directory moved aside, as found beside the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    pub name: String,
    /// Seconds since the epoch.
    pub moved_at: i64,
    pub bytes: u64,
}

/// The filesystem that holds the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// How often the agent says how full the data disk is; the stack's alarm
/// reads the reports over periods of this length.
pub const USE_REPORT_INTERVAL_SECONDS: u64 = 300;

/// Past this share of the data disk in use on any node, the stack alarms
/// (`DataDiskUsedAlarm`), and the node's report is a warning.
pub const USED_ALARM_PERCENT: f64 = 80.0;

impl Disk {
    /// The share of the filesystem no longer free for etcd, in percent with
    /// one decimal: what an unprivileged process may use counts as free, so
    /// blocks reserved for root count as used. A filesystem that reports no
    /// size is taken as full: nothing can be written there.
    pub fn used_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 100.0;
        }
        let used = self.total_bytes.saturating_sub(self.free_bytes);
        let permille = (used as f64 * 1000.0 / self.total_bytes as f64).round();
        permille / 10.0
    }

    /// Whether the stack alarms on this disk ([`USED_ALARM_PERCENT`]).
    pub fn past_alarm(&self) -> bool {
        self.used_percent() > USED_ALARM_PERCENT
    }
}

/// How long moved-aside directories stay, and the free space they must leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    pub keep_for_seconds: i64,
    /// Below this share of the filesystem free, the oldest moved-aside
    /// directories go first (never the newest: it is the likeliest to matter).
    pub min_free_percent: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneReason {
    /// Older than the policy keeps them.
    Age,
    /// Its space is needed.
    Space,
}

impl PruneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PruneReason::Age => "age",
            PruneReason::Space => "space",
        }
    }
}

/// When the stamp in `name` says the directory `data_dir_name` moved aside;
/// `None` for anything else beside it.
pub fn moved_at(data_dir_name: &str, name: &str) -> Option<i64> {
    let stamp = name
        .strip_prefix(data_dir_name)?
        .strip_prefix(MOVED_ASIDE_MARK)?;
    let seconds = stamp.split_once('-').map_or(stamp, |(seconds, _)| seconds);
    seconds.parse().ok()
}

/// Which moved-aside directories to delete, and why, oldest first.
pub fn prune(
    moved: &[MovedAside],
    disk: Disk,
    now: i64,
    policy: PrunePolicy,
) -> Vec<(&MovedAside, PruneReason)> {
    let mut oldest_first: Vec<&MovedAside> = moved.iter().collect();
    oldest_first.sort_by_key(|m| (m.moved_at, m.name.clone()));
    let newest = oldest_first.last().map(|m| m.name.clone());
    let floor = disk.total_bytes / 100 * u64::from(policy.min_free_percent);
    let mut free = disk.free_bytes;
    let mut doomed = Vec::new();
    for candidate in oldest_first {
        let reason = if now.saturating_sub(candidate.moved_at) > policy.keep_for_seconds {
            Some(PruneReason::Age)
        } else if free < floor && Some(&candidate.name) != newest.as_ref() {
            Some(PruneReason::Space)
        } else {
            None
        };
        if let Some(reason) = reason {
            free = free.saturating_add(candidate.bytes);
            doomed.push((candidate, reason));
        }
    }
    doomed
}

/// Why a restore does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("restoring a {snapshot_bytes}-byte snapshot needs {needed} bytes free beside the data directory (the snapshot, the restored data and its first log file), and {free} are: free space there (moved-aside data directories, `<data dir>.removed-*`, can go once no longer needed) or grow the volume")]
pub struct NoRoom {
    pub snapshot_bytes: u64,
    pub needed: u64,
    pub free: u64,
}

/// Whether restoring a snapshot of `snapshot_bytes` (uncompressed) fits:
/// the downloaded snapshot and the data directory restored from it side by
/// side, with its first write-ahead log file.
pub fn restore_fits(snapshot_bytes: u64, disk: Disk) -> Result<(), NoRoom> {
    let needed = snapshot_bytes
        .saturating_mul(2)
        .saturating_add(WAL_FILE_BYTES);
    if disk.free_bytes >= needed {
        Ok(())
    } else {
        Err(NoRoom {
            snapshot_bytes,
            needed,
            free: disk.free_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const GIB: u64 = 1 << 30;
    const WEEK: PrunePolicy = PrunePolicy {
        keep_for_seconds: 7 * DAY,
        min_free_percent: 20,
    };

    fn moved(name: &str, moved_at: i64, bytes: u64) -> MovedAside {
        MovedAside {
            name: name.into(),
            moved_at,
            bytes,
        }
    }

    fn names(pruned: &[(&MovedAside, PruneReason)]) -> Vec<(String, PruneReason)> {
        pruned.iter().map(|(m, r)| (m.name.clone(), *r)).collect()
    }

    const ROOMY: Disk = Disk {
        free_bytes: 80 * GIB,
        total_bytes: 100 * GIB,
    };

    #[test]
    fn the_stamp_of_a_moved_aside_directory_is_read_from_its_name() {
        let cases = [
            ("etcd.removed-1700000000", Some(1_700_000_000)),
            ("etcd.removed-1700000000-2", Some(1_700_000_000)),
            ("etcd", None),
            ("etcd.restore.db", None),
            ("other.removed-1700000000", None),
            ("etcd.removed-soon", None),
        ];
        for (name, expected) in cases {
            assert_eq!(moved_at("etcd", name), expected, "{name}");
        }
    }

    #[test]
    fn directories_older_than_the_policy_go_and_younger_ones_stay() {
        let now = 100 * DAY;
        let dirs = [
            moved("etcd.removed-old", now - 8 * DAY, GIB),
            moved("etcd.removed-recent", now - 6 * DAY, GIB),
            moved("etcd.removed-new", now - DAY, GIB),
        ];
        assert_eq!(
            names(&prune(&dirs, ROOMY, now, WEEK)),
            vec![("etcd.removed-old".into(), PruneReason::Age)]
        );
    }

    #[test]
    fn short_of_space_the_oldest_go_until_the_floor_is_met_but_never_the_newest() {
        let now = 100 * DAY;
        let dirs = [
            moved("etcd.removed-c", now - 1000, 5 * GIB),
            moved("etcd.removed-a", now - 3000, 5 * GIB),
            moved("etcd.removed-b", now - 2000, 5 * GIB),
        ];
        let tight = Disk {
            free_bytes: 12 * GIB,
            total_bytes: 100 * GIB,
        };
        // 12 GiB free, a floor of 20: a goes (17), then b (22), c stays.
        assert_eq!(
            names(&prune(&dirs, tight, now, WEEK)),
            vec![
                ("etcd.removed-a".into(), PruneReason::Space),
                ("etcd.removed-b".into(), PruneReason::Space),
            ]
        );
        let hopeless = Disk {
            free_bytes: 0,
            total_bytes: 100 * GIB,
        };
        let pruned = prune(&dirs, hopeless, now, WEEK);
        assert!(pruned.iter().all(|(m, _)| m.name != "etcd.removed-c"));
    }

    #[test]
    fn with_room_and_within_the_policy_nothing_goes() {
        let now = 100 * DAY;
        let dirs = [moved("etcd.removed-a", now - DAY, 50 * GIB)];
        assert!(prune(&dirs, ROOMY, now, WEEK).is_empty());
        assert!(prune(&[], ROOMY, now, WEEK).is_empty());
    }

    #[test]
    fn the_share_used_counts_what_etcd_cannot_write_to() {
        const G: u64 = 1 << 30;
        let cases = [
            (10 * G, 10 * G, 0.0, false),
            (0, 10 * G, 100.0, true),
            (2 * G, 10 * G, 80.0, false),
            // Just past the threshold: the alarm's side.
            (2 * G - G / 100, 10 * G, 80.1, true),
            (G / 3, G, 66.7, false),
            // More free than total (a filesystem mid-resize): nothing used.
            (11 * G, 10 * G, 0.0, false),
            // No size at all: nothing can be written.
            (0, 0, 100.0, true),
        ];
        for (free_bytes, total_bytes, percent, past) in cases {
            let disk = Disk {
                free_bytes,
                total_bytes,
            };
            assert_eq!(disk.used_percent(), percent, "{disk:?}");
            assert_eq!(disk.past_alarm(), past, "{disk:?}");
        }
    }

    #[test]
    fn a_restore_fits_when_the_snapshot_twice_and_a_log_file_fit() {
        let disk = |free_bytes| Disk {
            free_bytes,
            total_bytes: 100 * GIB,
        };
        let needed = 2 * GIB + WAL_FILE_BYTES;
        assert_eq!(restore_fits(GIB, disk(needed)), Ok(()));
        assert_eq!(
            restore_fits(GIB, disk(needed - 1)),
            Err(NoRoom {
                snapshot_bytes: GIB,
                needed,
                free: needed - 1
            })
        );
    }
}
