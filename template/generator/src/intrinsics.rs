//! CloudFormation intrinsic functions as `serde_json` values.
//!
//! Small constructors keep the resource files readable: `reference("Vpc")` says what it
//! means where `json!({"Ref": "Vpc"})` says how it is spelled.

use serde_json::{json, Value};

/// `{"Ref": name}`: a parameter, a resource's primary id, or a pseudo parameter.
pub fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

/// `{"Fn::GetAtt": [resource, attribute]}`.
pub fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

/// `{"Fn::Sub": text}`: `${Name}` placeholders resolve to refs, attributes or pseudo parameters.
pub fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

/// `{"Fn::Base64": value}`.
pub fn base64(value: Value) -> Value {
    json!({ "Fn::Base64": value })
}

/// The availability zone at `index` in the stack's region, chosen at deploy time so the
/// template works in every region.
pub fn availability_zone(index: usize) -> Value {
    json!({ "Fn::Select": [index, { "Fn::GetAZs": "" }] })
}

/// `{"Fn::If": [condition, when_true, when_false]}`.
pub fn if_condition(condition: &str, when_true: Value, when_false: Value) -> Value {
    json!({ "Fn::If": [condition, when_true, when_false] })
}

/// `{"Ref": "AWS::NoValue"}`: removes the property it is assigned to.
pub fn no_value() -> Value {
    reference("AWS::NoValue")
}

/// Tags naming a resource after its stack, so two stacks' resources are told apart in
/// the console.
pub fn name_tags(suffix: &str) -> Value {
    json!([{ "Key": "Name", "Value": sub(&format!("${{AWS::StackName}}-{suffix}")) }])
}
