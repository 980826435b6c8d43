//! The survey's side of the lifecycle: the status before any version, the answer count the
//! status shows, and the first version the third answer makes.
//!
//! The third answer is stored by one PL/pgSQL statement (`submit_survey_response`, migration
//! V11), so an answer costs one round trip; that function is the database-side twin of the
//! `threshold reached` transition. What the new version looks like is decided here, in Rust,
//! before the answer is stored ([`FirstVersion::prepare`]): its id, the state
//! [`lifecycle::next`] gives, and its synthesize message as the outbox would write it. The
//! function only decides whether this answer is the third and inserts exactly that.

use domain::personas::{status_sequence, PersonaState, PersonaStatus, SynthesizeJob};
use platform::{
    outbox::{OutboxMessage, Queue},
    telemetry::describe,
};
use uuid::Uuid;

use crate::{
    lifecycle::{self, Event},
    Personas,
};

/// The version a survey's third answer makes, prepared before the answer is stored.
#[derive(Debug, Clone)]
pub struct FirstVersion {
    pub persona_id: Uuid,
    /// The state the row is born in.
    pub state: PersonaState,
    /// Its synthesize message (run 1).
    pub message: OutboxMessage,
}

impl FirstVersion {
    pub fn prepare() -> anyhow::Result<Self> {
        // Random (v4), never time-ordered: the id is public (share links, QR codes) and the first
        // version is made with the third answer, so a time in it would date that answer.
        let persona_id = Uuid::new_v4();
        let state = lifecycle::next(PersonaState::AwaitingResponses, Event::ThresholdReached)?;
        let job = SynthesizeJob {
            persona_id,
            generation: Some(1),
        };
        Ok(Self {
            persona_id,
            state,
            message: OutboxMessage::new(Queue::Synthesize, &job)?,
        })
    }
}

impl Personas {
    /// A new survey: the first status clients poll. Never replaces a later one.
    pub async fn survey_created(&self, owner_id: Uuid) {
        if let Err(error) = self
            .status
            .put(owner_id, 0, &PersonaStatus::awaiting_responses())
            .await
        {
            tracing::warn!(
                error = describe(&error),
                "could not write the initial status"
            );
        }
    }

    /// An answer was stored: `new_responses` of the survey's answers no version has seen.
    pub async fn answer_counted(&self, owner_id: Uuid, new_responses: i32) {
        self.write_new_responses(owner_id, new_responses).await;
    }

    /// The third answer made `first` (as version `version`) and committed: publish its message
    /// and show it queued.
    pub async fn first_version_made(&self, owner_id: Uuid, first: &FirstVersion, version: i32) {
        self.publisher.publish(&self.db, &[first.message.id]).await;
        let status = PersonaStatus::queued(first.persona_id, version);
        if let Err(error) = self
            .status
            .put(owner_id, status_sequence(version, 1), &status)
            .await
        {
            tracing::warn!(
                error = describe(&error),
                "could not write the queued status"
            );
        }
        // The new version sees every answer so far.
        self.write_new_responses(owner_id, 0).await;
    }
}
