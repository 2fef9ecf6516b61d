//! Benchmark 5, the functions as Lambda packages:
//! - cold start: from spawning the function's release binary to its first
//!   poll of the Runtime API emulator (`/invocation/next`), which is what
//!   Lambda reports as Init Duration; this machine's build (an arm64 binary
//!   here would run under emulation, which measures the emulator);
//! - package size: the arm64 zips users deploy, as `make package` builds them
//!   with cargo lambda into `dist/arm64/` (`make bench` runs it first), with
//!   the x86_64 zips beside them for comparison.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::backup::wait_initialised;
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
        report.detail(
            "5. cold start (init duration)",
            format!("{name}: measured on {}", binary.display()),
        );
        for arch in PACKAGE_ARCHS {
            // The target is the deployed architecture's; x86_64 is for comparison.
            let deployed = arch == "arm64";
            let zip = dist().join(arch).join(format!("{name}.zip"));
            let zipped = match std::fs::metadata(&zip) {
                Ok(metadata) => metadata.len(),
                Err(_) if !deployed => {
                    report.detail(
                        "5. package size",
                        format!("{name} ({arch}): not built (make package PACKAGE_ARCHS=arm64)"),
                    );
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{} is missing: run `make package` (make bench does) to build the zips users deploy",
                            zip.display()
                        )
                    })
                }
            };
            let unzipped = std::fs::metadata(
                dist()
                    .join(arch)
                    .join("lambda")
                    .join(name)
                    .join("bootstrap"),
            )
            .map_or(0, |m| m.len());
            let megabytes = zipped as f64 / 1e6;
            report.detail(
                "5. package size",
                format!(
                    "{name} ({arch}): bootstrap {:.2} MB, zip {megabytes:.2} MB ({})",
                    unzipped as f64 / 1e6,
                    zip.display()
                ),
            );
            report.row(Row {
                family: family.into(),
                figure: format!("{name} zip size ({arch}, make package: cargo lambda --release)"),
                ours: format!("{megabytes:.2} MB"),
                standard: "-".into(),
                ratio: None,
                target: deployed.then_some(Target::MegabytesAtMost(5.0)),
                checked: deployed.then_some(megabytes),
                runs: "1".into(),
            });
        }
    }
    Ok(())
}

/// The architectures whose zips are reported, the deployed one first.
const PACKAGE_ARCHS: [&str; 2] = ["arm64", "x86_64"];

/// Where `make package` puts the artifacts: `$DIST`, or `dist/` of the workspace.
fn dist() -> PathBuf {
    std::env::var_os("DIST")
        .map(PathBuf::from)
        .map(|dist| {
            if dist.is_absolute() {
                dist
            } else {
                crate::paths::workspace_root().join(dist)
            }
        })
        .unwrap_or_else(|| crate::paths::workspace_root().join("dist"))
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
