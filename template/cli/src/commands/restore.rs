//! `etcd-aws-cfn restore`: bring the running cluster back to a backup, a
//! revision or a time ([`RestoreRun`] carries it out; a killed run carries on
//! when run again with the same target).

use std::time::Duration;

use anyhow::{bail, Context};
use etcd_aws_io::aws::discovery::GroupDiscovery;

use crate::cli::OperateArgs;
use crate::operate::confirm;
use crate::operate::function::BackupFunction;
use crate::operate::progress::Progress;
use crate::operate::restore::{self, Requested, RestoreRun, Waits};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_time", "to_revision", "backup"])))]
pub struct RestoreArgs {
    #[command(flatten)]
    pub operate: OperateArgs,
    /// Go back to the last change acknowledged by this time (RFC 3339, UTC).
    #[arg(long, env = "ETCD_AWS_RESTORE_TO_TIME", value_parser = humantime::parse_rfc3339_weak)]
    pub to_time: Option<std::time::SystemTime>,
    /// Go back to exactly this revision of the cluster.
    #[arg(long, env = "ETCD_AWS_RESTORE_TO_REVISION")]
    pub to_revision: Option<i64>,
    /// Go back to exactly this snapshot (its key, from `backups list`), without the
    /// changes captured after it.
    #[arg(long, env = "ETCD_AWS_RESTORE_BACKUP")]
    pub backup: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, env = "ETCD_AWS_YES")]
    pub yes: bool,
    /// Bound on each wait: every node stopping, the restored cluster becoming whole.
    #[arg(long, env = "ETCD_AWS_RESTORE_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How often the progress is read.
    #[arg(long, env = "ETCD_AWS_RESTORE_POLL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
}

/// Resolves the target, asks for confirmation, and runs the restore to its end.
pub async fn run(args: &RestoreArgs) -> anyhow::Result<()> {
    let (config, parts, store) = args.operate.connect().await?;
    let requested = match (&args.backup, args.to_revision, args.to_time) {
        (Some(key), _, _) => Requested::Backup(key.clone()),
        (None, Some(revision), _) => Requested::Revision(revision),
        (None, None, Some(time)) => Requested::Time(
            time.duration_since(std::time::UNIX_EPOCH)
                .context("--to-time is before 1970")?
                .as_millis() as i64,
        ),
        (None, None, None) => bail!("give --to-time, --to-revision or --backup"),
    };
    let resolved = restore::resolve(&store, &requested).await?;
    tracing::info!(
        "restoring group {} to {}",
        parts.group_name,
        resolved.described
    );
    if !args.yes {
        confirm::by_group_name(
            &parts.group_name,
            &format!(
                "a restore replaces the data of every member of {}",
                parts.group_name
            ),
        )?;
    }
    let function = BackupFunction::new(&config, &parts.backup_function);
    let signing = args.operate.stack.order_key(&config, &parts)?;
    let progress = Progress::new();
    let run = RestoreRun {
        store: &store,
        signing: &signing,
        function: &function,
        discovery: GroupDiscovery::new(&config),
        group: parts.group_name.clone(),
        waits: Waits {
            poll: args.poll,
            timeout: args.timeout,
        },
        progress: &progress,
    };
    let outcome = run.run(&resolved).await?;
    let out = outcome.clients_out_seconds.map_or_else(String::new, |s| {
        format!("; clients were refused for {s:.1} s")
    });
    let table = format!(
        "restored to {} (revision {}, acknowledged at {}) as cluster {} in {:.1} s{out}\nundo with: etcd-aws-cfn restore --backup {}\n",
        outcome.target,
        outcome.revision,
        outcome.time.as_deref().unwrap_or("an unrecorded time"),
        outcome
            .cluster_id
            .map_or_else(|| "(unrecorded)".to_owned(), |id| id.to_string()),
        progress.elapsed().as_secs_f64(),
        outcome.safety_backup
    );
    args.operate.output.print(&outcome, &table)
}
