//! The saga soak (SPEC section 6): thousands of persona jobs through the real queues, every
//! message delivered one to three times in shuffled order, and a crash injected at every step
//! boundary (`saga::Faults`), then a census: no persona lost, no duplicate version, card or
//! ledger entry, every status `ready`, and what the dead-letter queues hold.
//!
//! Synthesize messages are seeded unsent and delivered by the soak itself (1–3 copies each, all
//! shuffled, sent in that order as the queues drain: [`FEED_WINDOW`]). Render messages are
//! published by the synthesize worker as in production; the soak watches the outbox and sends
//! 0–2 extra copies of each at random moments over the next two seconds. Each persona crashes once at a pseudo-randomly chosen subset of the four boundaries
//! (a third of the time at each), so every boundary crashes for thousands of jobs, and no job is
//! made to fail five times in a row (which would dead-letter it, correctly but uselessly).

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use domain::personas::PersonaState;
use futures_util::{stream, StreamExt, TryStreamExt};
use platform::{
    aws::AwsClients,
    worker::{StepError, FAILURE_REASON_ATTRIBUTE},
};
use saga::{FaultPoint, Faults, Saga};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{provision::LocalResources, stack, template::Template};

/// How big a soak.
#[derive(Debug, Clone, Copy)]
pub struct SoakOptions {
    /// Distinct saga messages: two per persona (synthesize, render).
    pub messages: usize,
    /// Seed of the shuffles, copy counts and crash choices.
    pub seed: u64,
    /// Give up waiting after this long (what is not ready then is reported lost).
    pub timeout: Duration,
}

/// What the soak found.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub personas: usize,
    /// Distinct messages (synthesize plus render).
    pub messages: usize,
    /// Messages put on the queues: every copy, the workers' own publishes included.
    pub deliveries: usize,
    pub crashes: usize,
    pub ready: usize,
    /// Failed personas by error code.
    pub failed: BTreeMap<String, usize>,
    /// Neither ready nor failed when the soak ended.
    pub lost: usize,
    /// Owners with more than one persona version.
    pub duplicate_versions: usize,
    pub card_objects: usize,
    /// Card objects beyond three per persona, plus personas whose row lists other than three.
    pub duplicate_cards: usize,
    pub ledger_entries: i64,
    pub duplicate_ledger_entries: i64,
    /// Statuses (what clients poll) that do not say `ready`.
    pub statuses_not_ready: usize,
    /// Copies still in flight when every persona had settled and nothing was waiting: left by a
    /// worker to come back after the visibility timeout; each finds its work done when it does.
    pub in_flight_at_end: usize,
    /// Every dead-lettered message: queue, `failure_reason`, body.
    pub dead_letters: Vec<String>,
    /// From the first delivery to the last persona settled and nothing left waiting.
    pub duration: Duration,
}

impl SoakReport {
    /// No persona lost or failed, nothing duplicated, every status ready, no dead letter.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.failed.is_empty()
            && self.duplicate_versions == 0
            && self.duplicate_cards == 0
            && self.duplicate_ledger_entries == 0
            && self.statuses_not_ready == 0
            && self.dead_letters.is_empty()
    }
}

