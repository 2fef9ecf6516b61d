//! IAM policy documents, written one statement per permission the code needs.

use serde_json::{json, Value};

/// An `Allow` statement for `actions` on `resources`.
pub fn allow(sid: &str, actions: &[&str], resources: Vec<Value>) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
    })
}

/// An `Allow` statement restricted by a condition block.
pub fn allow_when(sid: &str, actions: &[&str], resources: Vec<Value>, condition: Value) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
        "Condition": condition,
    })
}

/// A policy document from statements.
pub fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// A trust policy letting `service` assume the role.
pub fn trust(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole",
        }],
    })
}

/// An inline policy entry for an `AWS::IAM::Role`'s `Policies` list.
pub fn inline(name: &str, statements: Vec<Value>) -> Value {
    json!({ "PolicyName": name, "PolicyDocument": document(statements) })
}

/// The managed policy ARN `name` in the stack's partition.
pub fn managed(name: &str) -> Value {
    json!({ "Fn::Sub": format!("arn:${{AWS::Partition}}:iam::aws:policy/{name}") })
}
