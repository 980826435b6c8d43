//! The persona row in PostgreSQL, the saga's source of truth, and the queries on it. Every
//! transition is a compare-and-set on (state, state_version) and bumps `state_version`, so a
//! duplicate, late or reordered message finds the row moved on and does nothing.

use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use domain::{
    archetypes::Archetype,
    personas::{PersonaState, PersonaStatus, StatusError, Step, StepState, StepStatus},
    synthesis::Stats,
};
use platform::db::Statements;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stored card image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCard {
    pub size: String,
    pub key: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone)]
pub struct PersonaRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub survey_id: Uuid,
    pub version: i32,
    pub state: PersonaState,
    pub state_version: i32,
    pub response_count: i32,
    pub name: Option<String>,
    pub archetype: Option<Archetype>,
    pub traits: Vec<String>,
    pub greeting: Option<String>,
    pub stats: Option<Stats>,
    pub synthesized_by: Option<String>,
    pub theme: String,
    pub cards: Vec<StoredCard>,
    pub render_generation: i32,
    /// Whether the owner's persona (every version at once) is public.
    pub is_public: bool,
    pub bond_level: i32,
    pub failed_step: Option<String>,
    pub error_code: Option<String>,
    pub error_retryable: Option<bool>,
    pub synthesize_attempts: i32,
    /// The synthesis run (1, then +1 per retry); synthesize messages carry it.
    pub synthesize_generation: i32,
    pub render_attempts: i32,
    pub synthesize_started_at: Option<DateTime<Utc>>,
    pub synthesize_finished_at: Option<DateTime<Utc>>,
    pub render_started_at: Option<DateTime<Utc>>,
    pub render_finished_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The columns [`from_row`] reads. `is_public` is the owner's choice for their persona as a
/// whole (`persona_visibility`), the same for every version; the old per-version column is unused.
pub const COLUMNS: &str = "id, owner_id, survey_id, version, state, state_version, response_count, name, \
    archetype, traits, greeting, charisma, intellect, kindness, energy, synthesized_by, theme, cards, \
    render_generation, \
    persona_is_public(owner_id) AS is_public, \
    bond_level, failed_step, error_code, error_retryable, \
    synthesize_attempts, render_attempts, synthesize_started_at, synthesize_finished_at, \
    render_started_at, render_finished_at, created_at, synthesize_generation";

pub fn from_row(row: &tokio_postgres::Row) -> PersonaRow {
    let stat = |i: usize| row.get::<_, Option<i16>>(i).map(|v| v.clamp(0, 100) as u8);
    let stats = match (stat(11), stat(12), stat(13), stat(14)) {
        (Some(charisma), Some(intellect), Some(kindness), Some(energy)) => Some(Stats {
            charisma,
            intellect,
            kindness,
            energy,
        }),
        _ => None,
    };
    PersonaRow {
        id: row.get(0),
        owner_id: row.get(1),
        survey_id: row.get(2),
        version: row.get(3),
        state: PersonaState::parse(row.get(4)).unwrap_or(PersonaState::Failed),
        state_version: row.get(5),
        response_count: row.get(6),
        name: row.get(7),
        archetype: row
            .get::<_, Option<String>>(8)
            .and_then(|a| serde_json::from_value(serde_json::Value::String(a)).ok()),
        traits: row
            .get::<_, Option<serde_json::Value>>(9)
            .and_then(|t| serde_json::from_value(t).ok())
            .unwrap_or_default(),
        greeting: row.get(10),
        stats,
        synthesized_by: row.get(15),
        theme: row.get(16),
        cards: row
            .get::<_, Option<serde_json::Value>>(17)
            .and_then(|c| serde_json::from_value(c).ok())
            .unwrap_or_default(),
        render_generation: row.get(18),
        is_public: row.get(19),
        bond_level: row.get(20),
        failed_step: row.get(21),
        error_code: row.get(22),
        error_retryable: row.get(23),
        synthesize_attempts: row.get(24),
        render_attempts: row.get(25),
        synthesize_started_at: row.get(26),
        synthesize_finished_at: row.get(27),
        render_started_at: row.get(28),
        render_finished_at: row.get(29),
        created_at: row.get(30),
        synthesize_generation: row.get(31),
    }
}