/// SplitMix64: a tiny deterministic generator (shuffles and coin flips need no more).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// Crashes each persona's step once at the boundaries chosen for it.
fn crashes(seed: u64, count: Arc<AtomicUsize>) -> Faults {
    let fired = Arc::new(Mutex::new(HashSet::<(Uuid, FaultPoint)>::new()));
    Faults::inject_per_persona(move |point, persona| {
        let chosen =
            Random(seed ^ persona.as_u64_pair().0 ^ persona.as_u64_pair().1 ^ point as u64)
                .below(3)
                == 0;
        if chosen
            && fired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((persona, point))
        {
            count.fetch_add(1, Ordering::Relaxed);
            return Err(StepError::Retryable {
                error: anyhow::anyhow!("injected crash at {point:?}"),
                after: Some(Duration::ZERO),
            });
        }
        Ok(())
    })
}

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
async fn backlog(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<(i64, i64)> {
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
struct Feed {
    bodies: Vec<String>,
    next: usize,
}

impl Feed {
    /// Sends the next copies so that about [`FEED_WINDOW`] wait, given `waiting` now on both
    /// saga queues; returns how many it sent.
    async fn top_up(
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

    fn done(&self) -> bool {
        self.next == self.bodies.len()
    }
}

/// Extra copies of render messages: 0–2 of each, sent at random moments within two seconds.
struct RenderCopies {
    last_seen: Uuid,
    pending: Vec<(Instant, String)>,
    sent: usize,
    originals: usize,
}

impl RenderCopies {
    async fn step(
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

/// Runs the soak with `saga` (its faults are replaced) against the template's queues in
/// `resources`; `memory` is the chat memory worker the local pollers also run.
pub async fn run(
    template: &Template,
    resources: &LocalResources,
    aws: &AwsClients,
    mut saga: Saga,
    memory: chat::memory::MemoryWorker,
    options: SoakOptions,
) -> anyhow::Result<SoakReport> {
    let personas = (options.messages / 2).max(1);
    let crash_count = Arc::new(AtomicUsize::new(0));
    saga.set_faults(crashes(options.seed, crash_count.clone()));
    let db = saga.synthesize.personas.db.clone();
    let queue = |id: &str| {
        resources
            .get(id)
            .map(|r| r.reference.clone())
            .with_context(|| format!("queue {id} was not provisioned"))
    };
    let (synthesize_url, render_url) = (queue("SynthesizeQueue")?, queue("RenderQueue")?);

    let submitted: Vec<Value> = {
        let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
            .context("the current question bank")?;
        (0..3)
            .map(|friend| domain::surveys::sample_answers(bank, friend))
            .collect()
    };
    let seeded =
        crate::seed::queued_personas(&db, &saga.synthesize.cipher, &submitted, personas).await?;
    // The soak delivers the synthesize messages itself; the sweeper must not publish them too.
    let outbox: Vec<Uuid> = seeded.iter().map(|s| s.outbox_id).collect();
    db.get()
        .await?
        .execute(
            "UPDATE outbox SET sent_at = now() WHERE id = ANY($1)",
            &[&outbox],
        )
        .await?;

    let mut random = Random(options.seed);
    let mut bodies = Vec::new();
    for job in &seeded {
        let body = serde_json::json!({"persona_id": job.persona_id, "generation": 1}).to_string();
        for _ in 0..=random.below(3) {
            bodies.push(body.clone());
        }
    }
    random.shuffle(&mut bodies);
    let synthesize_copies = bodies.len();

    let cancel = CancellationToken::new();
    let mut workers = stack::saga_workers(&saga);
    workers.extend(stack::chat_workers(&memory));
    for poller in stack::pollers(template, resources, &workers)? {
        tokio::spawn(poller.run(aws.sqs.clone(), cancel.clone()));
    }
    tokio::spawn(stack::sweeper_loop(
        saga.clone(),
        saga::sweeper::SweepSettings {
            outbox_after: Duration::from_secs(1),
            stuck_after: Duration::from_secs(60),
        },
        Duration::from_secs(1),
        cancel.clone(),
    ));
    let _stop = cancel.clone().drop_guard();

    let started = Instant::now();
    let mut feed = Feed { bodies, next: 0 };
    feed.top_up(&aws.sqs, &synthesize_url, 0).await?;
    let mut copies = RenderCopies {
        last_seen: Uuid::nil(),
        pending: Vec::new(),
        sent: 0,
        originals: 0,
    };
    let deadline = started + options.timeout;
    let mut last_poll = Instant::now();
    let mut in_flight;
    loop {
        copies.step(&db, &aws.sqs, &render_url, &mut random).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last_poll.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_poll = Instant::now();
        let settled: i64 = db
            .get()
            .await?
            .query_one(
                "SELECT count(*) FROM personas WHERE state IN ('ready', 'failed')",
                &[],
            )
            .await?
            .get(0);
        let (synthesize, render) = (
            backlog(&aws.sqs, &synthesize_url).await?,
            backlog(&aws.sqs, &render_url).await?,
        );
        in_flight = (synthesize.1 + render.1) as usize;
        // Copies sent just now are not in the depths read above: not finished yet.
        let sent = feed
            .top_up(&aws.sqs, &synthesize_url, synthesize.0 + render.0)
            .await?;
        let finished = settled as usize == personas
            && sent == 0
            && feed.done()
            && copies.pending.is_empty()
            && synthesize.0 == 0
            && render.0 == 0;
        if finished || Instant::now() > deadline {
            break;
        }
    }
    let duration = started.elapsed();
    cancel.cancel();

    let mut report = census(aws, resources, &saga, &seeded).await?;
    report.personas = personas;
    report.messages = personas * 2;
    report.deliveries = synthesize_copies + copies.originals + copies.sent;
    report.crashes = crash_count.load(Ordering::Relaxed);
    report.duration = duration;
    report.in_flight_at_end = in_flight;
    Ok(report)
}

/// Counts what the soak left behind.
async fn census(
    aws: &AwsClients,
    resources: &LocalResources,
    saga: &Saga,
    seeded: &[crate::seed::QueuedPersona],
) -> anyhow::Result<SoakReport> {
    let db = &saga.synthesize.personas.db;
    let client = db.get().await?;
    let mut report = SoakReport::default();
    for row in client
        .query(
            "SELECT state, COALESCE(error_code, ''), count(*) FROM personas GROUP BY 1, 2",
            &[],
        )
        .await?
    {
        let (state, code, count): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        match state.as_str() {
            "ready" => report.ready += count as usize,
            "failed" => *report.failed.entry(code).or_default() += count as usize,
            _ => report.lost += count as usize,
        }
    }
    report.duplicate_versions = client
        .query_one(
            "SELECT count(*) FROM (SELECT owner_id FROM personas GROUP BY owner_id HAVING count(*) > 1) d",
            &[],
        )
        .await?
        .get::<_, i64>(0) as usize;
    let listed_wrong: i64 = client
        .query_one(
            "SELECT count(*) FROM personas WHERE state = 'ready' AND jsonb_array_length(cards) <> 3",
            &[],
        )
        .await?
        .get(0);
    let ledger = client
        .query_one(
            "SELECT count(*), count(*) - count(DISTINCT (user_id, reason, reference)) FROM crystal_ledger",
            &[],
        )
        .await?;
    report.ledger_entries = ledger.get(0);
    report.duplicate_ledger_entries = ledger.get(1);
    drop(client);

    // Card objects per persona (keys are `cards/{persona}/{sha256}.png`).
    let bucket = resources
        .get("CardsBucket")
        .context("the cards bucket")?
        .reference
        .clone();
    let mut per_persona = BTreeMap::<String, usize>::new();
    let mut pages = aws
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("cards/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page?.contents() {
            if let Some(persona) = object.key().and_then(|k| k.split('/').nth(1)) {
                *per_persona.entry(persona.to_owned()).or_default() += 1;
                report.card_objects += 1;
            }
        }
    }
    report.duplicate_cards = per_persona
        .values()
        .map(|n| n.saturating_sub(3))
        .sum::<usize>()
        + listed_wrong as usize;

    // What clients poll.
    let status = saga.synthesize.personas.status.clone();
    let statuses: Vec<bool> = stream::iter(seeded.iter().map(|s| s.owner_id))
        .map(|owner| {
            let status = status.clone();
            async move {
                let current = status.get(owner).await?;
                anyhow::Ok(current.is_some_and(|(s, _)| s.state == PersonaState::Ready))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    report.statuses_not_ready = statuses.iter().filter(|ready| !**ready).count();

    for id in ["SynthesizeDeadLetterQueue", "RenderDeadLetterQueue"] {
        let url = &resources.get(id).context("a dead-letter queue")?.reference;
        for message in crate::poller::peek(&aws.sqs, url).await? {
            let reason = message
                .message_attributes()
                .and_then(|a| a.get(FAILURE_REASON_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .unwrap_or("after 5 receives");
            report.dead_letters.push(format!(
                "{id}: {reason}: {}",
                message.body().unwrap_or_default()
            ));
        }
    }
    Ok(report)
}
