//! The Lambda entry point: configuration from the environment, then the
//! Runtime API loop. Each event asks for a [`Job`] and gets that job's typed
//! answer (the contract in `etcd_aws_core::contract::jobs`): a backup
//! ([`run_backup`]), a maintenance run ([`run_maintenance`]), a capture run
//! ([`run_capture`]) or the cluster's status ([`run_status`]).

use std::time::Duration;

use clap::Parser;
use etcd_aws_backup::capture::run_capture;
use etcd_aws_backup::config::{init_logging, EnvConfig};
use etcd_aws_backup::maintenance::run_maintenance;
use etcd_aws_backup::run_backup;
use etcd_aws_backup::status::run_status;
use etcd_aws_core::contract::jobs::Job;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

/// Time kept back from the invocation's deadline to answer.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // A configuration error ends the init phase with its message, which
    // Lambda reports as the init error.
    let env = EnvConfig::parse();
    init_logging(env.log_format);
    let config = env.backup_config()?;
    let maintenance = env.maintenance_settings();
    let capture = env.capture_settings()?;
    let aws = etcd_aws_io::aws::env::load().await?;
    tracing::info!(
        group = %config.group_name,
        bucket = %config.bucket,
        prefix = %config.prefix,
        compression = ?config.compression,
        "etcd-aws-backup ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (config, maintenance, capture, aws) =
            (config.clone(), maintenance.clone(), capture, aws.clone());
        async move {
            let source = event
                .payload
                .get("source")
                .and_then(|s| s.as_str())
                .unwrap_or("(none)");
            let job = Job::of_payload(&event.payload).map_err(|e| {
                tracing::error!(error = %e, "unrecognised event");
                lambda_runtime::Error::from(e.to_string())
            })?;
            tracing::info!(request_id = %event.context.request_id, source, %job, "job requested");
            let left = event
                .context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(DEADLINE_MARGIN);
            let deadline = tokio::time::Instant::now() + left;
            let answer = match job {
                Job::Backup => run_backup(&config, &aws)
                    .await
                    .map_err(anyhow::Error::new)
                    .and_then(|outcome| Ok(serde_json::to_value(outcome.answer())?)),
                Job::Maintenance => run_maintenance(&config, &maintenance, &aws, deadline)
                    .await
                    .map_err(anyhow::Error::new)
                    .and_then(|answer| Ok(serde_json::to_value(answer)?)),
                Job::Status => run_status(&config, maintenance.quota_bytes, &aws)
                    .await
                    .map_err(anyhow::Error::new)
                    .and_then(|report| Ok(serde_json::to_value(report)?)),
                Job::Capture => run_capture(&config, &capture, &aws, deadline)
                    .await
                    .map_err(anyhow::Error::new)
                    .and_then(|outcome| Ok(serde_json::to_value(outcome.answer())?)),
            };
            answer.map_err(|e| {
                let e = e.context(format!("the {job} job failed"));
                tracing::error!(error = %format!("{e:#}"), "job failed");
                lambda_runtime::Error::from(format!("{e:#}"))
            })
        }
    }))
    .await
}
