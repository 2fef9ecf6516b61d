//! How every node is launched: current Amazon Linux from the public SSM parameter,
//! IMDSv2 only, encrypted root volume, no public address, and the user-data that
//! installs etcd and the agent.

use serde_json::{json, Map, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::logical::{LAUNCH_TEMPLATE, NODE_INSTANCE_PROFILE, NODE_SECURITY_GROUP};
use crate::names::parameters::IMAGE_ID;
use crate::options::Options;
use crate::user_data::user_data;

pub fn fragment(options: &Options) -> Fragment {
    let mut data = Map::new();
    data.insert("ImageId".into(), reference(IMAGE_ID));
    data.insert("InstanceType".into(), json!(options.instance_type.name()));
    data.insert(
        "IamInstanceProfile".into(),
        json!({ "Arn": get_att(NODE_INSTANCE_PROFILE, "Arn") }),
    );
    data.insert(
        "MetadataOptions".into(),
        json!({
            // IMDSv2 only: a token per session defeats SSRF reads of the role's credentials.
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            // One hop: the metadata service answers the host, not containers behind a bridge.
            "HttpPutResponseHopLimit": 1,
            "InstanceMetadataTags": "disabled",
        }),
    );
    data.insert(
        "NetworkInterfaces".into(),
        json!([{
            "DeviceIndex": 0,
            "AssociatePublicIpAddress": false,
            "Groups": [reference(NODE_SECURITY_GROUP)],
            "DeleteOnTermination": true,
        }]),
    );
    data.insert(
        "BlockDeviceMappings".into(),
        json!([{
            "DeviceName": "/dev/xvda",
            "Ebs": { "VolumeType": "gp3", "VolumeSize": 20, "Encrypted": true, "DeleteOnTermination": true },
        }]),
    );
    // Basic (five-minute) monitoring: no alarm or dashboard reads the
    // instances' EC2 metrics, and detailed monitoring bills seven custom
    // metrics a node. etcd's health comes from the maintenance runs.
    data.insert("Monitoring".into(), json!({ "Enabled": false }));
    data.insert("EbsOptimized".into(), json!(true));
    if let Some(key) = &options.key_pair {
        data.insert("KeyName".into(), json!(key));
    }
    data.insert(
        "TagSpecifications".into(),
        json!([
            { "ResourceType": "instance", "Tags": [{ "Key": "Name", "Value": sub("${AWS::StackName}-etcd") }] },
            { "ResourceType": "volume", "Tags": [{ "Key": "Name", "Value": sub("${AWS::StackName}-etcd") }] },
        ]),
    );
    data.insert("UserData".into(), user_data(options));
    Fragment::new().resource(
        LAUNCH_TEMPLATE,
        json!({
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": { "LaunchTemplateData": Value::Object(data) },
        }),
    )
}
