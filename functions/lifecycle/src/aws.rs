//! The function's seam to AWS: the group's instances, EC2's word on an instance
//! outside the group, and the lifecycle action calls.

use async_trait::async_trait;
use aws_sdk_autoscaling::error::ProvideErrorMetadata;
use etcd_aws_core::membership::instance::Instance;
use etcd_aws_io::aws::discovery::{DiscoveryError, Ec2Instance, GroupDiscovery};
use etcd_aws_io::error_chain::error_chain;

use crate::notification::TerminatingAction;

/// What AWS answers when the action was completed before (by an earlier
/// delivery of the same message) or has timed out.
const NO_ACTIVE_ACTION: &str = "No active Lifecycle Action";

#[derive(Debug, thiserror::Error)]
#[error("AWS {operation} failed: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Completed,
    /// Someone completed it first, or the hook timed out: either way the
    /// instance proceeds, which is what completing would have achieved.
    AlreadyCompleted,
}

#[async_trait]
pub trait Aws: Send + Sync {
    async fn group_instances(&self, group: &str) -> Result<Vec<Instance>, DiscoveryError>;
    async fn ec2_instance(&self, instance_id: &str) -> Result<Option<Ec2Instance>, DiscoveryError>;
    /// CompleteLifecycleAction with CONTINUE.
    async fn complete(&self, action: &TerminatingAction) -> Result<Completion, AwsError>;
    /// RecordLifecycleActionHeartbeat; `Ok(false)` when the action is no longer active.
    async fn heartbeat(&self, action: &TerminatingAction) -> Result<bool, AwsError>;
}

/// The real thing, through the SDK.
#[derive(Debug, Clone)]
pub struct SdkAws {
    discovery: GroupDiscovery,
    autoscaling: aws_sdk_autoscaling::Client,
}

impl SdkAws {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            discovery: GroupDiscovery::new(config),
            autoscaling: aws_sdk_autoscaling::Client::new(config),
        }
    }
}

#[async_trait]
impl Aws for SdkAws {
    async fn group_instances(&self, group: &str) -> Result<Vec<Instance>, DiscoveryError> {
        self.discovery.instances(group).await
    }

    async fn ec2_instance(&self, instance_id: &str) -> Result<Option<Ec2Instance>, DiscoveryError> {
        self.discovery.ec2_instance(instance_id).await
    }

    async fn complete(&self, action: &TerminatingAction) -> Result<Completion, AwsError> {
        let answer = self
            .autoscaling
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group_name)
            .lifecycle_hook_name(&action.hook_name)
            .lifecycle_action_token(&action.token)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await;
        match answer {
            Ok(_) => Ok(Completion::Completed),
            Err(e) if is_no_active_action(e.message()) => Ok(Completion::AlreadyCompleted),
            Err(e) => Err(AwsError {
                operation: "CompleteLifecycleAction",
                message: error_chain(&e),
            }),
        }
    }

    async fn heartbeat(&self, action: &TerminatingAction) -> Result<bool, AwsError> {
        let answer = self
            .autoscaling
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.group_name)
            .lifecycle_hook_name(&action.hook_name)
            .lifecycle_action_token(&action.token)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) if is_no_active_action(e.message()) => Ok(false),
            Err(e) => Err(AwsError {
                operation: "RecordLifecycleActionHeartbeat",
                message: error_chain(&e),
            }),
        }
    }
}

fn is_no_active_action(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.contains(NO_ACTIVE_ACTION))
}
