//! The transactional outbox: the one way work is queued.
//!
//! A message is written with [`enqueue`] in the same transaction as the state change that causes
//! it, and published to SQS after commit by [`Publisher::publish`]; a row whose publish was lost
//! (crash, SQS down) stays unsent and the sweeper republishes it. Consumers are idempotent, so
//! the rare double publish (sent, then the `sent_at` update lost) is harmless.
//!
//! Adding a queue costs one [`Queue`] variant and its resources in `template.yaml` (the queue,
//! its dead-letter queue and the `*_QUEUE_URL` / `*_DLQ_URL` variables of the functions that use
//! it). The PL/pgSQL function that stores a survey answer (`submit_survey_response`, migration
//! V11) inserts, for the third answer, an [`OutboxMessage`] built here, so the answer costs one
//! round trip and every message is still made by this module.

use crate::db::CachedStatements;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    env::{Env, Lookup},
    telemetry::describe,
    worker::REQUEST_ID_ATTRIBUTE,
};

/// Every SQS queue work is published to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Queue {
    /// Saga step 1: persona synthesis.
    Synthesize,
    /// Saga step 2: card rendering.
    Render,
    /// Chat memory: fold older turns of an owner's chat into a memory note.
    SummarizeChat,
    /// Your data: build an account's export.
    Export,
    /// Your data: erase an account.
    Erase,
}

impl Queue {
    pub const ALL: [Queue; 5] = [
        Queue::Synthesize,
        Queue::Render,
        Queue::SummarizeChat,
        Queue::Export,
        Queue::Erase,
    ];
    /// The persona saga's steps (the sweeper turns their dead letters into failed personas).
    pub const SAGA: [Queue; 2] = [Queue::Synthesize, Queue::Render];

    /// The name stored in `outbox.queue`.
    pub fn name(self) -> &'static str {
        match self {
            Queue::Synthesize => "synthesize",
            Queue::Render => "render",
            Queue::SummarizeChat => "summarize_chat",
            Queue::Export => "export",
            Queue::Erase => "erase",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|queue| queue.name() == name)
    }

    /// The variable holding the queue's URL.
    pub fn url_variable(self) -> &'static str {
        match self {
            Queue::Synthesize => "SYNTHESIZE_QUEUE_URL",
            Queue::Render => "RENDER_QUEUE_URL",
            Queue::SummarizeChat => "SUMMARIZE_CHAT_QUEUE_URL",
            Queue::Export => "EXPORT_QUEUE_URL",
            Queue::Erase => "ERASE_QUEUE_URL",
        }
    }

    /// The variable holding the URL of the queue's dead-letter queue.
    pub fn dead_letter_variable(self) -> &'static str {
        match self {
            Queue::Synthesize => "SYNTHESIZE_DLQ_URL",
            Queue::Render => "RENDER_DLQ_URL",
            Queue::SummarizeChat => "SUMMARIZE_CHAT_DLQ_URL",
            Queue::Export => "EXPORT_DLQ_URL",
            Queue::Erase => "ERASE_DLQ_URL",
        }
    }
}

/// Queue URLs by queue: the queues a function publishes to, or whose dead letters it reads.
#[derive(Debug, Clone, Default)]
pub struct QueueUrls(pub BTreeMap<Queue, String>);

impl QueueUrls {
    /// Reads the URL variable of every queue in `queues`.
    pub fn read<F: Fn(&str) -> Option<String>>(env: &mut Env<F>, queues: &[Queue]) -> Self {
        Self(
            queues
                .iter()
                .map(|queue| (*queue, env.required_url(queue.url_variable())))
                .collect(),
        )
    }

    /// Reads the dead-letter URL variable of every queue in `queues`.
    pub fn read_dead_letters<F: Fn(&str) -> Option<String>>(
        env: &mut Env<F>,
        queues: &[Queue],
    ) -> Self {
        Self(
            queues
                .iter()
                .map(|queue| (*queue, env.required_url(queue.dead_letter_variable())))
                .collect(),
        )
    }

    pub fn get(&self, queue: Queue) -> Option<&str> {
        self.0.get(&queue).map(String::as_str)
    }
}

/// The queue an SQS-triggered function consumes, and its dead-letter queue.
#[derive(Debug, Clone, Default)]
pub struct WorkerQueue {
    pub url: String,
    pub dead_letter_url: String,
}

impl WorkerQueue {
    pub fn read(env: &mut Env<Lookup>, queue: Queue) -> Self {
        Self {
            url: env.required_url(queue.url_variable()),
            dead_letter_url: env.required_url(queue.dead_letter_variable()),
        }
    }
}

/// An outbox row before it is written: what [`enqueue`] inserts, and what the answer function
/// (`submit_survey_response`) is handed to insert when the answer is the third.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub queue: Queue,
    /// Ids only, never user content.
    pub body: serde_json::Value,
}

