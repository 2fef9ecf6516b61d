//! `make bench`: etcd-aws against the standard tools on the local AWS
//! stand-in; prints a table and writes docs/benchmarks.md. Everything it
//! starts is stopped on exit, also on Ctrl-C. Exits non-zero when a
//! benchmark could not run (a missed target is a result, not a failure).

use std::process::ExitCode;

use clap::Parser;
use etcd_aws_bench::{run_all, Options};

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse().effective();
    tokio::select! {
        result = run_all(&options) => match result {
            Ok(report) if report.failures.is_empty() => ExitCode::SUCCESS,
            Ok(report) => {
                eprintln!("\nbench: {} benchmark(s) did not complete (see above and the document)", report.failures.len());
                ExitCode::FAILURE
            }
            Err(error) => {
                eprintln!("bench FAILED: {error:#}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            // Dropping the run's future drops the clusters, functions and moto.
            eprintln!("\ninterrupted: stopping every process the benchmarks started");
            ExitCode::from(130)
        }
    }
}
