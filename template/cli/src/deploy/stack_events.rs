//! Reading a stack operation's progress: which statuses end it, which mean failure, and
//! what to tell the user about the resources that failed. Plain data in, plain data out,
//! so every rule is unit-tested without AWS.

use std::fmt;

/// One stack event, as much of it as the progress report uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub timestamp: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.timestamp, self.status, self.logical_id, self.resource_type
        )?;
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// Where a stack operation stands, judged from the stack's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    InProgress,
    Succeeded,
    Failed,
}

/// Classifies a stack status. Rollbacks that completed are failures: the stack is back
/// where it was (or empty), not where it was asked to go.
pub fn outcome(status: &str) -> Outcome {
    if status.ends_with("_IN_PROGRESS") {
        return Outcome::InProgress;
    }
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" => Outcome::Succeeded,
        _ => Outcome::Failed,
    }
}

/// Whether a stack in `status` can take an update change set; otherwise why not.
pub fn updatable(status: &str) -> Result<(), String> {
    match status {
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" => Err(format!(
            "the stack is in {status}: its creation failed and it can only be deleted; delete it and deploy again"
        )),
        "DELETE_FAILED" => Err(
            "the stack is in DELETE_FAILED: finish deleting it before deploying again".to_string(),
        ),
        s if s.ends_with("_IN_PROGRESS") && s != "REVIEW_IN_PROGRESS" => Err(format!(
            "the stack is busy ({status}); wait for the running operation to end"
        )),
        _ => Ok(()),
    }
}

/// Whether a stack exists only as the shell a failed or unexecuted create change set
/// left behind, to be created rather than updated.
pub fn needs_create(status: &str) -> bool {
    status == "REVIEW_IN_PROGRESS"
}

/// Events not in `seen`, oldest first; `seen` learns them. CloudFormation lists events
/// newest first.
pub fn unseen(
    newest_first: Vec<Event>,
    seen: &mut std::collections::HashSet<String>,
) -> Vec<Event> {
    let mut fresh: Vec<Event> = newest_first
        .into_iter()
        .filter(|e| seen.insert(e.id.clone()))
        .collect();
    fresh.reverse();
    fresh
}

/// The reasons the operation failed: each failed resource with its reason, oldest first.
/// The stack's own rollback events are left out when a resource says more.
pub fn failure_reasons(events: &[Event], stack_name: &str) -> Vec<String> {
    let failed: Vec<&Event> = events
        .iter()
        .filter(|e| e.status.ends_with("_FAILED"))
        .collect();
    let resources: Vec<String> = failed
        .iter()
        .filter(|e| e.logical_id != stack_name)
        .map(|e| describe_failure(e))
        .collect();
    if !resources.is_empty() {
        return resources;
    }
    let stack: Vec<String> = failed.iter().map(|e| describe_failure(e)).collect();
    if !stack.is_empty() {
        return stack;
    }
    // A rollback can come without any *_FAILED event (a cancelled update, say).
    events
        .iter()
        .filter(|e| e.status.contains("ROLLBACK"))
        .filter_map(|e| {
            e.reason
                .as_ref()
                .map(|r| format!("{} {}: {r}", e.logical_id, e.status))
        })
        .take(5)
        .collect()
}

fn describe_failure(event: &Event) -> String {
    format!(
        "{} ({}) {}: {}",
        event.logical_id,
        event.resource_type,
        event.status,
        event.reason.as_deref().unwrap_or("no reason given")
    )
}
