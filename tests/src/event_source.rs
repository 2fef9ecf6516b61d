//! An SQS event source mapping, as Lambda runs one: poll the queue, invoke the
//! function with the batch as an SQS event, delete what succeeded, and leave
//! what failed to become visible again (and reach the dead-letter queue after
//! the queue's maxReceiveCount). With `ReportBatchItemFailures`, the function's
//! `batchItemFailures` name the failed messages; an invocation error, an answer
//! that is not a batch response, or an identifier that names no message of the
//! batch fails the whole batch, as Lambda does.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use serde_json::{json, Map, Value};
use tokio::task::JoinHandle;

use crate::lambda::LambdaFunction;
use crate::lock;
use crate::stand_in::{Caller, StandIn};

/// Something that can be invoked with an event: a function behind the Runtime
/// API, or a handler called in-process.
pub trait Invoke: Send + Sync {
    fn invoke<'a>(
        &'a self,
        payload: &'a Value,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Value>> + Send + 'a>>;
}

impl Invoke for LambdaFunction {
    fn invoke<'a>(
        &'a self,
        payload: &'a Value,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Value>> + Send + 'a>> {
        Box::pin(async move { Ok(LambdaFunction::invoke(self, payload).await?) })
    }
}

#[derive(Debug, Clone)]
pub struct EventSourceOptions {
    /// At most 10, as for a standard queue's ReceiveMessage.
    pub batch_size: i32,
    /// How long a received message stays hidden; a failed one reappears after it.
    pub visibility_timeout: Duration,
    /// Long-poll time of one ReceiveMessage.
    pub wait_time: Duration,
}

impl Default for EventSourceOptions {
    fn default() -> Self {
        Self {
            batch_size: 10,
            visibility_timeout: Duration::from_secs(3),
            wait_time: Duration::from_secs(1),
        }
    }
}

/// A message as the event source delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredMessage {
    pub message_id: String,
    pub body: String,
    pub receive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// The function answered; these message ids failed and were left in the queue.
    Answered { failed: Vec<String> },
    /// Nothing was deleted: the invocation failed or its answer was unusable.
    WholeBatchFailed(String),
}

/// One batch: what was delivered and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub messages: Vec<DeliveredMessage>,
    pub result: BatchResult,
}

impl Delivery {
    /// Whether `message_id` was handled (and deleted) in this delivery.
    pub fn succeeded(&self, message_id: &str) -> bool {
        self.messages.iter().any(|m| m.message_id == message_id)
            && matches!(&self.result, BatchResult::Answered { failed } if !failed.iter().any(|f| f == message_id))
    }
}

pub struct SqsEventSource {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    options: EventSourceOptions,
    deliveries: Mutex<Vec<Delivery>>,
}

impl SqsEventSource {
    /// An event source on the stand-in's lifecycle hook queue.
    pub async fn new(stand_in: &StandIn, options: EventSourceOptions) -> anyhow::Result<Self> {
        Self::for_queue(stand_in, stand_in.queue_url(), options).await
    }

    pub async fn for_queue(
        stand_in: &StandIn,
        queue_url: &str,
        options: EventSourceOptions,
    ) -> anyhow::Result<Self> {
        // Lambda polls with the function's execution role, so its calls count
        // against that role's policy.
        let sqs =
            aws_sdk_sqs::Client::new(&stand_in.sdk_config_as(Caller::LifecycleEventSource).await);
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .context("reading the queue's ARN")?;
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .context("the queue has no QueueArn attribute")?;
        Ok(Self {
            sqs,
            queue_url: queue_url.to_owned(),
            queue_arn,
            region: stand_in.region().to_owned(),
            options,
            deliveries: Mutex::new(Vec::new()),
        })
    }

