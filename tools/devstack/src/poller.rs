//! Runs SQS-triggered functions locally the way a Lambda event source mapping does: long-poll
//! the queue, hand the handler a batch of at most `BatchSize` records shaped exactly like
//! Lambda's SQS event, delete what succeeded, and leave failed records to come back after their
//! visibility timeout (and to the dead-letter queue after `maxReceiveCount` receives).
//!
//! A batch that outlives the function's `Timeout` fails as a whole, as in Lambda.
//! Partial batch responses follow Lambda's rules: only with `ReportBatchItemFailures` are
//! individual ids honoured; an empty or unknown id, or a handler that panics, fails the whole
//! batch. <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>

use std::{collections::HashSet, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use futures_util::{future::BoxFuture, FutureExt};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::template::SqsEventSource;

/// A worker's batch handler, as its Lambda main runs it.
pub type SqsHandler = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync>;

/// One event source mapping, resolved to a local queue.
#[derive(Clone)]
pub struct Poller {
    pub source: SqsEventSource,
    pub queue_url: String,
    pub queue_arn: String,
    pub handler: SqsHandler,
}

/// Long-poll wait per receive; short so a stop is noticed quickly.
const WAIT_SECONDS: i32 = 2;

impl Poller {
    /// Runs until `cancel` fires, with as many concurrent pollers as the mapping allows
    /// (`MaximumConcurrency`, at most 5 locally; 2 when unset, Lambda's minimum).
    pub async fn run(self, sqs: aws_sdk_sqs::Client, cancel: CancellationToken) {
        let lanes = self.source.maximum_concurrency.unwrap_or(2).clamp(1, 5);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..lanes {
            let poller = self.clone();
            let sqs = sqs.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        outcome = poller.poll_once(&sqs) => {
                            if let Err(error) = outcome {
                                tracing::warn!(function = poller.source.function, error = format!("{error:#}"), "poll failed");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Receives one batch, runs the handler, deletes what succeeded. Returns how many records
    /// the batch had.
    pub async fn poll_once(&self, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<usize> {
        let messages = self.receive(sqs).await?;
        if messages.is_empty() {
            return Ok(0);
        }
        let event = lambda_event(&messages, &self.queue_arn)?;
        // Like Lambda: a batch that outlives the function's timeout fails as a whole.
        let timeout = Duration::from_secs(self.source.timeout_seconds.max(1));
        let handled = AssertUnwindSafe((self.handler)(event)).catch_unwind();
        let outcome = tokio::time::timeout(timeout, handled).await;
        if outcome.is_err() {
            tracing::warn!(
                function = self.source.function,
                "batch timed out; every record comes back"
            );
        }
        let failed = failed_indices(
            &messages,
            outcome.ok().and_then(Result::ok),
            self.source.report_batch_item_failures,
        );
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter(|(index, _)| !failed.contains(index))
            .filter_map(|(index, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(message.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        for chunk in entries.chunks(10) {
            sqs.delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await?;
        }
        Ok(messages.len())
    }

    async fn receive(&self, sqs: &aws_sdk_sqs::Client) -> anyhow::Result<Vec<Message>> {
        let wanted = self.source.batch_size.max(1) as usize;
        let mut messages = Vec::new();
        while messages.len() < wanted {
            let wait = if messages.is_empty() { WAIT_SECONDS } else { 0 };
            let received = sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages((wanted - messages.len()).min(10) as i32)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await?
                .messages
                .unwrap_or_default();
            if received.is_empty() {
                break;
            }
            messages.extend(received);
        }
        Ok(messages)
    }
}

/// Which records stay on the queue, following Lambda's partial-batch rules.
fn failed_indices(
    messages: &[Message],
    response: Option<SqsBatchResponse>,
    report_batch_item_failures: bool,
) -> HashSet<usize> {
    let everything = || (0..messages.len()).collect();
    let Some(response) = response else {
        return everything();
    };
    if !report_batch_item_failures {
        return HashSet::new();
    }
    let mut failed = HashSet::new();
    for failure in response.batch_item_failures {
        let position = messages
            .iter()
            .position(|m| m.message_id.as_deref() == Some(failure.item_identifier.as_str()));
        match position {
            Some(index) if !failure.item_identifier.is_empty() => {
                failed.insert(index);
            }
            // An empty or unknown id: Lambda fails the whole batch.
            _ => return everything(),
        }
    }
    failed
}

/// The SQS event Lambda would deliver for `messages`.
pub fn lambda_event(messages: &[Message], queue_arn: &str) -> anyhow::Result<SqsEvent> {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let attributes: Map<String, Value> = message
                .attributes
                .iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.as_str())))
                .collect();
            let message_attributes: Map<String, Value> = message
                .message_attributes
                .iter()
                .flatten()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        json!({
                            "stringValue": value.string_value,
                            "dataType": value.data_type,
                            "stringListValues": [],
                            "binaryListValues": [],
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": message.message_id,
                "receiptHandle": message.receipt_handle,
                "body": message.body,
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": message.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    Ok(serde_json::from_value(json!({ "Records": records }))?)
}

/// Every message waiting on `queue_url`, read without deleting (each is visible again at once),
/// with its attributes: what ops would see in a dead-letter queue.
pub async fn peek(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<Vec<Message>> {
    let mut seen = Vec::new();
    let mut ids = HashSet::new();
    for _ in 0..5 {
        let messages = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        for message in messages {
            if ids.insert(message.message_id.clone()) {
                seen.push(message);
            }
        }
    }
    Ok(seen)
}
