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
//!
//! [`FEED_WINDOW`]: delivery::FEED_WINDOW

mod census;
mod chaos;
mod delivery;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use platform::aws::AwsClients;
use saga::Saga;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{provision::LocalResources, stack, template::Template};
use census::census;
use chaos::{crashes, Random};
use delivery::{backlog, Feed, RenderCopies};

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

/// Runs the soak with `saga` (its faults are replaced) against the template's queues in
/// `resources`; `others` are the other queue workers the local pollers also run (chat memory,
/// export, erase).
pub async fn run(
    template: &Template,
    resources: &LocalResources,
    aws: &AwsClients,
    mut saga: Saga,
    others: stack::Workers,
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
    workers.extend(others);
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
            && render.0 == 0
            // A render that crashed after its commit is retried to write the status: the
            // rows are all settled, but that delivery is still in flight.
            && render.1 == 0;
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
