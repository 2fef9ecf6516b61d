//! `etcd-aws-cfn backup`: a backup now, through the backup function, answered
//! once it is stored.

use crate::cli::OperateArgs;
use crate::operate::function::BackupFunction;
use crate::operate::progress::Progress;

/// Invokes the backup function and waits for its answer.
pub async fn run(args: &OperateArgs) -> anyhow::Result<()> {
    let (config, parts, _) = args.connect().await?;
    let progress = Progress::new();
    progress.step("backup", format!("invoking {}", parts.backup_function));
    let answer = BackupFunction::new(&config, &parts.backup_function)
        .backup()
        .await?;
    let table = format!(
        "{} {} (revision {}, {} bytes, from {}) in {:.1} s\n",
        if answer.uploaded {
            "stored"
        } else {
            "unchanged since"
        },
        answer.key,
        answer.revision,
        answer.stored_bytes,
        answer.member,
        progress.elapsed().as_secs_f64()
    );
    args.output.print(&answer, &table)
}
