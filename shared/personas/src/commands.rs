//! What the owner (and ops) ask of a persona: a new version, a retry of a failed one, the card
//! in another theme, publishing. Each moves the version through the lifecycle and writes the
//! outbox message in one transaction, then publishes and rewrites the status.

use anyhow::Context;
use domain::{
    personas::{PersonaState, Step},
    surveys::RESPONSE_THRESHOLD,
};
use platform::db::CachedStatements;
use uuid::Uuid;

use crate::{
    lifecycle::{self, Event},
    transitions::{self, queue_step, Change, Guard},
    versions::{self, PersonaVersion},
    Personas,
};

#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    #[error("fewer than three answers")]
    NotEnoughResponses { response_count: i32 },
    /// A new version needs at least three answers no earlier version saw: a version made from
    /// fewer would let the owner subtract the previous one and read a friend's answers.
    #[error("fewer than three new answers")]
    NotEnoughNewResponses { new_responses: i32, needed: i32 },
    #[error("no persona yet")]
    NoPersona,
    #[error("the persona has not failed")]
    NotFailed,
    #[error("the persona is not ready")]
    NotReady,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What a start request did.
pub enum Started {
    /// A job was already running (or nothing changed since the last one): it is returned.
    Existing(PersonaVersion),
    /// A new persona version was queued.
    New(PersonaVersion),
}

impl Personas {
    /// Starts synthesis for the owner's newest survey, unless a job is running; a new version
    /// only once at least three answers no earlier version saw are in.
    pub async fn request_synthesis(
        &self,
        owner_id: Uuid,
        request_id: Option<&str>,
    ) -> Result<Started, PersonaError> {
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        // One owner at a time: concurrent requests serialize here and see each other's job.
        tx.execute_cached("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&owner_id])
            .await
            .context("locking the owner")?;
        let latest = versions::latest_of(&tx, owner_id).await?;
        let survey = tx
            .query_opt_cached(
                "SELECT id, response_count FROM surveys WHERE owner_id = $1 ORDER BY created_at DESC LIMIT 1",
                &[&owner_id],
            )
            .await
            .context("reading the newest survey")?;
        let Some(survey) = survey else {
            return Err(PersonaError::NotEnoughResponses { response_count: 0 });
        };
        let (survey_id, response_count): (Uuid, i32) = (survey.get(0), survey.get(1));
        if let Some(latest) = latest.as_ref().filter(|latest| latest.state.is_running()) {
            return Ok(Started::Existing(latest.clone()));
        }
        let seen: i32 = tx
            .query_one_cached(
                "SELECT COALESCE(max(response_count), 0) FROM personas WHERE survey_id = $1",
                &[&survey_id],
            )
            .await
            .context("counting the answers earlier versions saw")?
            .get(0);
        if seen > 0 && response_count - seen < RESPONSE_THRESHOLD {
            return Err(PersonaError::NotEnoughNewResponses {
                new_responses: response_count - seen,
                needed: RESPONSE_THRESHOLD - (response_count - seen),
            });
        }
        if response_count < RESPONSE_THRESHOLD {
            return Err(PersonaError::NotEnoughResponses { response_count });
        }
        let born = lifecycle::next(PersonaState::AwaitingResponses, Event::Refreshed)
            .map_err(anyhow::Error::from)?;
        let row = tx
            .query_one_cached(
                &format!(
                    "INSERT INTO personas (id, owner_id, survey_id, version, state, state_version, response_count)
                     VALUES ($1, $2, $3, (SELECT COALESCE(max(version), 0) + 1 FROM personas WHERE owner_id = $2),
                             $5, 1, $4)
                     RETURNING {}",
                    versions::COLUMNS
                ),
                // Random (v4): a public id must not date the answers it was made from.
                &[&Uuid::new_v4(), &owner_id, &survey_id, &response_count, &born.as_str()],
            )
            .await
            .context("creating a persona version")?;
        let row = versions::from_row(&row);
        let outbox_id = queue_step(&tx, &row, request_id).await?;
        tx.commit().await.context("committing the new version")?;
        drop(client);
        self.publisher.publish(&self.db, &[outbox_id]).await;
        self.write_progress(&row).await;
        // The new version sees every answer so far.
        self.write_new_responses(owner_id, 0).await;
        Ok(Started::New(row))
    }

    /// The owner's newest persona job.
    async fn latest(&self, owner_id: Uuid) -> Result<PersonaVersion, PersonaError> {
        let client = self.connection().await?;
        versions::latest_of(&client, owner_id)
            .await?
            .ok_or(PersonaError::NoPersona)
    }

    /// Restarts a failed job at the step that failed.
    pub async fn retry(
        &self,
        owner_id: Uuid,
        request_id: Option<&str>,
    ) -> Result<PersonaVersion, PersonaError> {
        let latest = self.latest(owner_id).await?;
        if latest.state != PersonaState::Failed {
            return Err(PersonaError::NotFailed);
        }
        let step = if latest.failed_step.as_deref() == Some("render_card") && latest.name.is_some()
        {
            Step::RenderCard
        } else {
            Step::Synthesize
        };
        self.move_and_queue(&latest, &Change::Retried(step), request_id)
            .await?
            .ok_or(PersonaError::NotFailed)
    }

    /// Renders the card again in `theme` (step 2 only).
    pub async fn rerender(
        &self,
        owner_id: Uuid,
        theme: &str,
        request_id: Option<&str>,
    ) -> Result<PersonaVersion, PersonaError> {
        let latest = self.latest(owner_id).await?;
        if latest.state == PersonaState::Rendering && latest.theme == theme {
            return Ok(latest);
        }
        if latest.state != PersonaState::Ready {
            return Err(PersonaError::NotReady);
        }
        // The theme changes inside the compare-and-set: of two racing requests, the one that
        // wins also sets the theme its render will use.
        let change = Change::RerenderRequested { theme: Some(theme) };
        self.move_and_queue(&latest, &change, request_id)
            .await?
            .ok_or(PersonaError::NotReady)
    }

    /// Moves `row` by `change` and queues the step it moved to, in one transaction; then
    /// publishes and writes the status. `None` when the row moved on meanwhile.
    async fn move_and_queue(
        &self,
        row: &PersonaVersion,
        change: &Change<'_>,
        request_id: Option<&str>,
    ) -> anyhow::Result<Option<PersonaVersion>> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let guard = Guard::Read(row.state_version);
        let Some(moved) = transitions::apply(&tx, row.id, row.state, guard, change).await? else {
            return Ok(None);
        };
        let outbox_id = queue_step(&tx, &moved, request_id).await?;
        tx.commit().await?;
        drop(client);
        self.publisher.publish(&self.db, &[outbox_id]).await;
        self.write_progress(&moved).await;
        Ok(Some(moved))
    }

