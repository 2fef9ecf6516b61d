//! `etcd-aws-cfn issue-client-cert`: a client certificate from the stack's
//! cluster CA, written as files, and the etcdctl command that uses them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::client_certificate::{self, ClientCertificateRequest};

/// Who the certificate is for, how long it lasts, where it goes.
#[derive(Debug, clap::Args)]
pub struct IssueClientCertArgs {
    /// Stack whose cluster CA issues the certificate.
    #[arg(long, env = "ETCD_AWS_STACK_NAME", default_value = "etcd")]
    pub stack_name: String,
    /// Who the certificate is for (its common name, which etcd logs).
    #[arg(long, env = "ETCD_AWS_CLIENT_NAME")]
    pub name: String,
    /// How long the certificate is valid, such as 90days, 12h or 1year.
    #[arg(
        long,
        env = "ETCD_AWS_CLIENT_VALID_FOR",
        default_value = client_certificate::DEFAULT_VALIDITY,
        value_parser = humantime::parse_duration
    )]
    pub valid_for: Duration,
    /// Directory for ca.pem, cert.pem and key.pem (created if missing; the key is
    /// written readable by its owner only).
    #[arg(long, env = "ETCD_AWS_CLIENT_CERT_DIR")]
    pub out: PathBuf,
}

pub async fn run(args: &IssueClientCertArgs) -> anyhow::Result<()> {
    let config = aws_config::load_from_env().await;
    let request = ClientCertificateRequest {
        stack: args.stack_name.clone(),
        name: args.name.clone(),
        valid_for: args.valid_for,
        out: args.out.clone(),
    };
    let issued = client_certificate::issue(&config, &request).await?;
    tracing::info!(
        secret = %issued.secret,
        "issued a client certificate for {} valid until {}, written to {}",
        args.name.trim(),
        humantime::format_rfc3339_seconds(issued.not_after),
        args.out.display()
    );
    let cloudformation = aws_sdk_cloudformation::Client::new(&config);
    let endpoint = match client_certificate::client_endpoint(&cloudformation, &args.stack_name)
        .await
    {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => {
            tracing::warn!(stack = %args.stack_name, "the stack has no ClientEndpoint output yet; fill in the load balancer's DNS name below");
            client_certificate::placeholder_endpoint()
        }
        Err(error) => {
            tracing::warn!(stack = %args.stack_name, "could not read the stack's ClientEndpoint output ({error}); fill in the load balancer's DNS name below");
            client_certificate::placeholder_endpoint()
        }
    };
    let command = client_certificate::etcdctl_command(&endpoint, &issued.files);
    writeln!(std::io::stdout().lock(), "{command}").context("writing to stdout")?;
    Ok(())
}
