//! The transactional outbox. A message is written in the same transaction as the state change
//! that causes it and published to SQS after commit; a row whose publish was lost (crash, SQS
//! down) stays unsent and the sweeper republishes it. Consumers are idempotent, so the rare
//! double publish (sent, then the `sent_at` update lost) is harmless.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::MessageAttributeValue;
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::worker::REQUEST_ID_ATTRIBUTE;

/// The saga queues, by the name stored in `outbox.queue`.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub sqs: aws_sdk_sqs::Client,
    pub synthesize_queue_url: String,
    pub render_queue_url: String,
}

impl Publisher {
    fn queue_url(&self, queue: &str) -> Option<&str> {
        match queue {
            "synthesize" => Some(&self.synthesize_queue_url),
            "render" => Some(&self.render_queue_url),
            _ => None,
        }
    }

    /// Publishes the unsent rows among `ids`; returns how many were sent. Failures are logged
    /// and left for the sweeper.
    pub async fn publish(&self, db: &Pool, ids: &[Uuid]) -> usize {
        match self.publish_ids(db, ids).await {
            Ok(sent) => sent,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
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
            .query(
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
            .query(
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
            let Some(queue_url) = self.queue_url(&queue) else {
                tracing::error!(%id, queue, "outbox row for an unknown queue");
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
            match send.send().await {
                Ok(_) => {
                    client
                        .execute("UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = $1", &[&id])
                        .await
                        .context("marking an outbox row sent")?;
                    sent += 1;
                }
                Err(error) => {
                    tracing::warn!(%id, queue, error = format!("{:#}", anyhow::Error::from(error)), "publish failed");
                    client
                        .execute(
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
