//! The command line: the commands, what every operator command shares, and
//! the one rule that keeps the 2016 tool's usage: with no command,
//! `etcd-aws-cfn` deploys (`etcd-aws-cfn --dry-run`, `etcd-aws-cfn --key-pair
//! k`), exactly as `etcd-aws-cfn deploy ...` does.

use std::ffi::OsString;
use std::io::Write;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use etcd_aws_io::backup_store::BackupStore;
use etcd_aws_io::logging::LogFormat;
use etcd_aws_template::names;

use crate::commands::{
    backups, deploy, issue_client_cert, restore, rotate_ca, start_empty, status,
};
use crate::operate::stack::{StackFlags, StackParts};

/// Deploys a self-healing etcd cluster on AWS as a CloudFormation stack, and
/// operates it: status, backups, a backup now, a restore, an empty start, client
/// certificates, a CA rotation.
///
/// With no command, deploys (the flags of `etcd-aws-cfn deploy --help`).
#[derive(Debug, Parser)]
#[command(name = "etcd-aws-cfn", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: text (coloured only on a terminal) or json; levels from
    /// ETCD_AWS_LOG (RUST_LOG syntax).
    #[arg(long, global = true, env = names::env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the stack's CloudFormation template (--dry-run), or create or update the
    /// stack after making sure the cluster CA and the functions' client certificate
    /// exist. What runs when no command is given.
    Deploy(Box<deploy::DeployArgs>),
    /// Issue a client certificate from the stack's cluster CA and write ca.pem, cert.pem
    /// and key.pem for etcdctl or any etcd client.
    IssueClientCert(issue_client_cert::IssueClientCertArgs),
    /// Show every member (zone, role, leader, etcd and cluster version), the database
    /// against its quota, etcd's alarms, the newest backup, the continuous backup's
    /// loss window, the lifecycle queues and the functions' recent errors; exit 1
    /// when anything is not healthy (so it can gate a pipeline).
    ///
    /// Reads the cluster through the backup function (inside the VPC), so it works
    /// from a machine that cannot reach the members. Example:
    ///   etcd-aws-cfn status --stack-name prod --output json
    #[command(verbatim_doc_comment)]
    Status(status::StatusArgs),
    /// List the backups and the revisions a restore can reach.
    Backups {
        #[command(subcommand)]
        command: backups::BackupsCommand,
    },
    /// Take a backup now through the backup function and wait for it to be stored.
    ///
    /// Example, before a risky change:  etcd-aws-cfn backup --stack-name prod
    #[command(verbatim_doc_comment)]
    Backup(OperateArgs),
    /// Bring the running cluster back to a backup, a revision or a time.
    ///
    /// Takes a safety backup first (restoring it undoes the restore), stops every
    /// member's etcd (clients are refused until the restored cluster serves), restores
    /// the seed from the target with revisions bumped past the old ones, lets the
    /// others join, backs up the restored cluster, and reports where it went back to.
    /// Interrupted, it is run again with the same target and carries on. Examples:
    ///   etcd-aws-cfn restore --to-time 2026-12-01T09:59:00Z
    ///   etcd-aws-cfn restore --to-revision 48211 --yes
    ///   etcd-aws-cfn restore --backup backups/snapshots/20261201T093000Z-r...db.zst
    #[command(verbatim_doc_comment)]
    Restore(restore::RestoreArgs),
    /// Let the next seed form an empty cluster although the bucket holds an earlier
    /// cluster's history (captured changes, a pointer, a restore order) but no snapshot.
    ///
    /// A seed never does that by itself: it waits, logs empty_start_refused and alarms,
    /// since the snapshots may only have been moved. This abandons that history; the
    /// leave is for the history as it is now and is spent by the new cluster's first
    /// captured change. Example:
    ///   etcd-aws-cfn start-empty --stack-name prod
    #[command(verbatim_doc_comment)]
    StartEmpty(start_empty::StartEmptyArgs),
    /// Replace the cluster CA with a new one, without downtime.
    ///
    /// Puts a new CA beside the old in the CA secret; every member restarts its etcd,
    /// one at a time and the leader last (each waited on until every member is
    /// healthy), to trust both; every member and the functions then get certificates
    /// of the new CA, in place. There it stops, for the clients to move to certificates
    /// of the new CA (issue-client-cert issues them, with a ca.pem trusting both).
    /// With --drop-old it goes on: every member restarts again to trust the new CA
    /// only, and certificates of the old CA are refused. The nodes acknowledge each
    /// stage in the backup bucket; killed, it is run again and carries on. Example:
    ///   etcd-aws-cfn rotate-ca --stack-name prod --ca-out new-ca.pem
    ///   (move the clients)
    ///   etcd-aws-cfn rotate-ca --stack-name prod --drop-old
    #[command(verbatim_doc_comment)]
    RotateCa(rotate_ca::RotateCaArgs),
}

