//! The SQS batch helper every worker runs on.
//!
//! Lambda's partial batch contract (`ReportBatchItemFailures`): the function returns the ids of
//! the messages that failed, and only those come back; everything else is deleted. An empty or
//! null id makes Lambda treat the whole batch as failed, so we never report one.
//! <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>
//!
//! Each record is decoded and run in its own span; a retryable failure is reported (optionally
//! after shortening its visibility timeout, for backoff), a permanent one is moved to the
//! dead-letter queue at once and acknowledged, and a panic in one record is caught and treated as
//! retryable, so one bad message never fails the batch.

use std::{future::Future, panic::AssertUnwindSafe, time::Duration};

use anyhow::Context;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use futures_util::{stream, FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use tracing::{error, info, warn, Instrument};

/// Message attribute carrying the id of the HTTP request that caused the work.
pub const REQUEST_ID_ATTRIBUTE: &str = "request_id";
/// Message attribute set on messages moved to a dead-letter queue by a worker.
pub const FAILURE_REASON_ATTRIBUTE: &str = "failure_reason";

/// `maxReceiveCount` of every queue's redrive policy in `template.yaml` (a test checks): after
/// this many receives SQS moves a message to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;

/// How many records of one batch run at the same time.
const RECORD_CONCURRENCY: usize = 10;

/// Why a step did not complete, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A retry may help (a dependency was down, a rate limit hit). The message comes back after
    /// `after` when given, otherwise after the queue's visibility timeout.
    // Described, never `{:#}`: a PostgreSQL DETAIL can quote row values.
    #[error("retryable failure: {}", crate::telemetry::describe(error))]
    Retryable {
        error: anyhow::Error,
        after: Option<Duration>,
    },
    /// No retry can help. `reason` is a short snake_case code, never message content: it is
    /// logged and attached to the dead-lettered message.
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

impl StepError {
    pub fn retryable(error: impl Into<anyhow::Error>) -> Self {
        Self::Retryable {
            error: error.into(),
            after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }
}

/// One decoded SQS record, as a step sees it.
#[derive(Debug, Clone)]
pub struct Message<T> {
    pub id: String,
    pub request_id: Option<String>,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    pub body: T,
}

/// What the helper needs from the queue besides the event: delaying a retry and parking a
/// message that can never succeed, and the step's name (a metric dimension).
pub trait QueueOps: Send + Sync {
    /// The step this queue feeds (`synthesize`, `render_card`, …).
    fn step(&self) -> &'static str;

    fn retry_later(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    fn dead_letter(
        &self,
        record: &SqsMessage,
        reason: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// [`QueueOps`] on real SQS queues.
#[derive(Clone, Debug)]
pub struct SqsQueueOps {
    pub step: &'static str,
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dead_letter_queue_url: String,
}

impl QueueOps for SqsQueueOps {
    fn step(&self) -> &'static str {
        self.step
    }

    async fn retry_later(&self, receipt_handle: &str, after: Duration) -> anyhow::Result<()> {
        // 12 hours is SQS's ceiling for a message's visibility timeout.
        // Rounded up: a sub-second backoff must not collapse to "at once".
        let seconds = after.as_secs_f64().ceil().min(43_200.0) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .context("changing message visibility for a delayed retry")?;
        Ok(())
    }

    async fn dead_letter(&self, record: &SqsMessage, reason: &str) -> anyhow::Result<()> {
        let string_attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
        };
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.dead_letter_queue_url)
            .message_body(record.body.clone().unwrap_or_default())
            .message_attributes(FAILURE_REASON_ATTRIBUTE, string_attribute(reason)?);
        if let Some(request_id) = request_id_of(record) {
            send = send.message_attributes(REQUEST_ID_ATTRIBUTE, string_attribute(request_id)?);
        }
        send.send()
            .await
            .context("sending a message to the dead-letter queue")?;
        Ok(())
    }
}

fn request_id_of(record: &SqsMessage) -> Option<&str> {
    record
        .message_attributes
        .get(REQUEST_ID_ATTRIBUTE)
        .and_then(|attribute| attribute.string_value.as_deref())
}

/// Runs `step` on every record of `event` and reports only the failed message ids.
pub async fn process_batch<T, F, Fut>(
    event: SqsEvent,
    queue: &impl QueueOps,
    step: F,
) -> SqsBatchResponse
where
    T: DeserializeOwned,
    F: Fn(Message<T>) -> Fut,
    Fut: Future<Output = Result<(), StepError>>,
{
    let step = &step;
    let failures: Vec<BatchItemFailure> = stream::iter(event.records)
        .map(|record| async move {
            // Lambda always sets an id; a record without one cannot be reported, and reporting
            // an empty id would fail the whole batch.
            let id = record.message_id.clone().filter(|id| !id.is_empty())?;
            let span = tracing::info_span!(
                "sqs_message",
                message_id = %id,
                request_id = request_id_of(&record).unwrap_or("-"),
            );
            let failed = process_record(&record, &id, queue, step)
                .instrument(span)
                .await;
            failed.then(|| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
        })
        .buffer_unordered(RECORD_CONCURRENCY)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    crate::metrics::invocation_done();
    response
}

/// Returns `true` when the message must be reported as failed (so SQS delivers it again).
async fn process_record<T, F, Fut>(
    record: &SqsMessage,
    id: &str,
    queue: &impl QueueOps,
    step: &F,
) -> bool
where
    T: DeserializeOwned,
    F: Fn(Message<T>) -> Fut,
    Fut: Future<Output = Result<(), StepError>>,
{
    let started = std::time::Instant::now();
    let handled = run_record(record, id, queue, step).await;
    let outcome = match handled {
        Handled::Done => "done",
        Handled::Retry => "retry",
        Handled::DeadLettered => "dead_lettered",
        Handled::Panicked => "panicked",
    };
    let step_name = queue.step();
    metrics::histogram!("step_duration_ms", "step" => step_name, "outcome" => outcome)
        .record(crate::metrics::millis(started.elapsed()));
    metrics::counter!("step_outcomes", "step" => step_name, "outcome" => outcome).increment(1);
    if matches!(handled, Handled::DeadLettered) {
        metrics::counter!("dead_letters", "step" => step_name, "source" => "worker").increment(1);
    }
    matches!(handled, Handled::Retry | Handled::Panicked)
}

/// What became of one record.
enum Handled {
    Done,
    /// Reported as failed: SQS delivers it again.
    Retry,
    /// Moved to the dead-letter queue and acknowledged.
    DeadLettered,
    /// The step panicked; reported as failed.
    Panicked,
}

async fn run_record<T, F, Fut>(
    record: &SqsMessage,
    id: &str,
    queue: &impl QueueOps,
    step: &F,
) -> Handled
where
    T: DeserializeOwned,
    F: Fn(Message<T>) -> Fut,
    Fut: Future<Output = Result<(), StepError>>,
{
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let outcome = match serde_json::from_str::<T>(record.body.as_deref().unwrap_or_default()) {
        // Only the category and position: serde's message can quote the content.
        Err(error) => {
            warn!(
                category = ?error.classify(),
                line = error.line(),
                column = error.column(),
                "undecodable message body"
            );
            Err(StepError::permanent("undecodable_body"))
        }
        Ok(body) => {
            let message = Message {
                id: id.to_owned(),
                request_id: request_id_of(record).map(str::to_owned),
                receive_count,
                body,
            };
            match AssertUnwindSafe(step(message)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(_) => {
                    error!(receive_count, "step panicked; the message will be retried");
                    return Handled::Panicked;
                }
            }
        }
    };
    match outcome {
        Ok(()) => {
            info!(receive_count, outcome = "done", "step finished");
            Handled::Done
        }
        Err(StepError::Retryable { error, after }) => {
            warn!(
                receive_count,
                error = crate::telemetry::describe(&error),
                "step failed; will retry"
            );
            if let (Some(after), Some(handle)) = (after, record.receipt_handle.as_deref()) {
                if let Err(error) = queue.retry_later(handle, after).await {
                    warn!(
                        error = crate::telemetry::describe(&error),
                        "could not delay the retry"
                    );
                }
            }
            Handled::Retry
        }
        Err(StepError::Permanent { reason }) => match queue.dead_letter(record, &reason).await {
            Ok(()) => {
                warn!(
                    receive_count,
                    reason, "permanent failure; moved to the dead-letter queue"
                );
                Handled::DeadLettered
            }
            Err(error) => {
                error!(
                    reason,
                    error = crate::telemetry::describe(&error),
                    "could not dead-letter; will retry"
                );
                Handled::Retry
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde::Deserialize;

    use super::*;

    #[derive(Default)]
    struct RecordingQueue {
        delayed: Mutex<Vec<(String, Duration)>>,
        parked: Mutex<Vec<(Option<String>, String)>>,
    }

    impl QueueOps for RecordingQueue {
        fn step(&self) -> &'static str {
            "test"
        }

        async fn retry_later(&self, receipt_handle: &str, after: Duration) -> anyhow::Result<()> {
            self.delayed
                .lock()
                .unwrap()
                .push((receipt_handle.into(), after));
            Ok(())
        }

        async fn dead_letter(&self, record: &SqsMessage, reason: &str) -> anyhow::Result<()> {
            self.parked
                .lock()
                .unwrap()
                .push((record.message_id.clone(), reason.into()));
            Ok(())
        }
    }

    #[derive(Deserialize)]
    struct Job {
        fail: bool,
    }

    fn event(records: &[(Option<&str>, &str)]) -> SqsEvent {
        let records: Vec<_> = records
            .iter()
            .map(|(id, body)| {
                serde_json::json!({
                    "messageId": id,
                    "receiptHandle": format!("handle-{}", id.unwrap_or("none")),
                    "body": body,
                    "attributes": { "ApproximateReceiveCount": "2" },
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    async fn run(event: SqsEvent, queue: &RecordingQueue) -> Vec<String> {
        process_batch(event, queue, |message: Message<Job>| async move {
            assert_eq!(message.receive_count, 2);
            if message.body.fail {
                Err(StepError::Retryable {
                    error: anyhow::anyhow!("busy"),
                    after: Some(Duration::from_secs(30)),
                })
            } else {
                Ok(())
            }
        })
        .await
        .batch_item_failures
        .into_iter()
        .map(|failure| failure.item_identifier)
        .collect()
    }

    #[tokio::test]
    async fn retryable_failures_are_reported_and_delayed() {
        let queue = RecordingQueue::default();
        let failed = run(
            event(&[
                (Some("a"), r#"{"fail":false}"#),
                (Some("b"), r#"{"fail":true}"#),
            ]),
            &queue,
        )
        .await;
        assert_eq!(failed, ["b"]);
        assert_eq!(
            *queue.delayed.lock().unwrap(),
            [("handle-b".to_owned(), Duration::from_secs(30))]
        );
    }

    #[tokio::test]
    async fn an_undecodable_body_is_dead_lettered_not_reported() {
        let queue = RecordingQueue::default();
        let failed = run(event(&[(Some("a"), "{}"), (Some("b"), "<xml/>")]), &queue).await;
        assert!(failed.is_empty());
        let parked = queue.parked.lock().unwrap().clone();
        assert_eq!(
            parked,
            [
                (Some("a".to_owned()), "undecodable_body".to_owned()),
                (Some("b".to_owned()), "undecodable_body".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_record_without_an_id_is_never_reported_with_an_empty_id() {
        let queue = RecordingQueue::default();
        let failed = run(
            event(&[(None, r#"{"fail":true}"#), (Some(""), r#"{"fail":true}"#)]),
            &queue,
        )
        .await;
        assert!(failed.is_empty(), "{failed:?}");
    }
}
