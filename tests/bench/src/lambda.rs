//! Benchmark 5, the functions as Lambda packages:
//! - cold start: from spawning the function's release binary to its first
//!   poll of the Runtime API emulator (`/invocation/next`), which is what
//!   Lambda reports as Init Duration;
//! - package size: the `bootstrap` zip. Without cargo-lambda (and its zig
//!   cross-compiler) here, the zip is of this machine's release binary,
//!   deflated with Python's zipfile, as `cargo lambda build --output-format
//!   zip` packs it; the document says which.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use super::backup::wait_initialised;
use super::process::{self, Stage};
use super::report::{self, Report, Row, Target};
use super::stats::{max, median};
use super::Options;
use etcd_aws_tests::lambda::{function_binary, FunctionSpec, LambdaFunction};

const FUNCTIONS: [&str; 2] = ["etcd-aws-backup", "etcd-aws-lifecycle"];

pub async fn run(options: &Options, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let family = "5. lambda and agent";
    for name in FUNCTIONS {
        let mut inits = Vec::new();
        for _ in 0..options.cold_starts {
            let function = LambdaFunction::start(FunctionSpec {
                binary: name.to_owned(),
                function_name: name.to_owned(),
                timeout: Duration::from_secs(60),
                env: function_env(),
                log_file: work.join(format!("{name}-cold-start.log")),
            })
            .await?;
            inits.push(wait_initialised(&function).await?.as_secs_f64());
        }
        report.detail(
            "5. cold start (init duration)",
            format!(
                "{name}: {:?} ms",
                inits
                    .iter()
                    .map(|s| (s * 1000.0).round())
                    .collect::<Vec<_>>()
            ),
        );
        report.row(Row {
            family: family.into(),
            figure: format!(
                "{name} cold start: spawn -> first Runtime API poll (max {})",
                report::millis(max(&inits))
            ),
            ours: report::millis(median(&inits)),
            standard: "-".into(),
            ratio: None,
            target: None,
            checked: None,
            runs: options.cold_starts.to_string(),
        });

        let binary = function_binary(name)?;
        let zip = work.join(format!("{name}.zip"));
        zip_bootstrap(&binary, &zip, work).await?;
        let (zipped, unzipped) = (
            std::fs::metadata(&zip).map_or(0, |m| m.len()),
            std::fs::metadata(&binary).map_or(0, |m| m.len()),
        );
        let megabytes = zipped as f64 / 1e6;
        report.detail(
            "5. package size",
            format!(
                "{name}: binary {:.2} MB ({}), zip {megabytes:.2} MB",
                unzipped as f64 / 1e6,
                binary.display()
            ),
        );
        report.row(Row {
            family: family.into(),
            figure: format!("{name} zip size ({}, release, stripped)", target_triple()),
            ours: format!("{megabytes:.2} MB"),
            standard: "-".into(),
            ratio: None,
            target: Some(Target::MegabytesAtMost(5.0)),
            checked: Some(megabytes),
            runs: "1".into(),
        });
    }
    let cargo_lambda = tokio::process::Command::new("cargo")
        .args(["lambda", "--version"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    report.detail(
        "5. package size",
        if cargo_lambda {
            "cargo-lambda is installed, but the zip measured is still the host build's (the bench builds nothing for other targets)".to_owned()
        } else {
            "cargo-lambda is not installed here (and its zig cross-build for aarch64 cannot be fetched): measured the host release binary zipped as `bootstrap`; an arm64 build differs by some percent".to_owned()
        },
    );
    Ok(())
}

/// What the functions need to finish their init (nothing is called at init).
fn function_env() -> Vec<(String, String)> {
    [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("ETCD_AWS_GROUP_NAME", "bench-group"),
        ("ETCD_BACKUP_BUCKET", "bench-bucket"),
        // With TLS the lifecycle function also reads its certificate's secret
        // at init (one Secrets Manager call); the bench measures the runtime alone.
        ("ETCD_AWS_INSECURE_PLAINTEXT", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `bootstrap` in a deflated zip, as Lambda's provided.al2023 runtime wants it.
async fn zip_bootstrap(binary: &Path, zip: &Path, work: &Path) -> anyhow::Result<()> {
    let python = crate::paths::workspace_root().join(".venv/bin/python");
    let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n    z.write(sys.argv[1], 'bootstrap')\n";
    process::run(
        Stage::new(
            &python,
            &[
                "-c",
                script,
                &binary.display().to_string(),
                &zip.display().to_string(),
            ],
        ),
        work.join("zip.log"),
        Duration::from_secs(120),
    )
    .await
    .with_context(|| format!("zipping {}", binary.display()))?;
    if !zip.is_file() {
        bail!("{} was not written", zip.display());
    }
    Ok(())
}

fn target_triple() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86_64 Linux host build, not the arm64 Lambda target"
    } else {
        "host build"
    }
}
