//! Helpers shared by the template's tests: building templates from options, walking
//! the JSON (a `Fn::Sub` is rendered by `etcd_aws_template::fn_sub`).

#![allow(dead_code)]

use etcd_aws_template::options::{NetworkMode, Options, SshCidr};
use serde_json::{Map, Value};

/// The template generated with the defaults.
pub fn default_template() -> Value {
    template_for(&Options::default())
}

pub fn template_for(options: &Options) -> Value {
    match etcd_aws_template::template(options) {
        Ok(template) => template,
        Err(error) => panic!("template generation failed: {error}"),
    }
}

/// A new VPC in endpoints mode: an interface endpoint per API, no route to
/// the internet.
pub fn endpoints_options() -> Options {
    Options {
        network_mode: NetworkMode::Endpoints,
        ..Options::default()
    }
}

/// Options that switch on everything optional: NAT mode, five nodes, SSH from a narrow
/// block, immutable backups, every parameter default filled in.
pub fn everything_options() -> Options {
    Options {
        backup_lock_days: Some(30),
        cluster_size: parse("5"),
        network_mode: NetworkMode::Nat,
        key_pair: Some("ops-key".to_string()),
        ssh_cidr: Some(parse::<SshCidr>("192.0.2.0/24")),
        alarm_email: Some("ops@example.com".to_string()),
        artifact_bucket: Some("artifacts-bucket".to_string()),
        etcd_sha256: Some(parse(&"ab".repeat(32))),
        instance_type: parse("m7i.large"),
        ..Options::default()
    }
}

/// Options that deploy into a VPC of the deployer's, with Session Manager.
pub fn existing_vpc_options() -> Options {
    Options {
        existing_vpc: Some(etcd_aws_template::options::ExistingVpc {
            vpc_id: parse("vpc-0a1b2c3d4e5f60718"),
            subnet_ids: parse("subnet-0000000a,subnet-0000000b,subnet-0000000c"),
        }),
        session_manager: true,
        ..Options::default()
    }
}

/// Parses a test literal; a literal that does not parse is a broken test.
pub fn parse<T: std::str::FromStr>(text: &str) -> T
where
    T::Err: std::fmt::Display,
{
    match text.parse() {
        Ok(value) => value,
        Err(error) => panic!("test literal {text:?} does not parse: {error}"),
    }
}

pub fn resources(template: &Value) -> &Map<String, Value> {
    template["Resources"]
        .as_object()
        .expect("a template always has Resources")
}

pub fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    resources(template)
        .get(id)
        .unwrap_or_else(|| panic!("no resource {id}"))
}

/// (logical id, body) of every resource of `kind`.
pub fn of_type<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources(template)
        .iter()
        .filter(|(_, body)| body["Type"] == kind)
        .collect()
}

/// A statement, or the statements a `Fn::If` may choose (without `AWS::NoValue`).
fn possible_statements(statement: Value) -> Vec<Value> {
    match statement.get("Fn::If").and_then(Value::as_array) {
        Some(choice) => choice
            .iter()
            .skip(1)
            .filter(|branch| branch.get("Ref") != Some(&Value::from("AWS::NoValue")))
            .cloned()
            .flat_map(possible_statements)
            .collect(),
        None => vec![statement],
    }
}

/// Every IAM policy statement in the template (both branches of a conditional one),
/// with the resource it belongs to.
pub fn iam_statements(template: &Value) -> Vec<(String, Value)> {
    let mut statements = Vec::new();
    for (id, body) in resources(template) {
        if body["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let policies = body["Properties"]["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for policy in policies {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                for possible in possible_statements(statement) {
                    statements.push((id.clone(), possible));
                }
            }
        }
    }
    statements
}

/// A value that is a string or a list of strings, as a list.
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.to_string().trim_matches('"').to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// Every `Ref` target and `Fn::GetAtt` resource named anywhere under `value`.
pub fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("Ref") {
                found.push(target.clone());
            }
            if let Some(Value::Array(parts)) = map.get("Fn::GetAtt") {
                if let Some(Value::String(target)) = parts.first() {
                    found.push(target.clone());
                }
            }
            if let Some(Value::String(text)) = map.get("Fn::Sub") {
                for piece in text.split("${").skip(1) {
                    // `${!Literal}` is CloudFormation's escape, no reference.
                    if let Some(name) = piece.split('}').next().filter(|n| !n.starts_with('!')) {
                        found.push(name.split('.').next().unwrap_or(name).to_string());
                    }
                }
            }
            for child in map.values() {
                references(child, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

/// The user-data script text (the `Fn::Sub` string inside `Fn::Base64`).
pub fn user_data_script(template: &Value) -> String {
    let data =
        &resource(template, "NodeLaunchTemplate")["Properties"]["LaunchTemplateData"]["UserData"];
    data["Fn::Base64"]["Fn::Sub"]
        .as_str()
        .expect("user-data is a Fn::Sub string")
        .to_string()
}

/// IAM's wildcard match of an action or resource pattern (`*` and `?`), as
/// AWS evaluates it; actions are compared lowercased by [`action_allowed`].
pub fn iam_matches(pattern: &str, text: &str) -> bool {
    fn glob(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
            Some((first, rest)) => text
                .split_first()
                .is_some_and(|(c, tail)| (*first == '?' || first == c) && glob(rest, tail)),
        }
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob(&pattern, &text)
}

/// Whether a policy statement's `Action` allows `action` (IAM matches
/// actions case-insensitively).
pub fn action_allowed(statement: &Value, action: &str) -> bool {
    strings(&statement["Action"])
        .iter()
        .any(|pattern| iam_matches(&pattern.to_lowercase(), &action.to_lowercase()))
}
