//! The TLS secrets as the template sees them: their ARNs as parameters, whether a
//! customer managed KMS key encrypts them, the statements that let a role read one,
//! and the resource policy on each secret that refuses its value to everyone else.
//!
//! The secrets themselves are made by `etcd-aws-cfn` before the stack (its
//! `deploy::cluster_secrets`): the creation policy waits for every node to be a
//! healthy member, and a node cannot start without the CA, so the CA must exist before
//! the first node boots. A stack resource would only be created alongside the nodes.

use serde_json::{json, Value};

use crate::fragment::Fragment;
use crate::intrinsics::{if_condition, no_value, reference, sub};
use crate::names::conditions::SECRETS_USE_CUSTOMER_KEY;
use crate::names::parameters::{
    CLUSTER_CA_SECRET_ARN, FUNCTIONS_CLIENT_SECRET_ARN, SECRETS_KMS_KEY_ARN,
};
use crate::names::secrets::{FUNCTION_ROLE_TAG, NODE_ROLE_TAG};
use crate::policy::{allow, allow_when};

const SECRET_ARN_PATTERN: &str = "^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$";
const KMS_KEY_ARN_PATTERN: &str = "^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[a-zA-Z0-9-]+)?$";

fn secret_parameter(description: &str) -> Value {
    json!({
        "Type": "String",
        "Description": description,
        "AllowedPattern": SECRET_ARN_PATTERN,
        "ConstraintDescription": "a Secrets Manager secret ARN (etcd-aws-cfn creates the secret and fills this in)",
    })
}

pub fn fragment() -> Fragment {
    Fragment::new()
        .parameter(
            CLUSTER_CA_SECRET_ARN,
            secret_parameter(
                "Secret holding the cluster CA (etcd-aws/<stack>/cluster-ca); only the nodes read it",
            ),
        )
        .parameter(
            FUNCTIONS_CLIENT_SECRET_ARN,
            secret_parameter(
                "Secret holding the functions' client certificate (etcd-aws/<stack>/functions-client)",
            ),
        )
        .parameter(
            SECRETS_KMS_KEY_ARN,
            json!({
                "Type": "String",
                "Description": "ARN of the customer managed KMS key encrypting both secrets; empty for the AWS managed key aws/secretsmanager",
                "Default": "",
                "AllowedPattern": KMS_KEY_ARN_PATTERN,
                "ConstraintDescription": "empty, or a KMS key ARN such as arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            }),
        )
        .condition(
            SECRETS_USE_CUSTOMER_KEY,
            json!({ "Fn::Not": [{ "Fn::Equals": [reference(SECRETS_KMS_KEY_ARN), ""] }] }),
        )
}

/// The statements that let a role read the secret whose ARN is the parameter
/// `secret_parameter`, and nothing else.
///
/// With the AWS managed key `aws/secretsmanager` no KMS statement is needed: that key's
/// policy lets every principal of the account use it through Secrets Manager, so
/// `GetSecretValue` on the secret is the whole permission. A customer managed key needs
/// `kms:Decrypt`, granted on that key only, only through Secrets Manager in this region
/// and only for this secret (Secrets Manager puts the secret's ARN in the encryption
/// context), so the role cannot decrypt anything else with it.
pub fn read_secret(sid: &str, secret_parameter: &str) -> Vec<Value> {
    secret_access(
        sid,
        secret_parameter,
        &["secretsmanager:GetSecretValue"],
        &["kms:Decrypt"],
    )
}

/// The statements that let a role read the secret and write a new version of its
/// value (the nodes renewing the functions' certificate), and nothing else: no
/// other secret, no deleting, no changing its key or policy. Writing with a
/// customer managed key needs `kms:GenerateDataKey`, scoped as [`read_secret`]'s
/// `kms:Decrypt` is.
pub fn renew_secret(sid: &str, secret_parameter: &str) -> Vec<Value> {
    secret_access(
        sid,
        secret_parameter,
        &[
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
        ],
        &["kms:Decrypt", "kms:GenerateDataKey"],
    )
}

fn secret_access(
    sid: &str,
    secret_parameter: &str,
    secret_actions: &[&str],
    key_actions: &[&str],
) -> Vec<Value> {
    vec![
        allow(sid, secret_actions, vec![reference(secret_parameter)]),
        if_condition(
            SECRETS_USE_CUSTOMER_KEY,
            allow_when(
                &format!("{sid}Key"),
                key_actions,
                vec![reference(SECRETS_KMS_KEY_ARN)],
                json!({ "StringEquals": {
                    "kms:ViaService": sub("secretsmanager.${AWS::Region}.amazonaws.com"),
                    "kms:EncryptionContext:SecretARN": reference(secret_parameter),
                }}),
            ),
            no_value(),
        ),
    ]
}

/// The tag that names a role as the stack's node role, for its `Tags`.
pub fn node_role_tag() -> Value {
    json!({ "Key": NODE_ROLE_TAG, "Value": sub("${AWS::StackName}") })
}

/// The tag that names a role as one of the stack's functions' roles.
pub fn function_role_tag() -> Value {
    json!({ "Key": FUNCTION_ROLE_TAG, "Value": sub("${AWS::StackName}") })
}

/// The stack's two secrets, as their resource policies tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterSecret {
    /// The CA: whoever reads it can issue a peer certificate and join.
    Ca,
    /// The functions' client certificate: whoever reads it is an etcd client.
    FunctionsClient,
}

/// What the secrets' resource policies refuse: reading the value, and
/// replacing it (a CA of someone else's, which new nodes would then trust).
pub const GUARDED_SECRET_ACTIONS: [&str; 3] = [
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
];

/// The resource policy `etcd-aws-cfn deploy` puts on `secret` of `stack`: a
/// Deny to every principal but the stack's roles that need it (by tag, since
/// the secrets exist before the roles) and the operators (by role ARN;
/// `deploy` and `issue-client-cert` read the CA as one). A Deny, so no
/// identity policy of the account, `SecretsManagerReadWrite` included, reads
/// the CA; with the AWS managed key this policy is the whole guard.
pub fn resource_policy(stack: &str, secret: ClusterSecret, operators: &[String]) -> Value {
    let readers: Vec<&str> = match secret {
        ClusterSecret::Ca => vec![NODE_ROLE_TAG],
        ClusterSecret::FunctionsClient => vec![NODE_ROLE_TAG, FUNCTION_ROLE_TAG],
    };
    let sid = match secret {
        ClusterSecret::Ca => "OnlyTheNodesAndOperatorsUseTheCa",
        ClusterSecret::FunctionsClient => "OnlyTheClusterAndOperatorsUseTheClientCertificate",
    };
    let untagged: serde_json::Map<String, Value> = readers
        .iter()
        .map(|tag| (format!("aws:PrincipalTag/{tag}"), json!(stack)))
        .collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": sid,
            "Effect": "Deny",
            "Principal": "*",
            "Action": GUARDED_SECRET_ACTIONS,
            "Resource": "*",
            // A statement's conditions must all hold: denied when the caller
            // carries none of the readers' tags and is no operator.
            "Condition": {
                "StringNotEquals": untagged,
                "ArnNotLike": { "aws:PrincipalArn": operators },
            },
        }],
    })
}

