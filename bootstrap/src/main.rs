//! `etcd-aws`: the node agent. See `etcd-aws --help`.
//!
//! This file only parses, sets up logging and the runtime, and maps the
//! outcome to an exit status; [`agent`] is the loop (the parts are in the
//! library, `lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use etcd_aws::{agent, cli};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    etcd_aws_io::logging::init(cli.log_format, etcd_aws_io::logging::LogTarget::Process);
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
