//! The scheduled sweeper: keeps every job moving.
//!
//! 1. Republishes outbox rows not sent within `outbox_after` (a crash or SQS outage between
//!    commit and publish).
//! 2. Re-drives jobs that are really stuck: in `queued`, `synthesizing` or `rendering`, unmoved
//!    for longer than `stuck_after`, whose last message went out longer than `stuck_after` ago,
//!    and whose step's queue has no backlog (a job waiting its turn in a backlog is not stuck,
//!    and re-driving it would earn it a duplicate every sweep). Their message was lost, or a
//!    worker died after deleting it.
//! 3. Turns messages that reached a saga dead-letter queue into a `failed` persona with a reason
//!    the user sees (and can retry) — only for the run the message belongs to. Messages it cannot
//!    attribute stay in the DLQ for ops, and so do the dead letters of queues outside the saga
//!    (chat memory).
//! 4. Prunes what only grows: expired refresh tokens, outbox rows sent more than a week ago.
use platform::db::CachedStatements;
use std::time::Duration;

use crate::SweeperConfig;
use anyhow::Context;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use domain::personas::{PersonaState, Step};
use personas::Personas;
use platform::{
    aws::AwsClients,
    outbox::{Queue, QueueUrls},
    telemetry::describe,
    worker::FAILURE_REASON_ATTRIBUTE,
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
    pub pruned_refresh_tokens: u64,
    pub pruned_outbox_rows: u64,
}

/// Sent outbox rows are kept this long (for ops looking into a saga run), then pruned.
const OUTBOX_RETENTION_DAYS: f64 = 7.0;
/// Rows deleted per table per sweep, so a sweep never holds long locks.
const PRUNE_BATCH: i64 = 5_000;

