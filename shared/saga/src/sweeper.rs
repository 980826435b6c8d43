//! The scheduled sweeper: keeps every job moving.
//!
//! 1. Republishes outbox rows not sent within `outbox_after` (a crash or SQS outage between
//!    commit and publish).
//! 2. Re-drives jobs stuck in `queued`, `synthesizing` or `rendering` for longer than
//!    `stuck_after` (their message was lost, or a worker died after its message was deleted).
//! 3. Turns messages that reached a saga dead-letter queue into a `failed` persona with a reason
//!    the user sees (and can retry). Messages it cannot attribute stay in the DLQ for ops, and so
//!    do the dead letters of queues outside the saga (chat memory).

use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::MessageAttributeValue;
use domain::personas::PersonaState;
use personas::{queue_step, rows, Personas};
use platform::{
    aws::AwsClients,
    outbox::{Queue, QueueUrls},
    telemetry::describe,
    worker::FAILURE_REASON_ATTRIBUTE,
    SweeperConfig,
};
use tracing::{info, warn};
use uuid::Uuid;

/// The sweeper function: publishes to every queue and reads the saga's dead-letter queues.
#[derive(Clone)]
pub struct Sweeper {
    pub personas: Personas,
    pub sqs: aws_sdk_sqs::Client,
    pub dead_letter_queues: QueueUrls,
}

#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    pub outbox_after: Duration,
    pub stuck_after: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            outbox_after: Duration::from_secs(30),
            // Past the longest visibility timeout (the synthesize queue's 360 s): a message that
            // is only waiting to become visible again is not stuck.
            stuck_after: Duration::from_secs(420),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub republished: usize,
    pub redriven: usize,
    pub dead_lettered: usize,
}

/// The saga step a queue's messages belong to, as failures name it; `None` outside the saga.
fn step_of(queue: Queue) -> Option<&'static str> {
    match queue {
        Queue::Synthesize => Some("synthesize"),
        Queue::Render => Some("render_card"),
        Queue::SummarizeChat => None,
    }
}

impl Sweeper {
    pub fn new(config: SweeperConfig, aws: &AwsClients) -> anyhow::Result<Self> {
        Ok(Self {
            personas: crate::personas(&config.database, &config.table_name, config.queues, aws)?,
            sqs: aws.sqs.clone(),
            dead_letter_queues: config.dead_letter_queues,
        })
    }

    pub async fn sweep(&self, settings: SweepSettings) -> anyhow::Result<SweepReport> {
        let personas = &self.personas;
        let republished = personas
            .publisher
            .publish_stale(&personas.db, settings.outbox_after)
            .await?;
        let redriven = self.redrive_stuck(settings.stuck_after).await?;
        let mut dead_lettered = 0;
        for (queue, queue_url) in &self.dead_letter_queues.0 {
            // Only saga messages name a persona to fail; other dead letters stay for ops.
            let Some(step) = step_of(*queue) else {
                continue;
            };
            dead_lettered += self.drain_dead_letters(queue_url, step).await?;
        }
        let report = SweepReport {
            republished,
            redriven,
            dead_lettered,
        };
        info!(?report, "sweep finished");
        Ok(report)
    }

