//! Backups only the cluster can read: the bucket is encrypted by default
//! with the stack's own key, and that key's policy lets the nodes, the backup
//! code's three roles and the operators use it, through S3 only, and nobody else; the
//! account cannot grant reading through IAM. moto neither encrypts with a
//! customer key nor enforces key policies, so these checks are the guard.

mod common;

use common::{action_allowed, default_template, resource, strings, template_for};
use etcd_aws_template::backup_bucket::BACKUP_USER_TAG;
use etcd_aws_template::names::{logical, parameters};
use serde_json::{json, Value};

fn key_statements(template: &Value) -> Vec<Value> {
    resource(template, logical::BACKUP_KEY)["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_bucket_is_encrypted_by_default_with_the_stacks_key_and_bucket_keys() {
    let template = default_template();
    let rule = &resource(&template, logical::BACKUP_BUCKET)["Properties"]["BucketEncryption"]
        ["ServerSideEncryptionConfiguration"][0];
    assert_eq!(
        rule["ServerSideEncryptionByDefault"],
        json!({
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": { "Fn::GetAtt": [logical::BACKUP_KEY, "Arn"] },
        })
    );
    assert_eq!(rule["BucketKeyEnabled"], true);
}

#[test]
fn only_the_operators_and_the_roles_tagged_as_this_stacks_backup_users_may_decrypt_through_s3() {
    for template in [
        default_template(),
        template_for(&common::everything_options()),
    ] {
        let readers: Vec<Value> = key_statements(&template)
            .into_iter()
            .filter(|s| action_allowed(s, "kms:Decrypt"))
            .collect();
        assert_eq!(readers.len(), 2, "{readers:?}");
        for reader in &readers {
            assert_eq!(
                strings(&reader["Action"]),
                vec!["kms:Decrypt", "kms:GenerateDataKey"]
            );
            assert_eq!(
                reader["Condition"]["StringEquals"]["kms:ViaService"],
                json!({ "Fn::Sub": "s3.${AWS::Region}.amazonaws.com" })
            );
        }
        let principals: Vec<&Value> = readers.iter().map(|r| &r["Principal"]["AWS"]).collect();
        assert!(principals.contains(&&json!({ "Ref": parameters::OPERATOR_ROLE_ARNS })));
        let tagged = readers
            .iter()
            .find(|r| r["Principal"]["AWS"] != json!({ "Ref": parameters::OPERATOR_ROLE_ARNS }))
            .expect("the tagged roles' statement");
        assert_eq!(
            tagged["Condition"]["StringEquals"][format!("aws:PrincipalTag/{BACKUP_USER_TAG}")],
            json!({ "Fn::Sub": "${AWS::StackName}" })
        );
    }
}

#[test]
fn exactly_the_node_role_and_the_backup_codes_three_roles_carry_the_backup_user_tag_and_a_grant_on_the_key(
) {
    let template = default_template();
    let mut tagged: Vec<String> = common::of_type(&template, "AWS::IAM::Role")
        .into_iter()
        .filter(|(_, role)| {
            role["Properties"]["Tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t["Key"] == BACKUP_USER_TAG))
        })
        .map(|(id, _)| id.clone())
        .collect();
    tagged.sort();
    assert_eq!(
        tagged,
        vec![
            logical::BACKUP_FUNCTION_ROLE,
            logical::CAPTURE_FUNCTION_ROLE,
            logical::MAINTENANCE_FUNCTION_ROLE,
            logical::NODE_ROLE
        ]
    );
    let mut granted: Vec<String> = common::iam_statements(&template)
        .into_iter()
        .filter(|(_, s)| s["Resource"] == json!([{ "Fn::GetAtt": [logical::BACKUP_KEY, "Arn"] }]))
        .map(|(role, _)| role)
        .collect();
    granted.sort();
    assert_eq!(granted, tagged);
}

#[test]
fn the_account_administers_the_backup_key_but_reads_with_it_only_as_a_tagged_role() {
    for statement in key_statements(&default_template()) {
        let is_account = statement["Principal"]["AWS"]["Fn::Sub"]
            .as_str()
            .is_some_and(|p| p.ends_with(":root"));
        if !is_account {
            continue;
        }
        // A grant could hand out decrypting: no CreateGrant at all.
        assert!(
            !action_allowed(&statement, "kms:CreateGrant"),
            "{statement}"
        );
        let tag_bound = !statement["Condition"]["StringEquals"]
            [format!("aws:PrincipalTag/{BACKUP_USER_TAG}")]
        .is_null();
        if !tag_bound {
            for action in ["kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey"] {
                assert!(!action_allowed(&statement, action), "{action}: {statement}");
            }
        }
    }
}
