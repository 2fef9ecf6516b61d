//! How the private subnets reach the AWS APIs without an internet route.
//!
//! In a VPC the stack creates, S3 always goes through a gateway endpoint: it costs
//! nothing and keeps backup traffic off the NAT gateway. In endpoints mode every other
//! API the nodes and functions call gets an interface endpoint, and the subnets have no
//! route out at all; SSM Session Manager's three only with `--session-manager`. In an
//! existing VPC the stack creates no endpoint: the deployer's network provides them. The
//! functions' logs need none: Lambda ships them (and the embedded metrics in them)
//! itself, outside the VPC; the nodes' logs go through the `logs` endpoint.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::{reference, sub};
use crate::names::logical::{ENDPOINT_SECURITY_GROUP, PRIVATE_ROUTE_TABLE};
use crate::network::{private_subnets, vpc};
use crate::options::Options;

/// The interface endpoints, by service, with who needs them: the AWS APIs the
/// nodes and functions call besides S3 (`etcd-aws-cfn deploy` checks an
/// existing VPC for the same list).
pub const INTERFACE_SERVICES: &[(&str, &str)] = &[
    // Nodes discover their peers; the lifecycle function checks instances.
    ("ec2", "Ec2Endpoint"),
    // Nodes list their group; the lifecycle function completes lifecycle actions.
    ("autoscaling", "AutoScalingEndpoint"),
    // Nodes signal the ASG's creation and update policies.
    ("cloudformation", "CloudFormationEndpoint"),
    // Nodes read the cluster CA; the functions read their client certificate.
    ("secretsmanager", "SecretsManagerEndpoint"),
    // Nodes ship their agent's and etcd's logs (the CloudWatch agent).
    ("logs", "LogsEndpoint"),
    // Nodes read the order-signing key's public half to verify an operator's
    // restore order (once per agent run, and only when an order is there).
    ("kms", "KmsEndpoint"),
];

/// SSM Session Manager's endpoints: only with `--session-manager`, since
/// they cost as much as any other endpoint whether anyone opens a session.
const SESSION_MANAGER_SERVICES: &[(&str, &str)] = &[
    ("ssm", "SsmEndpoint"),
    ("ssmmessages", "SsmMessagesEndpoint"),
    ("ec2messages", "Ec2MessagesEndpoint"),
];

pub fn fragment(options: &Options) -> Fragment {
    if options.existing_vpc.is_some() {
        // The deployer's VPC brings its own way to S3 and the APIs (checked
        // by `etcd-aws-cfn deploy` before anything is created).
        return Fragment::new();
    }
    let mut fragment = Fragment::new().resource(
        "S3GatewayEndpoint",
        json!({
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": vpc(options),
                "ServiceName": sub("com.amazonaws.${AWS::Region}.s3"),
                "VpcEndpointType": "Gateway",
                "RouteTableIds": [reference(PRIVATE_ROUTE_TABLE)],
            },
        }),
    );
    if options.creates_interface_endpoints() {
        let services = INTERFACE_SERVICES.iter().chain(
            options
                .session_manager
                .then_some(SESSION_MANAGER_SERVICES)
                .into_iter()
                .flatten(),
        );
        for (service, id) in services {
            fragment = fragment.resource(
                id,
                json!({
                    "Type": "AWS::EC2::VPCEndpoint",
                    "Properties": {
                        "VpcId": vpc(options),
                        "ServiceName": sub(&format!("com.amazonaws.${{AWS::Region}}.{service}")),
                        "VpcEndpointType": "Interface",
                        "PrivateDnsEnabled": true,
                        "SubnetIds": private_subnets(options),
                        "SecurityGroupIds": [reference(ENDPOINT_SECURITY_GROUP)],
                    },
                }),
            );
        }
    }
    fragment
}
