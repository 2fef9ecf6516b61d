//! The VPC: one private subnet per availability zone for the nodes, the load balancer
//! and the functions; in NAT mode also public subnets holding one NAT gateway.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::{availability_zone, get_att, name_tags, reference};
use crate::names::logical::{PRIVATE_ROUTE_TABLE, VPC};
use crate::names::{private_subnet, public_subnet, ZONES};
use crate::options::{NetworkMode, Options};

const INTERNET_GATEWAY: &str = "InternetGateway";
const GATEWAY_ATTACHMENT: &str = "InternetGatewayAttachment";
const PUBLIC_ROUTE_TABLE: &str = "PublicRouteTable";
const NAT_ADDRESS: &str = "NatAddress";
const NAT_GATEWAY: &str = "NatGateway";

pub fn fragment(options: &Options) -> Fragment {
    let mut fragment = Fragment::new()
        .resource(
            VPC,
            json!({
                "Type": "AWS::EC2::VPC",
                "Properties": {
                    "CidrBlock": options.vpc_cidr.block(),
                    // Interface endpoints answer under the public API names only with
                    // private DNS, which needs both settings.
                    "EnableDnsSupport": true,
                    "EnableDnsHostnames": true,
                    "Tags": name_tags("vpc"),
                },
            }),
        )
        .resource(
            PRIVATE_ROUTE_TABLE,
            json!({
                "Type": "AWS::EC2::RouteTable",
                "Properties": { "VpcId": reference(VPC), "Tags": name_tags("private") },
            }),
        );
    for zone in 0..ZONES {
        let subnet = private_subnet(zone);
        fragment = fragment
            .resource(
                &subnet,
                json!({
                    "Type": "AWS::EC2::Subnet",
                    "Properties": {
                        "VpcId": reference(VPC),
                        "AvailabilityZone": availability_zone(zone),
                        "CidrBlock": options.vpc_cidr.subnet(zone as u8),
                        "MapPublicIpOnLaunch": false,
                        "Tags": name_tags(&format!("private-{}", zone + 1)),
                    },
                }),
            )
            .resource(
                &format!("{subnet}RouteTableAssociation"),
                json!({
                    "Type": "AWS::EC2::SubnetRouteTableAssociation",
                    "Properties": {
                        "SubnetId": reference(&subnet),
                        "RouteTableId": reference(PRIVATE_ROUTE_TABLE),
                    },
                }),
            );
    }
    if options.network_mode == NetworkMode::Nat {
        fragment = nat(fragment, options);
    }
    fragment
}

/// Public subnets exist only to hold the NAT gateway; nothing else is placed in them.
fn nat(mut fragment: Fragment, options: &Options) -> Fragment {
    fragment = fragment
        .resource(
            INTERNET_GATEWAY,
            json!({ "Type": "AWS::EC2::InternetGateway", "Properties": { "Tags": name_tags("igw") } }),
        )
        .resource(
            GATEWAY_ATTACHMENT,
            json!({
                "Type": "AWS::EC2::VPCGatewayAttachment",
                "Properties": { "VpcId": reference(VPC), "InternetGatewayId": reference(INTERNET_GATEWAY) },
            }),
        )
        .resource(
            PUBLIC_ROUTE_TABLE,
            json!({
                "Type": "AWS::EC2::RouteTable",
                "Properties": { "VpcId": reference(VPC), "Tags": name_tags("public") },
            }),
        )
        .resource(
            "PublicDefaultRoute",
            json!({
                "Type": "AWS::EC2::Route",
                "DependsOn": GATEWAY_ATTACHMENT,
                "Properties": {
                    "RouteTableId": reference(PUBLIC_ROUTE_TABLE),
                    "DestinationCidrBlock": "0.0.0.0/0",
                    "GatewayId": reference(INTERNET_GATEWAY),
                },
            }),
        );
    for zone in 0..ZONES {
        let subnet = public_subnet(zone);
        fragment = fragment
            .resource(
                &subnet,
                json!({
                    "Type": "AWS::EC2::Subnet",
                    "Properties": {
                        "VpcId": reference(VPC),
                        "AvailabilityZone": availability_zone(zone),
                        // Public subnets follow the private ones in the VPC block.
                        "CidrBlock": options.vpc_cidr.subnet((ZONES + zone) as u8),
                        "MapPublicIpOnLaunch": false,
                        "Tags": name_tags(&format!("public-{}", zone + 1)),
                    },
                }),
            )
            .resource(
                &format!("{subnet}RouteTableAssociation"),
                json!({
                    "Type": "AWS::EC2::SubnetRouteTableAssociation",
                    "Properties": {
                        "SubnetId": reference(&subnet),
                        "RouteTableId": reference(PUBLIC_ROUTE_TABLE),
                    },
                }),
            );
    }
    fragment
        .resource(
            NAT_ADDRESS,
            json!({
                "Type": "AWS::EC2::EIP",
                "DependsOn": GATEWAY_ATTACHMENT,
                "Properties": { "Domain": "vpc", "Tags": name_tags("nat") },
            }),
        )
        .resource(
            NAT_GATEWAY,
            json!({
                "Type": "AWS::EC2::NatGateway",
                "Properties": {
                    "AllocationId": get_att(NAT_ADDRESS, "AllocationId"),
                    "SubnetId": reference(&public_subnet(0)),
                    "Tags": name_tags("nat"),
                },
            }),
        )
        .resource(
            "PrivateDefaultRoute",
            json!({
                "Type": "AWS::EC2::Route",
                "Properties": {
                    "RouteTableId": reference(PRIVATE_ROUTE_TABLE),
                    "DestinationCidrBlock": "0.0.0.0/0",
                    "NatGatewayId": reference(NAT_GATEWAY),
                },
            }),
        )
}

/// The private subnets as a list of refs, for resources spread over every zone.
pub fn private_subnet_refs() -> serde_json::Value {
    serde_json::Value::Array((0..ZONES).map(|z| reference(&private_subnet(z))).collect())
}
