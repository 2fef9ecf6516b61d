//! Who may read the cluster's secrets, as the resource policies `etcd-aws-cfn
//! deploy` puts on them decide it: the CA only the stack's nodes and the
//! operators, the functions' client certificate also the functions; nobody
//! else in the account, whatever their own policies allow. moto stores a
//! secret's resource policy without enforcing it, so the policy is evaluated
//! here as IAM evaluates a Deny with these conditions.

mod common;

use common::{action_allowed, iam_matches, of_type};
use etcd_aws_template::names::logical;
use etcd_aws_template::names::secrets::{FUNCTION_ROLE_TAG, NODE_ROLE_TAG};
use etcd_aws_template::tls_secrets::{resource_policy, secrets_key_policy, ClusterSecret, KeyHome};
use serde_json::{json, Value};

const STACK: &str = "etcd-prod";
const OPERATOR: &str = "arn:aws:iam::111122223333:role/etcd-operators";

/// A caller as IAM sees it: its role's ARN (`aws:PrincipalArn`) and tags
/// (`aws:PrincipalTag/*`).
struct Caller {
    arn: &'static str,
    tags: &'static [(&'static str, &'static str)],
}

const NODE: Caller = Caller {
    arn: "arn:aws:iam::111122223333:role/etcd-prod-NodeRole-1A2B",
    tags: &[(NODE_ROLE_TAG, STACK)],
};
const FUNCTION: Caller = Caller {
    arn: "arn:aws:iam::111122223333:role/etcd-prod-BackupFunctionRole-3C4D",
    tags: &[(FUNCTION_ROLE_TAG, STACK)],
};
const OPERATORS: Caller = Caller {
    arn: OPERATOR,
    tags: &[],
};
/// Anyone with `SecretsManagerReadWrite` or `secretsmanager:*` on `*`.
const ACCOUNT_READER: Caller = Caller {
    arn: "arn:aws:iam::111122223333:role/ReadOnlyAuditors",
    tags: &[],
};
/// Another stack's node: the right tag, the wrong stack.
const OTHER_STACKS_NODE: Caller = Caller {
    arn: "arn:aws:iam::111122223333:role/etcd-test-NodeRole-5E6F",
    tags: &[(NODE_ROLE_TAG, "etcd-test")],
};

fn policy(secret: ClusterSecret) -> Value {
    resource_policy(STACK, secret, &[OPERATOR.to_owned()])
}

/// Whether a condition operator's block holds for `caller`: every key of it
/// must (IAM ANDs the keys of a block), a key holding if any value matches
/// (or, for a negated operator, none does; an absent tag matches none).
fn block_holds(operator: &str, block: &Value, caller: &Caller) -> bool {
    block
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, values)| {
            let values: Vec<&str> = match values {
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                other => other.as_str().into_iter().collect(),
            };
            let actual: Option<&str> = match key.strip_prefix("aws:PrincipalTag/") {
                Some(tag) => caller
                    .tags
                    .iter()
                    .find(|(name, _)| *name == tag)
                    .map(|(_, value)| *value),
                None if key == "aws:PrincipalArn" => Some(caller.arn),
                None => panic!("condition key {key} is not modelled here"),
            };
            let any_match = actual.is_some_and(|actual| match operator {
                "StringNotEquals" => values.contains(&actual),
                "ArnNotLike" => values.iter().any(|pattern| iam_matches(pattern, actual)),
                other => panic!("condition operator {other} is not modelled here"),
            });
            !any_match
        })
}

