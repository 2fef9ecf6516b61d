//! The README is a map a newcomer reads in five minutes, and no link in it or
//! in docs/ leads nowhere.

use std::path::{Path, PathBuf};

use etcd_aws_docs::links::broken;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap_or(Path::new("."))
}

fn documents() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut documents = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);
    documents
}

#[test]
fn every_relative_link_of_the_readme_and_the_docs_leads_somewhere() {
    let documents = documents();
    assert!(documents.len() > 3, "{documents:?}");
    let broken: Vec<String> = documents
        .iter()
        .flat_map(|document| {
            broken(document, workspace_root())
                .into_iter()
                .map(move |b| format!("{}: {} ({})", document.display(), b.target, b.reason))
        })
        .collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_stays_under_150_lines() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap_or_default();
    let lines = readme.lines().count();
    assert!(
        (1..150).contains(&lines),
        "README.md has {lines} lines: it is a map; the rest belongs in docs/"
    );
}

#[test]
fn the_readmes_first_two_commands_are_the_demo_and_the_tests() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap_or_default();
    let commands: Vec<String> = readme
        .lines()
        .skip_while(|line| !line.starts_with("```"))
        .skip(1)
        .take(2)
        .map(|line| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(commands, vec!["make demo", "make test"], "{readme}");
}
