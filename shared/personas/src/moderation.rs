//! Moderation of the owner's persona as a whole (every version, later ones included): hidden
//! when enough distinct people reported it, removed by ops, restored by ops. A hidden or removed
//! persona is never shown publicly (`versions::current_public` leaves it out), whatever the
//! owner's visibility choice; the owner still sees it and chats with it.

use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use platform::db::CachedStatements;
use serde::Serialize;
use uuid::Uuid;

use crate::Personas;

/// Where a persona stands with moderation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModerationState {
    /// Reported by enough distinct people; ops may restore it.
    Hidden,
    /// Taken down by ops.
    Removed,
}

impl ModerationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModerationState::Hidden => "hidden",
            ModerationState::Removed => "removed",
        }
    }
}

/// The persona's moderation, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moderation {
    pub state: ModerationState,
    pub since: DateTime<Utc>,
}

/// Hides `owner`'s persona (inside the caller's transaction); an already hidden or removed
/// persona stays as it is. Returns whether this hid it.
pub async fn hide(
    client: &impl GenericClient,
    owner: Uuid,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let hidden = client
        .execute_cached(
            "INSERT INTO persona_moderation (owner_id, state, since) VALUES ($1, 'hidden', $2)
             ON CONFLICT (owner_id) DO NOTHING",
            &[&owner, &now],
        )
        .await
        .context("hiding a persona")?;
    Ok(hidden == 1)
}

/// What ops do with a reported persona (the sweeper's `moderation` payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Shown again as the owner chose; its reports are cleared, so hiding starts over.
    Restore,
    /// Taken down for good: never shown publicly, whatever the owner chooses.
    Remove,
}

impl Personas {
    /// `owner`'s moderation, if any.
    pub async fn moderation(&self, owner: Uuid) -> anyhow::Result<Option<Moderation>> {
        let row = self
            .connection()
            .await?
            .query_opt_cached(
                "SELECT state, since FROM persona_moderation WHERE owner_id = $1",
                &[&owner],
            )
            .await
            .context("reading a persona's moderation")?;
        Ok(row.map(|row| Moderation {
            state: if row.get::<_, &str>(0) == "removed" {
                ModerationState::Removed
            } else {
                ModerationState::Hidden
            },
            since: row.get(1),
        }))
    }

    /// Applies ops' `decision` to the persona that version `persona_id` belongs to; `false` when
    /// there is no such persona.
    pub async fn moderate(&self, persona_id: Uuid, decision: Decision) -> anyhow::Result<bool> {
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let Some(owner) = tx
            .query_opt_cached(
                "SELECT owner_id FROM personas WHERE id = $1",
                &[&persona_id],
            )
            .await
            .context("finding the persona's owner")?
            .map(|row| row.get::<_, Uuid>(0))
        else {
            return Ok(false);
        };
        match decision {
            Decision::Restore => {
                tx.execute_cached(
                    "DELETE FROM persona_moderation WHERE owner_id = $1",
                    &[&owner],
                )
                .await
                .context("restoring a persona")?;
                tx.execute_cached("DELETE FROM persona_reports WHERE owner_id = $1", &[&owner])
                    .await
                    .context("clearing its reports")?;
            }
            Decision::Remove => {
                tx.execute_cached(
                    "INSERT INTO persona_moderation (owner_id, state, since) VALUES ($1, 'removed', now())
                     ON CONFLICT (owner_id) DO UPDATE SET state = 'removed', since = EXCLUDED.since",
                    &[&owner],
                )
                .await
                .context("removing a persona")?;
            }
        }
        tx.commit()
            .await
            .context("committing a moderation decision")?;
        tracing::warn!(%persona_id, decision = ?decision, "moderation decision applied");
        Ok(true)
    }
}
