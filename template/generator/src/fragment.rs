//! A piece of a template: the resources, parameters, conditions and outputs one module
//! contributes. Fragments merge into the whole template; a logical id claimed twice is
//! refused rather than silently overwritten.

use serde_json::{Map, Value};

/// A logical id was defined by two modules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{section} {id:?} is defined twice")]
pub struct DuplicateId {
    pub section: &'static str,
    pub id: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Fragment {
    pub parameters: Map<String, Value>,
    pub conditions: Map<String, Value>,
    pub resources: Map<String, Value>,
    pub outputs: Map<String, Value>,
}

impl Fragment {
    pub fn new() -> Self {
        Fragment::default()
    }

    pub fn resource(mut self, id: &str, body: Value) -> Self {
        self.resources.insert(id.to_string(), body);
        self
    }

    pub fn parameter(mut self, id: &str, body: Value) -> Self {
        self.parameters.insert(id.to_string(), body);
        self
    }

    pub fn condition(mut self, id: &str, body: Value) -> Self {
        self.conditions.insert(id.to_string(), body);
        self
    }

    pub fn output(mut self, id: &str, body: Value) -> Self {
        self.outputs.insert(id.to_string(), body);
        self
    }

    /// Adds `other`'s entries to this fragment.
    pub fn merge(mut self, other: Fragment) -> Result<Self, DuplicateId> {
        merge_section(&mut self.parameters, other.parameters, "parameter")?;
        merge_section(&mut self.conditions, other.conditions, "condition")?;
        merge_section(&mut self.resources, other.resources, "resource")?;
        merge_section(&mut self.outputs, other.outputs, "output")?;
        Ok(self)
    }
}

fn merge_section(
    into: &mut Map<String, Value>,
    from: Map<String, Value>,
    section: &'static str,
) -> Result<(), DuplicateId> {
    for (id, body) in from {
        if into.contains_key(&id) {
            return Err(DuplicateId { section, id });
        }
        into.insert(id, body);
    }
    Ok(())
}
