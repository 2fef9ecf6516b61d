//! Who may talk to whom. Every rule names its peer group; the only CIDR sources are the
//! optional, validated SSH block and HTTPS egress to the AWS APIs.
//!
//! Rules between groups are separate resources so groups can refer to each other (and
//! to themselves) without a dependency cycle.

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{name_tags, reference};
use crate::names::logical::{
    CLIENT_SECURITY_GROUP, ENDPOINT_SECURITY_GROUP, FUNCTION_SECURITY_GROUP,
    LOAD_BALANCER_SECURITY_GROUP, NODE_SECURITY_GROUP,
};
use crate::names::ports::{CLIENT, PEER, READY};
use crate::network;
use crate::options::Options;

/// HTTPS to the AWS APIs (through the endpoints or the NAT gateway).
fn https_egress() -> Value {
    json!({
        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
        "Description": "HTTPS to the AWS APIs",
    })
}

/// A rule that matches nothing: CloudFormation adds allow-all egress to a group
/// declared without egress rules, and this is how to say "none".
fn no_egress() -> Value {
    json!({
        "IpProtocol": "icmp", "FromPort": 252, "ToPort": 86, "CidrIp": "255.255.255.255/32",
        "Description": "No outbound traffic",
    })
}

fn group(vpc: &Value, description: &str, suffix: &str, egress: Vec<Value>) -> Value {
    json!({
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": description,
            "VpcId": vpc,
            "SecurityGroupEgress": egress,
            "Tags": name_tags(suffix),
        },
    })
}

fn ingress(group: &str, port: u16, from: &str, description: &str) -> Value {
    json!({
        "Type": "AWS::EC2::SecurityGroupIngress",
        "Properties": {
            "GroupId": reference(group),
            "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "SourceSecurityGroupId": reference(from),
            "Description": description,
        },
    })
}

fn egress(group: &str, port: u16, to: &str, description: &str) -> Value {
    json!({
        "Type": "AWS::EC2::SecurityGroupEgress",
        "Properties": {
            "GroupId": reference(group),
            "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "DestinationSecurityGroupId": reference(to),
            "Description": description,
        },
    })
}

