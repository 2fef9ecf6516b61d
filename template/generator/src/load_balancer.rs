//! The internal network load balancer clients use to find the cluster, and whose
//! health checks decide when autoscaling replaces a node.
//!
//! The listener passes TCP through: TLS runs end to end between the client and etcd,
//! which verifies the client's certificate (a TLS listener here would end TLS at the
//! balancer, and etcd would no longer see who the client is). Each node's certificate
//! names the balancer's DNS name, so clients can verify it through the balancer.
//!
//! The health check asks each node's agent `GET /ready` (plain HTTP on the ready port:
//! a health check cannot present the client certificate the client port requires).
//! The agent answers ready only for a voting member that serves reads, with a valid
//! certificate and no restore order holding it out, so no client is handed a learner
//! or a joiner still publishing itself. The judgement is local: a quorum loss makes no
//! node unready, since this health also decides when autoscaling replaces a node, and
//! replacing the survivors would throw away the data a recovery needs.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::reference;
use crate::names::logical::{LOAD_BALANCER, LOAD_BALANCER_SECURITY_GROUP, TARGET_GROUP};
use crate::names::ports::{CLIENT, READY};
use crate::network::{private_subnets, vpc};
use crate::options::Options;
use crate::suppressions::{metadata, Skip};

/// The agent's readiness path (`etcd-aws --ready-port`).
pub const HEALTH_CHECK_PATH: &str = "/ready";

pub fn fragment(options: &Options) -> Fragment {
    Fragment::new()
        .resource(
            LOAD_BALANCER,
            json!({
                "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
                "Metadata": metadata(&[
                    Skip {
                        check: "CKV_AWS_91",
                        reason: "Network load balancers write access logs only for TLS listeners; this one passes TCP through so that TLS runs end to end to etcd, which checks each client's certificate",
                    },
                    Skip {
                        check: "CKV_AWS_150",
                        reason: "Deleting the stack must delete the load balancer; it holds no data (the cluster's data is in the nodes and the backup bucket)",
                    },
                ]),
                "Properties": {
                    "Type": "network",
                    "Scheme": "internal",
                    "Subnets": private_subnets(options),
                    "SecurityGroups": [reference(LOAD_BALANCER_SECURITY_GROUP)],
                    "LoadBalancerAttributes": [
                        { "Key": "load_balancing.cross_zone.enabled", "Value": "true" },
                    ],
                },
            }),
        )
        .resource(
            TARGET_GROUP,
            json!({
                "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                "Properties": {
                    "VpcId": vpc(options),
                    "Protocol": "TCP",
                    "Port": CLIENT,
                    "TargetType": "instance",
                    "HealthCheckProtocol": "HTTP",
                    "HealthCheckPort": READY.to_string(),
                    "HealthCheckPath": HEALTH_CHECK_PATH,
                    "HealthCheckIntervalSeconds": 10,
                    "HealthyThresholdCount": 2,
                    "UnhealthyThresholdCount": 3,
                    "Matcher": { "HttpCode": "200" },
                    "TargetGroupAttributes": [
                        // Long enough for in-flight requests, short enough for quick node replacement.
                        { "Key": "deregistration_delay.timeout_seconds", "Value": "30" },
                    ],
                },
            }),
        )
        .resource(
            "ClientListener",
            json!({
                "Type": "AWS::ElasticLoadBalancingV2::Listener",
                "Properties": {
                    "LoadBalancerArn": reference(LOAD_BALANCER),
                    "Protocol": "TCP",
                    "Port": CLIENT,
                    "DefaultActions": [{ "Type": "forward", "TargetGroupArn": reference(TARGET_GROUP) }],
                },
            }),
        )
}
