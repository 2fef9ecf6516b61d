//! The soak's rows (one per fault) and its summary: faults survived by kind,
//! the checker's counts, the times to healthy and the longest write stall.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::fault::Fault;

/// One fault and what came of it.
#[derive(Debug, Clone)]
pub struct FaultRow {
    pub number: usize,
    pub fault: Fault,
    /// What was done, as the log said.
    pub what: String,
    /// From the fault's end to the cluster healthy again, whole and writing
    /// and backed up; `None` when it never got there.
    pub to_healthy: Option<Duration>,
    /// The writer's longest wait for an acknowledgement from the fault's
    /// start to the check.
    pub max_stall: Duration,
    /// Broken promises first found after this fault.
    pub broken: Vec<String>,
    /// Acknowledged operations a total loss took, as allowed, and the oldest's age.
    pub lost_in_window: usize,
    pub oldest_lost_age: Option<Duration>,
}

impl FaultRow {
    pub fn survived(&self) -> bool {
        self.to_healthy.is_some() && self.broken.is_empty()
    }
}

/// The whole run's figures.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub seed: u64,
    pub duration: Duration,
    pub acknowledged: usize,
    pub failed_attempts: u64,
    pub reads: u64,
    pub torn_reads: usize,
    pub cluster_ids: usize,
    /// Broken promises the final check found.
    pub broken_at_end: Vec<String>,
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

/// The summary printed at the end (Markdown, so it can go to docs/soak.md).
pub fn summary(rows: &[FaultRow], totals: &Totals) -> String {
    let mut out = String::new();
    let broken: usize =
        rows.iter().map(|r| r.broken.len()).sum::<usize>() + totals.broken_at_end.len();
    let _ = writeln!(
        out,
        "seed {}, {} faults in {}, {} operations acknowledged ({} attempts retried), {} reads",
        totals.seed,
        rows.len(),
        seconds(totals.duration),
        totals.acknowledged,
        totals.failed_attempts,
        totals.reads
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| fault | applied | survived | time to healthy (max) | longest write stall (max) | lost in a loss window (oldest) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let mut by_kind: BTreeMap<Fault, Vec<&FaultRow>> = BTreeMap::new();
    for row in rows {
        by_kind.entry(row.fault).or_default().push(row);
    }
    for (fault, rows) in &by_kind {
        let survived = rows.iter().filter(|r| r.survived()).count();
        let healthy = rows.iter().filter_map(|r| r.to_healthy).max();
        let stall = rows.iter().map(|r| r.max_stall).max().unwrap_or_default();
        let lost: usize = rows.iter().map(|r| r.lost_in_window).sum();
        let oldest = rows.iter().filter_map(|r| r.oldest_lost_age).max();
        let _ = writeln!(
            out,
            "| {fault} | {} | {survived} | {} | {} | {} |",
            rows.len(),
            healthy.map_or_else(|| "never".to_owned(), seconds),
            seconds(stall),
            if lost == 0 {
                "0".to_owned()
            } else {
                format!("{lost} ({})", oldest.map_or_else(String::new, seconds))
            }
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| promise | broken |");
    let _ = writeln!(out, "|---|---|");
    let count = |prefix: &str| {
        rows.iter()
            .flat_map(|r| r.broken.iter())
            .chain(totals.broken_at_end.iter())
            .filter(|b| b.starts_with(prefix))
            .count()
    };
    let _ = writeln!(
        out,
        "| acknowledged writes kept (outside a total loss's window) | {} |",
        count("acknowledged write")
    );
    let _ = writeln!(
        out,
        "| acknowledged deletes kept | {} |",
        count("acknowledged delete")
    );
    let _ = writeln!(
        out,
        "| transactions whole | {} (and {} torn reads) |",
        count("transaction"),
        totals.torn_reads
    );
    let _ = writeln!(
        out,
        "| leased keys gone with their lease | {} |",
        count("leased key")
    );
    let _ = writeln!(
        out,
        "| one cluster at a time ({} cluster ids over the run) | {} |",
        totals.cluster_ids,
        count("cluster")
    );
    let _ = writeln!(
        out,
        "| healthy again after every fault | {} |",
        rows.iter().filter(|r| r.to_healthy.is_none()).count()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}",
        if broken == 0 && rows.iter().all(FaultRow::survived) && totals.torn_reads == 0 {
            "every promise kept".to_owned()
        } else {
            format!(
                "PROMISES BROKEN: {broken}; replay with --seed {}",
                totals.seed
            )
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fault: Fault, to_healthy: Option<u64>, broken: &[&str]) -> FaultRow {
        FaultRow {
            number: 1,
            fault,
            what: String::new(),
            to_healthy: to_healthy.map(Duration::from_secs),
            max_stall: Duration::from_secs(2),
            broken: broken.iter().map(|b| (*b).to_owned()).collect(),
            lost_in_window: 0,
            oldest_lost_age: None,
        }
    }

    #[test]
    fn a_clean_run_says_every_promise_was_kept_with_a_row_per_kind() {
        let rows = [
            row(Fault::KillLeader, Some(3), &[]),
            row(Fault::KillLeader, Some(5), &[]),
            row(Fault::Freeze, Some(1), &[]),
        ];
        let text = summary(
            &rows,
            &Totals {
                seed: 9,
                ..Totals::default()
            },
        );
        assert!(
            text.contains("| kill-leader | 2 | 2 | 5.0s | 2.0s | 0 |"),
            "{text}"
        );
        assert!(text.contains("| freeze | 1 | 1 | 1.0s |"), "{text}");
        assert!(text.trim_end().ends_with("every promise kept"), "{text}");
    }

    #[test]
    fn a_broken_promise_is_counted_by_kind_and_names_the_seed() {
        let rows = [
            row(
                Fault::KillAll,
                Some(3),
                &["acknowledged write 4 (soak/put/4) is missing"],
            ),
            row(Fault::Freeze, None, &[]),
        ];
        let text = summary(
            &rows,
            &Totals {
                seed: 77,
                ..Totals::default()
            },
        );
        assert!(
            text.contains("| acknowledged writes kept (outside a total loss's window) | 1 |"),
            "{text}"
        );
        assert!(
            text.contains("| healthy again after every fault | 1 |"),
            "{text}"
        );
        assert!(text.contains("| freeze | 1 | 0 | never |"), "{text}");
        assert!(
            text.trim_end()
                .ends_with("PROMISES BROKEN: 1; replay with --seed 77"),
            "{text}"
        );
    }
}
