//! `make cost`: measures a stack's use on the stand-in, prices each way of
//! deploying it, prints the result and writes it as the cost section of
//! docs/benchmarks.md. Everything it starts is stopped on exit, also on Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use etcd_aws_bench::cost::{self, inventory::Inventory, measure, render};
use etcd_aws_bench::report::{COST, COST_HEADING};
use etcd_aws_tests::paths;

/// Prices the generated stack from its own resources and the stand-in's
/// measured requests, run times and bytes (see docs/benchmarks.md).
#[derive(Debug, Parser)]
#[command(name = "cost")]
struct Options {
    /// How long each workload (idle, then writing) is measured, in seconds.
    #[arg(long, env = "COST_STRETCH_SECONDS", default_value_t = 150)]
    stretch_seconds: u64,
    /// The busy workload's writes per second.
    #[arg(long, env = "COST_BUSY_WRITES", default_value_t = 100)]
    busy_writes: u32,
    /// The writes per second the capture function's peak memory is measured under.
    #[arg(long, env = "COST_PEAK_WRITES", default_value_t = 200)]
    peak_writes: u32,
    /// The document whose cost section is (re)written.
    #[arg(long, env = "COST_OUTPUT", default_value_os_t = paths::workspace_root().join("docs/benchmarks.md"))]
    output: PathBuf,
}

async fn run(options: &Options) -> anyhow::Result<()> {
    let stacks = cost::deployments()?
        .into_iter()
        .map(|deployment| {
            let template = etcd_aws_template::template(&deployment.options)
                .with_context(|| format!("cannot generate the template of {}", deployment.name))?;
            Ok(render::Priced {
                name: deployment.name,
                inventory: Inventory::of(&template),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The default stack (the first) is the one measured: the others differ
    // in their network, which makes no request of its own.
    let measured = stacks.first().context("no stack to price")?;
    let observed = measure::observe(
        &measure::Settings {
            stretch: Duration::from_secs(options.stretch_seconds),
            busy_writes_per_second: options.busy_writes,
            peak_writes_per_second: options.peak_writes,
        },
        &measured.inventory,
    )
    .await?;
    let today = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "(unknown date)".to_owned(), |d| d.trim().to_owned());
    let section = render::render(&observed, &stacks, &today);
    println!("{section}");
    let document = std::fs::read_to_string(&options.output).unwrap_or_default();
    std::fs::write(
        &options.output,
        COST.replace(&document, &section, COST_HEADING),
    )
    .with_context(|| format!("cannot write {}", options.output.display()))?;
    println!("written to {}", options.output.display());
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    tokio::select! {
        result = run(&options) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("cost FAILED: {error:#}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\ninterrupted: stopping every process the measurement started");
            ExitCode::from(130)
        }
    }
}
