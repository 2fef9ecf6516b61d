//! What the node role may list of the backup bucket: the backups' prefix
//! only, both the objects and their versions (a seed looks for delete
//! markers before it forms an empty cluster). tests/tests/least_privilege.rs
//! shows the agent calls both; this file shows neither reaches past the prefix.

mod common;

use common::{action_allowed, default_template, iam_statements, template_for};
use etcd_aws_template::names::{logical, BACKUP_PREFIX};
use serde_json::{json, Value};

/// The node role's statements that allow `action`.
fn node_statements_allowing(template: &Value, action: &str) -> Vec<Value> {
    iam_statements(template)
        .into_iter()
        .filter(|(role, statement)| role == logical::NODE_ROLE && action_allowed(statement, action))
        .map(|(_, statement)| statement)
        .collect()
}

#[test]
fn the_nodes_list_backups_and_their_versions_under_the_backup_prefix_only() {
    for template in [
        default_template(),
        template_for(&common::everything_options()),
    ] {
        for action in ["s3:ListBucket", "s3:ListBucketVersions"] {
            let statements = node_statements_allowing(&template, action);
            assert!(!statements.is_empty(), "the node role lacks {action}");
            for statement in statements {
                assert_eq!(
                    statement["Resource"],
                    json!([{ "Fn::GetAtt": [logical::BACKUP_BUCKET, "Arn"] }]),
                    "{action}: {statement}"
                );
                assert_eq!(
                    statement["Condition"],
                    json!({ "StringLike": { "s3:prefix": [format!("{BACKUP_PREFIX}*")] } }),
                    "{action}: {statement}"
                );
                // Nothing else rides on the listing's condition.
                for other in [
                    "s3:GetObjectVersion",
                    "s3:DeleteObjectVersion",
                    "s3:ListAllMyBuckets",
                ] {
                    assert!(!action_allowed(&statement, other), "{other}: {statement}");
                }
            }
        }
    }
}

#[test]
fn the_nodes_may_neither_read_nor_delete_an_old_version() {
    // Seeing that a backup was deleted is all a seed needs; bringing it back
    // is the operator's call.
    let template = default_template();
    for action in [
        "s3:GetObjectVersion",
        "s3:DeleteObjectVersion",
        "s3:PutBucketVersioning",
    ] {
        assert!(
            node_statements_allowing(&template, action).is_empty(),
            "the node role may {action}"
        );
    }
}
