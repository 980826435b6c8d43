//! Domain events: what a user did, recorded in the same transaction as the action (an action
//! that rolls back leaves no event). Quests count them. Events carry no content: who, what, when.
//!
//! The one other writer is the PL/pgSQL answer function (`submit_survey_response`, migration
//! V5), which records `response_received` for the owner, stamped with the UTC day only.

use crate::db::CachedStatements;
use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// Every kind of domain event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// The user created a survey.
    SurveyCreated,
    /// A friend answered the user's survey (day-stamped only).
    ResponseReceived,
    /// The user shared their persona.
    PersonaShared,
    /// The user sent their persona a chat message that got a reply.
    ChatSent,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::SurveyCreated,
        EventKind::ResponseReceived,
        EventKind::PersonaShared,
        EventKind::ChatSent,
    ];

    /// The name stored in `domain_events.kind`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::SurveyCreated => "survey_created",
            EventKind::ResponseReceived => "response_received",
            EventKind::PersonaShared => "persona_shared",
            EventKind::ChatSent => "chat_sent",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Records that `user_id` did `kind` at `at`, inside the caller's transaction.
pub async fn record(
    client: &impl GenericClient,
    user_id: Uuid,
    kind: EventKind,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    client
        .execute_cached(
            "INSERT INTO domain_events (id, user_id, kind, occurred_at) VALUES ($1, $2, $3, $4)",
            &[&Uuid::now_v7(), &user_id, &kind.name(), &at],
        )
        .await
        .with_context(|| format!("recording a {} event", kind.name()))?;
    Ok(())
}
