//! The template's parameters: values a deployer can supply without regenerating it.
//!
//! The generator's flags become their defaults, so `--dry-run > etcd.template` gives a
//! template that deploys as generated, while a parameter without a default (no alarm
//! e-mail given, say) makes CloudFormation ask for it instead of deploying a stack whose
//! alarms reach nobody.

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::names::parameters::{
    ALARM_EMAIL, ARTIFACT_BUCKET, ETCD_SHA256, IMAGE_ID, QUOTA_BACKEND_BYTES, RESTORE_LEASES,
};
use crate::options::{Options, QuotaBytes};
use etcd_aws_core::backup::lease_policy::LeasePolicy;

pub fn fragment(options: &Options) -> Fragment {
    let architecture = options.instance_type.architecture();
    let image = json!({
        "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
        "Description": "Public SSM parameter naming the current Amazon Linux 2023 AMI; resolved at every stack update so nodes get patched images",
        "Default": format!(
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{}",
            architecture.ami_parameter_suffix()
        ),
    });
    let email = with_default(
        json!({
            "Type": "String",
            "Description": "E-mail address that receives the cluster's alarms (confirm the subscription mail)",
            "AllowedPattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$",
            "ConstraintDescription": "an e-mail address such as ops@example.com",
        }),
        options.alarm_email.as_deref(),
    );
    let bucket = with_default(
        json!({
            "Type": "String",
            "Description": "S3 bucket holding the function zips, the etcd-aws binary and the etcd release archive",
            "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            "ConstraintDescription": "an S3 bucket name",
        }),
        options.artifact_bucket.as_deref(),
    );
    let sha = with_default(
        json!({
            "Type": "String",
            "Description": format!(
                "SHA-256 of {}; user-data refuses an archive that does not match",
                options.etcd_version.archive_name(architecture)
            ),
            "AllowedPattern": "^[0-9a-f]{64}$",
            "ConstraintDescription": "64 lowercase hexadecimal characters",
        }),
        options.etcd_archive_sha256().as_ref().map(|s| s.as_str()),
    );
    let quota = json!({
        "Type": "Number",
        "Description": "etcd's backend quota in bytes (--quota-backend-bytes): past it the cluster raises NOSPACE and refuses writes until space is reclaimed. At most 8 GiB (etcd's advice), and below the nodes' memory",
        "Default": options.quota_backend_bytes.bytes(),
        "MinValue": QuotaBytes::MIN,
        "MaxValue": QuotaBytes::MAX,
    });
    let leases = json!({
        "Type": "String",
        "Description": "What a restore does with the leases it brings back: revoke every one before the cluster serves (their keys vanish, and a holder of a lock or an election acquires it afresh, so none that had lost it finds it again), or keep them as they were",
        "AllowedValues": LeasePolicy::ALL.map(LeasePolicy::as_str),
        "Default": options.restore_leases.as_str(),
    });
    Fragment::new()
        .parameter(IMAGE_ID, image)
        .parameter(ALARM_EMAIL, email)
        .parameter(ARTIFACT_BUCKET, bucket)
        .parameter(ETCD_SHA256, sha)
        .parameter(QUOTA_BACKEND_BYTES, quota)
        .parameter(RESTORE_LEASES, leases)
}

fn with_default(mut parameter: Value, default: Option<&str>) -> Value {
    if let (Some(default), Some(map)) = (default, parameter.as_object_mut()) {
        map.insert("Default".to_string(), Value::String(default.to_string()));
    }
    parameter
}
