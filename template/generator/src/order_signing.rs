//! Who may command the nodes: the operators named by `OperatorRoleArns`, and
//! nobody else, whatever they may write to the backup bucket.
//!
//! A restore order or a start-empty permit counts only when signed by the
//! stack's order-signing key, an ECC_NIST_P256 KMS key
//! (`etcd_aws_core::contract::signed`). Its key policy is the boundary:
//! - the operators may sign (`kms:Sign`), and read the public half;
//! - the nodes may read the public half (`kms:GetPublicKey`), to verify;
//! - the account administers the key but is given no `kms:Sign`,
//!   `kms:Verify` or `kms:CreateGrant`, so no IAM policy in the account, however wide (an
//!   `AdministratorAccess` role's `kms:*` on `*`), can sign with it. An
//!   administrator can still rewrite the key policy (`kms:PutKeyPolicy`), as
//!   with any key; CloudTrail records that.
//!
//! Nothing else is needed: a key policy that names a principal is a grant in
//! itself within the account, so neither role carries a KMS statement.

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::logical::{NODE_ROLE, ORDER_SIGNING_KEY};
use crate::names::parameters::OPERATOR_ROLE_ARNS;
use crate::options::Options;

/// What the account's root may do with a key of the cluster's: look after
/// it, not use it, and not hand its use out (no `kms:CreateGrant`: a grant
/// can allow signing or decrypting).
pub const ADMINISTRATION: &[&str] = &[
    "kms:CreateAlias",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
];

pub fn fragment(options: &Options) -> Fragment {
    let mut operators = json!({
        "Type": "CommaDelimitedList",
        "Description": "ARNs of the IAM roles whose members may order a restore or an empty start (etcd-aws-cfn restore, start-empty): only they may sign with the stack's order-signing key",
    });
    if !options.operator_role_arns.is_empty() {
        operators["Default"] = Value::String(options.operator_role_arns.join(","));
    }
    Fragment::new()
        .parameter(OPERATOR_ROLE_ARNS, operators)
        .resource(
            ORDER_SIGNING_KEY,
            json!({
                "Type": "AWS::KMS::Key",
                // A restore in progress is resumed with the orders it signed.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "Description": sub("etcd-aws ${AWS::StackName}: operators sign restore orders and start-empty permits; the nodes verify"),
                    "KeySpec": "ECC_NIST_P256",
                    "KeyUsage": "SIGN_VERIFY",
                    "KeyPolicy": key_policy(),
                },
            }),
        )
}

fn key_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersWithoutSigning",
                "Effect": "Allow",
                "Principal": { "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                "Action": ADMINISTRATION,
                "Resource": "*",
            },
            {
                "Sid": "OperatorsSign",
                "Effect": "Allow",
                "Principal": { "AWS": reference(OPERATOR_ROLE_ARNS) },
                "Action": ["kms:Sign"],
                "Resource": "*",
                "Condition": { "StringEquals": { "kms:SigningAlgorithm": "ECDSA_SHA_256" } },
            },
            {
                "Sid": "OperatorsReadThePublicKey",
                "Effect": "Allow",
                "Principal": { "AWS": reference(OPERATOR_ROLE_ARNS) },
                "Action": ["kms:GetPublicKey", "kms:DescribeKey"],
                "Resource": "*",
            },
            {
                "Sid": "NodesVerify",
                "Effect": "Allow",
                "Principal": { "AWS": get_att(NODE_ROLE, "Arn") },
                "Action": ["kms:GetPublicKey"],
                "Resource": "*",
            },
        ],
    })
}
