//! Personas (F-002, F-004): the one owner of a persona's life.
//!
//! - [`lifecycle`]: the states, the events that move them, and the table of legal transitions.
//! - `transitions`: the only code that writes a version's state, asking [`lifecycle::next`] first
//!   and writing as a compare-and-set.
//! - [`status`]: the DynamoDB read model clients poll, written only here, after each transition.
//! - [`versions`]: the rows and the one rule for which version is shown ([`versions::SHOWN`]).
//! - [`commands`]: what the owner asks (a new version, retry, another theme, publish).
//! - [`steps`]: what the saga's workers and sweeper ask (start, finish or fail a step, re-drive).
//! - [`threshold`]: the survey's third answer, stored by the database-side twin of the
//!   `threshold reached` transition.
//!
//! Every transition that queues the next step writes its outbox message in the same
//! transaction; the status write follows the commit (DynamoDB cannot join the transaction) and
//! carries a sequence number, so a lost write is repaired by the next one and a late one is
//! ignored.

pub mod cards;
pub mod commands;
pub mod lifecycle;
pub mod moderation;
pub mod status;
pub mod steps;
pub mod threshold;
mod transitions;
pub mod versions;

use anyhow::Context;
use deadpool_postgres::Pool;
use domain::personas::{status_sequence, PersonaStatus};
use platform::{outbox::Publisher, telemetry::describe, worker::StepError};
use uuid::Uuid;

pub use commands::{PersonaError, Started};
pub use status::StatusStore;
pub use versions::{PersonaVersion, StoredCard};

/// The persona commands and queries, and the status writes every transition shares.
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

    /// The owner's newest shown version (see [`versions::SHOWN`]).
    pub async fn current(&self, owner_id: Uuid) -> anyhow::Result<Option<PersonaVersion>> {
        versions::current(&self.connection().await?, owner_id).await
    }

    /// What the polling client sees, from DynamoDB only, with its sequence number (0 and
    /// `awaiting_responses` before the owner's first survey).
    pub async fn status(&self, owner_id: Uuid) -> anyhow::Result<(PersonaStatus, i64)> {
        Ok(self
            .status
            .get(owner_id)
            .await?
            .unwrap_or_else(|| (PersonaStatus::awaiting_responses(), 0)))
    }

    /// Rewrites the status read model from `version` (ignored when a newer status is stored).
    async fn write_status(&self, version: &PersonaVersion) -> anyhow::Result<()> {
        let status = status::status_of(version);
        let sequence = status_sequence(version.version, version.state_version);
        self.status
            .put(version.owner_id, sequence, &status)
            .await
            .map(|_| ())
    }

    /// A progress write (`synthesizing`, `rendering` started): a later write supersedes it, so a
    /// failure is only logged.
    async fn write_progress(&self, version: &PersonaVersion) {
        if let Err(error) = self.write_status(version).await {
            tracing::warn!(persona_id = %version.id, error = describe(&error), "could not write the status");
        }
    }

    /// A terminal or hand-over write (`rendering` after synthesis, `ready`, `failed`): nothing
    /// else would write it, so a failure makes the step retry (the redelivery finds the row
    /// moved on and only rewrites the status).
    async fn write_final_status(&self, version: &PersonaVersion) -> Result<(), StepError> {
        self.write_status(version)
            .await
            .map_err(|error| StepError::retryable(error.context("writing the status")))
    }

    /// Records how many answers no version has seen (the status shows how many more a new
    /// version needs). A lost or reordered write is corrected by the next answer.
    async fn write_new_responses(&self, owner_id: Uuid, new_responses: i32) {
        let count = new_responses.max(0).unsigned_abs();
        if let Err(error) = self.status.set_new_responses(owner_id, count).await {
            tracing::warn!(
                error = describe(&error),
                "could not write the answer count to the status"
            );
        }
    }
}
