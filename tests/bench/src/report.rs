//! The results table and `docs/benchmarks.md`: one row per figure, ours
//! beside the standard tool's (both medians of the same run), the ratio,
//! the target and whether it was met; then every run's raw values.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// ours / standard at most this.
    RatioAtMost(f64),
    SecondsAtMost(f64),
    MibAtMost(f64),
    /// Decimal megabytes (package sizes).
    MegabytesAtMost(f64),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::RatioAtMost(r) => format!("ratio <= {r}"),
            Target::SecondsAtMost(s) => format!("<= {s} s"),
            Target::MibAtMost(m) => format!("<= {m} MiB"),
            Target::MegabytesAtMost(m) => format!("<= {m} MB"),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub family: String,
    pub figure: String,
    /// Our median, with its unit ("12.3 s").
    pub ours: String,
    /// The standard tool's median, or "-" when there is none to compare.
    pub standard: String,
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    /// The value the target is checked against (ratio, seconds or MiB).
    pub checked: Option<f64>,
    /// How many runs the medians are of.
    pub runs: String,
}

impl Row {
    pub fn met(&self) -> Option<bool> {
        let value = self.checked?;
        Some(match self.target? {
            Target::RatioAtMost(limit)
            | Target::SecondsAtMost(limit)
            | Target::MibAtMost(limit)
            | Target::MegabytesAtMost(limit) => value <= limit,
        })
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Raw per-run values and sizes, one line each, under a family heading.
    pub details: Vec<(String, String)>,
    /// Benchmarks that could not run to the end, with the error.
    pub failures: Vec<(String, String)>,
}

impl Report {
    pub fn row(&mut self, row: Row) {
        println!(
            "  result: {} | {} | ours {} | standard {} | ratio {}",
            row.family,
            row.figure,
            row.ours,
            row.standard,
            fmt_ratio(row.ratio)
        );
        self.rows.push(row);
    }

    pub fn detail(&mut self, family: &str, line: String) {
        println!("  {family}: {line}");
        self.details.push((family.to_owned(), line));
    }

    pub fn failure(&mut self, family: &str, error: &anyhow::Error) {
        let message = format!("{error:#}");
        eprintln!("  {family} FAILED: {message}");
        self.failures.push((family.to_owned(), message));
    }

    /// The table, as Markdown (readable as plain text too).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| family | figure | ours (median) | standard (median) | ratio | target | met | runs |\n|---|---|---|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            let met = match row.met() {
                Some(true) => "yes",
                Some(false) => "**MISSED**",
                None => "-",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {met} | {} |",
                row.family,
                // A pipe in a cell would end it.
                row.figure.replace('|', "\\|"),
                row.ours,
                row.standard,
                fmt_ratio(row.ratio),
                row.target.map_or_else(|| "-".to_owned(), |t| t.describe()),
                row.runs
            );
        }
        out
    }

    pub fn missed(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.met() == Some(false))
            .collect()
    }

    fn details_markdown(&self) -> String {
        let mut out = String::new();
        let mut current = "";
        for (family, line) in &self.details {
            if family != current {
                let _ = writeln!(out, "\n**{family}**\n");
                current = family;
            }
            let _ = writeln!(out, "- {line}");
        }
        out
    }
}

pub fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

pub fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s"))
}

pub fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |s| format!("{:.0} ms", s * 1000.0))
}

pub fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |m| format!("{m:.1} MiB"))
}

/// A part of the document between two markers that regenerating the rest
/// keeps: the hand-written findings, and the cost that `make cost` writes.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub start: &'static str,
    pub end: &'static str,
}

pub const FINDINGS: Section = Section {
    start: "<!-- findings: written by hand, kept when the runner regenerates this file -->",
    end: "<!-- end of findings -->",
};

pub const COST: Section = Section {
    start: "<!-- cost: written by make cost, kept when make bench regenerates this file -->",
    end: "<!-- end of cost -->",
};

impl Section {
    /// What `document` holds between the markers.
    pub fn read(self, document: &str) -> Option<String> {
        let start = document.find(self.start)? + self.start.len();
        let end = document[start..].find(self.end)? + start;
        Some(document[start..end].trim().to_owned())
    }

    /// The markers around `content`.
    pub fn wrap(self, content: &str) -> String {
        format!("{}\n{}\n{}", self.start, content.trim(), self.end)
    }

