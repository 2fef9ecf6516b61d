//! Who may command the nodes, as the template grants it: only the named
//! operators sign with the order-signing key, the nodes only read its public
//! half, the account cannot grant itself signing through IAM, and a node may
//! write its acknowledgement of a restore but neither the order nor the
//! start-empty permit. moto does not enforce key policies, so these checks
//! are the guard; tests/tests/signed_orders.rs shows the nodes refusing what
//! the key did not sign.

mod common;

use common::{
    action_allowed, default_template, iam_matches as matches, iam_statements, resource, strings,
    template_for, user_data_script,
};
use etcd_aws_core::backup::manifest::BackupLayout;
use etcd_aws_core::certificates::ca_rotation::Stage;
use etcd_aws_core::contract::ca_rotation_acks;
use etcd_aws_core::contract::restore_order::Acknowledger;
use etcd_aws_template::fn_sub;
use etcd_aws_template::names::{logical, outputs, parameters};
use etcd_aws_template::Options;
use serde_json::{json, Value};

fn key_statements(template: &Value) -> Vec<Value> {
    resource(template, logical::ORDER_SIGNING_KEY)["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn operators() -> Value {
    json!({ "AWS": { "Ref": parameters::OPERATOR_ROLE_ARNS } })
}

#[test]
fn the_order_signing_key_is_an_ecc_p256_signing_key() {
    let template = default_template();
    let key = &resource(&template, logical::ORDER_SIGNING_KEY)["Properties"];
    assert_eq!(key["KeySpec"], "ECC_NIST_P256");
    assert_eq!(key["KeyUsage"], "SIGN_VERIFY");
}

#[test]
fn only_the_operators_may_sign_with_the_order_signing_key() {
    let statements = key_statements(&default_template());
    let signers: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow" && action_allowed(s, "kms:Sign"))
        .collect();
    assert!(!signers.is_empty(), "someone must be able to sign");
    for signer in signers {
        assert_eq!(signer["Principal"], operators(), "{signer}");
    }
}

#[test]
fn the_account_administers_the_key_but_cannot_sign_or_verify_through_iam() {
    let statements = key_statements(&default_template());
    let account = statements
        .iter()
        .find(|s| {
            s["Principal"]["AWS"]["Fn::Sub"]
                .as_str()
                .is_some_and(|p| p.ends_with(":root"))
        })
        .expect("the account administers the key");
    for action in [
        "kms:Sign",
        "kms:Verify",
        "kms:ReEncryptFrom",
        "kms:CreateGrant",
    ] {
        assert!(
            !action_allowed(account, action),
            "the account may {action}: {account}"
        );
    }
    assert!(action_allowed(account, "kms:ScheduleKeyDeletion"));
    assert!(action_allowed(account, "kms:PutKeyPolicy"));
}

#[test]
fn the_nodes_may_only_read_the_public_half_of_the_key() {
    let statements = key_statements(&default_template());
    let node = json!({ "AWS": { "Fn::GetAtt": [logical::NODE_ROLE, "Arn"] } });
    let granted: Vec<String> = statements
        .iter()
        .filter(|s| s["Principal"] == node)
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    assert_eq!(granted, vec!["kms:GetPublicKey"]);
}

#[test]
fn no_role_of_the_stack_is_granted_signing() {
    for template in [
        default_template(),
        template_for(&common::everything_options()),
    ] {
        for (role, statement) in iam_statements(&template) {
            assert!(
                !action_allowed(&statement, "kms:Sign"),
                "{role} may sign: {statement}"
            );
        }
    }
}

/// The node role's S3 write grants, as the object keys they cover under
/// the bucket (the `Fn::Sub` text after the bucket's ARN).
fn node_writes(template: &Value) -> Vec<String> {
    iam_statements(template)
        .into_iter()
        .filter(|(role, s)| role == logical::NODE_ROLE && action_allowed(s, "s3:PutObject"))
        .flat_map(|(_, s)| match &s["Resource"] {
            Value::Array(resources) => resources.clone(),
            other => vec![other.clone()],
        })
        .filter_map(|r| {
            r["Fn::Sub"]
                .as_str()
                .and_then(|text| text.split_once("/").map(|(_, key)| key.to_owned()))
        })
        .collect()
}

/// A node's role session on EC2: IAM's `aws:userid` for it is
/// `<role id>:<instance id>`.
const NODE_A: &str = "AROA3XFRBF535EXAMPLE:i-0aaa";
const NODE_B: &str = "AROA3XFRBF535EXAMPLE:i-0bbb";

/// Whether the node role lets the session `userid` write `key`, as IAM
/// decides it: CloudFormation's `Fn::Sub` first (`${!aws:userid}` becomes
/// `${aws:userid}`), then IAM's policy variable filled in per request.
fn node_may_write(template: &Value, userid: &str, key: &str) -> bool {
    node_writes(template).iter().any(|pattern| {
        let policy = fn_sub::render(pattern, &[]).unwrap_or_else(|error| panic!("{error}"));
        matches(&policy.replace("${aws:userid}", userid), key)
    })
}

#[test]
fn a_node_may_acknowledge_a_restore_but_write_neither_the_order_nor_the_permit() {
    let template = default_template();
    let ack = "backups/restore/20261207T120000Z-42/AROA3XFRBF535EXAMPLE:i-0aaa";
    assert!(node_may_write(&template, NODE_A, ack));
    for key in [
        "backups/restore/order.json",
        "backups/restore/empty-start.json",
        "backups/snapshots/x.db.zst",
    ] {
        assert!(!node_may_write(&template, NODE_A, key), "{key}");
    }
}

#[test]
fn a_node_may_not_acknowledge_for_another() {
    let template = default_template();
    let others = "backups/restore/20261207T120000Z-42/AROA3XFRBF535EXAMPLE:i-0bbb";
    assert!(node_may_write(&template, NODE_B, others));
    assert!(!node_may_write(&template, NODE_A, others));
    // Nor under a name that is no role session's, which counts for nobody.
    assert!(!node_may_write(
        &template,
        NODE_A,
        "backups/restore/20261207T120000Z-42/i-0bbb"
    ));
}

#[test]
fn a_node_may_acknowledge_a_ca_rotations_stage_for_itself_only() {
    let template = default_template();
    let layout = BackupLayout::new("backups/");
    let own = layout.ca_rotation_ack_key("20261208T040000Z", Stage::TrustBoth, NODE_A);
    let others = layout.ca_rotation_ack_key("20261208T040000Z", Stage::TrustBoth, NODE_B);
    assert!(node_may_write(&template, NODE_A, &own), "{own}");
    assert!(!node_may_write(&template, NODE_A, &others), "{others}");
    assert_eq!(
        ca_rotation_acks::acknowledging_instance(NODE_A),
        Some("i-0aaa")
    );
}

#[test]
fn the_agent_acknowledges_under_the_one_name_its_role_grants() {
    let node = Acknowledger {
        role_id: "AROA3XFRBF535EXAMPLE".into(),
        instance_id: "i-0aaa".into(),
    };
    let key = BackupLayout::new("backups").quarantine_ack_key("r1", &node);
    assert!(
        node_may_write(&default_template(), &node.name(), &key),
        "{key}"
    );
    assert_eq!(Acknowledger::instance_of(&node.name()), Some("i-0aaa"));
    assert!(
        user_data_script(&default_template()).contains("ETCD_AWS_NODE_ROLE_ID=${NodeRole.RoleId}"),
        "the agent's unit names the node role's id"
    );
}

#[test]
fn the_agent_is_told_the_key_and_the_operators_are_told_it_too() {
    let template = default_template();
    assert!(
        user_data_script(&template).contains("ETCD_AWS_ORDER_SIGNING_KEY=${OrderSigningKey.Arn}"),
        "the agent's unit names the key"
    );
    assert_eq!(
        template["Outputs"][outputs::ORDER_SIGNING_KEY_ARN]["Value"],
        json!({ "Fn::GetAtt": [logical::ORDER_SIGNING_KEY, "Arn"] })
    );
}

#[test]
fn the_operators_have_no_default_unless_the_deploy_names_them() {
    let asked = default_template();
    assert!(asked["Parameters"][parameters::OPERATOR_ROLE_ARNS]
        .get("Default")
        .is_none());
    let named = template_for(&Options {
        operator_role_arns: vec![
            "arn:aws:iam::111122223333:role/a".into(),
            "arn:aws:iam::111122223333:role/b".into(),
        ],
        ..Options::default()
    });
    assert_eq!(
        named["Parameters"][parameters::OPERATOR_ROLE_ARNS]["Default"],
        "arn:aws:iam::111122223333:role/a,arn:aws:iam::111122223333:role/b"
    );
}

#[test]
fn the_bucket_refuses_anyone_but_the_operators_writing_or_deleting_an_instruction() {
    let template = default_template();
    let statements = resource(&template, "BackupBucketPolicy")["Properties"]["PolicyDocument"]
        ["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let deny = statements
        .iter()
        .find(|s| s["Sid"] == "OnlyOperatorsWriteInstructions")
        .expect("the bucket policy guards the instructions");
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Principal"], "*");
    for action in ["s3:PutObject", "s3:DeleteObject"] {
        assert!(action_allowed(deny, action), "{action}: {deny}");
    }
    let objects: Vec<String> = deny["Resource"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["Fn::Sub"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        objects,
        vec![
            "${BackupBucket.Arn}/backups/restore/order.json",
            "${BackupBucket.Arn}/backups/restore/empty-start.json",
        ]
    );
    assert_eq!(
        deny["Condition"],
        json!({ "ArnNotLike": { "aws:PrincipalArn": { "Ref": parameters::OPERATOR_ROLE_ARNS } } })
    );
}
