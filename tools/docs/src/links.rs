//! The relative links of a Markdown document, and which of them lead nowhere:
//! a file that does not exist, or a `#anchor` no heading of the target makes.
//! Pure but for reading the linked files.

use std::path::{Path, PathBuf};

/// One link that leads nowhere, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub target: String,
    pub reason: String,
}

/// The targets of the inline links `[text](target)` outside code blocks.
pub fn targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor of a heading: lower case, punctuation other than hyphens
/// and spaces dropped, spaces to hyphens.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a document's headings.
pub fn anchors(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    markdown
        .lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            !in_code && line.starts_with('#')
        })
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

/// The relative links of `document` (a file under `root`) that lead nowhere.
pub fn broken(document: &Path, root: &Path) -> Vec<Broken> {
    let text = std::fs::read_to_string(document).unwrap_or_default();
    let dir = document.parent().unwrap_or(root);
    targets(&text)
        .into_iter()
        .filter(|target| !target.contains("://") && !target.starts_with("mailto:"))
        .filter_map(|target| {
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let file: PathBuf = if path.is_empty() {
                document.to_path_buf()
            } else {
                dir.join(path)
            };
            if !file.exists() {
                return Some(Broken {
                    target: target.clone(),
                    reason: format!("{} does not exist", file.display()),
                });
            }
            let fragment = fragment?;
            let is_markdown = file.extension().is_some_and(|e| e == "md");
            if !is_markdown
                || fragment.starts_with('L') && fragment[1..].starts_with(char::is_numeric)
            {
                return None;
            }
            let headings = anchors(&std::fs::read_to_string(&file).unwrap_or_default());
            (!headings.iter().any(|a| a == fragment)).then(|| Broken {
                target: target.clone(),
                reason: format!("{} has no heading #{fragment}", file.display()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_in_code_blocks_are_not_links() {
        let text = "see [a](a.md) and [b](b.md#x)\n```\n[c](c.md)\n```\n";
        assert_eq!(targets(text), vec!["a.md", "b.md#x"]);
    }

    #[test]
    fn a_heading_anchor_drops_punctuation_and_joins_words_with_hyphens() {
        assert_eq!(
            anchor(" Continuous backup: seconds, not minutes"),
            "continuous-backup-seconds-not-minutes"
        );
        assert_eq!(
            anchor("Set-up: what `make setup` installs"),
            "set-up-what-make-setup-installs"
        );
    }

    #[test]
    fn a_missing_file_and_a_missing_heading_are_broken_and_a_present_one_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("other.md"), "# Title\n## A part\n").expect("written");
        let doc = dir.path().join("doc.md");
        std::fs::write(
            &doc,
            "[ok](other.md#a-part) [no file](gone.md) [no heading](other.md#elsewhere) [web](https://example.com)\n",
        )
        .expect("written");
        let broken: Vec<String> = broken(&doc, dir.path())
            .into_iter()
            .map(|b| b.target)
            .collect();
        assert_eq!(broken, vec!["gone.md", "other.md#elsewhere"]);
    }
}