    /// `document` with the section's content replaced, or the section
    /// appended when it has none.
    pub fn replace(self, document: &str, content: &str, heading: &str) -> String {
        let located = document.find(self.start).and_then(|start| {
            let end = document[start..].find(self.end)? + start + self.end.len();
            Some((start, end))
        });
        match located {
            Some((start, end)) => format!(
                "{}{}{}",
                &document[..start],
                self.wrap(content),
                &document[end..]
            ),
            None => format!(
                "{}\n\n{heading}\n\n{}\n",
                document.trim_end(),
                self.wrap(content)
            ),
        }
    }
}

/// The heading of the cost section.
pub const COST_HEADING: &str = "## What it costs";

/// Writes the document: header, method, table, missed targets, findings and
/// the cost (both kept from the existing file), run details.
pub fn write_document(
    path: &Path,
    report: &Report,
    context: &str,
    method: &str,
) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let findings = FINDINGS
        .read(&old)
        .unwrap_or_else(|| "(none written yet)".to_owned());
    let cost = COST
        .read(&old)
        .unwrap_or_else(|| "(not measured yet: `make cost`)".to_owned());
    let mut doc = String::new();
    let _ = writeln!(doc, "# Benchmarks\n");
    let _ = writeln!(doc, "Generated by `make bench` (`tests/bench`); the findings section is written by hand and kept across runs. Every ratio is ours / the standard tool's, both the median of their runs in the same run of the benchmark on the same data; below 1.0 we are faster.\n");
    let _ = writeln!(doc, "## This run\n\n{context}\n");
    let _ = writeln!(doc, "## Results\n\n{}", report.table());
    let missed = report.missed();
    if !missed.is_empty() || !report.failures.is_empty() {
        let _ = writeln!(doc, "\nTargets missed in this run:\n");
        for row in missed {
            let _ = writeln!(
                doc,
                "- {}: {} is {} (target {})",
                row.family,
                row.figure,
                row.checked
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
                row.target.map_or_else(String::new, |t| t.describe())
            );
        }
        for (family, error) in &report.failures {
            let _ = writeln!(
                doc,
                "- {family}: did not complete: {}",
                error.replace('\n', " ")
            );
        }
    }
    let _ = writeln!(doc, "\n## Findings\n\n{}\n", FINDINGS.wrap(&findings));
    let _ = writeln!(doc, "{COST_HEADING}\n\n{}\n", COST.wrap(&cost));
    let _ = writeln!(doc, "## Method\n\n{method}\n");
    let _ = writeln!(doc, "## Every run\n{}", report.details_markdown());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, doc).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(checked: f64, target: Target) -> Row {
        Row {
            family: "f".into(),
            figure: "x".into(),
            ours: "1 s".into(),
            standard: "2 s".into(),
            ratio: Some(0.5),
            target: Some(target),
            checked: Some(checked),
            runs: "3".into(),
        }
    }

    #[test]
    fn a_missed_target_is_flagged_in_the_table() {
        let mut report = Report::default();
        report.rows.push(row(0.5, Target::RatioAtMost(1.0)));
        report.rows.push(row(70.0, Target::MibAtMost(64.0)));
        assert_eq!(report.missed().len(), 1);
        assert!(report.table().contains("**MISSED**"));
    }

    #[test]
    fn regenerating_keeps_the_hand_written_findings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.md");
        let report = Report::default();
        write_document(&path, &report, "ctx", "method").expect("written");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, text.replace("(none written yet)", "my analysis")).expect("edited");
        write_document(&path, &report, "ctx2", "method").expect("rewritten");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            text.contains("my analysis") && text.contains("ctx2"),
            "{text}"
        );
    }

    #[test]
    fn regenerating_keeps_the_measured_cost() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.md");
        let report = Report::default();
        write_document(&path, &report, "ctx", "method").expect("written");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, COST.replace(&text, "| 74 USD |", COST_HEADING)).expect("costed");
        write_document(&path, &report, "ctx2", "method").expect("rewritten");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(COST.read(&text).as_deref(), Some("| 74 USD |"), "{text}");
    }

    #[test]
    fn a_section_is_replaced_where_it_is_and_appended_where_it_is_not() {
        let appended = COST.replace("# Doc\n", "first", "## Cost");
        assert_eq!(COST.read(&appended).as_deref(), Some("first"));
        assert!(appended.starts_with("# Doc\n\n## Cost\n"), "{appended}");
        let replaced = COST.replace(&format!("{appended}after\n"), "second", "## Cost");
        assert_eq!(COST.read(&replaced).as_deref(), Some("second"));
        assert!(replaced.ends_with("after\n"), "{replaced}");
        assert_eq!(replaced.matches("## Cost").count(), 1, "{replaced}");
    }
}
