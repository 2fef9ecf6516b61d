//! The autoscaling group: `cluster size` nodes across the zones, replaced when the load
//! balancer finds them unhealthy, with a terminating lifecycle hook so their member is
//! removed before they go, and creation/update policies that wait for each node to
//! report itself a healthy voting member.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::logical::{
    AUTO_SCALING_GROUP, LAUNCH_TEMPLATE, LIFECYCLE_HOOK_NAME, LIFECYCLE_HOOK_ROLE, LIFECYCLE_QUEUE,
    TARGET_GROUP,
};
use crate::network::private_subnets;
use crate::options::Options;

/// Seconds a terminating instance is held for the lifecycle function to remove its member.
pub const HOOK_HEARTBEAT_TIMEOUT: u32 = 300;
/// How long a node has to become a healthy voting member after launch.
pub const SIGNAL_TIMEOUT: &str = "PT20M";
/// Seconds before load-balancer health counts: installing and joining take minutes.
pub const HEALTH_CHECK_GRACE_PERIOD: u32 = 900;

pub fn fragment(options: &Options) -> Fragment {
    let size = options.cluster_size.count();
    Fragment::new().resource(
        AUTO_SCALING_GROUP,
        json!({
            "Type": "AWS::AutoScaling::AutoScalingGroup",
            "CreationPolicy": {
                "ResourceSignal": { "Count": size, "Timeout": SIGNAL_TIMEOUT },
                "AutoScalingCreationPolicy": { "MinSuccessfulInstancesPercent": 100 },
            },
            "UpdatePolicy": {
                // One node at a time, the new one first: it joins and signals before an
                // old one is terminated, so the cluster never drops below its size.
                "AutoScalingRollingUpdate": {
                    "MaxBatchSize": 1,
                    "MinInstancesInService": size,
                    "PauseTime": SIGNAL_TIMEOUT,
                    "WaitOnResourceSignals": true,
                    "SuspendProcesses": [
                        "HealthCheck", "ReplaceUnhealthy", "AZRebalance",
                        "AlarmNotification", "ScheduledActions",
                    ],
                },
            },
            "Properties": {
                "LaunchTemplate": {
                    "LaunchTemplateId": reference(LAUNCH_TEMPLATE),
                    "Version": get_att(LAUNCH_TEMPLATE, "LatestVersionNumber"),
                },
                "MinSize": size.to_string(),
                // Room for the one extra node a rolling update launches.
                "MaxSize": (size + 1).to_string(),
                "DesiredCapacity": size.to_string(),
                "VPCZoneIdentifier": private_subnets(options),
                "TargetGroupARNs": [reference(TARGET_GROUP)],
                "HealthCheckType": "ELB",
                "HealthCheckGracePeriod": HEALTH_CHECK_GRACE_PERIOD,
                "MetricsCollection": [{ "Granularity": "1Minute" }],
                "LifecycleHookSpecificationList": [{
                    "LifecycleHookName": LIFECYCLE_HOOK_NAME,
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
                    "NotificationTargetARN": get_att(LIFECYCLE_QUEUE, "Arn"),
                    "RoleARN": get_att(LIFECYCLE_HOOK_ROLE, "Arn"),
                    "HeartbeatTimeout": HOOK_HEARTBEAT_TIMEOUT,
                    // Terminate anyway if the function never answers: a stuck member is
                    // removed later by the scheduled reconcile.
                    "DefaultResult": "CONTINUE",
                }],
                "Tags": [{ "Key": "Name", "Value": sub("${AWS::StackName}-etcd"), "PropagateAtLaunch": true }],
            },
        }),
    )
}
