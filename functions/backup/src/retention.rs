//! Which backups to keep: a pure function of the manifests, the policy and
//! the time, so the policy is tested as a table and the deletion is dumb.

use std::collections::HashSet;

use etcd_aws_core::backup::manifest::BackupManifest;

/// Keep the newest `keep_last`; of the older ones, the newest of every hour
/// for `hourly_hours` and the newest of every UTC day for `daily_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: usize,
    pub hourly_hours: u32,
    pub daily_days: u32,
}

impl Default for RetentionPolicy {
    /// A day of hourly backups and a week of daily ones, plus the last hour at
    /// the default 15-minute schedule.
    fn default() -> Self {
        Self {
            keep_last: 4,
            hourly_hours: 24,
            daily_days: 7,
        }
    }
}

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// The backups to delete, oldest first. `manifests` may come in any order.
///
/// Never deletes the newest backup nor those in `protected` (the one
/// `latest.json` names, those a restore order needs), whatever the policy
/// says: a policy of zeros still leaves one backup to restore from.
pub fn to_delete(
    manifests: &[BackupManifest],
    policy: &RetentionPolicy,
    now: i64,
    protected: &[&str],
) -> Vec<BackupManifest> {
    let mut newest_first: Vec<&BackupManifest> = manifests.iter().collect();
    newest_first.sort_by(|a, b| {
        (b.created_at, b.revision, &b.key).cmp(&(a.created_at, a.revision, &a.key))
    });
    let mut keep: HashSet<&str> = HashSet::new();
    keep.extend(
        newest_first
            .iter()
            .take(policy.keep_last.max(1))
            .map(|m| m.key.as_str()),
    );
    keep.extend(protected.iter().copied());
    keep_newest_per_bucket(
        &newest_first,
        now - i64::from(policy.hourly_hours) * HOUR,
        HOUR,
        &mut keep,
    );
    keep_newest_per_bucket(
        &newest_first,
        now - i64::from(policy.daily_days) * DAY,
        DAY,
        &mut keep,
    );
    let mut deleted: Vec<BackupManifest> = newest_first
        .into_iter()
        .filter(|m| !keep.contains(m.key.as_str()))
        .cloned()
        .collect();
    deleted.reverse();
    deleted
}

