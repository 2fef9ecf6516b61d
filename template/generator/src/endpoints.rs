//! How the private subnets reach the AWS APIs without an internet route.
//!
//! S3 always goes through a gateway endpoint: it costs nothing and keeps backup traffic
//! off the NAT gateway. In endpoints mode every other API the nodes and functions call
//! gets an interface endpoint, and the subnets have no route out at all. The
//! functions' logs need none: Lambda ships them (and the embedded metrics in them)
//! itself, outside the VPC; the nodes' logs go through the `logs` endpoint.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::{reference, sub};
use crate::names::logical::{ENDPOINT_SECURITY_GROUP, PRIVATE_ROUTE_TABLE, VPC};
use crate::network::private_subnet_refs;
use crate::options::{NetworkMode, Options};

/// The interface endpoints, by service, with who needs them.
const INTERFACE_SERVICES: &[(&str, &str)] = &[
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
    // SSM Session Manager replaces SSH.
    ("ssm", "SsmEndpoint"),
    ("ssmmessages", "SsmMessagesEndpoint"),
    ("ec2messages", "Ec2MessagesEndpoint"),
];

pub fn fragment(options: &Options) -> Fragment {
    let mut fragment = Fragment::new().resource(
        "S3GatewayEndpoint",
        json!({
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": reference(VPC),
                "ServiceName": sub("com.amazonaws.${AWS::Region}.s3"),
                "VpcEndpointType": "Gateway",
                "RouteTableIds": [reference(PRIVATE_ROUTE_TABLE)],
            },
        }),
    );
    if options.network_mode == NetworkMode::Endpoints {
        for (service, id) in INTERFACE_SERVICES {
            fragment = fragment.resource(
                id,
                json!({
                    "Type": "AWS::EC2::VPCEndpoint",
                    "Properties": {
                        "VpcId": reference(VPC),
                        "ServiceName": sub(&format!("com.amazonaws.${{AWS::Region}}.{service}")),
                        "VpcEndpointType": "Interface",
                        "PrivateDnsEnabled": true,
                        "SubnetIds": private_subnet_refs(),
                        "SecurityGroupIds": [reference(ENDPOINT_SECURITY_GROUP)],
                    },
                }),
            );
        }
    }
    fragment
}
