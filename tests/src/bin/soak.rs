//! `make soak`: months of an etcd-aws cluster's life in minutes, on the
//! local AWS stand-in. Faults drawn from a seed hit a cluster under a
//! checking workload while both functions run on compressed schedules; the
//! checker states after each fault what was kept. Exits non-zero on any
//! broken promise; every process it started is stopped, pass, fail or
//! Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use etcd_aws_tests::soak::fault::Fault;
use etcd_aws_tests::soak::inject::Durations;
use etcd_aws_tests::soak::run::{soak, SoakOptions};
use tokio::time::Instant;

/// Random faults against a cluster of the harness, with a checker.
///
/// Example, a one-hour run of every fault that runs on process nodes:
///   soak --duration 1h --output docs/soak.md
/// Replaying a failed run exactly:
///   soak --seed 1234567 --duration 20m
#[derive(Debug, Parser)]
#[command(name = "soak", verbatim_doc_comment)]
struct Args {
    /// How long faults keep coming (the last one's recovery and the final check come after).
    #[arg(long, env = "SOAK_DURATION", default_value = "20m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The seed the faults are drawn from; a new one (printed) when not given.
    #[arg(long, env = "SOAK_SEED")]
    seed: Option<u64>,
    /// Voting members: 3 or 5.
    #[arg(long, env = "SOAK_NODES", default_value_t = 3, value_parser = nodes)]
    nodes: usize,
    /// The faults to draw from, comma-separated (default: every fault this mode can apply).
    #[arg(long, env = "SOAK_FAULTS", value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Run every node in a container of the project's image (`make image`),
    /// which makes network partitions possible (and the etcd upgrade not).
    #[arg(long, env = "SOAK_CONTAINERS")]
    containers: bool,
    /// After a total loss, acknowledged operations at most this old may be missing.
    #[arg(long, env = "SOAK_LOSS_WINDOW", default_value = "5s", value_parser = humantime::parse_duration)]
    loss_window: Duration,
    /// Bound on the cluster's return to health after each fault.
    #[arg(long, env = "SOAK_RECOVERY_TIMEOUT", default_value = "3m", value_parser = humantime::parse_duration)]
    recovery_timeout: Duration,
    /// Untouched time under load between one fault's check and the next fault.
    #[arg(long, env = "SOAK_STEADY", default_value = "5s", value_parser = humantime::parse_duration)]
    steady: Duration,
    /// Also write the summary (Markdown) to this file.
    #[arg(long, env = "SOAK_OUTPUT")]
    output: Option<std::path::PathBuf>,
}

fn nodes(text: &str) -> Result<usize, String> {
    match text {
        "3" => Ok(3),
        "5" => Ok(5),
        _ => Err(format!("{text} nodes: a cluster of etcd-aws has 3 or 5")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tokio::select! {
        code = run(args) => code,
        _ = tokio::signal::ctrl_c() => {
            // Returning drops the run's future and with it the cluster, the
            // functions and moto: every process it started stops.
            eprintln!("\ninterrupted: stopping every process the soak started");
            ExitCode::from(130)
        }
    }
}

async fn run(args: Args) -> ExitCode {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let faults: Vec<Fault> = if args.faults.is_empty() {
        Fault::ALL
            .into_iter()
            .filter(|f| f.possible(args.containers))
            .collect()
    } else {
        args.faults.clone()
    };
    if let Some(impossible) = faults.iter().find(|f| !f.possible(args.containers)) {
        eprintln!(
            "soak: {impossible} cannot run {}; {}",
            if args.containers {
                "in containers (they run the image's etcd only)"
            } else {
                "on process nodes"
            },
            if args.containers {
                "drop it from --faults"
            } else {
                "add --containers or drop it from --faults"
            }
        );
        return ExitCode::from(2);
    }
    let names: Vec<&str> = faults.iter().map(|f| f.name()).collect();
    println!(
        "soak: seed {seed}, {} nodes{}, {:?} of faults from: {}\n(replay with --seed {seed})\n",
        args.nodes,
        if args.containers {
            " in containers"
        } else {
            ""
        },
        args.duration,
        names.join(", ")
    );
    let started = Instant::now();
    let say = move |line: &str| {
        let elapsed = started.elapsed().as_secs();
        println!("[{:02}:{:02}] {line}", elapsed / 60, elapsed % 60);
    };
    let options = SoakOptions {
        duration: args.duration,
        seed,
        size: args.nodes,
        faults,
        containers: args.containers,
        loss_window: args.loss_window,
        recovery_timeout: args.recovery_timeout,
        steady: args.steady,
        lasting: Durations {
            shortest: Duration::from_secs(3),
            longest: Duration::from_secs(15),
        },
        quota_bytes: 64 * 1024 * 1024,
        backup_every: Duration::from_secs(20),
        capture_every: Duration::from_secs(5),
        maintenance_every: Duration::from_secs(2),
        reconcile_every: Duration::from_secs(10),
    };
    match soak(options, &say).await {
        Ok(outcome) => {
            println!("\n{}", outcome.summary);
            if let Some(path) = &args.output {
                if let Err(error) = std::fs::write(path, &outcome.summary) {
                    eprintln!("soak: cannot write {}: {error}", path.display());
                }
            }
            if outcome.kept {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("\nsoak FAILED (seed {seed}): {error:#}");
            ExitCode::FAILURE
        }
    }
}
