//! The backup bucket: encrypted with a key of the stack's own, versioned,
//! private, TLS only.
//!
//! The backups hold the whole database (Kubernetes Secrets included), so
//! being allowed `s3:GetObject` in the account (AWS's `ReadOnlyAccess`, say)
//! must not be enough to read them. The bucket's default encryption is
//! `BackupKey`, a customer managed key whose policy lets only the cluster use
//! it, through S3: the named operators, and the roles tagged as the stack's
//! backup users, the nodes' and the backup code's three (backup, maintenance,
//! capture; the lifecycle function never touches the bucket), which grant it
//! in their own policies too. Those
//! roles are named by their tag, not their ARN, because they refer to the
//! bucket, which refers to the key: naming them in the key policy would make
//! a cycle. The account administers the key without `kms:Decrypt` or
//! `kms:CreateGrant`, so a reader allowed `s3:GetObject` everywhere reads
//! nothing; only someone who may also tag roles (`iam:TagRole`) and grant them
//! KMS, or rewrite the key policy, could, and CloudTrail records both. S3
//! Bucket Keys keep KMS requests, and their cost, down: S3 asks KMS for a
//! bucket-level key now and then, not for each object.
//!
//! The objects that carry the operators' instructions to the nodes (the
//! restore order, the start-empty permit) may be written or deleted by the
//! operators' roles only: the nodes refuse an unsigned one anyway
//! ([`crate::order_signing`]), and the bucket policy keeps anyone else from
//! replacing or removing a signed one mid-restore, whatever a role's own
//! policy says ([`crate::backup_roles`] grants none of them the prefix).
//!
//! Retention of backups is the backup run's job (it keeps the newest N and never
//! deletes the newest valid one). The bucket's lifecycle rules only clean up after it:
//! they never expire current objects by age, because an idle cluster writes no new
//! backup and its only one would age out.
//!
//! # Immutable backups (`--backup-lock-days`, off by default)
//!
//! S3 Object Lock in governance mode, as the bucket's default retention: every
//! object version written is locked for N days, and nobody without
//! `s3:BypassGovernanceRetention` (no role of the stack has it) can remove a
//! version or shorten its lock before then. The lock covers the whole bucket,
//! not only snapshots and segments, on purpose:
//! - S3 applies a default retention to every version whoever writes it, so a
//!   writer cannot leave a snapshot unlocked by omitting a header, and no
//!   role needs `s3:PutObjectRetention` (which would let it shorten nothing,
//!   in governance mode, but lengthen locks at will).
//! - No program here removes a version. Retention and a capture's merge
//!   use DeleteObject without a version id, which on a versioned
//!   bucket adds a delete marker and succeeds on a locked version; the lock
//!   keeps the hidden version recoverable until it ends. Restore orders are
//!   advanced by rewriting them, acknowledgements and permits are never
//!   deleted: the objects under `restore/` stay as deletable as the design
//!   needs them.
//! - What it costs: each overwritten `latest.json`, manifest and order
//!   version is kept N days, a few KiB each.
//!
//! Noncurrent versions then expire no earlier than the lock ends: their
//! lifecycle rule waits the longer of the retention days and the lock days
//! (a version becomes noncurrent after it was written, so its lock has
//! ended by then). Once a bucket has Object Lock, S3 cannot turn it off.

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::logical::{BACKUP_BUCKET, BACKUP_KEY};
use crate::names::parameters::OPERATOR_ROLE_ARNS;
use crate::names::BACKUP_PREFIX;
use crate::options::Options;
use crate::order_signing;
use crate::policy::allow_when;
use crate::suppressions::{metadata, Skip};
use etcd_aws_core::backup::manifest::BackupLayout;

/// The tag that makes a role of this stack a user of the bucket's key.
pub const BACKUP_USER_TAG: &str = "etcd-aws-backup-user";

/// The tag, for the roles that read and write backups.
pub fn backup_user_tag() -> Value {
    json!({ "Key": BACKUP_USER_TAG, "Value": sub("${AWS::StackName}") })
}

/// The key's use as S3 asks for it on a role's behalf, for the roles'
/// own policies: reading a backup decrypts, writing one needs a data key.
pub fn use_backup_key(sid: &str) -> Value {
    allow_when(
        sid,
        &BACKUP_KEY_USE,
        vec![get_att(BACKUP_KEY, "Arn")],
        via_s3(),
    )
}

const BACKUP_KEY_USE: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

fn s3_service() -> Value {
    sub("s3.${AWS::Region}.amazonaws.com")
}

fn via_s3() -> Value {
    json!({ "StringEquals": { "kms:ViaService": s3_service() } })
}

/// The objects that carry the operators' instructions to the nodes: the
/// restore order and the start-empty permit.
fn instruction_objects() -> Value {
    let layout = BackupLayout::new(BACKUP_PREFIX);
    json!(
        [layout.restore_order_key(), layout.empty_start_permit_key()]
            .iter()
            .map(|key| sub(&format!("${{{BACKUP_BUCKET}.Arn}}/{key}")))
            .collect::<Vec<_>>()
    )
}

