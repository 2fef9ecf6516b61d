//! The nodes' IAM role: find the group and its instances, read backups to restore
//! (and see which were deleted),
//! acknowledge an operator's restore and a CA rotation's stages (verifying its signature is the
//! order-signing key's policy's grant, [`crate::order_signing`]), read the cluster CA to issue themselves a certificate
//! and renew the functions', fetch the artifacts, ship their logs, signal CloudFormation,
//! and (when asked for) be reachable by Session Manager.

use serde_json::json;

use crate::backup_bucket;
use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::logical::{BACKUP_BUCKET, NODE_INSTANCE_PROFILE, NODE_LOGS, NODE_ROLE};
use crate::names::parameters::{CLUSTER_CA_SECRET_ARN, FUNCTIONS_CLIENT_SECRET_ARN};
use crate::names::{BACKUP_PREFIX, CA_ROTATION_DIR, RESTORE_DIR};
use crate::options::Options;
use crate::policy::{allow, allow_when, inline, managed, trust};
use crate::tls_secrets::{self, read_secret, renew_secret};

pub fn fragment(options: &Options) -> Fragment {
    let mut statements = vec![
        // Describe calls support no resource-level permissions: "*" is the only resource.
        allow(
            "DiscoverPeers",
            &[
                "ec2:DescribeInstances",
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeAutoScalingInstances",
            ],
            vec![json!("*")],
        ),
        allow(
            "ReadBackups",
            &["s3:GetObject"],
            vec![sub(&format!("${{{BACKUP_BUCKET}.Arn}}/{BACKUP_PREFIX}*"))],
        ),
        allow_when(
            "ListBackups",
            &["s3:ListBucket"],
            vec![get_att(BACKUP_BUCKET, "Arn")],
            json!({ "StringLike": { "s3:prefix": [format!("{BACKUP_PREFIX}*")] } }),
        ),
        // A seed that finds no snapshot looks for delete markers over the
        // backups (`backup::empty_start`): deleted backups are not a new
        // cluster. The same prefix only.
        allow_when(
            "ListDeletedBackups",
            &["s3:ListBucketVersions"],
            vec![get_att(BACKUP_BUCKET, "Arn")],
            json!({ "StringLike": { "s3:prefix": [format!("{BACKUP_PREFIX}*")] } }),
        ),
        // An operator's restore: each node says, with an empty object under the
        // order's id, that it stopped its etcd. The object is named by the
        // caller's IAM user id, `<role id>:<instance id>` for an instance's role
        // session, so a node writes its own acknowledgement and no other's.
        // Not the order itself nor the start-empty permit (`restore/<name>.json`,
        // no second level): a node writes no instruction, and an order it
        // could write, it could not sign. (`${!…}` is CloudFormation's escape:
        // the policy says `${aws:userid}`, which IAM fills in per request.)
        allow(
            "AcknowledgeRestore",
            &["s3:PutObject"],
            vec![sub(&format!(
                "${{{BACKUP_BUCKET}.Arn}}/{BACKUP_PREFIX}{RESTORE_DIR}*/${{!aws:userid}}"
            ))],
        ),
        // A CA rotation (`rotate-ca`): each node says, with an empty object
        // under the rotation's id and stage, that it serves what the stage
        // asks; named as above, so a node speaks for itself only. No
        // instruction lives there: the stages are in the CA secret, which
        // only operators write.
        allow(
            "AcknowledgeCaRotation",
            &["s3:PutObject"],
            vec![sub(&format!(
                "${{{BACKUP_BUCKET}.Arn}}/{BACKUP_PREFIX}{CA_ROTATION_DIR}*/${{!aws:userid}}"
            ))],
        ),
        // The bucket's key, as S3 uses it for the node (reading a backup,
        // writing an acknowledgement).
        backup_bucket::use_backup_key("UseBackupKey"),
        allow(
            "FetchArtifacts",
            &["s3:GetObject"],
            vec![sub(&format!(
                "arn:${{AWS::Partition}}:s3:::${{ArtifactBucket}}/{}*",
                options.artifact_prefix.as_str()
            ))],
        ),
        // The CloudWatch agent ships the node's log file: its own stream in the
        // stack's group, which exists already (nothing to create but streams).
        allow(
            "ShipNodeLogs",
            &[
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            vec![get_att(NODE_LOGS, "Arn")],
        ),
        allow(
            "SignalReadiness",
            &["cloudformation:SignalResource"],
            vec![reference("AWS::StackId")],
        ),
    ];
    // The nodes are the only readers of the CA: holding it is holding the cluster.
    statements.extend(read_secret("ReadClusterCa", CLUSTER_CA_SECRET_ARN));
    // They renew the functions' certificate from it (the functions never read the
    // CA): a node could already issue itself any client certificate, so writing
    // this one secret gives it nothing new.
    statements.extend(renew_secret(
        "RenewFunctionsCertificate",
        FUNCTIONS_CLIENT_SECRET_ARN,
    ));
    Fragment::new()
        .resource(
            NODE_ROLE,
            json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Description": "etcd nodes",
                    "Tags": [backup_bucket::backup_user_tag(), tls_secrets::node_role_tag()],
                    "AssumeRolePolicyDocument": trust("ec2.amazonaws.com"),
                    // Session Manager only when asked for (--session-manager).
                    "ManagedPolicyArns": if options.session_manager {
                        json!([managed("AmazonSSMManagedInstanceCore")])
                    } else {
                        json!([])
                    },
                    "Policies": [inline("etcd-node", statements)],
                },
            }),
        )
        .resource(
            NODE_INSTANCE_PROFILE,
            json!({
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": { "Roles": [reference(NODE_ROLE)] },
            }),
        )
}
