//! Persona versions in PostgreSQL, the saga's source of truth: the row, the queries that read
//! it, and [`SHOWN`], the one rule for which version is the owner's persona. Rows change only
//! through `transitions` (the lifecycle's writer).

use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use domain::{archetypes::Archetype, personas::PersonaState, synthesis::Stats};
use platform::db::CachedStatements;
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

/// One version of an owner's persona (a row of `personas`).
#[derive(Debug, Clone)]
pub struct PersonaVersion {
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

impl PersonaVersion {
    /// Whether this version is shown (see [`SHOWN`]).
    pub fn is_shown(&self) -> bool {
        !self.cards.is_empty()
    }
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

pub fn from_row(row: &tokio_postgres::Row) -> PersonaVersion {
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
    PersonaVersion {
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
) -> anyhow::Result<Option<PersonaVersion>> {
    let row = client
        .query_opt_cached(
            &format!("SELECT {COLUMNS} FROM personas {condition}"),
            params,
        )
        .await
        .context("reading a persona")?;
    Ok(row.as_ref().map(from_row))
}

pub async fn load(client: &impl GenericClient, id: Uuid) -> anyhow::Result<Option<PersonaVersion>> {
    select_one(client, "WHERE id = $1", &[&id]).await
}

/// The owner's newest persona job.
pub async fn latest_of(
    client: &impl GenericClient,
    owner_id: Uuid,
) -> anyhow::Result<Option<PersonaVersion>> {
    select_one(
        client,
        "WHERE owner_id = $1 ORDER BY version DESC LIMIT 1",
        &[&owner_id],
    )
    .await
}

/// The rule every reader shares: a version is **shown** once it has cards. It reached `ready`
/// once, and stays shown while it is re-rendered in another theme (or that re-render failed):
/// its last cards are still good. The owner's newest shown version is their persona: it speaks
/// in chat, `GET /v1/personas/me` returns it, and when the owner publishes, it is the public
/// view, the share page and its image, and the other side of a compatibility score.
pub const SHOWN: &str = "cards IS NOT NULL";

/// The owner's newest shown version (see [`SHOWN`]).
pub async fn current(
    client: &impl GenericClient,
    owner_id: Uuid,
) -> anyhow::Result<Option<PersonaVersion>> {
    select_one(
        client,
        &format!("WHERE owner_id = $1 AND {SHOWN} ORDER BY version DESC LIMIT 1"),
        &[&owner_id],
    )
    .await
}

/// What the owner has to show, in one round trip.
pub enum Current {
    /// Their newest shown version.
    Shown(Box<PersonaVersion>),
    /// A version exists, none is shown yet (the first is still being made, or failed).
    NotYet,
    /// No version at all.
    Nothing,
}

/// The owner's newest shown version, or why there is none.
pub async fn current_or_why(
    client: &impl GenericClient,
    owner_id: Uuid,
) -> anyhow::Result<Current> {
    let newest = select_one(
        client,
        &format!("WHERE owner_id = $1 ORDER BY ({SHOWN}) DESC, version DESC LIMIT 1"),
        &[&owner_id],
    )
    .await?;
    Ok(match newest {
        Some(version) if version.is_shown() => Current::Shown(Box::new(version)),
        Some(_) => Current::NotYet,
        None => Current::Nothing,
    })
}

/// The newest shown version of the owner of version `id`, while that owner's persona is public
/// and not hidden by moderation (any version's id works, so old QR codes keep working). The
/// owner id never leaves the query.
pub async fn current_public(
    client: &impl GenericClient,
    id: Uuid,
) -> anyhow::Result<Option<PersonaVersion>> {
    select_one(
        client,
        &format!(
            "WHERE owner_id = (SELECT owner_id FROM personas WHERE id = $1)
               AND {SHOWN} AND persona_is_public(owner_id) AND NOT persona_is_hidden(owner_id)
             ORDER BY version DESC LIMIT 1"
        ),
        &[&id],
    )
    .await
}