/// What every operator command needs: where the stack's parts are, how to print.
#[derive(Debug, clap::Args)]
pub struct OperateArgs {
    #[command(flatten)]
    pub stack: StackFlags,
    /// table (for people) or json (for scripts).
    #[arg(long, env = "ETCD_AWS_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

impl OperateArgs {
    /// The AWS configuration, the stack's parts and its backup bucket.
    pub async fn connect(
        &self,
    ) -> anyhow::Result<(aws_config::SdkConfig, StackParts, BackupStore)> {
        let config = aws_config::load_from_env().await;
        let parts = self.stack.resolve(&config).await?;
        let store = BackupStore::new(&config, &parts.bucket, &parts.prefix);
        Ok((config, parts, store))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Output {
    /// Prints `value` as JSON, or `table` for people.
    pub fn print(self, value: &impl serde::Serialize, table: &str) -> anyhow::Result<()> {
        let text = match self {
            Output::Json => format!("{}\n", serde_json::to_string_pretty(value)?),
            Output::Table => table.to_owned(),
        };
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing to stdout")
    }
}

impl Cli {
    /// Parses the process's arguments, with `deploy` where no command is named.
    pub fn parse_with_default() -> Self {
        Self::parse_from(with_default_command(std::env::args_os()))
    }
}

/// The arguments with `deploy` inserted where the command belongs when none
/// is named: after the program and the global options, before the first
/// other argument. `--help`, `--version` and `help` stay the root's.
pub fn with_default_command(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let root = Cli::command();
    let commands: Vec<String> = root
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .chain(["help".to_owned()])
        .collect();
    let mut at = 1;
    while let Some(arg) = args.get(at).and_then(|a| a.to_str()) {
        if arg == "--log-format" {
            at += 2;
        } else if arg.starts_with("--log-format=") {
            at += 1;
        } else {
            break;
        }
    }
    let named = args.get(at).and_then(|a| a.to_str()).is_some_and(|arg| {
        commands.iter().any(|c| c == arg) || matches!(arg, "--help" | "-h" | "--version" | "-V")
    });
    if !named {
        args.insert(at.min(args.len()), "deploy".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_of(args: &[&str]) -> Vec<String> {
        with_default_command(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn no_command_is_a_deploy() {
        assert_eq!(default_of(&["etcd-aws-cfn"]), ["etcd-aws-cfn", "deploy"]);
        assert_eq!(
            default_of(&["etcd-aws-cfn", "--dry-run", "--format", "yaml"]),
            ["etcd-aws-cfn", "deploy", "--dry-run", "--format", "yaml"]
        );
    }

    #[test]
    fn a_named_command_is_left_alone() {
        for command in ["status", "restore", "deploy", "backups", "help"] {
            assert_eq!(
                default_of(&["etcd-aws-cfn", command, "--stack-name", "x"]),
                ["etcd-aws-cfn", command, "--stack-name", "x"]
            );
        }
    }

    #[test]
    fn a_flag_value_that_names_a_command_is_no_command() {
        assert_eq!(
            default_of(&["etcd-aws-cfn", "--stack-name", "status"]),
            ["etcd-aws-cfn", "deploy", "--stack-name", "status"]
        );
    }

    #[test]
    fn the_global_log_format_comes_before_the_command() {
        assert_eq!(
            default_of(&["etcd-aws-cfn", "--log-format", "json", "status"]),
            ["etcd-aws-cfn", "--log-format", "json", "status"]
        );
        assert_eq!(
            default_of(&["etcd-aws-cfn", "--log-format=json", "--dry-run"]),
            ["etcd-aws-cfn", "--log-format=json", "deploy", "--dry-run"]
        );
    }

    #[test]
    fn the_roots_help_and_version_stay_the_roots() {
        for flag in ["--help", "-h", "--version", "-V"] {
            assert_eq!(default_of(&["etcd-aws-cfn", flag]), ["etcd-aws-cfn", flag]);
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