    async fn redrive_stuck(&self, stuck_after: Duration) -> anyhow::Result<usize> {
        let personas = &self.personas;
        let client = personas
            .db
            .get()
            .await
            .context("connecting to PostgreSQL")?;
        let stuck = client
            .query(
                &format!(
                    "SELECT {} FROM personas p
                     WHERE state IN ('queued', 'synthesizing', 'rendering')
                       AND updated_at < now() - make_interval(secs => $1)
                       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sent_at IS NULL
                                       AND o.body->>'persona_id' = p.id::text)
                     ORDER BY updated_at LIMIT 100",
                    rows::COLUMNS
                ),
                &[&stuck_after.as_secs_f64()],
            )
            .await
            .context("finding stuck jobs")?;
        drop(client);
        let mut redriven = 0;
        for row in stuck.iter().map(rows::from_row) {
            let mut client = personas
                .db
                .get()
                .await
                .context("connecting to PostgreSQL")?;
            let tx = client.transaction().await?;
            // CAS: a worker that moves the row meanwhile wins, and so does an overlapping sweep
            // (it has already touched `updated_at`).
            let touched = tx
                .execute(
                    "UPDATE personas SET updated_at = now()
                     WHERE id = $1 AND state_version = $2
                       AND updated_at < now() - make_interval(secs => $3)",
                    &[&row.id, &row.state_version, &stuck_after.as_secs_f64()],
                )
                .await?;
            if touched == 0 {
                continue;
            }
            let outbox_id = queue_step(&tx, &row, None).await?;
            tx.commit().await?;
            drop(client);
            warn!(persona_id = %row.id, state = row.state.as_str(), "re-driving a stuck job");
            personas.publisher.publish(&personas.db, &[outbox_id]).await;
            redriven += 1;
        }
        Ok(redriven)
    }

    async fn drain_dead_letters(&self, queue_url: &str, step: &str) -> anyhow::Result<usize> {
        let mut handled = 0;
        for _ in 0..10 {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .visibility_timeout(60)
                .send()
                .await
                .context("reading a dead-letter queue")?
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let body = message
                    .body
                    .as_deref()
                    .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok());
                let persona_id = body.as_ref().and_then(|body| {
                    body["persona_id"]
                        .as_str()
                        .and_then(|id| id.parse::<Uuid>().ok())
                });
                let Some(persona_id) = persona_id else {
                    warn!(
                        step,
                        "a dead-lettered message names no persona; left for ops"
                    );
                    if let Some(handle) = &message.receipt_handle {
                        let _ = self
                            .sqs
                            .change_message_visibility()
                            .queue_url(queue_url)
                            .receipt_handle(handle)
                            .visibility_timeout(43_200)
                            .send()
                            .await;
                    }
                    continue;
                };
                let reason = message
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(FAILURE_REASON_ATTRIBUTE))
                    .and_then(MessageAttributeValue::string_value)
                    .filter(|r| {
                        r.len() <= 40 && r.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                    .unwrap_or("dead_lettered")
                    .to_owned();
                // Only the run this message belongs to fails: a synthesize message only while
                // synthesis is pending, a render message only for its own render generation.
                let generation = body
                    .as_ref()
                    .and_then(|body| body["generation"].as_i64())
                    .unwrap_or(-1) as i32;
                let client = self.personas.connection().await?;
                let failed = rows::transition(
                    &client,
                    "UPDATE personas SET state = 'failed', state_version = state_version + 1,
                         failed_step = $2, error_code = $3, error_retryable = true, updated_at = now()
                     WHERE id = $1 AND (
                         ($2 = 'synthesize' AND state IN ('queued', 'synthesizing'))
                      OR ($2 = 'render_card' AND state = 'rendering' AND render_generation = $4))",
                    &[&persona_id, &step, &reason, &generation],
                )
                .await?;
                // The status of a row failed here, or by an earlier sweep whose status write was
                // lost; the message is kept until that write succeeds.
                let row = match failed {
                    Some(failed) => {
                        warn!(persona_id = %persona_id, step, reason, "dead-lettered job marked failed");
                        Some(failed)
                    }
                    None => rows::load(&client, persona_id).await?,
                };
                drop(client);
                if let Some(row) = row.filter(|row| row.state == PersonaState::Failed) {
                    if let Err(error) = self.personas.write_status(&row).await {
                        warn!(persona_id = %persona_id, error = describe(&error), "status not written; the dead letter is kept");
                        continue;
                    }
                }
                if let Some(handle) = &message.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .context("deleting a handled dead letter")?;
                }
                handled += 1;
            }
        }
        Ok(handled)
    }
}
