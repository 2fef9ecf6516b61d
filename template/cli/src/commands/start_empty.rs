//! `etcd-aws-cfn start-empty`: the operator's leave for the next seed to form
//! an empty cluster although the bucket holds an earlier cluster's history
//! but no snapshot ([`etcd_aws_core::backup::empty_start`]). It abandons that
//! history, so it asks first, and the permit names the history exactly as it
//! is now: it is spent by the new cluster's first captured change.

use anyhow::bail;
use etcd_aws_core::backup::empty_start::{self, EmptyStart, EmptyStartPermit};
use etcd_aws_core::clock;
use serde::Serialize;

use crate::cli::OperateArgs;
use crate::operate::confirm;

#[derive(Debug, clap::Args)]
pub struct StartEmptyArgs {
    #[command(flatten)]
    pub operate: OperateArgs,
    /// Do not ask for confirmation.
    #[arg(long, env = "ETCD_AWS_YES")]
    pub yes: bool,
}

/// What was written.
#[derive(Debug, Serialize)]
struct Written {
    key: String,
    permit: EmptyStartPermit,
}

/// Writes the permit, after checking there is something to abandon and
/// nothing a seed would restore instead.
pub async fn run(args: &StartEmptyArgs) -> anyhow::Result<()> {
    let (config, parts, store) = args.operate.connect().await?;
    let signing = args.operate.stack.order_key(&config, &parts)?;
    let snapshots = store.manifests().await?;
    if let Some(newest) = snapshots.first() {
        bail!(
            "the bucket holds {} snapshots (the newest {}, revision {}): a seed restores the newest by itself; \
             to go back to another use `etcd-aws-cfn restore`",
            snapshots.len(),
            newest.key,
            newest.revision
        );
    }
    let history = store.history().await?;
    if empty_start::decide(&history, None) == EmptyStart::Form {
        bail!("the bucket holds nothing of an earlier cluster: a seed forms an empty cluster by itself, no permit is needed");
    }
    tracing::info!(
        "abandoning the history in s3://{}/{}: {}",
        store.bucket(),
        store.layout().prefix(),
        history.describe()
    );
    if !args.yes {
        confirm::by_group_name(
            &parts.group_name,
            &format!(
                "starting {} empty abandons what the bucket holds of its earlier cluster",
                parts.group_name
            ),
        )?;
    }
    let permit = EmptyStartPermit {
        history: history.describe(),
        by: operator(),
        at: clock::now_unix_seconds(),
    };
    // Signed, or no node takes it: the key's policy lets only operators sign.
    store
        .put_empty_start_permit(&signing.sign(&permit).await?)
        .await?;
    let key = store.layout().empty_start_permit_key();
    let table = format!(
        "wrote {key}: the next seed of {} forms an empty cluster (a waiting one within its poll interval)\n",
        parts.group_name
    );
    args.operate.output.print(&Written { key, permit }, &table)
}

/// Who runs the command, as the permit records it (CloudTrail's data events
/// name the AWS identity that wrote it).
fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}