/// The one persona `condition` (a SQL tail after `FROM personas`) selects, if any.
async fn select_one(
    client: &impl GenericClient,
    condition: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> anyhow::Result<Option<PersonaRow>> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {COLUMNS} FROM personas {condition}"),
            params,
        )
        .await
        .context("reading a persona")?;
    Ok(row.as_ref().map(from_row))
}

pub async fn load(client: &impl GenericClient, id: Uuid) -> anyhow::Result<Option<PersonaRow>> {
    select_one(client, "WHERE id = $1", &[&id]).await
}

/// The owner's newest persona job.
pub async fn latest_of(
    client: &impl GenericClient,
    owner_id: Uuid,
) -> anyhow::Result<Option<PersonaRow>> {
    select_one(
        client,
        "WHERE owner_id = $1 ORDER BY version DESC LIMIT 1",
        &[&owner_id],
    )
    .await
}

/// The owner's newest persona that has cards: ready, or re-rendering (or failed re-rendering)
/// in another theme, in which case its last cards are still good.
pub async fn latest_with_cards(
    client: &impl GenericClient,
    owner_id: Uuid,
) -> anyhow::Result<Option<PersonaRow>> {
    select_one(
        client,
        "WHERE owner_id = $1 AND cards IS NOT NULL ORDER BY version DESC LIMIT 1",
        &[&owner_id],
    )
    .await
}

/// Runs `sql` (an UPDATE ... RETURNING {COLUMNS}) and returns the moved row, if the CAS held.
pub async fn transition(
    db: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> anyhow::Result<Option<PersonaRow>> {
    let row = db
        .query_opt_cached(&format!("{sql} RETURNING {COLUMNS}"), params)
        .await
        .context("moving a persona")?;
    Ok(row.as_ref().map(from_row))
}

/// What clients see while polling, derived from the row.
pub fn status_of(row: &PersonaRow) -> PersonaStatus {
    use PersonaState::*;
    let failed_at = |step: &str| row.state == Failed && row.failed_step.as_deref() == Some(step);
    let synthesize = match row.state {
        Queued => StepState::Pending,
        Synthesizing => StepState::Running,
        _ if failed_at("synthesize") => StepState::Failed,
        _ => StepState::Done,
    };
    let render = match row.state {
        Queued | Synthesizing => StepState::Pending,
        Rendering => StepState::Running,
        Ready => StepState::Done,
        _ if failed_at("render_card") => StepState::Failed,
        _ => StepState::Pending,
    };
    let step = match row.state {
        Queued | Synthesizing => Some(Step::Synthesize),
        Rendering => Some(Step::RenderCard),
        Failed if row.failed_step.as_deref() == Some("render_card") => Some(Step::RenderCard),
        Failed => Some(Step::Synthesize),
        _ => None,
    };
    let attempt = match step {
        Some(Step::Synthesize) => row.synthesize_attempts,
        Some(Step::RenderCard) => row.render_attempts,
        None => 0,
    };
    PersonaStatus {
        state: row.state,
        step,
        attempt: attempt.max(0) as u32,
        steps: vec![
            StepStatus {
                name: Step::Synthesize,
                status: synthesize,
                started_at: row.synthesize_started_at,
                finished_at: row.synthesize_finished_at,
                attempts: row.synthesize_attempts.max(0) as u32,
            },
            StepStatus {
                name: Step::RenderCard,
                status: render,
                started_at: row.render_started_at,
                finished_at: row.render_finished_at,
                attempts: row.render_attempts.max(0) as u32,
            },
        ],
        error: (row.state == Failed).then(|| StatusError {
            code: row.error_code.clone().unwrap_or_else(|| "failed".into()),
            retryable: row.error_retryable.unwrap_or(true),
        }),
        persona_id: Some(row.id),
        version: Some(row.version),
        // Filled in from the read model's answer count when the status is read.
        new_responses: 0,
        responses_needed: domain::personas::responses_needed(0),
    }
}
