//! How the soak puts messages on the queues: batched sends, the queues' depths, the paced feed
//! of shuffled synthesize copies, and the extra copies of render messages.

use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use futures_util::{stream, StreamExt, TryStreamExt};
use uuid::Uuid;

use super::chaos::Random;

/// Sends `bodies` to `queue_url`, ten to a batch, a few batches at a time.
async fn send_all(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    bodies: Vec<String>,
) -> anyhow::Result<()> {
    let batches: Vec<Vec<String>> = bodies.chunks(10).map(<[String]>::to_vec).collect();
    stream::iter(batches)
        .map(|batch| async move {
            let entries = batch
                .into_iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sent = sqs
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("sending a batch")?;
            if !sent.failed().is_empty() {
                anyhow::bail!("{} messages of a batch were refused", sent.failed().len());
            }
            anyhow::Ok(())
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Messages on `queue_url`: (waiting or delayed, in flight). A copy that a worker left to come
/// back after the queue's visibility timeout (minutes) stays in flight long after its persona
/// is ready; it is counted, not waited for (when it returns, the step finds the work done).
pub(super) async fn backlog(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> anyhow::Result<(i64, i64)> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let count = |name: &QueueAttributeName| {
        attributes
            .get(name)
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    };
    Ok((
        count(&QueueAttributeName::ApproximateNumberOfMessages)
            + count(&QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// About this many messages wait on the two saga queues together: synthesize copies are topped
/// up each second while fewer than half as many wait.
///
/// moto's SQS is linear in the depth of a queue on every call (each send and each message
/// received computes all the queue's attributes, the three approximate counts among them, by
/// scanning every message), so sending all ~10,000 copies at once made the emulator quadratic:
/// that 10,000-message run crawled to 3 personas a minute. Topped up against the synthesize
/// queue alone, the render queue's backlog grew instead. A window keeps the shuffled order and the
/// duplicates; it only paces them, as a real queue's consumers would see a steady stream.
const FEED_WINDOW: i64 = 400;

/// The shuffled synthesize copies, sent in order as the queues drain.
pub(super) struct Feed {
    pub(super) bodies: Vec<String>,
    pub(super) next: usize,
}

impl Feed {
    /// Sends the next copies so that about [`FEED_WINDOW`] wait, given `waiting` now on both
    /// saga queues; returns how many it sent.
    pub(super) async fn top_up(
        &mut self,
        sqs: &aws_sdk_sqs::Client,
        queue_url: &str,
        waiting: i64,
    ) -> anyhow::Result<usize> {
        if waiting >= FEED_WINDOW / 2 {
            return Ok(0);
        }
        let count = ((FEED_WINDOW - waiting) as usize).min(self.bodies.len() - self.next);
        let batch = self.bodies[self.next..self.next + count].to_vec();
        self.next += count;
        send_all(sqs, queue_url, batch).await?;
        Ok(count)
    }

    pub(super) fn done(&self) -> bool {
        self.next == self.bodies.len()
    }
}

/// Extra copies of render messages: 0–2 of each, sent at random moments within two seconds.
pub(super) struct RenderCopies {
    pub(super) last_seen: Uuid,
    pub(super) pending: Vec<(Instant, String)>,
    pub(super) sent: usize,
    pub(super) originals: usize,
}

impl RenderCopies {
    pub(super) async fn step(
        &mut self,
        db: &deadpool_postgres::Pool,
        sqs: &aws_sdk_sqs::Client,
        queue_url: &str,
        random: &mut Random,
    ) -> anyhow::Result<()> {
        let client = db.get().await?;
        let rows = client
            .query(
                "SELECT id, body::text FROM outbox WHERE queue = 'render' AND id > $1 ORDER BY id",
                &[&self.last_seen],
            )
            .await?;
        drop(client);
        for row in rows {
            self.last_seen = row.get(0);
            self.originals += 1;
            let body: String = row.get(1);
            for _ in 0..random.below(3) {
                let due = Instant::now() + Duration::from_millis(random.below(2_000));
                self.pending.push((due, body.clone()));
            }
        }
        let now = Instant::now();
        let (mut due, later): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|(at, _)| *at <= now);
        self.pending = later;
        random.shuffle(&mut due);
        self.sent += due.len();
        send_all(
            sqs,
            queue_url,
            due.into_iter().map(|(_, body)| body).collect(),
        )
        .await
    }
}