/// Whether the secret's policy denies `caller` the action.
fn denied(secret: ClusterSecret, caller: &Caller, action: &str) -> bool {
    policy(secret)["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["Effect"] == "Deny" && s["Principal"] == "*")
        .filter(|s| action_allowed(s, action))
        .any(|s| {
            s["Condition"]
                .as_object()
                .into_iter()
                .flatten()
                .all(|(operator, block)| block_holds(operator, block, caller))
        })
}

#[test]
fn only_the_nodes_and_the_operators_may_read_the_ca() {
    let read = "secretsmanager:GetSecretValue";
    assert!(!denied(ClusterSecret::Ca, &NODE, read));
    assert!(!denied(ClusterSecret::Ca, &OPERATORS, read));
    for (who, caller) in [
        ("the functions", &FUNCTION),
        ("an account-wide reader", &ACCOUNT_READER),
        ("another stack's node", &OTHER_STACKS_NODE),
    ] {
        assert!(denied(ClusterSecret::Ca, caller, read), "{who}");
    }
}

#[test]
fn the_functions_certificate_is_read_by_the_nodes_the_functions_and_the_operators_only() {
    let read = "secretsmanager:GetSecretValue";
    for caller in [&NODE, &FUNCTION, &OPERATORS] {
        assert!(
            !denied(ClusterSecret::FunctionsClient, caller, read),
            "{}",
            caller.arn
        );
    }
    for caller in [&ACCOUNT_READER, &OTHER_STACKS_NODE] {
        assert!(
            denied(ClusterSecret::FunctionsClient, caller, read),
            "{}",
            caller.arn
        );
    }
}

#[test]
fn nobody_else_may_replace_a_secrets_value_either() {
    for action in [
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecret",
    ] {
        for secret in [ClusterSecret::Ca, ClusterSecret::FunctionsClient] {
            assert!(denied(secret, &ACCOUNT_READER, action), "{action}");
        }
    }
}

fn role_tags(template: &Value, role: &str) -> Vec<(String, Value)> {
    template["Resources"][role]["Properties"]["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| Some((tag["Key"].as_str()?.to_owned(), tag["Value"].clone())))
        .collect()
}

#[test]
fn the_stacks_roles_carry_the_tags_the_secret_policies_name() {
    let template = common::default_template();
    let stack = json!({ "Fn::Sub": "${AWS::StackName}" });
    assert!(role_tags(&template, logical::NODE_ROLE)
        .contains(&(NODE_ROLE_TAG.to_owned(), stack.clone())));
    let roles = of_type(&template, "AWS::IAM::Role");
    let functions: Vec<&String> = roles
        .iter()
        .filter(|(_, body)| {
            body["Properties"]["AssumeRolePolicyDocument"]
                .to_string()
                .contains("lambda.amazonaws.com")
        })
        .map(|(id, _)| *id)
        .collect();
    assert!(!functions.is_empty());
    for role in functions {
        let tags = role_tags(&template, role);
        assert!(
            tags.contains(&(FUNCTION_ROLE_TAG.to_owned(), stack.clone())),
            "{role}: {tags:?}"
        );
        assert!(
            !tags.iter().any(|(key, _)| key == NODE_ROLE_TAG),
            "{role} must not pass for a node: {tags:?}"
        );
    }
}

fn key_policy() -> Value {
    let home = KeyHome {
        partition: "aws".into(),
        account: "111122223333".into(),
        region: "eu-west-1".into(),
    };
    secrets_key_policy(&home, STACK, &[OPERATOR.to_owned()])
}

/// Whether the secrets' key policy lets `caller` use the key for `action`
/// as Secrets Manager asks (`via`: the service it asks through).
fn key_allows(caller: &Caller, action: &str, via: &str) -> bool {
    key_policy()["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["Effect"] == "Allow" && action_allowed(s, action))
        .any(|s| {
            let principal = &s["Principal"]["AWS"];
            let named = match principal {
                Value::Array(arns) => arns.iter().any(|a| a.as_str() == Some(caller.arn)),
                // The account's root: anyone of the account, if the conditions hold.
                Value::String(root) => root == "arn:aws:iam::111122223333:root",
                _ => false,
            };
            let conditions_hold = s["Condition"]["StringEquals"]
                .as_object()
                .into_iter()
                .flatten()
                .all(|(key, wanted)| {
                    let actual = match key.strip_prefix("aws:PrincipalTag/") {
                        Some(tag) => caller.tags.iter().find(|(n, _)| *n == tag).map(|(_, v)| *v),
                        None if key == "kms:ViaService" => Some(via),
                        None => panic!("condition key {key} is not modelled here"),
                    };
                    actual.is_some_and(|actual| wanted.as_str() == Some(actual))
                });
            named && conditions_hold
        })
}

#[test]
fn the_secrets_key_decrypts_for_the_stacks_roles_and_the_operators_through_secrets_manager_only() {
    let secrets_manager = "secretsmanager.eu-west-1.amazonaws.com";
    for caller in [&NODE, &FUNCTION, &OPERATORS] {
        assert!(
            key_allows(caller, "kms:Decrypt", secrets_manager),
            "{}",
            caller.arn
        );
        assert!(
            !key_allows(caller, "kms:Decrypt", "s3.eu-west-1.amazonaws.com"),
            "{}",
            caller.arn
        );
    }
    for caller in [&ACCOUNT_READER, &OTHER_STACKS_NODE] {
        assert!(
            !key_allows(caller, "kms:Decrypt", secrets_manager),
            "{}",
            caller.arn
        );
    }
}

#[test]
fn the_account_administers_the_secrets_key_without_using_or_granting_it() {
    let administration = &key_policy()["Statement"][0];
    assert_eq!(
        administration["Principal"]["AWS"],
        "arn:aws:iam::111122223333:root"
    );
    assert!(administration.get("Condition").is_none());
    for action in [
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:Encrypt",
        "kms:CreateGrant",
        "kms:ReEncryptFrom",
    ] {
        assert!(!action_allowed(administration, action), "{action}");
    }
    assert!(action_allowed(administration, "kms:PutKeyPolicy"));
}