/// Where a key policy for the secrets' key applies: the account and region
/// the deploy runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHome {
    pub partition: String,
    pub account: String,
    pub region: String,
}

/// The key policy of the KMS key `etcd-aws-cfn deploy` makes for a new
/// stack's secrets (`alias/etcd-aws/<stack>/secrets`), the backup key's
/// counterpart ([`crate::backup_bucket`]): the account administers it but may
/// not use it; the stack's roles that read a secret (by the tags of
/// [`resource_policy`]) and the operators may use it only as Secrets Manager
/// asks on their behalf. An identity policy in the account, however wide,
/// decrypts nothing with it.
pub fn secrets_key_policy(home: &KeyHome, stack: &str, operators: &[String]) -> Value {
    let KeyHome {
        partition,
        account,
        region,
    } = home;
    let account_root = format!("arn:{partition}:iam::{account}:root");
    let via_secrets_manager = format!("secretsmanager.{region}.amazonaws.com");
    let tagged = |sid: &str, tag: &str| {
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": { "AWS": account_root },
            "Action": SECRETS_KEY_USE,
            "Resource": "*",
            "Condition": { "StringEquals": {
                format!("aws:PrincipalTag/{tag}"): stack,
                "kms:ViaService": via_secrets_manager,
            }},
        })
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TheAccountAdministersTheKeyButCannotUseIt",
                "Effect": "Allow",
                "Principal": { "AWS": account_root },
                "Action": crate::order_signing::ADMINISTRATION,
                "Resource": "*",
            },
            tagged("TheNodesReadAndRenewTheirSecrets", NODE_ROLE_TAG),
            tagged("TheFunctionsReadTheirCertificate", FUNCTION_ROLE_TAG),
            {
                "Sid": "OperatorsCreateAndReadTheSecrets",
                "Effect": "Allow",
                "Principal": { "AWS": operators },
                "Action": SECRETS_KEY_USE,
                "Resource": "*",
                "Condition": { "StringEquals": { "kms:ViaService": via_secrets_manager } },
            },
        ],
    })
}

/// What Secrets Manager asks of the key for a caller: decrypting a value to
/// read it, a data key to write one.
const SECRETS_KEY_USE: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];
