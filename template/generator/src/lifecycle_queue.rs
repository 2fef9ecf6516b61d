//! The path of a terminating instance's notification: the autoscaling lifecycle hook
//! posts to the lifecycle queue, the lifecycle function reads it, and a message that
//! keeps failing moves to a dead-letter queue (which has an alarm) instead of blocking
//! the rest or vanishing.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::get_att;
use crate::names::logical::{
    FAILED_INVOCATIONS_QUEUE, LIFECYCLE_DEAD_LETTER_QUEUE, LIFECYCLE_HOOK_ROLE, LIFECYCLE_QUEUE,
};
use crate::policy::{allow, inline, trust};
use crate::suppressions::{metadata, Skip};

/// Every queue is encrypted at rest with SQS-owned keys rather than a KMS key: the
/// autoscaling service posting lifecycle notifications then needs no key grant.
fn queue_metadata() -> serde_json::Value {
    metadata(&[Skip {
        check: "CKV_AWS_27",
        reason: "Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); this checkov check recognises only KmsMasterKeyId",
    }])
}

/// The lifecycle function's timeout in seconds.
pub const LIFECYCLE_FUNCTION_TIMEOUT: u32 = 60;
/// Receives before a message is declared poison.
pub const MAX_RECEIVE_COUNT: u32 = 5;

pub fn fragment() -> Fragment {
    Fragment::new()
        .resource(
            LIFECYCLE_QUEUE,
            json!({
                "Type": "AWS::SQS::Queue",
                "Metadata": queue_metadata(),
                "Properties": {
                    "SqsManagedSseEnabled": true,
                    // Lambda's guidance: six times the function timeout, so a batch being
                    // retried is not handed to a second invocation meanwhile.
                    "VisibilityTimeout": 6 * LIFECYCLE_FUNCTION_TIMEOUT,
                    // A lifecycle action outlives its heartbeat by at most hours; a day
                    // keeps messages through a function outage.
                    "MessageRetentionPeriod": 86_400,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": get_att(LIFECYCLE_DEAD_LETTER_QUEUE, "Arn"),
                        "maxReceiveCount": MAX_RECEIVE_COUNT,
                    },
                },
            }),
        )
        .resource(
            LIFECYCLE_DEAD_LETTER_QUEUE,
            json!({
                "Type": "AWS::SQS::Queue",
                "Metadata": queue_metadata(),
                "Properties": { "SqsManagedSseEnabled": true, "MessageRetentionPeriod": 1_209_600 },
            }),
        )
        .resource(
            // Asynchronous invocations (the schedules) that failed every retry land here.
            FAILED_INVOCATIONS_QUEUE,
            json!({
                "Type": "AWS::SQS::Queue",
                "Metadata": queue_metadata(),
                "Properties": { "SqsManagedSseEnabled": true, "MessageRetentionPeriod": 1_209_600 },
            }),
        )
        .resource(
            LIFECYCLE_HOOK_ROLE,
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Description": "Lets the autoscaling lifecycle hook post to the lifecycle queue",
                    "AssumeRolePolicyDocument": trust("autoscaling.amazonaws.com"),
                    "Policies": [inline("post-lifecycle-notifications", vec![allow(
                        "PostNotifications",
                        &["sqs:SendMessage", "sqs:GetQueueUrl"],
                        vec![get_att(LIFECYCLE_QUEUE, "Arn")],
                    )])],
                },
            }),
        )
}
