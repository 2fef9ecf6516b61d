//! The Lambda entry point: configuration from the environment, then the
//! Runtime API loop over [`run_backup`]. Any event starts a run; its content
//! only goes to the log.

use clap::Parser;
use etcd_aws_backup::config::{init_logging, EnvConfig};
use etcd_aws_backup::{run_backup, BackupAction};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // A configuration error ends the init phase with its message, which
    // Lambda reports as the init error.
    let env = EnvConfig::parse();
    init_logging(env.log_format);
    let config = env.backup_config()?;
    let aws = etcd_aws_cluster::aws_env::load().await?;
    tracing::info!(
        group = %config.group_name,
        bucket = %config.bucket,
        prefix = %config.prefix,
        compression = ?config.compression,
        "etcd-aws-backup ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (config, aws) = (config.clone(), aws.clone());
        async move {
            let source = event
                .payload
                .get("source")
                .and_then(|s| s.as_str())
                .unwrap_or("(none)");
            tracing::info!(
                request_id = %event.context.request_id,
                source,
                "backup requested"
            );
            let outcome = run_backup(&config, &aws)
                .await
                .map_err(|e| anyhow::Error::new(e).context("backup failed"))
                .map_err(|e| {
                    tracing::error!(error = %format!("{e:#}"), "backup failed");
                    lambda_runtime::Error::from(format!("{e:#}"))
                })?;
            let (uploaded, manifest) = match &outcome.action {
                BackupAction::Uploaded(m) => (true, m),
                BackupAction::Unchanged(m) => (false, m),
            };
            Ok::<Value, lambda_runtime::Error>(json!({
                "uploaded": uploaded,
                "key": manifest.key,
                "revision": manifest.revision,
                "stored_bytes": manifest.stored_bytes,
                "member": outcome.endpoint,
                "deleted": outcome.deleted,
            }))
        }
    }))
    .await
}
