//! # etcd-aws-cfn
//!
//! Generates, and deploys, the CloudFormation stack of a self-healing etcd cluster:
//!
//! - a VPC over three availability zones with private subnets only (the AWS APIs are
//!   reached through VPC endpoints, or through one NAT gateway with `--network-mode nat`);
//! - an autoscaling group of 3 or 5 Amazon Linux 2023 nodes (AMI from the public SSM
//!   parameter, IMDSv2 required, no SSH unless asked for, Session Manager instead) whose
//!   user-data installs a checksum-verified etcd release and the `etcd-aws` agent from
//!   the artifact bucket and runs the agent under systemd;
//! - creation and rolling-update policies that wait for each node to signal that it is
//!   a healthy voting member, one node at a time, new node first;
//! - a terminating lifecycle hook posting to an SQS queue (with a dead-letter queue)
//!   that feeds the lifecycle function, which removes the departing member;
//! - TLS everywhere: the cluster CA and the functions' client certificate live in
//!   Secrets Manager (created by `etcd-aws-cfn` before the stack, since no node starts
//!   without the CA); each node issues itself a certificate at boot;
//! - an internal network load balancer passing TLS through on port 2379, whose local
//!   health check (plain HTTP on 2381) also decides when autoscaling replaces a node;
//! - the backup function on an EventBridge schedule, writing to an encrypted,
//!   versioned, private bucket; the lifecycle function's reconcile on another schedule;
//! - least-privilege IAM roles, alarms sent to an SNS topic with an e-mail subscription,
//!   a dashboard, and outputs (client endpoint, bucket, queue, function names).
//!
//! ## Use
//!
//! ```text
//! etcd-aws-cfn --dry-run > etcd.template               # JSON; --format yaml for YAML
//! etcd-aws-cfn --stack-name etcd --alarm-email ops@example.com \
//!     --artifact-bucket my-artifacts --etcd-sha256 <sha256 of the etcd archive>
//! ```
//!
//! Before the stack, a deploy makes sure the cluster CA and the functions' client
//! certificate exist in Secrets Manager ([`cluster_secrets`]) and passes their ARNs as
//! template parameters; `etcd-aws-cfn issue-client-cert --name alice --out DIR` issues a
//! client certificate from the CA ([`client_certificate`]).
//!
//! Without `--dry-run` the command creates or updates the stack through a change set,
//! prints the stack events as they happen, waits for the end, and exits non-zero with
//! the failing resources' reasons when the operation fails or rolls back. Every flag
//! has an environment variable (`etcd-aws-cfn --help` lists them).
//!
//! The template is built as typed Rust: [`options::Options`] holds only values that
//! produce a working stack (a cluster size of 3 or 5, an SSH source that is not the
//! internet, ...), and each file of this crate contributes one group of resources.
//! Scanner findings that do not apply are skipped in the resource's `Metadata` with the
//! reason written next to them.

pub mod alarms;
pub mod autoscaling;
pub mod backup_bucket;
pub mod client_certificate;
pub mod cluster_secrets;
pub mod dashboard;
pub mod deploy;
pub mod endpoints;
pub mod fragment;
pub mod functions;
pub mod intrinsics;
pub mod launch_template;
pub mod lifecycle_queue;
pub mod load_balancer;
pub mod names;
pub mod network;
pub mod node_role;
pub mod options;
pub mod outputs;
pub mod parameters;
pub mod policy;
pub mod render;
pub mod schedules;
pub mod security_groups;
pub mod stack_events;
pub mod suppressions;
pub mod tls_secrets;
pub mod user_data;

use serde_json::{json, Value};

pub use fragment::DuplicateId;
pub use options::{Options, OptionsError};
pub use render::{compact, render, Format, RenderError};

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
        .merge(launch_template::fragment(options))?
        .merge(lifecycle_queue::fragment())?
        .merge(autoscaling::fragment(options))?
        .merge(load_balancer::fragment())?
        .merge(functions::fragment(options))?
        .merge(schedules::fragment(options))?
        .merge(backup_bucket::fragment(options))?
        .merge(alarms::fragment(options))?
        .merge(dashboard::fragment())?
        .merge(outputs::fragment())?;
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
