//! The generated templates pass cfn-lint and checkov: zero errors, zero failed checks.
//! Skipped checks are allowed only where the resource's Metadata says why (see the
//! structural test `every_scanner_skip_carries_a_written_reason`).
//!
//! The scanners come from the project's virtualenv (`make setup` installs pinned
//! versions). Without them these tests fail, never pass silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{everything_options, existing_vpc_options, template_for};
use etcd_aws_template::options::Options;
use etcd_aws_template::{render, Format};

fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.venv/bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make setup` to install cfn-lint and checkov into the project's .venv",
        path.display()
    );
    path
}

/// Writes the default, the everything-on and the existing-VPC templates, each
/// as JSON and YAML.
fn write_templates(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (name, options) in [
        ("default", Options::default()),
        ("everything", everything_options()),
        ("existing-vpc", existing_vpc_options()),
    ] {
        let template = template_for(&options);
        for (format, extension) in [(Format::Json, "json"), (Format::Yaml, "yaml")] {
            let path = directory.join(format!("{name}.{extension}"));
            let text = render(&template, format).expect("template renders");
            std::fs::write(&path, text).expect("template written");
            files.push(path);
        }
    }
    files
}

#[test]
fn cfn_lint_finds_nothing_in_the_json_and_yaml_templates() {
    let cfn_lint = tool("cfn-lint");
    let directory = tempfile::tempdir().expect("temporary directory");
    let files = write_templates(directory.path());
    let output = Command::new(cfn_lint)
        .arg("--format")
        .arg("parseable")
        .args(&files)
        .output()
        .expect("cfn-lint runs");
    assert!(
        output.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn checkov_fails_no_check_on_the_json_and_yaml_templates() {
    let checkov = tool("checkov");
    let directory = tempfile::tempdir().expect("temporary directory");
    let files = write_templates(directory.path());
    let mut command = Command::new(checkov);
    command.args([
        "--framework",
        "cloudformation",
        "--skip-download",
        "--compact",
        "-o",
        "json",
    ]);
    for file in &files {
        command.arg("-f").arg(file);
    }
    let output = command.output().expect("checkov runs");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON report ({e}):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let summary = &report["summary"];
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{} {} {}", c["check_id"], c["resource"], c["file_path"]))
        .collect();
    assert_eq!(
        summary["failed"],
        0,
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
    assert_eq!(
        summary["parsing_errors"], 0,
        "checkov could not parse a template"
    );
    assert!(
        summary["passed"].as_u64().unwrap_or(0) > 100,
        "checkov checked too little to mean anything: {summary}"
    );
}
