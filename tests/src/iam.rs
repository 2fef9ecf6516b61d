//! IAM as the generated template grants it: which action an API call needs, the
//! statements of each role, and whether a statement's action patterns allow an
//! action. Enough of IAM to compare what the programs call with what their roles
//! allow, counting what a KMS key's policy grants a role by name; conditions
//! and resources are left to the template's own scans.

use std::fmt;

use serde_json::Value;

/// The IAM action an API call is authorised as. Most are `service:Operation`;
/// S3's are not, per the S3 User Guide's "Required permissions for Amazon S3
/// API operations": multipart uploads are authorised as `s3:PutObject`, listing
/// as `s3:ListBucket`, reading metadata as `s3:GetObject`.
pub fn iam_action(service: &str, operation: &str) -> String {
    let s3 = |action: &str| format!("s3:{action}");
    match (service, operation) {
        ("s3", "ListObjectsV2" | "ListObjects" | "HeadBucket") => s3("ListBucket"),
        ("s3", "ListObjectVersions") => s3("ListBucketVersions"),
        ("s3", "ListMultipartUploads") => s3("ListBucketMultipartUploads"),
        ("s3", "ListParts") => s3("ListMultipartUploadParts"),
        (
            "s3",
            "PutObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "CompleteMultipartUpload"
            | "CopyObject",
        ) => s3("PutObject"),
        ("s3", "GetObject" | "HeadObject") => s3("GetObject"),
        ("s3", "DeleteObject" | "DeleteObjects") => s3("DeleteObject"),
        ("s3", "PutBucketLifecycleConfiguration") => s3("PutLifecycleConfiguration"),
        _ => format!("{service}:{operation}"),
    }
}

/// Whether the IAM action pattern `pattern` (`*` and `?` wildcards, case
/// insensitive, as IAM matches actions) covers `action`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let action: Vec<char> = action.to_ascii_lowercase().chars().collect();
    glob(&pattern, &action)
}

fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((first, rest)) => text
            .split_first()
            .is_some_and(|(c, tail)| (*first == '?' || first == c) && glob(rest, tail)),
    }
}

/// One `Allow` statement of a role's inline policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: String,
    pub actions: Vec<String>,
    /// As written in the template: "*", or an intrinsic (Ref, Fn::GetAtt, Fn::Sub).
    pub resources: Vec<Value>,
}

impl Statement {
    pub fn allows(&self, action: &str) -> bool {
        self.actions
            .iter()
            .any(|pattern| action_matches(pattern, action))
    }

    pub fn is_unscoped(&self) -> bool {
        self.resources.iter().any(|r| r.as_str() == Some("*"))
    }
}

/// An `AWS::IAM::Role` of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub logical_id: String,
    /// Every statement of its inline policies; both branches of an `Fn::If`.
    pub statements: Vec<Statement>,
    /// The managed policies' names as the template's `Fn::Sub` ARNs end
    /// ("service-role/AWSLambdaVPCAccessExecutionRole").
    pub managed_policies: Vec<String>,
}

impl Role {
    /// The statements allowing `action`.
    pub fn allowing(&self, action: &str) -> Vec<&Statement> {
        self.statements
            .iter()
            .filter(|s| s.allows(action))
            .collect()
    }