    /// After a card design change: re-renders, in the persona's own theme, the cards of up to
    /// `limit` owners' newest ready personas still on an older design (`card_design < design`),
    /// through the render step (one compare-and-set and outbox message each, so a persona that
    /// moved meanwhile is skipped). Resumable and idempotent: a persona on the new design, or
    /// already re-rendering, is never picked again. Returns (queued, still outdated).
    pub async fn rerender_outdated(&self, design: i32, limit: i64) -> anyhow::Result<(usize, i64)> {
        let client = self.connection().await?;
        let outdated = client
            .query_cached(
                &format!(
                    "SELECT {columns} FROM personas p
                     WHERE state = 'ready' AND {shown} AND card_design < $1
                       AND version = (SELECT max(version) FROM personas o
                                      WHERE o.owner_id = p.owner_id AND {shown})
                     ORDER BY id LIMIT $2",
                    columns = versions::COLUMNS,
                    shown = versions::SHOWN
                ),
                &[&design, &limit],
            )
            .await
            .context("finding cards on an older design")?;
        drop(client);
        let mut queued = 0;
        let change = Change::RerenderRequested { theme: None };
        for row in outdated.iter().map(versions::from_row) {
            if self.move_and_queue(&row, &change, None).await?.is_some() {
                queued += 1;
            }
        }
        let remaining: i64 = self
            .connection()
            .await?
            .query_one_cached(
                &format!(
                    "SELECT count(*) FROM personas p
                     WHERE state = 'ready' AND {shown} AND card_design < $1
                       AND version = (SELECT max(version) FROM personas o
                                      WHERE o.owner_id = p.owner_id AND {shown})",
                    shown = versions::SHOWN
                ),
                &[&design],
            )
            .await
            .context("counting cards on an older design")?
            .get(0);
        tracing::info!(queued, remaining, design, "card re-render queued");
        Ok((queued, remaining))
    }

    /// Publishes or unpublishes the owner's persona as a whole: every version at once, and
    /// every later version too. Needs a persona with cards. Returns the newest one.
    pub async fn set_public(
        &self,
        owner_id: Uuid,
        is_public: bool,
    ) -> Result<PersonaVersion, PersonaError> {
        let client = self.connection().await?;
        let ready = versions::current(&client, owner_id)
            .await?
            .ok_or(PersonaError::NoPersona)?;
        client
            .execute_cached(
                "INSERT INTO persona_visibility (owner_id, is_public, updated_at) VALUES ($1, $2, now())
                 ON CONFLICT (owner_id) DO UPDATE SET is_public = EXCLUDED.is_public, updated_at = EXCLUDED.updated_at",
                &[&owner_id, &is_public],
            )
            .await
            .context("publishing the persona")?;
        Ok(PersonaVersion { is_public, ..ready })
    }
}