/// Within the window (created after `since`), the first backup met in each
/// bucket of `width` seconds is kept; the list is newest first, so that is
/// the newest of its hour or day.
fn keep_newest_per_bucket<'a>(
    newest_first: &[&'a BackupManifest],
    since: i64,
    width: i64,
    keep: &mut HashSet<&'a str>,
) {
    let mut seen = HashSet::new();
    for manifest in newest_first.iter().filter(|m| m.created_at > since) {
        if seen.insert(manifest.created_at.div_euclid(width)) {
            keep.insert(manifest.key.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_aws_core::backup::manifest::Compression;
    use etcd_aws_core::etcd::ids::ClusterId;

    /// A fixed "now": 2026-01-10T12:00:00Z.
    const NOW: i64 = 1_768_046_400;

    fn backup(created_at: i64) -> BackupManifest {
        BackupManifest {
            key: format!("b/snapshots/{created_at}.db"),
            sha256: String::new(),
            stored_bytes: 1,
            snapshot_bytes: 1,
            compression: Compression::None,
            revision: created_at,
            cluster_id: ClusterId(1),
            member_count: 3,
            etcd_version: "3.5.1".into(),
            created_at,
        }
    }

    fn ages(deleted: &[BackupManifest]) -> Vec<i64> {
        deleted.iter().map(|m| NOW - m.created_at).collect()
    }

    fn policy(keep_last: usize, hourly_hours: u32, daily_days: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last,
            hourly_hours,
            daily_days,
        }
    }

    #[test]
    fn no_backups_means_nothing_to_delete() {
        assert!(to_delete(&[], &RetentionPolicy::default(), NOW, &[]).is_empty());
    }

    #[test]
    fn the_newest_n_are_kept_and_the_rest_deleted_without_thinning() {
        let all: Vec<_> = (1..=6).map(|i| backup(NOW - i * 60)).collect();
        let deleted = to_delete(&all, &policy(2, 0, 0), NOW, &[]);
        assert_eq!(ages(&deleted), vec![360, 300, 240, 180]);
    }

    #[test]
    fn a_policy_of_zeros_still_keeps_the_newest_backup() {
        let all: Vec<_> = (1..=3).map(|i| backup(NOW - i * 60)).collect();
        let deleted = to_delete(&all, &policy(0, 0, 0), NOW, &[]);
        assert_eq!(ages(&deleted), vec![180, 120]);
    }

    #[test]
    fn the_backup_the_pointer_names_is_never_deleted() {
        let all: Vec<_> = (1..=3).map(|i| backup(NOW - i * 60)).collect();
        let pointer = all[2].key.clone();
        let deleted = to_delete(&all, &policy(1, 0, 0), NOW, &[pointer.as_str()]);
        assert_eq!(ages(&deleted), vec![120]);
    }

    #[test]
    fn hourly_thinning_keeps_the_newest_backup_of_each_hour_in_the_window() {
        // Every 15 minutes for 4 hours, ending at 11:45; hours 08..11 hold four each.
        let all: Vec<_> = (1..=16).map(|i| backup(NOW - i * 900)).collect();
        let deleted = to_delete(&all, &policy(1, 3, 0), NOW, &[]);
        // Kept: 11:45 (newest; also hour 11), 10:45 (hour 10), 09:45 (hour 9).
        // Hour 8 is older than the 3-hour window (which starts at 09:00).
        let kept: Vec<i64> = all
            .iter()
            .filter(|m| !deleted.iter().any(|d| d.key == m.key))
            .map(|m| NOW - m.created_at)
            .collect();
        assert_eq!(kept, vec![900, 4_500, 8_100]);
        assert_eq!(deleted.len(), 13);
    }

    #[test]
    fn daily_thinning_keeps_the_newest_backup_of_each_utc_day_in_the_window() {
        // Two a day (06:00 and 18:00 UTC) for ten days before today's noon.
        let all: Vec<_> = (1..=20)
            .map(|i| backup(NOW - 6 * HOUR - (i - 1) * 12 * HOUR))
            .collect();
        let deleted = to_delete(&all, &policy(1, 0, 3), NOW, &[]);
        let kept: Vec<i64> = all
            .iter()
            .filter(|m| !deleted.iter().any(|d| d.key == m.key))
            .map(|m| (NOW - m.created_at) / HOUR)
            .collect();
        // Today 06:00 (newest), yesterday 18:00, two days ago 18:00; the
        // window of three days reaches back to three days ago at noon.
        assert_eq!(kept, vec![6, 18, 42, 66]);
    }

    #[test]
    fn the_rules_add_up_rather_than_compete() {
        // keep_last covers the first two; hourly adds one per older hour.
        let all = vec![
            backup(NOW - 60),
            backup(NOW - 120),
            backup(NOW - 180),
            backup(NOW - HOUR - 60),
            backup(NOW - HOUR - 120),
        ];
        let deleted = to_delete(&all, &policy(2, 2, 0), NOW, &[]);
        assert_eq!(ages(&deleted), vec![HOUR + 120, 180]);
    }

    #[test]
    fn backups_older_than_every_window_are_deleted() {
        let all = vec![backup(NOW - 60), backup(NOW - 30 * DAY)];
        let deleted = to_delete(&all, &policy(1, 24, 7), NOW, &[]);
        assert_eq!(ages(&deleted), vec![30 * DAY]);
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut all: Vec<_> = (1..=6).map(|i| backup(NOW - i * 60)).collect();
        let expected = to_delete(&all, &policy(2, 0, 0), NOW, &[]);
        all.reverse();
        assert_eq!(to_delete(&all, &policy(2, 0, 0), NOW, &[]), expected);
    }

    #[test]
    fn a_backup_from_a_clock_ahead_of_ours_counts_as_the_newest() {
        let all = vec![backup(NOW + 600), backup(NOW - 60)];
        let deleted = to_delete(&all, &policy(1, 0, 0), NOW, &[]);
        assert_eq!(ages(&deleted), vec![60]);
    }

    #[test]
    fn deletions_come_oldest_first() {
        let all: Vec<_> = (1..=4).map(|i| backup(NOW - i * 60)).collect();
        let deleted = to_delete(&all, &policy(1, 0, 0), NOW, &[]);
        assert_eq!(ages(&deleted), vec![240, 180, 120]);
    }
}
