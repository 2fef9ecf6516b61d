//! CloudFormation's SignalResource, which moto does not implement: a node's
//! user-data signals FAILURE when it cannot set the node up, and its
//! readiness unit SUCCESS once the node is a healthy voting member. The
//! stand-in accepts every signal and records it for tests to assert on; it
//! holds no creation or update policy that would count them.

use std::sync::{Arc, Mutex};

use crate::lock;

/// One `aws cloudformation signal-resource` as the proxy received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSignal {
    pub stack_name: String,
    pub logical_resource_id: String,
    /// The instance id, as the user-data sends it.
    pub unique_id: String,
    /// "SUCCESS" or "FAILURE".
    pub status: String,
}

/// Every signal so far, shared by the proxy and the stand-in.
#[derive(Debug, Clone, Default)]
pub struct StackSignals(Arc<Mutex<Vec<ResourceSignal>>>);

impl StackSignals {
    pub fn record(&self, signal: ResourceSignal) {
        lock(&self.0).push(signal);
    }

    /// Oldest first.
    pub fn all(&self) -> Vec<ResourceSignal> {
        lock(&self.0).clone()
    }
}

/// SignalResource's answer: no result, only the request id.
pub fn signal_resource_response() -> String {
    format!(
        "<SignalResourceResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\">\
         <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></SignalResourceResponse>",
        uuid::Uuid::new_v4()
    )
}
