//! What the saga's workers and sweeper ask of a persona: take a step, finish it, fail it, find
//! the jobs that are stuck and queue them again. The workers do the work (the LLM, the
//! renderer, S3); every state they record goes through here.
//!
//! A transition that hands over to the next step commits with its outbox message and returns a
//! [`Committed`]; [`Personas::announce`] then publishes the message and writes the status. The
//! two halves are separate so the saga's fault injection can crash between them, as a worker
//! could.

use std::time::Duration;

use anyhow::Context;
use domain::{
    personas::{PersonaState, Step},
    synthesis::{PersonaText, Stats},
};
use platform::{db::CachedStatements, worker::StepError};
use tracing::warn;
use uuid::Uuid;

use crate::{
    transitions::{self, queue_step, Change, Guard},
    versions::{self, PersonaVersion, StoredCard},
    Personas,
};

/// A transition committed in PostgreSQL; [`Personas::announce`] makes it visible.
#[derive(Debug)]
pub struct Committed {
    pub version: PersonaVersion,
    /// The outbox rows to publish.
    outbox: Vec<Uuid>,
    /// Answers that came in after the ones the version was built from, for the status.
    new_responses: Option<i32>,
}

impl Personas {
    /// A pooled connection for a step; failing to get one is worth a retry.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StepError> {
        self.connection().await.map_err(StepError::retryable)
    }

    /// The version a step message names, with the connection it was read on; `None` when no
    /// such version exists any more (its account was erased): the message does nothing and
    /// nothing is re-created.
    pub async fn load_for_step(
        &self,
        id: Uuid,
    ) -> Result<Option<(deadpool_postgres::Object, PersonaVersion)>, StepError> {
        let client = self.client().await?;
        match versions::load(&client, id)
            .await
            .map_err(StepError::retryable)?
        {
            Some(version) => Ok(Some((client, version))),
            None => {
                tracing::info!(persona_id = %id, "a step message for a persona that is gone; nothing to do");
                Ok(None)
            }
        }
    }

    /// A step message found nothing to do: a crash after an earlier commit may have skipped
    /// the status write, so it is written again (idempotent).
    pub async fn repair_status(&self, version: &PersonaVersion) -> Result<(), StepError> {
        self.write_final_status(version).await
    }

    /// Makes `committed` visible: publishes its messages, writes the answer count and the
    /// status. A failed status write is retried by the step's message.
    pub async fn announce(&self, committed: &Committed) -> Result<(), StepError> {
        if !committed.outbox.is_empty() {
            self.publisher.publish(&self.db, &committed.outbox).await;
        }
        if let Some(new_responses) = committed.new_responses {
            self.write_new_responses(committed.version.owner_id, new_responses)
                .await;
        }
        self.write_final_status(&committed.version).await
    }

    /// Starts a synthesis attempt from `queued`, or takes over one in `synthesizing` whose
    /// attempt is older than `reentry_after` (its worker died). `None`: another delivery moved
    /// the row, or the attempt is still running.
    pub async fn start_synthesis(
        &self,
        client: &deadpool_postgres::Object,
        version: &PersonaVersion,
        reentry_after: Duration,
    ) -> Result<Option<PersonaVersion>, StepError> {
        let started = transitions::apply(
            client,
            version.id,
            version.state,
            Guard::Read(version.state_version),
            &Change::SynthesisStarted { reentry_after },
        )
        .await
        .map_err(StepError::retryable)?;
        if let Some(started) = &started {
            self.write_progress(started).await;
        }
        Ok(started)
    }

    /// How long until the running attempt of `id` counts as dead (`None` when none runs).
    pub async fn attempt_time_left(
        &self,
        client: &deadpool_postgres::Object,
        id: Uuid,
        reentry_after: Duration,
    ) -> Result<Option<Duration>, StepError> {
        let running = client
            .query_opt_cached(
                "SELECT EXTRACT(EPOCH FROM updated_at + make_interval(secs => $2) - now())::float8
                 FROM personas WHERE id = $1 AND state = 'synthesizing'",
                &[&id, &reentry_after.as_secs_f64()],
            )
            .await
            .context("reading the running attempt")
            .map_err(StepError::retryable)?;
        Ok(running.map(|row| Duration::from_secs_f64(row.get::<_, f64>(0).clamp(1.0, 43_200.0))))
    }

    /// Ends an attempt that produced nothing, so the retry starts a new one instead of waiting
    /// out the re-entry window (a late release never undoes progress: compare-and-set).
    pub async fn release_synthesis(&self, version: &PersonaVersion) {
        let released = async {
            let client = self.connection().await?;
            transitions::apply(
                &client,
                version.id,
                version.state,
                Guard::Read(version.state_version),
                &Change::SynthesisReleased,
            )
            .await
        }
        .await;
        match released {
            Ok(Some(queued)) => self.write_progress(&queued).await,
            Ok(None) => {}
            // The attempt stays `synthesizing`; the retry re-enters after the window.
            Err(error) => {
                warn!(persona_id = %version.id, error = platform::telemetry::describe(&error), "could not end the attempt")
            }
        }
    }

    /// Stores the text and stats and queues the render step, in one transaction; `None` when
    /// another delivery got there first. `response_count` is how many answers the version was
    /// built from (the next version must be three answers past these).
    pub async fn commit_synthesis(
        &self,
        version: &PersonaVersion,
        text: &PersonaText,
        synthesized_by: &str,
        stats: Stats,
        response_count: i32,
        request_id: Option<&str>,
    ) -> anyhow::Result<Option<Committed>> {
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let change = Change::Synthesized {
            text,
            synthesized_by,
            stats,
            response_count,
        };
        let guard = Guard::Read(version.state_version);
        let Some(moved) =
            transitions::apply(&tx, version.id, version.state, guard, &change).await?
        else {
            return Ok(None);
        };
        let outbox_id = queue_step(&tx, &moved, request_id)
            .await
            .context("queuing the render step")?;
        let answers: i32 = tx
            .query_one_cached(
                "SELECT response_count FROM surveys WHERE id = $1",
                &[&version.survey_id],
            )
            .await
            .context("counting the answers")?
            .get(0);
        tx.commit().await.context("committing the synthesis")?;
        Ok(Some(Committed {
            version: moved,
            outbox: vec![outbox_id],
            // Answers that arrived while this version waited were counted as new; they are in
            // it. Like the answer's own write, a lost or reordered one is corrected by the next.
            new_responses: Some(answers - response_count),
        }))
    }

    /// Counts a render attempt of run `generation`; `None` when the row is no longer rendering
    /// that run.
    pub async fn start_render(
        &self,
        client: &deadpool_postgres::Object,
        version: &PersonaVersion,
        generation: i32,
    ) -> Result<Option<PersonaVersion>, StepError> {
        let started = transitions::apply(
            client,
            version.id,
            version.state,
            Guard::RenderRun(generation),
            &Change::RenderStarted,
        )
        .await
        .map_err(StepError::retryable)?;
        if let Some(started) = &started {
            self.write_progress(started).await;
        }
        Ok(started)
    }

    /// Stores the cards of run `generation`: the version is ready. `None` when another delivery
    /// finished first.
    pub async fn commit_render(
        &self,
        version: &PersonaVersion,
        generation: i32,
        cards: &[StoredCard],
        design: i32,
    ) -> Result<Option<Committed>, StepError> {
        let client = self.client().await?;
        let ready = transitions::apply(
            &client,
            version.id,
            version.state,
            Guard::RenderRun(generation),
            &Change::Rendered { cards, design },
        )
        .await
        .map_err(StepError::retryable)?;
        Ok(ready.map(|version| Committed {
            version,
            outbox: Vec::new(),
            new_responses: None,
        }))
    }

    /// Fails the version at `step` with `code` (compare-and-set from the state read).
    pub async fn fail(
        &self,
        version: &PersonaVersion,
        step: Step,
        code: &str,
        retryable: bool,
    ) -> Result<(), StepError> {
        let client = self.client().await?;
        let change = Change::StepFailed {
            step,
            code,
            retryable,
        };
        let guard = Guard::Read(version.state_version);
        let failed = transitions::apply(&client, version.id, version.state, guard, &change)
            .await
            .map_err(StepError::retryable)?;
        drop(client);
        match failed {
            Some(failed) => self.write_final_status(&failed).await,
            None => Ok(()),
        }
    }

    /// A message of `step` for persona `id`, run `run`, reached its dead-letter queue: the run
    /// it belongs to fails with `code` (retryable by the owner), and nothing else does — a
    /// synthesize message only while its own run is pending (`None`: a message from before runs
    /// were numbered, any pending run), a render message only for its own generation. Returns
    /// whether the dead letter is dealt with (`false`: keep it, the status write failed).
    pub async fn fail_dead_lettered(
        &self,
        id: Uuid,
        step: Step,
        code: &str,
        run: Option<i32>,
    ) -> anyhow::Result<bool> {
        let client = self.connection().await?;
        let Some(version) = versions::load(&client, id).await? else {
            return Ok(true);
        };
        let guard = match step {
            Step::Synthesize => Guard::SynthesisRun(run),
            Step::RenderCard => Guard::RenderRun(run.unwrap_or(-1)),
        };
        let change = Change::StepFailed {
            step,
            code,
            retryable: true,
        };
        let failed = transitions::apply(&client, id, version.state, guard, &change).await?;
        drop(client);
        // The status of a row failed here, or by an earlier sweep whose status write was lost.
        let version = match failed {
            Some(failed) => {
                warn!(persona_id = %id, step = ?step, code, "dead-lettered job marked failed");
                failed
            }
            None => version,
        };
        if version.state == PersonaState::Failed {
            if let Err(error) = self.write_status(&version).await {
                warn!(persona_id = %id, error = platform::telemetry::describe(&error), "status not written; the dead letter is kept");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Queues again the jobs that are really stuck: in one of `states`, unmoved for longer than
    /// `stuck_after`, whose last message went out longer than `stuck_after` ago. Their message
    /// was lost, or a worker died after deleting it. Returns how many were queued.
    pub async fn redrive_stuck(
        &self,
        states: &[PersonaState],
        stuck_after: Duration,
    ) -> anyhow::Result<usize> {
        let states: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
        let client = self.connection().await?;
        let stuck = client
            .query_cached(
                &format!(
                    "SELECT {} FROM personas p
                     WHERE state = ANY($2)
                       AND updated_at < now() - make_interval(secs => $1)
                       AND NOT EXISTS (SELECT 1 FROM outbox o
                                       WHERE o.body->>'persona_id' = p.id::text
                                         AND (o.sent_at IS NULL
                                              OR o.sent_at > now() - make_interval(secs => $1)))
                     ORDER BY updated_at LIMIT 100",
                    versions::COLUMNS
                ),
                &[&stuck_after.as_secs_f64(), &states],
            )
            .await
            .context("finding stuck jobs")?;
        drop(client);
        let mut redriven = 0;
        for version in stuck.iter().map(versions::from_row) {
            let mut client = self.connection().await?;
            let tx = client.transaction().await?;
            // Not a transition (the state stays): only `updated_at` moves, as a compare-and-set,
            // so a worker that moves the row meanwhile wins, and so does an overlapping sweep.
            let touched = tx
                .execute_cached(
                    "UPDATE personas SET updated_at = now()
                     WHERE id = $1 AND state_version = $2
                       AND updated_at < now() - make_interval(secs => $3)",
                    &[
                        &version.id,
                        &version.state_version,
                        &stuck_after.as_secs_f64(),
                    ],
                )
                .await?;
            if touched == 0 {
                continue;
            }
            let outbox_id = queue_step(&tx, &version, None).await?;
            tx.commit().await?;
            drop(client);
            warn!(persona_id = %version.id, state = version.state.as_str(), "re-driving a stuck job");
            self.publisher.publish(&self.db, &[outbox_id]).await;
            redriven += 1;
        }
        Ok(redriven)
    }
}
