//! `etcd-aws`: the node agent. See `etcd-aws --help`.
//!
//! This file only parses, sets up logging and the runtime, and maps the
//! outcome to an exit status; [`agent`] is the loop, [`policy`] what it does
//! after each outcome.

mod agent;
mod cli;
mod etcd_process;
mod exit_status;
mod join;
mod node_tls;
mod observe;
mod policy;
mod quorum_watch;
mod readiness;
mod replay;
mod restore;
mod signals;
mod wait;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    etcd_aws_cluster::logging::init(
        cli.log_format,
        etcd_aws_cluster::logging::LogTarget::Process,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("etcd-aws: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(agent::run(cli.into_config())) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "etcd-aws failed");
            ExitCode::FAILURE
        }
    }
}