    /// Every batch delivered so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.deliveries).clone()
    }

    /// One ReceiveMessage, as the event source does it.
    pub async fn receive(&self) -> anyhow::Result<Vec<Message>> {
        let answer = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.options.batch_size)
            .visibility_timeout(seconds(self.options.visibility_timeout))
            .wait_time_seconds(seconds(self.options.wait_time))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .context("ReceiveMessage on the event source's queue")?;
        Ok(answer.messages().to_vec())
    }

    /// The SQS event Lambda would build for these messages.
    pub fn event(&self, messages: &[Message]) -> Value {
        let records: Vec<Value> = messages.iter().map(|m| self.record(m)).collect();
        json!({ "Records": records })
    }

    /// One record of an SQS event, in Lambda's field names.
    pub fn record(&self, message: &Message) -> Value {
        let attributes: Map<String, Value> = message
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.as_str())))
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": message.message_id(),
            "receiptHandle": message.receipt_handle(),
            "body": message.body(),
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": message.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        })
    }

    /// Receives one batch, invokes, and settles it. `None` when the queue was empty.
    pub async fn poll_once(&self, function: &dyn Invoke) -> anyhow::Result<Option<Delivery>> {
        let messages = self.receive().await?;
        if messages.is_empty() {
            return Ok(None);
        }
        let delivered: Vec<DeliveredMessage> = messages.iter().map(delivered).collect();
        let result = match function.invoke(&self.event(&messages)).await {
            Ok(answer) => failed_ids(&answer, &delivered),
            Err(error) => Err(format!("invocation failed: {error:#}")),
        };
        let result = match result {
            Ok(failed) => {
                for message in messages
                    .iter()
                    .filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
                {
                    self.delete(message).await?;
                }
                BatchResult::Answered { failed }
            }
            Err(reason) => BatchResult::WholeBatchFailed(reason),
        };
        let delivery = Delivery {
            messages: delivered,
            result,
        };
        lock(&self.deliveries).push(delivery.clone());
        Ok(Some(delivery))
    }

    /// Polls in the background until the returned handle is dropped.
    pub fn run(self: &Arc<Self>, function: Arc<dyn Invoke>) -> Polling {
        let source = Arc::clone(self);
        Polling(tokio::spawn(async move {
            loop {
                if let Err(error) = source.poll_once(function.as_ref()).await {
                    tracing::warn!("event source poll failed: {error:#}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }))
    }

    async fn delete(&self, message: &Message) -> anyhow::Result<()> {
        let Some(receipt) = message.receipt_handle() else {
            return Ok(());
        };
        self.sqs
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .context("DeleteMessage of a handled message")?;
        Ok(())
    }
}

/// Background polling; stops when dropped.
pub struct Polling(JoinHandle<()>);

impl Drop for Polling {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The failed ids of a partial batch response, or why the whole batch failed.
fn failed_ids(answer: &Value, delivered: &[DeliveredMessage]) -> Result<Vec<String>, String> {
    if answer.is_null() {
        // A function without ReportBatchItemFailures answers nothing: all succeeded.
        return Ok(Vec::new());
    }
    let Some(failures) = answer.get("batchItemFailures") else {
        return Ok(Vec::new());
    };
    let failures = failures
        .as_array()
        .ok_or_else(|| format!("batchItemFailures is not a list: {answer}"))?;
    let mut failed = Vec::with_capacity(failures.len());
    for failure in failures {
        let id = failure
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .filter(|id| delivered.iter().any(|m| m.message_id == *id))
            .ok_or_else(|| format!("a failure names no message of the batch: {failure}"))?;
        failed.push(id.to_owned());
    }
    Ok(failed)
}

fn delivered(message: &Message) -> DeliveredMessage {
    let receive_count = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    DeliveredMessage {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        body: message.body().unwrap_or_default().to_owned(),
        receive_count,
    }
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: &[&str]) -> Vec<DeliveredMessage> {
        ids.iter()
            .map(|id| DeliveredMessage {
                message_id: (*id).to_owned(),
                body: String::new(),
                receive_count: 1,
            })
            .collect()
    }

    #[test]
    fn an_empty_failure_list_means_every_message_succeeded() {
        let answer = json!({"batchItemFailures": []});
        assert_eq!(failed_ids(&answer, &batch(&["a", "b"])), Ok(Vec::new()));
    }

    #[test]
    fn named_failures_are_the_failed_messages() {
        let answer = json!({"batchItemFailures": [{"itemIdentifier": "b"}]});
        assert_eq!(
            failed_ids(&answer, &batch(&["a", "b"])),
            Ok(vec!["b".to_owned()])
        );
    }

    #[test]
    fn a_failure_naming_no_message_of_the_batch_fails_the_whole_batch() {
        for failure in [
            json!({"itemIdentifier": "zzz"}),
            json!({"itemIdentifier": ""}),
            json!({}),
        ] {
            let answer = json!({ "batchItemFailures": [failure] });
            assert!(failed_ids(&answer, &batch(&["a"])).is_err(), "{answer}");
        }
    }
}
