//! What the HTTP API asks of a persona: start a (new version of the) persona, retry a failed
//! one, re-render the card in another theme, publish it. Each writes the row and the outbox
//! message in one transaction, then publishes and rewrites the status.

use anyhow::Context;
use domain::{personas::PersonaState, surveys::RESPONSE_THRESHOLD};
use platform::db::Statements;
use uuid::Uuid;

use crate::{
    queue_step,
    rows::{self, PersonaRow},
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
    Existing(PersonaRow),
    /// A new persona version was queued.
    New(PersonaRow),
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
        let latest = rows::latest_of(&tx, owner_id).await?;
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
        let row = tx
            .query_one_cached(
                &format!(
                    "INSERT INTO personas (id, owner_id, survey_id, version, state, state_version, response_count)
                     VALUES ($1, $2, $3, (SELECT COALESCE(max(version), 0) + 1 FROM personas WHERE owner_id = $2),
                             'queued', 1, $4)
                     RETURNING {}",
                    rows::COLUMNS
                ),
                &[&Uuid::now_v7(), &owner_id, &survey_id, &response_count],
            )
            .await
            .context("creating a persona version")?;
        let row = rows::from_row(&row);
        let outbox_id = queue_step(&tx, &row, request_id).await?;
        tx.commit().await.context("committing the new version")?;
        drop(client);
        self.publisher.publish(&self.db, &[outbox_id]).await;
        self.write_progress(&row).await;
        if let Err(error) = self.status.set_new_responses(owner_id, 0).await {
            tracing::warn!(
                error = platform::telemetry::describe(&error),
                "could not reset the answer count"
            );
        }
        Ok(Started::New(row))
    }

    /// The owner's newest persona job.
    async fn latest(&self, owner_id: Uuid) -> Result<PersonaRow, PersonaError> {
        let client = self.connection().await?;
        rows::latest_of(&client, owner_id)
            .await?
            .ok_or(PersonaError::NoPersona)
    }

    /// Restarts a failed job at the step that failed.
    pub async fn retry(
        &self,
        owner_id: Uuid,
        request_id: Option<&str>,
    ) -> Result<PersonaRow, PersonaError> {
        let latest = self.latest(owner_id).await?;
        if latest.state != PersonaState::Failed {
            return Err(PersonaError::NotFailed);
        }
        let render_only =
            latest.failed_step.as_deref() == Some("render_card") && latest.name.is_some();
        let sql = if render_only {
            "UPDATE personas SET state = 'rendering', state_version = state_version + 1,
                 render_generation = render_generation + 1, render_attempts = 0, render_started_at = NULL,
                 render_finished_at = NULL, failed_step = NULL, error_code = NULL, error_retryable = NULL,
                 updated_at = now()
             WHERE id = $1 AND state = 'failed' AND state_version = $2"
        } else {
            "UPDATE personas SET state = 'queued', state_version = state_version + 1,
                 synthesize_generation = synthesize_generation + 1, synthesize_attempts = 0, synthesize_started_at = NULL, synthesize_finished_at = NULL,
                 render_attempts = 0, render_started_at = NULL, render_finished_at = NULL,
                 failed_step = NULL, error_code = NULL, error_retryable = NULL, updated_at = now()
             WHERE id = $1 AND state = 'failed' AND state_version = $2"
        };
        self.move_and_queue(&latest, sql, None, request_id)
            .await?
            .ok_or(PersonaError::NotFailed)
    }

    /// Renders the card again in `theme` (step 2 only).
    pub async fn rerender(
        &self,
        owner_id: Uuid,
        theme: &str,
        request_id: Option<&str>,
    ) -> Result<PersonaRow, PersonaError> {
        let latest = self.latest(owner_id).await?;
        if latest.state == PersonaState::Rendering && latest.theme == theme {
            return Ok(latest);
        }
        if latest.state != PersonaState::Ready {
            return Err(PersonaError::NotReady);
        }
        // The theme changes inside the compare-and-set: of two racing requests, the one that
        // wins also sets the theme its render will use.
        let sql = "UPDATE personas SET state = 'rendering', state_version = state_version + 1,
                 theme = $3, render_generation = render_generation + 1, render_attempts = 0,
                 render_started_at = NULL, render_finished_at = NULL, updated_at = now()
             WHERE id = $1 AND state = 'ready' AND state_version = $2";
        self.move_and_queue(&latest, sql, Some(theme), request_id)
            .await?
            .ok_or(PersonaError::NotReady)
    }

    /// Runs the guarded `sql` (`$1` id, `$2` state_version, `$3` the theme when given) and
    /// queues the step the row moved to, in one transaction.
    async fn move_and_queue(
        &self,
        row: &PersonaRow,
        sql: &str,
        theme: Option<&str>,
        request_id: Option<&str>,
    ) -> anyhow::Result<Option<PersonaRow>> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let moved = match theme {
            Some(theme) => {
                rows::transition(&tx, sql, &[&row.id, &row.state_version, &theme]).await?
            }
            None => rows::transition(&tx, sql, &[&row.id, &row.state_version]).await?,
        };
        let Some(moved) = moved else {
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
                    "SELECT {} FROM personas p
                     WHERE state = 'ready' AND cards IS NOT NULL AND card_design < $1
                       AND version = (SELECT max(version) FROM personas o
                                      WHERE o.owner_id = p.owner_id AND o.cards IS NOT NULL)
                     ORDER BY id LIMIT $2",
                    rows::COLUMNS
                ),
                &[&design, &limit],
            )
            .await
            .context("finding cards on an older design")?;
        drop(client);
        let mut queued = 0;
        for row in outdated.iter().map(rows::from_row) {
            let sql = "UPDATE personas SET state = 'rendering', state_version = state_version + 1,
                     render_generation = render_generation + 1, render_attempts = 0,
                     render_started_at = NULL, render_finished_at = NULL, updated_at = now()
                 WHERE id = $1 AND state = 'ready' AND state_version = $2";
            if self.move_and_queue(&row, sql, None, None).await?.is_some() {
                queued += 1;
            }
        }
        let remaining: i64 = self
            .connection()
            .await?
            .query_one_cached(
                "SELECT count(*) FROM personas p
                 WHERE state = 'ready' AND cards IS NOT NULL AND card_design < $1
                   AND version = (SELECT max(version) FROM personas o
                                  WHERE o.owner_id = p.owner_id AND o.cards IS NOT NULL)",
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
    ) -> Result<PersonaRow, PersonaError> {
        let client = self.connection().await?;
        let ready = rows::latest_with_cards(&client, owner_id)
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
        Ok(PersonaRow { is_public, ..ready })
    }
}
