//! Personas (F-002, F-004): the persona row and its queries, the commands the HTTP API issues
//! (start a new version, retry, re-render, publish), the status read model writes the commands
//! and the saga steps share, and links to the stored cards.
//!
//! The saga's steps and sweeper (`shared/saga`) move the same rows through the same
//! compare-and-set transitions; each transition's next message is queued through the outbox
//! in the same transaction.

pub mod cards;
pub mod commands;
pub mod rows;

use anyhow::Context;
use deadpool_postgres::Pool;
use domain::personas::{status_sequence, RenderJob, SynthesizeJob};
use platform::{
    outbox::{self, Publisher, Queue},
    status::StatusStore,
    worker::StepError,
};
use uuid::Uuid;

pub use commands::{PersonaError, Started};
pub use rows::{PersonaRow, StoredCard};

/// The persona commands and queries, and the status writes every step shares.
#[derive(Clone)]
pub struct Personas {
    pub db: Pool,
    pub status: StatusStore,
    pub publisher: Publisher,
}

impl Personas {
    /// A pooled connection.
    pub async fn connection(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.db.get().await.context("connecting to PostgreSQL")
    }

    /// A pooled connection for a step; failing to get one is worth a retry.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StepError> {
        self.connection().await.map_err(StepError::retryable)
    }

    /// The persona a step message names, with the connection it was read on; an unknown
    /// persona can never succeed, so its message is dead-lettered at once.
    pub async fn load_for_step(
        &self,
        id: Uuid,
    ) -> Result<(deadpool_postgres::Object, PersonaRow), StepError> {
        let client = self.client().await?;
        match rows::load(&client, id)
            .await
            .map_err(StepError::retryable)?
        {
            Some(row) => Ok((client, row)),
            None => {
                tracing::warn!(persona_id = %id, "a step message for an unknown persona");
                Err(StepError::permanent("unknown_persona"))
            }
        }
    }

    /// The owner's newest persona that has cards (see [`rows::latest_with_cards`]).
    pub async fn latest_with_cards(&self, owner_id: Uuid) -> anyhow::Result<Option<PersonaRow>> {
        rows::latest_with_cards(&self.connection().await?, owner_id).await
    }

    /// Rewrites the status read model from `row` (ignored when a newer status is stored).
    pub async fn write_status(&self, row: &PersonaRow) -> anyhow::Result<()> {
        let status = rows::status_of(row);
        let sequence = status_sequence(row.version, row.state_version);
        self.status
            .put(row.owner_id, sequence, &status)
            .await
            .map(|_| ())
    }

    /// A progress write (`synthesizing`, `rendering` started): a later write supersedes it, so a
    /// failure is only logged.
    pub async fn write_progress(&self, row: &PersonaRow) {
        if let Err(error) = self.write_status(row).await {
            tracing::warn!(persona_id = %row.id, error = platform::telemetry::describe(&error), "could not write the status");
        }
    }

    /// A terminal or hand-over write (`rendering` after synthesis, `ready`, `failed`): nothing
    /// else would write it, so a failure makes the step retry (the redelivery finds the row
    /// moved on and only rewrites the status).
    pub async fn write_final_status(&self, row: &PersonaRow) -> Result<(), StepError> {
        self.write_status(row)
            .await
            .map_err(|error| StepError::retryable(error.context("writing the status")))
    }

    /// Marks the persona failed at `step` with `code` (CAS from its current, running state).
    pub async fn fail(
        &self,
        row: &PersonaRow,
        step: &str,
        code: &str,
        retryable: bool,
    ) -> Result<(), StepError> {
        let client = self.client().await?;
        let failed = rows::transition(
            &client,
            "UPDATE personas SET state = 'failed', state_version = state_version + 1,
                 failed_step = $3, error_code = $4, error_retryable = $5, updated_at = now()
             WHERE id = $1 AND state_version = $2 AND state IN ('queued', 'synthesizing', 'rendering')",
            &[&row.id, &row.state_version, &step, &code, &retryable],
        )
        .await
        .map_err(StepError::retryable)?;
        match failed {
            Some(failed) => self.write_final_status(&failed).await,
            None => Ok(()),
        }
    }
}

/// Queues the message of the step `row` is in: render for `rendering`, synthesize otherwise.
/// Written inside the caller's transaction; publish the returned outbox id after commit.
pub async fn queue_step(
    client: &impl deadpool_postgres::GenericClient,
    row: &PersonaRow,
    request_id: Option<&str>,
) -> anyhow::Result<Uuid> {
    match row.state {
        domain::personas::PersonaState::Rendering => {
            let job = RenderJob {
                persona_id: row.id,
                generation: row.render_generation,
            };
            outbox::enqueue(client, Queue::Render, &job, request_id).await
        }
        _ => {
            let job = SynthesizeJob {
                persona_id: row.id,
                generation: Some(row.synthesize_generation),
            };
            outbox::enqueue(client, Queue::Synthesize, &job, request_id).await
        }
    }
}