    /// Every (statement id, action pattern) the inline policies grant.
    pub fn grants(&self) -> Vec<(String, String)> {
        self.statements
            .iter()
            .flat_map(|s| s.actions.iter().map(|a| (s.sid.clone(), a.clone())))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the template's role {role} is not what IAM accepts: {problem}")]
pub struct PolicyShapeError {
    pub role: String,
    pub problem: String,
}

/// Every role of a CloudFormation template, by logical id.
pub fn roles(template: &Value) -> Result<Vec<Role>, PolicyShapeError> {
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut roles: Vec<Role> = resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::IAM::Role"))
        .map(|(id, resource)| role(id, resource))
        .collect::<Result<_, _>>()?;
    for role in &mut roles {
        role.statements
            .extend(key_policy_grants(resources, &role.logical_id));
    }
    Ok(roles)
}

/// What the template's KMS keys grant `role` by naming it in their key
/// policies (a key policy that names a principal of the account is a grant
/// on its own), as statements `<key>:<Sid>` on that key: part of what the
/// role may do, as its inline policies are.
fn key_policy_grants(resources: &serde_json::Map<String, Value>, role: &str) -> Vec<Statement> {
    let named = serde_json::json!({ "Fn::GetAtt": [role, "Arn"] });
    resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::KMS::Key"))
        .flat_map(|(key, resource)| {
            list(resource.pointer("/Properties/KeyPolicy/Statement"))
                .into_iter()
                .filter(|s| s.get("Effect").and_then(Value::as_str) == Some("Allow"))
                .filter(|s| {
                    s.pointer("/Principal/AWS")
                        .is_some_and(|p| *p == named || list(Some(p)).contains(&named))
                })
                .filter_map(|s| {
                    let mut statement = parse_statement(&s).ok()?;
                    statement.sid = format!("{key}:{}", statement.sid);
                    statement.resources = vec![serde_json::json!({ "Fn::GetAtt": [key, "Arn"] })];
                    Some(statement)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn role(id: &str, resource: &Value) -> Result<Role, PolicyShapeError> {
    let shape = |problem: &str| PolicyShapeError {
        role: id.to_owned(),
        problem: problem.to_owned(),
    };
    let properties = resource
        .get("Properties")
        .ok_or_else(|| shape("no Properties"))?;
    let mut statements = Vec::new();
    for policy in list(properties.get("Policies")) {
        let document = policy
            .get("PolicyDocument")
            .ok_or_else(|| shape("an inline policy without a PolicyDocument"))?;
        for statement in list(document.get("Statement")) {
            for branch in if_branches(&statement) {
                statements.push(parse_statement(branch).map_err(|p| shape(&p))?);
            }
        }
    }
    let managed_policies = list(properties.get("ManagedPolicyArns"))
        .iter()
        .map(|arn| {
            let text = arn
                .get("Fn::Sub")
                .or(Some(arn))
                .and_then(Value::as_str)
                .unwrap_or_default();
            text.split_once(":policy/")
                .map_or(text, |(_, name)| name)
                .to_owned()
        })
        .collect();
    Ok(Role {
        logical_id: id.to_owned(),
        statements,
        managed_policies,
    })
}

/// A statement, or both branches of `{"Fn::If": [cond, then, else]}` that are
/// statements (not `AWS::NoValue`): the role may be deployed either way.
fn if_branches(statement: &Value) -> Vec<&Value> {
    match statement.get("Fn::If").and_then(Value::as_array) {
        Some(parts) => parts
            .iter()
            .skip(1)
            .filter(|branch| branch.get("Effect").is_some())
            .collect(),
        None => vec![statement],
    }
}

fn parse_statement(statement: &Value) -> Result<Statement, String> {
    let effect = statement.get("Effect").and_then(Value::as_str);
    if effect != Some("Allow") {
        return Err(format!("a statement whose Effect is {effect:?}, not Allow"));
    }
    let sid = statement
        .get("Sid")
        .and_then(Value::as_str)
        .ok_or("a statement without a Sid")?
        .to_owned();
    let actions = list(statement.get("Action"))
        .iter()
        .map(|a| a.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("statement {sid} has an Action that is not a string"))?;
    if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
        return Err(format!("statement {sid} uses NotAction or NotResource"));
    }
    Ok(Statement {
        sid,
        actions,
        resources: list(statement.get("Resource")),
    })
}

/// A JSON value IAM accepts as one item or a list of them, as a list.
fn list(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(item) => vec![item.clone()],
    }
}

/// Rows of "what was called" against "what is allowed", for a failure message.
pub struct Table {
    pub title: String,
    pub rows: Vec<(String, String)>,
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        writeln!(f, "{}", self.title)?;
        for (left, right) in &self.rows {
            writeln!(f, "  {left:<width$}  {right}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn most_calls_need_the_action_of_the_same_name() {
        assert_eq!(
            iam_action("autoscaling", "DescribeAutoScalingGroups"),
            "autoscaling:DescribeAutoScalingGroups"
        );
        assert_eq!(
            iam_action("secretsmanager", "GetSecretValue"),
            "secretsmanager:GetSecretValue"
        );
        assert_eq!(iam_action("sqs", "ReceiveMessage"), "sqs:ReceiveMessage");
    }

    #[test]
    fn s3_multipart_uploads_are_authorised_as_put_object() {
        for operation in [
            "CreateMultipartUpload",
            "UploadPart",
            "CompleteMultipartUpload",
            "PutObject",
        ] {
            assert_eq!(iam_action("s3", operation), "s3:PutObject", "{operation}");
        }
        assert_eq!(
            iam_action("s3", "AbortMultipartUpload"),
            "s3:AbortMultipartUpload"
        );
    }

    #[test]
    fn s3_listing_reading_and_deleting_have_their_own_actions() {
        assert_eq!(iam_action("s3", "ListObjectsV2"), "s3:ListBucket");
        assert_eq!(iam_action("s3", "HeadObject"), "s3:GetObject");
        assert_eq!(iam_action("s3", "DeleteObjects"), "s3:DeleteObject");
        assert_eq!(iam_action("s3", "ListParts"), "s3:ListMultipartUploadParts");
    }

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(action_matches(
            "autoscaling:Describe*",
            "autoscaling:DescribeAutoScalingGroups"
        ));
        assert!(action_matches("s3:*", "s3:GetObject"));
        assert!(action_matches("S3:getobject", "s3:GetObject"));
        assert!(action_matches("s3:Get?bject", "s3:GetObject"));
        assert!(!action_matches("s3:Get*", "s3:PutObject"));
        assert!(!action_matches("s3:GetObject", "s3:GetObjectVersion"));
    }

    #[test]
    fn a_roles_statements_include_both_branches_of_a_condition() {
        let template = json!({"Resources": {"R": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "ManagedPolicyArns": [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/X"}],
                "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                    {"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                    {"Fn::If": ["C",
                        {"Sid": "B", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [{"Ref": "K"}]},
                        {"Ref": "AWS::NoValue"}]}
                ]}}]
            }
        }}});
        let roles = roles(&template).unwrap_or_default();
        assert_eq!(roles.len(), 1);
        let role = &roles[0];
        assert_eq!(role.managed_policies, ["service-role/X"]);
        let sids: Vec<&str> = role.statements.iter().map(|s| s.sid.as_str()).collect();
        assert_eq!(sids, ["A", "B"]);
        assert!(role.statements[0].is_unscoped());
        assert!(!role.statements[1].is_unscoped());
        assert_eq!(role.allowing("kms:Decrypt").len(), 1);
    }

    #[test]
    fn a_deny_statement_is_refused_rather_than_read_as_a_grant() {
        let template = json!({"Resources": {"R": {
            "Type": "AWS::IAM::Role",
            "Properties": {"Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                {"Sid": "D", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
            ]}}]}
        }}});
        assert!(roles(&template).is_err());
    }
}