pub fn fragment(options: &Options) -> Fragment {
    let vpc = network::vpc(options);
    let mut fragment = Fragment::new()
        .resource(
            NODE_SECURITY_GROUP,
            group(&vpc, "etcd nodes", "nodes", vec![https_egress()]),
        )
        .resource(
            FUNCTION_SECURITY_GROUP,
            group(
                &vpc,
                "etcd-aws Lambda functions",
                "functions",
                vec![https_egress()],
            ),
        )
        .resource(
            LOAD_BALANCER_SECURITY_GROUP,
            group(
                &vpc,
                "etcd client load balancer",
                "load-balancer",
                vec![no_egress()],
            ),
        )
        .resource(
            CLIENT_SECURITY_GROUP,
            group(
                &vpc,
                "Attach to etcd clients: lets them reach the load balancer and the members",
                "clients",
                vec![no_egress()],
            ),
        )
        .resource(
            "NodeFromNodeClient",
            ingress(
                NODE_SECURITY_GROUP,
                CLIENT,
                NODE_SECURITY_GROUP,
                "etcd clients among nodes (peer probing)",
            ),
        )
        .resource(
            "NodeFromNodePeer",
            ingress(
                NODE_SECURITY_GROUP,
                PEER,
                NODE_SECURITY_GROUP,
                "etcd peer traffic",
            ),
        )
        .resource(
            "NodeToNodeClient",
            egress(
                NODE_SECURITY_GROUP,
                CLIENT,
                NODE_SECURITY_GROUP,
                "etcd clients among nodes (peer probing)",
            ),
        )
        .resource(
            "NodeToNodePeer",
            egress(
                NODE_SECURITY_GROUP,
                PEER,
                NODE_SECURITY_GROUP,
                "etcd peer traffic",
            ),
        )
        .resource(
            "NodeFromFunctions",
            ingress(
                NODE_SECURITY_GROUP,
                CLIENT,
                FUNCTION_SECURITY_GROUP,
                "membership changes and snapshots by the functions",
            ),
        )
        .resource(
            "FunctionsToNodes",
            egress(
                FUNCTION_SECURITY_GROUP,
                CLIENT,
                NODE_SECURITY_GROUP,
                "membership changes and snapshots by the functions",
            ),
        )
        .resource(
            "NodeFromLoadBalancer",
            ingress(
                NODE_SECURITY_GROUP,
                CLIENT,
                LOAD_BALANCER_SECURITY_GROUP,
                "client traffic from the load balancer",
            ),
        )
        .resource(
            "LoadBalancerToNodes",
            egress(
                LOAD_BALANCER_SECURITY_GROUP,
                CLIENT,
                NODE_SECURITY_GROUP,
                "client traffic to the nodes",
            ),
        )
        // The health check cannot present a client certificate, so it asks the
        // agent's plain-HTTP GET /ready on the ready port instead of the client port.
        .resource(
            "NodeFromLoadBalancerHealthCheck",
            ingress(
                NODE_SECURITY_GROUP,
                READY,
                LOAD_BALANCER_SECURITY_GROUP,
                "health checks from the load balancer (the agent's GET /ready over plain HTTP)",
            ),
        )
        .resource(
            "LoadBalancerToNodesHealthCheck",
            egress(
                LOAD_BALANCER_SECURITY_GROUP,
                READY,
                NODE_SECURITY_GROUP,
                "health checks to the nodes (the agent's GET /ready over plain HTTP)",
            ),
        )
        .resource(
            "LoadBalancerFromClients",
            ingress(
                LOAD_BALANCER_SECURITY_GROUP,
                CLIENT,
                CLIENT_SECURITY_GROUP,
                "etcd clients",
            ),
        )
        .resource(
            "ClientsToLoadBalancer",
            egress(
                CLIENT_SECURITY_GROUP,
                CLIENT,
                LOAD_BALANCER_SECURITY_GROUP,
                "etcd clients",
            ),
        )
        // etcd clients learn the member list through the load balancer, then talk to the
        // members directly.
        .resource(
            "NodeFromClients",
            ingress(
                NODE_SECURITY_GROUP,
                CLIENT,
                CLIENT_SECURITY_GROUP,
                "etcd clients talking to members directly",
            ),
        )
        .resource(
            "ClientsToNodes",
            egress(
                CLIENT_SECURITY_GROUP,
                CLIENT,
                NODE_SECURITY_GROUP,
                "etcd clients talking to members directly",
            ),
        );
    if let Some(cidr) = &options.ssh_cidr {
        fragment = fragment.resource(
            "NodeFromSsh",
            json!({
                "Type": "AWS::EC2::SecurityGroupIngress",
                "Properties": {
                    "GroupId": reference(NODE_SECURITY_GROUP),
                    "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                    "CidrIp": cidr.as_str(),
                    "Description": "SSH from the operators' network",
                },
            }),
        );
    }
    if options.creates_interface_endpoints() {
        fragment = fragment
            .resource(
                ENDPOINT_SECURITY_GROUP,
                group(
                    &vpc,
                    "AWS API interface endpoints",
                    "endpoints",
                    vec![no_egress()],
                ),
            )
            .resource(
                "EndpointsFromNodes",
                ingress(
                    ENDPOINT_SECURITY_GROUP,
                    443,
                    NODE_SECURITY_GROUP,
                    "AWS API calls by the nodes",
                ),
            )
            .resource(
                "EndpointsFromFunctions",
                ingress(
                    ENDPOINT_SECURITY_GROUP,
                    443,
                    FUNCTION_SECURITY_GROUP,
                    "AWS API calls by the functions",
                ),
            );
    }
    fragment
}
