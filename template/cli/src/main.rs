//! `etcd-aws-cfn`: deploys the stack of a self-healing etcd cluster and
//! operates it. Parses the command line, starts logging, runs the command
//! (each in `commands/`), and turns its outcome into the exit status.

use std::process::ExitCode;

use etcd_aws_cfn::cli::{Cli, Command};
use etcd_aws_cfn::commands::{
    backup, backups, deploy, issue_client_cert, restore, rotate_ca, start_empty, status,
};
use etcd_aws_io::logging::{self, LogTarget};

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let done = ExitCode::SUCCESS;
    match command {
        Command::Deploy(args) => deploy::run(&args).await.map(|()| done),
        Command::IssueClientCert(args) => issue_client_cert::run(&args).await.map(|()| done),
        Command::Status(args) => status::run(&args).await,
        Command::Backups { command } => backups::run(&command).await.map(|()| done),
        Command::Backup(args) => backup::run(&args).await.map(|()| done),
        Command::Restore(args) => restore::run(&args).await.map(|()| done),
        Command::StartEmpty(args) => start_empty::run(&args).await.map(|()| done),
        Command::RotateCa(args) => rotate_ca::run(&args).await.map(|()| done),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_with_default();
    logging::init(cli.log_format, LogTarget::Process);
    match run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
