//! One invocation of the function: which of its two jobs the payload asks for.
//!
//! - An SQS event (`{"Records": [...]}`) from the lifecycle queue's event source
//!   mapping: handled per message, answered with a partial batch response.
//! - A reconcile request: `{"reconcile": true}` (what the template's EventBridge
//!   rule sends as its constant input), or an unmodified EventBridge scheduled
//!   event (`"detail-type": "Scheduled Event"`), so a rule without an input works too.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use tokio::time::Instant;

use crate::aws::Aws;
use crate::etcd::Etcd;
use crate::handler::{batch_response, Lifecycle, ReconcileError};

/// Time kept back from the invocation's deadline to report what was done:
/// a function killed at its timeout reports nothing, and the whole batch returns.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Batch(SqsEvent),
    Reconcile,
}

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("the SQS event is malformed: {0}")]
    BadBatch(String),
    #[error("unrecognised event (expected an SQS event, {{\"reconcile\": true}} or an EventBridge scheduled event): {0}")]
    Unrecognised(String),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error("cannot encode the response: {0}")]
    Encode(String),
}

pub fn classify(payload: Value) -> Result<Invocation, InvocationError> {
    if payload.get("Records").is_some() {
        return serde_json::from_value(payload)
            .map(Invocation::Batch)
            .map_err(|e| InvocationError::BadBatch(e.to_string()));
    }
    let reconcile_flag = payload.get("reconcile").and_then(Value::as_bool) == Some(true);
    let scheduled = payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    if reconcile_flag || scheduled {
        return Ok(Invocation::Reconcile);
    }
    let mut text = payload.to_string();
    if text.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    Err(InvocationError::Unrecognised(text))
}

/// The instant by which the invocation must have answered, from the Runtime
/// API's deadline, less [`DEADLINE_MARGIN`].
pub fn work_deadline(lambda_deadline: SystemTime) -> Instant {
    let left = lambda_deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(DEADLINE_MARGIN);
    Instant::now() + left
}

impl<A: Aws, E: Etcd> Lifecycle<A, E> {
    /// The whole invocation: classify, work, answer.
    pub async fn invoke(
        &self,
        payload: Value,
        deadline: Instant,
    ) -> Result<Value, InvocationError> {
        match classify(payload)? {
            Invocation::Batch(event) => {
                let reports = self.process_batch(&event, deadline).await;
                serde_json::to_value(batch_response(&reports))
                    .map_err(|e| InvocationError::Encode(e.to_string()))
            }
            Invocation::Reconcile => {
                let report = self.reconcile(deadline).await?;
                serde_json::to_value(report).map_err(|e| InvocationError::Encode(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_sqs_event_is_a_batch() {
        let payload = json!({"Records": [{"messageId": "m-1", "body": "{}"}]});
        let invocation = classify(payload);
        assert!(
            matches!(&invocation, Ok(Invocation::Batch(e)) if e.records.len() == 1),
            "{invocation:?}"
        );
    }

    #[test]
    fn the_templates_constant_input_asks_for_a_reconcile() {
        assert_eq!(
            classify(json!({"reconcile": true})).ok(),
            Some(Invocation::Reconcile)
        );
    }

    #[test]
    fn an_eventbridge_scheduled_event_asks_for_a_reconcile() {
        let event = json!({
            "version": "0", "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2016-12-30T18:44:49Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/etcd-reconcile"],
            "detail": {}
        });
        assert_eq!(classify(event).ok(), Some(Invocation::Reconcile));
    }

    #[test]
    fn reconcile_false_is_not_a_request() {
        assert!(matches!(
            classify(json!({"reconcile": false})),
            Err(InvocationError::Unrecognised(_))
        ));
    }

    #[test]
    fn records_of_the_wrong_type_are_a_malformed_batch() {
        assert!(matches!(
            classify(json!({"Records": "nope"})),
            Err(InvocationError::BadBatch(_))
        ));
    }

    #[test]
    fn an_unrecognised_event_is_refused_with_a_short_excerpt() {
        let big = json!({"payload": "y".repeat(5_000)});
        let error = classify(big)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("unrecognised event"), "{error}");
        assert!(error.len() < 400, "{error}");
    }

    #[test]
    fn the_work_deadline_keeps_a_margin_before_the_lambda_deadline() {
        let deadline = work_deadline(SystemTime::now() + Duration::from_secs(60));
        let left = deadline - Instant::now();
        assert!(
            left <= Duration::from_secs(55) && left > Duration::from_secs(50),
            "{left:?}"
        );
    }

    #[test]
    fn a_deadline_already_past_leaves_no_time() {
        let deadline = work_deadline(SystemTime::now() - Duration::from_secs(1));
        assert!(deadline <= Instant::now());
    }
}
