//! The Lambda entry point: configuration from the environment, then the
//! Runtime API loop over [`Lifecycle::invoke`].

use std::sync::Arc;

use aws_config::SdkConfig;
use clap::Parser;
use etcd_aws_core::contract::events;
use etcd_aws_io::etcd::admin::EtcdAccess;
use etcd_aws_io::tls::ClientTlsSource;
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
    let tls = config.tls.source();
    let access = tls
        .access(&aws, config.etcd_timeouts())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot set up TLS towards etcd");
            lambda_runtime::Error::from(e.to_string())
        })?;
    let function = Arc::new(Lifecycle::new(
        SdkAws::new(&aws),
        ClientEtcd {
            access: access.clone(),
        },
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
        let (aws, tls, access) = (aws.clone(), tls.clone(), access.clone());
        async move {
            refresh_certificate(&aws, &tls, &access).await;
            let deadline = work_deadline(event.context.deadline());
            function
                .invoke(event.payload, deadline)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

/// Reads the client certificate again before each invocation: the nodes renew
/// it while an execution environment may live for months. One GetSecretValue
/// per invocation (a reconcile every ten minutes and one per termination); a
/// failed read leaves the current certificate in use, which serves until it
/// expires.
async fn refresh_certificate(aws: &SdkConfig, tls: &ClientTlsSource, access: &EtcdAccess) {
    match tls.refresh(aws, access).await {
        Ok(true) => tracing::info!(
            event = events::CLIENT_CERTIFICATE_REFRESHED,
            "presenting the renewed client certificate from now on"
        ),
        Ok(false) => {}
        Err(error) => tracing::warn!(
            error = %error,
            "cannot read the client certificate again; the one in use serves until it expires"
        ),
    }
}
