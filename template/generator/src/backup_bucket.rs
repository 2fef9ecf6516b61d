//! The backup bucket: encrypted, versioned, private, TLS only.
//!
//! Retention of backups is the backup function's job (it keeps the newest N and never
//! deletes the newest valid one). The bucket's lifecycle rules only clean up after it:
//! they never expire current objects by age, because an idle cluster writes no new
//! backup and its only one would age out.

use serde_json::json;

use crate::fragment::Fragment;
use crate::intrinsics::{get_att, reference, sub};
use crate::names::logical::BACKUP_BUCKET;
use crate::options::Options;
use crate::suppressions::{metadata, Skip};

pub fn fragment(options: &Options) -> Fragment {
    Fragment::new()
        .resource(
            BACKUP_BUCKET,
            json!({
                "Type": "AWS::S3::Bucket",
                // The cluster's last line of defence outlives the stack that made it.
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Metadata": metadata(&[Skip {
                    check: "CKV_AWS_18",
                    reason: "Access logging needs a second bucket per stack; CloudTrail data events are the audit trail for a bucket only two roles can write",
                }]),
                "Properties": {
                    "BucketEncryption": { "ServerSideEncryptionConfiguration": [{
                        "ServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms" },
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
                            "NoncurrentVersionExpiration": { "NoncurrentDays": options.backup_retention_days },
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
            }),
        )
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
                        }],
                    },
                },
            }),
        )
}
