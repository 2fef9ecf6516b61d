//! Scanner findings deliberately accepted, each with the reason it does not apply.
//!
//! The reasons live in the resource's `Metadata`, where checkov and cfn-lint read them,
//! so a reviewer of the template sees why a check is skipped next to what it skips.

use serde_json::{json, Value};

/// A checkov check that does not apply to a resource, and why.
pub struct Skip {
    pub check: &'static str,
    pub reason: &'static str,
}

/// `Metadata` carrying checkov skips.
pub fn metadata(skips: &[Skip]) -> Value {
    let skip: Vec<Value> = skips
        .iter()
        .map(|s| json!({ "id": s.check, "comment": s.reason }))
        .collect();
    json!({ "checkov": { "skip": skip } })
}
