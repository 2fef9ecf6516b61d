//! The Lambda entry point: configuration from the environment, then the
//! Runtime API loop over [`Lifecycle::invoke`].

use std::sync::Arc;

use clap::Parser;
use etcd_aws_lifecycle::aws::SdkAws;
use etcd_aws_lifecycle::config::{init_logging, Config};
use etcd_aws_lifecycle::etcd::ClientEtcd;
use etcd_aws_lifecycle::handler::Lifecycle;
use etcd_aws_lifecycle::invocation::work_deadline;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // A configuration error ends the init phase with clap's message, which
    // Lambda reports as the init error.
    let config = Config::parse();
    init_logging(config.log_format);
    let aws = etcd_aws_io::aws::env::load().await?;
    // Read once per cold start: a re-issued certificate arrives with the next
    // execution environment.
    let access = config
        .tls
        .source()
        .access(&aws, config.etcd_timeouts())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot set up TLS towards etcd");
            lambda_runtime::Error::from(e.to_string())
        })?;
    let function = Arc::new(Lifecycle::new(
        SdkAws::new(&aws),
        ClientEtcd { access },
        config.settings(),
    ));
    tracing::info!(
        group = config
            .group_name
            .as_deref()
            .unwrap_or("(from each message)"),
        client_port = config.client_port,
        "etcd-aws-lifecycle ready"
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let function = Arc::clone(&function);
        async move {
            let deadline = work_deadline(event.context.deadline());
            function
                .invoke(event.payload, deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
