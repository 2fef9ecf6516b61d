//! The network: a VPC the stack creates (one private subnet per availability zone for
//! the nodes, the load balancer and the functions; in NAT mode also public subnets
//! holding one NAT gateway), or one that exists already, named by the `VpcId` and
//! `SubnetIds` parameters, where the stack creates nothing of the network at all.
//! Every other module places its resources through [`vpc`] and [`private_subnets`].

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{availability_zone, get_att, name_tags, reference};
use crate::names::logical::{PRIVATE_ROUTE_TABLE, VPC};
use crate::names::parameters::{SUBNET_IDS, VPC_ID};
use crate::names::{private_subnet, public_subnet, ZONES};
use crate::options::{ExistingVpc, NetworkMode, Options};

const INTERNET_GATEWAY: &str = "InternetGateway";
const GATEWAY_ATTACHMENT: &str = "InternetGatewayAttachment";
const PUBLIC_ROUTE_TABLE: &str = "PublicRouteTable";
const NAT_ADDRESS: &str = "NatAddress";
const NAT_GATEWAY: &str = "NatGateway";

pub fn fragment(options: &Options) -> Fragment {
    match &options.existing_vpc {
        Some(existing) => existing_vpc(existing),
        None => new_vpc(options),
    }
}

/// The VPC the resources go in.
pub fn vpc(options: &Options) -> Value {
    match options.existing_vpc {
        Some(_) => reference(VPC_ID),
        None => reference(VPC),
    }
}

/// The private subnets the nodes, the load balancer and the functions go in.
pub fn private_subnets(options: &Options) -> Value {
    match options.existing_vpc {
        Some(_) => reference(SUBNET_IDS),
        None => Value::Array((0..ZONES).map(|z| reference(&private_subnet(z))).collect()),
    }
}

/// Parameters only: the deployer's VPC and subnets, checked by CloudFormation
/// to exist (and by `etcd-aws-cfn deploy` to span the zones and reach the
/// AWS APIs) before anything is created.
fn existing_vpc(existing: &ExistingVpc) -> Fragment {
    Fragment::new()
        .parameter(
            VPC_ID,
            json!({
                "Type": "AWS::EC2::VPC::Id",
                "Description": "The existing VPC the cluster is deployed into",
                "Default": existing.vpc_id.as_str(),
            }),
        )
        .parameter(
            SUBNET_IDS,
            json!({
                "Type": "List<AWS::EC2::Subnet::Id>",
                "Description": "Three or five private subnets of the VPC, each in another availability zone, that reach S3 and the AWS APIs the nodes and functions call",
                "Default": existing.subnet_ids.ids().join(","),
            }),
        )
}

fn new_vpc(options: &Options) -> Fragment {
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
