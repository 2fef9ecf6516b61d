//! `etcd-aws`: the node agent. See `etcd-aws --help`.

mod cli;
mod etcd_process;
mod join;
mod node_tls;
mod observe;
mod quorum_watch;
mod readiness;
mod restore;
mod run;
mod signals;

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
    match runtime.block_on(run::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "etcd-aws failed");
            ExitCode::FAILURE
        }
    }
}
