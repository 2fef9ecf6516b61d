//! `etcd-aws-cfn rotate-ca`: replace the cluster CA without downtime, and
//! say what clients must do.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use etcd_aws_core::contract::names::secrets;

use crate::cli::OperateArgs;
use crate::deploy::cluster_secrets::CA_VALIDITY;
use crate::operate::ca_rotation::{self, RotationSettings};

#[derive(Debug, clap::Args)]
pub struct RotateCaArgs {
    #[command(flatten)]
    pub operate: OperateArgs,
    /// Go on to the last stage: the members stop trusting the old CA, so a
    /// client still presenting a certificate of it is refused. Without it the
    /// command stops once the new CA issues every node's certificate and both
    /// are trusted, for the clients to move first; run it again with
    /// --drop-old then (or from the start when no client holds a certificate).
    #[arg(long, env = "ETCD_AWS_CA_DROP_OLD")]
    pub drop_old: bool,
    /// How long one stage may wait for every node before the command stops
    /// (run it again to carry on). Each member takes about two of its
    /// agent's --ca-poll-interval plus an etcd restart per restarting stage.
    #[arg(long, env = "ETCD_AWS_CA_STAGE_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub stage_timeout: Duration,
    /// How often the nodes' acknowledgements are read from the bucket.
    #[arg(long, env = "ETCD_AWS_CA_ROTATION_POLL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Where to write the new CA's certificate for clients (ca.pem).
    #[arg(long, env = "ETCD_AWS_NEW_CA_OUT")]
    pub ca_out: Option<std::path::PathBuf>,
}

pub async fn run(args: &RotateCaArgs) -> anyhow::Result<()> {
    let (config, parts, store) = args.operate.connect().await?;
    let stack = &args.operate.stack.stack_name;
    let settings = RotationSettings {
        stack: stack.clone(),
        group: parts.group_name.clone(),
        ca_secret: secrets::cluster_ca(stack),
        functions_secret: secrets::functions_client(stack),
        ca_validity: CA_VALIDITY,
        stage_timeout: args.stage_timeout,
        poll_interval: args.poll_interval,
    };
    let rotated = ca_rotation::rotate(&config, &store, &settings, args.drop_old).await?;
    if let Some(path) = &args.ca_out {
        std::fs::write(path, &rotated.ca_cert_pem).with_context(|| {
            format!(
                "cannot write the new CA's certificate to {}",
                path.display()
            )
        })?;
    }
    let new_ca = args.ca_out.as_ref().map_or_else(
        || "pass --ca-out to write it".to_owned(),
        |p| p.display().to_string(),
    );
    let table = if rotated.done {
        format!(
            "CA rotation {} done: every member trusts and presents the new CA only; \
             certificates of the old CA are refused from now on.\n\
             Clients trust the new CA ({new_ca}) and present a certificate it issued.\n",
            rotated.rotation
        )
    } else {
        format!(
            "CA rotation {}: the new CA issues every member's certificate, and the members trust both CAs.\n\
             Now move every client: `etcd-aws-cfn issue-client-cert --stack-name {stack} --name ... --out ...` \
             issues a certificate of the new CA and a ca.pem trusting both.\n\
             Then run `etcd-aws-cfn rotate-ca --stack-name {stack} --drop-old`: the members stop trusting the old CA.\n",
            rotated.rotation
        )
    };
    args.operate.output.print(&rotated, &table)?;
    std::io::stdout().flush().context("writing to stdout")
}