fn key_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersWithoutReading",
                "Effect": "Allow",
                "Principal": { "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                "Action": order_signing::ADMINISTRATION,
                "Resource": "*",
            },
            {
                "Sid": "TheClustersRolesReadAndWriteBackups",
                "Effect": "Allow",
                "Principal": { "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root") },
                "Action": BACKUP_KEY_USE,
                "Resource": "*",
                // Only the roles tagged as this stack's backup users, only as S3
                // asks on their behalf.
                "Condition": { "StringEquals": {
                    format!("aws:PrincipalTag/{BACKUP_USER_TAG}"): sub("${AWS::StackName}"),
                    "kms:ViaService": s3_service(),
                }},
            },
            {
                "Sid": "OperatorsReadAndWriteBackups",
                "Effect": "Allow",
                "Principal": { "AWS": reference(OPERATOR_ROLE_ARNS) },
                "Action": BACKUP_KEY_USE,
                "Resource": "*",
                "Condition": via_s3(),
            },
        ],
    })
}

/// The days a deleted or overwritten version is kept: the retention asked
/// for, and never less than its lock.
pub fn noncurrent_days(options: &Options) -> u32 {
    options
        .backup_retention_days
        .max(options.backup_lock_days.unwrap_or(0))
}

/// The bucket's Object Lock properties when immutable backups are asked
/// for; none otherwise.
fn object_lock(options: &Options) -> Vec<(&'static str, Value)> {
    match options.backup_lock_days {
        Some(days) => vec![
            ("ObjectLockEnabled", json!(true)),
            (
                "ObjectLockConfiguration",
                json!({
                    "ObjectLockEnabled": "Enabled",
                    "Rule": { "DefaultRetention": { "Mode": "GOVERNANCE", "Days": days } },
                }),
            ),
        ],
        None => Vec::new(),
    }
}

fn bucket(options: &Options) -> Value {
    let mut bucket = json!({
        "Type": "AWS::S3::Bucket",
        // The cluster's last line of defence outlives the stack that made it.
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Metadata": metadata(&[Skip {
            check: "CKV_AWS_18",
            reason: "Access logging needs a second bucket per stack; CloudTrail data events are the audit trail for a bucket only the stack's roles can write",
        }]),
        "Properties": {
            "BucketEncryption": { "ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": get_att(BACKUP_KEY, "Arn"),
                },
                "BucketKeyEnabled": true,
            }]},
            "VersioningConfiguration": { "Status": "Enabled" },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": true,
                "BlockPublicPolicy": true,
                "IgnorePublicAcls": true,
                "RestrictPublicBuckets": true,
            },
            "OwnershipControls": { "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] },
            "LifecycleConfiguration": { "Rules": [
                {
                    "Id": "expire-replaced-versions",
                    "Status": "Enabled",
                    // A backup deleted by retention (or overwritten by mistake) stays
                    // recoverable this long.
                    "NoncurrentVersionExpiration": { "NoncurrentDays": noncurrent_days(options) },
                },
                {
                    "Id": "abort-interrupted-uploads",
                    "Status": "Enabled",
                    "AbortIncompleteMultipartUpload": { "DaysAfterInitiation": 1 },
                },
                {
                    "Id": "remove-orphaned-delete-markers",
                    "Status": "Enabled",
                    "ExpiredObjectDeleteMarker": true,
                },
            ]},
            "Tags": [{ "Key": "Name", "Value": sub("${AWS::StackName}-backups") }],
        },
    });
    for (name, value) in object_lock(options) {
        bucket["Properties"][name] = value;
    }
    bucket
}

pub fn fragment(options: &Options) -> Fragment {
    Fragment::new()
        .resource(
            BACKUP_KEY,
            json!({
                "Type": "AWS::KMS::Key",
                // The backups outlive the stack (the bucket is retained); so does
                // the key that reads them.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "Description": sub("etcd-aws ${AWS::StackName}: the backup bucket's encryption; only the cluster and its operators may use it"),
                    "EnableKeyRotation": true,
                    "KeyPolicy": key_policy(),
                },
            }),
        )
        .resource(BACKUP_BUCKET, bucket(options))
        .resource(
            "BackupBucketPolicy",
            json!({
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": reference(BACKUP_BUCKET),
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Sid": "DenyPlainHttp",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [
                                get_att(BACKUP_BUCKET, "Arn"),
                                sub(&format!("${{{BACKUP_BUCKET}.Arn}}/*")),
                            ],
                            "Condition": { "Bool": { "aws:SecureTransport": "false" } },
                        }, {
                            // The nodes refuse an instruction the operators did not
                            // sign; S3 refuses anyone else writing or deleting one,
                            // whatever their own policy allows.
                            "Sid": "OnlyOperatorsWriteInstructions",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": ["s3:PutObject", "s3:DeleteObject"],
                            "Resource": instruction_objects(),
                            "Condition": { "ArnNotLike": { "aws:PrincipalArn": reference(OPERATOR_ROLE_ARNS) } },
                        }],
                    },
                },
            }),
        )
}