impl OutboxMessage {
    /// The message for `queue` carrying `body`.
    pub fn new(queue: Queue, body: &impl Serialize) -> anyhow::Result<Self> {
        Ok(Self {
            id: Uuid::now_v7(),
            queue,
            body: serde_json::to_value(body).context("serializing a queue message")?,
        })
    }
}

/// Writes a message for `queue` inside the caller's transaction; returns the row id to hand to
/// [`Publisher::publish`] after commit. Bodies carry ids only, never user content.
pub async fn enqueue(
    client: &impl GenericClient,
    queue: Queue,
    body: &impl Serialize,
    request_id: Option<&str>,
) -> anyhow::Result<Uuid> {
    let message = OutboxMessage::new(queue, body)?;
    client
        .execute_cached(
            "INSERT INTO outbox (id, queue, body, request_id) VALUES ($1, $2, $3, $4)",
            &[&message.id, &queue.name(), &message.body, &request_id],
        )
        .await
        .with_context(|| format!("queuing a {} message", queue.name()))?;
    Ok(message.id)
}

/// Publishes outbox rows to the queues this function may publish to.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub sqs: aws_sdk_sqs::Client,
    pub queues: Arc<QueueUrls>,
}

impl Publisher {
    pub fn new(sqs: aws_sdk_sqs::Client, queues: QueueUrls) -> Self {
        Self {
            sqs,
            queues: Arc::new(queues),
        }
    }

    /// Publishes the unsent rows among `ids`; returns how many were sent. Failures are logged
    /// and left for the sweeper.
    pub async fn publish(&self, db: &Pool, ids: &[Uuid]) -> usize {
        match self.publish_ids(db, ids).await {
            Ok(sent) => sent,
            Err(error) => {
                tracing::warn!(
                    error = describe(&error),
                    "outbox publish failed; the sweeper will retry"
                );
                0
            }
        }
    }

    /// Publishes every row unsent for longer than `older_than` (the sweeper's job).
    pub async fn publish_stale(&self, db: &Pool, older_than: Duration) -> anyhow::Result<usize> {
        let client = db.get().await.context("connecting to PostgreSQL")?;
        let rows = client
            .query_cached(
                "SELECT id FROM outbox WHERE sent_at IS NULL
                 AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT 500",
                &[&older_than.as_secs_f64()],
            )
            .await
            .context("finding unsent outbox rows")?;
        let ids: Vec<Uuid> = rows.iter().map(|row| row.get(0)).collect();
        drop(client);
        self.publish_ids(db, &ids).await
    }

    async fn publish_ids(&self, db: &Pool, ids: &[Uuid]) -> anyhow::Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let client = db.get().await.context("connecting to PostgreSQL")?;
        let rows = client
            .query_cached(
                "SELECT id, queue, body::text, request_id FROM outbox
                 WHERE sent_at IS NULL AND id = ANY($1)",
                &[&ids],
            )
            .await
            .context("reading outbox rows")?;
        let mut sent = 0;
        for row in rows {
            let (id, queue, body, request_id): (Uuid, String, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let Some(queue_url) = Queue::parse(&queue).and_then(|q| self.queues.get(q)) else {
                tracing::error!(%id, queue, "outbox row for a queue this function cannot publish to");
                continue;
            };
            let mut send = self
                .sqs
                .send_message()
                .queue_url(queue_url)
                .message_body(body);
            if let Some(request_id) = &request_id {
                send = send.message_attributes(
                    REQUEST_ID_ATTRIBUTE,
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(request_id)
                        .build()?,
                );
            }
            // One trace from the request to the workers: Lambda's X-Ray trace header rides the
            // message as its AWSTraceHeader, and the consuming function's trace continues it.
            // https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html
            if let Some(trace) = trace_header() {
                send = send.message_system_attributes(
                    MessageSystemAttributeNameForSends::AwsTraceHeader,
                    MessageSystemAttributeValue::builder()
                        .data_type("String")
                        .string_value(trace)
                        .build()?,
                );
            }
            match send.send().await {
                Ok(_) => {
                    client
                        .execute_cached("UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = $1", &[&id])
                        .await
                        .context("marking an outbox row sent")?;
                    sent += 1;
                }
                Err(error) => {
                    tracing::warn!(%id, queue, error = describe(&anyhow::Error::from(error)), "publish failed");
                    client
                        .execute_cached(
                            "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1",
                            &[&id],
                        )
                        .await
                        .context("counting a failed publish")?;
                }
            }
        }
        Ok(sent)
    }
}

/// The X-Ray trace header of the invocation in progress (Lambda sets `_X_AMZN_TRACE_ID` for each
/// one), when there is one: a well-formed `Root=…` header only.
fn trace_header() -> Option<String> {
    std::env::var("_X_AMZN_TRACE_ID")
        .ok()
        .filter(|header| header.starts_with("Root=") && header.len() <= 256)
}
