//! # etcd-aws-template
//!
//! Generates the CloudFormation stack of a self-healing etcd cluster:
//!
//! - the network: the subnets of an existing VPC (`--vpc-id`, `--subnet-ids`; the
//!   stack then creates no VPC, endpoint or NAT gateway), or a VPC of its own over
//!   three availability zones whose private subnets reach the AWS APIs through one
//!   NAT gateway (the default) or through interface endpoints (`--network-mode
//!   endpoints`: no internet route at all);
//! - an autoscaling group of 3 or 5 Amazon Linux 2023 nodes (AMI from the public SSM
//!   parameter, IMDSv2 required, no SSH unless asked for, Session Manager only with
//!   `--session-manager`) whose
//!   user-data installs a checksum-verified etcd release and `etcd-aws` agent from
//!   the artifact bucket and runs the agent under systemd;
//! - creation and rolling-update policies that wait for each node to signal that it is
//!   a healthy voting member, one node at a time, new node first;
//! - a terminating lifecycle hook posting to an SQS queue (with a dead-letter queue)
//!   that feeds the lifecycle function, which removes the departing member;
//! - TLS everywhere: the cluster CA and the functions' client certificate live in
//!   Secrets Manager (created by `etcd-aws-cfn` before the stack, since no node starts
//!   without the CA); each node issues itself a certificate at boot;
//! - an internal network load balancer passing TLS through on port 2379, whose health
//!   check (the agent's `GET /ready`, plain HTTP on 2382) sends clients to serving
//!   voters only;
//! - the backup function's jobs on EventBridge schedules (backups, the continuous
//!   capture every minute, maintenance), writing to an encrypted, versioned, private
//!   bucket; the lifecycle function's reconcile on another schedule;
//! - an order-signing KMS key only the named operators may sign with: the nodes
//!   obey a restore order or a start-empty permit only when it carries its
//!   signature;
//! - least-privilege IAM roles, alarms sent to an SNS topic with an e-mail subscription,
//!   a dashboard, and outputs (client endpoint, bucket, queue, function names).
//!
//! ## Use
//!
//! This crate is the generator only: [`Options`] in, the template out
//! ([`template`], then [`render`] or [`compact`]); it talks to no AWS API. The
//! `etcd-aws-cfn` command (the `template/cli` crate) prints it, deploys it and
//! provisions the secrets and client certificates a stack needs.
//!
//! The template is built as typed Rust: [`options::Options`] holds only values that
//! produce a working stack (a cluster size of 3 or 5, an SSH source that is not the
//! internet, ...), and each file of this crate contributes one group of resources.
//! Scanner findings that do not apply are skipped in the resource's `Metadata` with the
//! reason written next to them.
//!
//! It depends on `etcd-aws-core` only (the names it shares with the binaries,
//! the backup jobs its schedules ask for, the rule for etcd releases): no AWS
//! SDK, no tokio, no etcd client.
//!
//! ## Layout
//! - What goes in: [`options`] (validated settings), [`parameters`],
//!   [`names`] (every name used twice, the shared ones from the core),
//!   [`etcd_archive`] (pinned release checksums), [`artifact_pins`] (the agent's
//!   checksum, the functions' object versions).
//! - The network: [`network`], [`endpoints`], [`security_groups`],
//!   [`load_balancer`].
//! - The nodes: [`launch_template`] with [`user_data`], [`autoscaling`],
//!   [`node_role`], [`node_logs`], [`tls_secrets`].
//! - Keeping them right: [`lifecycle_queue`], [`functions`] (with
//!   [`backup_roles`], what each backup run may do in the bucket),
//!   [`schedules`], [`backup_bucket`].
//! - Watching them: [`alarms`], [`dashboard`], [`outputs`].
//! - How it is built and written: [`fragment`] (one module's share of the
//!   template), [`intrinsics`], [`policy`], [`suppressions`], [`render`](mod@render).

pub mod alarms;
pub mod artifact_pins;
pub mod autoscaling;
pub mod backup_bucket;
pub mod backup_roles;
pub mod dashboard;
pub mod endpoints;
pub mod etcd_archive;
pub mod fn_sub;
pub mod fragment;
pub mod functions;
pub mod intrinsics;
pub mod launch_template;
pub mod lifecycle_queue;
pub mod load_balancer;
pub mod names;
pub mod network;
pub mod node_logs;
pub mod node_role;
pub mod options;
pub mod order_signing;
pub mod outputs;
pub mod parameters;
pub mod policy;
pub mod render;
pub mod schedules;
pub mod security_groups;
pub mod suppressions;
pub mod tls_secrets;
pub mod user_data;

use serde_json::{json, Value};

pub use fragment::DuplicateId;
pub use options::{Options, OptionsError};
pub use render::{compact, render, Format, RenderError, TEMPLATE_BODY_LIMIT, TEMPLATE_URL_LIMIT};

/// Why no template could be built.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(transparent)]
    Options(#[from] OptionsError),
    #[error("the generator defined a logical id twice (a bug in etcd-aws-cfn): {0}")]
    Duplicate(#[from] DuplicateId),
}

/// The whole stack's template for `options`.
pub fn template(options: &Options) -> Result<Value, TemplateError> {
    options.validate()?;
    let fragment = parameters::fragment(options)
        .merge(tls_secrets::fragment())?
        .merge(network::fragment(options))?
        .merge(endpoints::fragment(options))?
        .merge(security_groups::fragment(options))?
        .merge(node_role::fragment(options))?
        .merge(order_signing::fragment(options))?
        .merge(node_logs::fragment())?
        .merge(launch_template::fragment(options))?
        .merge(lifecycle_queue::fragment())?
        .merge(autoscaling::fragment(options))?
        .merge(load_balancer::fragment(options))?
        .merge(functions::fragment(options))?
        .merge(schedules::fragment(options))?
        .merge(backup_bucket::fragment(options))?
        .merge(alarms::fragment(options))?
        .merge(dashboard::fragment())?
        .merge(outputs::fragment(options))?
        .merge(artifact_pins::fragment(options))?;
    let mut template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "Self-healing etcd {} cluster of {} nodes (generated by etcd-aws-cfn {})",
            options.etcd_version.as_str(),
            options.cluster_size,
            env!("CARGO_PKG_VERSION"),
        ),
        "Parameters": fragment.parameters,
        "Resources": fragment.resources,
        "Outputs": fragment.outputs,
    });
    if !fragment.conditions.is_empty() {
        template["Conditions"] = Value::Object(fragment.conditions);
    }
    Ok(template)
}