/// The saga step a queue's messages belong to; `None` outside the saga.
fn step_of(queue: Queue) -> Option<Step> {
    match queue {
        Queue::Synthesize => Some(Step::Synthesize),
        Queue::Render => Some(Step::RenderCard),
        Queue::SummarizeChat | Queue::Export | Queue::Erase => None,
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

    /// The function's handler: the schedule's event sweeps; `{"rerender_cards": {"limit": n}}`
    /// (invoked by ops after a card design change) re-renders up to `n` (500) personas' cards
    /// still on an older design and says how many remain — invoke it again until none do;
    /// `{"moderation": {"persona_id": "<id>", "action": "restore" | "remove"}}` (ops reviewing a
    /// reported persona) shows it again or takes it down for good.
    pub async fn handle(&self, event: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        if let Some(moderation) = event.get("moderation") {
            return self.moderate(moderation).await;
        }
        if let Some(rerender) = event.get("rerender_cards") {
            let limit = rerender
                .get("limit")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(500)
                .clamp(1, 5_000);
            let (queued, remaining) = self
                .personas
                .rerender_outdated(cards::DESIGN_VERSION, limit)
                .await?;
            platform::metrics::invocation_done();
            return Ok(serde_json::json!({
                "design": cards::DESIGN_VERSION,
                "queued": queued,
                "remaining": remaining,
            }));
        }
        let report = self.sweep(SweepSettings::default()).await?;
        Ok(serde_json::json!({
            "republished": report.republished,
            "redriven": report.redriven,
            "dead_lettered": report.dead_lettered,
            "pruned_refresh_tokens": report.pruned_refresh_tokens,
            "pruned_outbox_rows": report.pruned_outbox_rows,
        }))
    }

    /// Ops' decision on a reported persona.
    async fn moderate(&self, payload: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let persona_id = payload
            .get("persona_id")
            .and_then(serde_json::Value::as_str)
            .and_then(|id| id.parse::<Uuid>().ok())
            .context("moderation needs a \"persona_id\"")?;
        let decision = match payload.get("action").and_then(serde_json::Value::as_str) {
            Some("restore") => personas::moderation::Decision::Restore,
            Some("remove") => personas::moderation::Decision::Remove,
            _ => anyhow::bail!("moderation needs an \"action\": \"restore\" or \"remove\""),
        };
        let found = self.personas.moderate(persona_id, decision).await?;
        platform::metrics::invocation_done();
        Ok(serde_json::json!({ "persona_id": persona_id, "applied": found }))
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
        let (pruned_refresh_tokens, pruned_outbox_rows) = self.prune().await?;
        self.measure_outbox().await?;
        let report = SweepReport {
            republished,
            redriven,
            dead_lettered,
            pruned_refresh_tokens,
            pruned_outbox_rows,
        };
        info!(?report, "sweep finished");
        platform::metrics::invocation_done();
        Ok(report)
    }

    /// The outbox backlog: unsent rows and the age of the oldest (0 when none). A growing age
    /// means publishing is failing (SQS down, or a queue this function cannot reach).
    async fn measure_outbox(&self) -> anyhow::Result<()> {
        let client = self.personas.connection().await?;
        let row = client
            .query_one_cached(
                "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
                 FROM outbox WHERE sent_at IS NULL",
                &[],
            )
            .await
            .context("measuring the outbox backlog")?;
        platform::metrics::gauge!("outbox_backlog").set(row.get::<_, i64>(0) as f64);
        platform::metrics::gauge!("outbox_oldest_age_s").set(row.get::<_, f64>(1));
        Ok(())
    }

    async fn prune(&self) -> anyhow::Result<(u64, u64)> {
        let tokens = auth::sessions::prune_expired(&self.personas.db, PRUNE_BATCH).await?;
        let client = self.personas.connection().await?;
        let outbox = client
            .execute_cached(
                "DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox
                     WHERE sent_at < now() - make_interval(days => $2::int) LIMIT $1)",
                &[&PRUNE_BATCH, &(OUTBOX_RETENTION_DAYS as i32)],
            )
            .await
            .context("pruning sent outbox rows")?;
        Ok((tokens, outbox))
    }

    /// Whether `queue` has messages waiting (or the question cannot be answered: then assume it
    /// does, and re-drive nothing this time).
    async fn has_backlog(&self, queue: Queue) -> bool {
        let Some(url) = self.personas.publisher.queues.get(queue) else {
            return true;
        };
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await;
        match attributes {
            Ok(output) => output
                .attributes
                .and_then(|a| {
                    a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                        .cloned()
                })
                .and_then(|n| n.parse::<u64>().ok())
                .is_none_or(|waiting| waiting > 0),
            Err(error) => {
                warn!(
                    queue = queue.name(),
                    error = describe(&anyhow::Error::from(error)),
                    "queue depth unknown; not re-driving"
                );
                true
            }
        }
    }

    async fn redrive_stuck(&self, stuck_after: Duration) -> anyhow::Result<usize> {
        let mut states = Vec::new();
        if !self.has_backlog(Queue::Synthesize).await {
            states.extend([PersonaState::Queued, PersonaState::Synthesizing]);
        }
        if !self.has_backlog(Queue::Render).await {
            states.push(PersonaState::Rendering);
        }
        if states.is_empty() {
            return Ok(0);
        }
        self.personas.redrive_stuck(&states, stuck_after).await
    }

    async fn drain_dead_letters(&self, queue_url: &str, step: Step) -> anyhow::Result<usize> {
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
            // Every message that reached a dead-letter queue, whether SQS moved it there after
            // its last receive or a worker parked it: SQS's own NumberOfMessagesSent does not
            // count redriven messages, and this sweep may empty the queue before
            // ApproximateNumberOfMessagesVisible is sampled, so the alarms watch this metric.
            let step_name = match step {
                Step::Synthesize => "synthesize",
                Step::RenderCard => "render_card",
            };
            platform::metrics::counter!("dead_letters", "step" => step_name, "source" => "queue")
                .increment(messages.len() as u64);
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
                        step = step_name,
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
                let run = body
                    .as_ref()
                    .and_then(|body| body["generation"].as_i64())
                    .and_then(|run| i32::try_from(run).ok());
                let dealt_with = self
                    .personas
                    .fail_dead_lettered(persona_id, step, &reason, run)
                    .await?;
                if !dealt_with {
                    continue;
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
