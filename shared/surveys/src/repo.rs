//! Surveys and their sealed answers in PostgreSQL.

use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use domain::surveys::{SurveyStatus, RESPONSE_THRESHOLD};
use personas::threshold::FirstVersion;
use platform::db::CachedStatements;
use platform::{
    crypto::Sealed,
    cursor::Cursor,
    events::{self, EventKind},
};
use uuid::Uuid;

/// A survey as its use cases see it.
#[derive(Debug, Clone)]
pub struct Survey {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub owner_first_name: String,
    pub title: String,
    pub question_bank_version: i32,
    pub status: String,
    pub response_count: i32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Survey {
    /// The survey's status at `now` (the rule is `domain::surveys::SurveyStatus::at`).
    pub fn status_at(&self, now: DateTime<Utc>) -> SurveyStatus {
        SurveyStatus::at(&self.status, self.expires_at, now)
    }
}

const META_COLUMNS: &str =
    "s.id, s.owner_id, u.display_name, s.title, s.question_bank_version, s.status, \
     s.response_count, s.created_at, s.expires_at";

fn meta(row: &tokio_postgres::Row) -> Survey {
    Survey {
        id: row.get(0),
        owner_id: row.get(1),
        owner_first_name: row.get(2),
        title: row.get(3),
        question_bank_version: row.get(4),
        status: row.get(5),
        response_count: row.get(6),
        created_at: row.get(7),
        expires_at: row.get(8),
    }
}

pub async fn find(db: &Pool, id: Uuid) -> anyhow::Result<Option<Survey>> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    let row = client
        .query_opt_cached(
            &format!("SELECT {META_COLUMNS} FROM surveys s JOIN users u ON u.id = s.owner_id WHERE s.id = $1"),
            &[&id],
        )
        .await
        .context("reading a survey")?;
    Ok(row.as_ref().map(meta))
}

pub enum Created {
    Survey(Survey),
    /// The owner already has a collecting survey.
    AlreadyCollecting(Uuid),
}

/// Creates a collecting survey; an expired collecting one is closed first.
pub async fn create(
    db: &Pool,
    owner_id: Uuid,
    title: &str,
    question_bank_version: i32,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<Created> {
    let mut client = db.get().await.context("connecting to PostgreSQL")?;
    let tx = client.transaction().await?;
    tx.execute_cached(
        "UPDATE surveys SET status = 'closed', closed_at = expires_at
         WHERE owner_id = $1 AND status = 'collecting' AND expires_at <= $2",
        &[&owner_id, &now],
    )
    .await
    .context("closing expired surveys")?;
    let id = Uuid::now_v7();
    let inserted = tx
        .execute_cached(
            "INSERT INTO surveys (id, owner_id, title, question_bank_version, status, created_at, expires_at)
             VALUES ($1, $2, $3, $4, 'collecting', $5, $6)",
            &[&id, &owner_id, &title, &question_bank_version, &now, &expires_at],
        )
        .await;
    if let Err(error) = inserted {
        let one_collecting = error
            .as_db_error()
            .and_then(|e| e.constraint())
            .is_some_and(|c| c == "surveys_one_collecting_per_owner");
        if !one_collecting {
            return Err(error).context("inserting a survey");
        }
        drop(tx);
        let existing = client
            .query_one_cached(
                "SELECT id FROM surveys WHERE owner_id = $1 AND status = 'collecting'",
                &[&owner_id],
            )
            .await
            .context("finding the collecting survey")?;
        return Ok(Created::AlreadyCollecting(existing.get(0)));
    }
    events::record(&tx, owner_id, EventKind::SurveyCreated, now).await?;
    tx.commit().await.context("committing a survey")?;
    Ok(Created::Survey(
        find(db, id).await?.context("the new survey")?,
    ))
}

/// The owner's surveys, newest first, after `after` (created_at, id).
pub async fn list_mine(
    db: &Pool,
    owner_id: Uuid,
    after: Cursor,
    limit: i64,
) -> anyhow::Result<Vec<Survey>> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    let Cursor { at, id } = after;
    let rows = client
        .query_cached(
            &format!(
                "SELECT {META_COLUMNS} FROM surveys s JOIN users u ON u.id = s.owner_id
                 WHERE s.owner_id = $1 AND (s.created_at, s.id) < ($2, $3)
                 ORDER BY s.created_at DESC, s.id DESC LIMIT $4"
            ),
            &[&owner_id, &at, &id, &limit],
        )
        .await
        .context("listing surveys")?;
    Ok(rows.iter().map(meta).collect())
}

/// Closes the owner's survey; `false` when there is no such survey of theirs.
pub async fn close(
    db: &Pool,
    owner_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    let rows = client
        .execute_cached(
            "UPDATE surveys SET status = 'closed', closed_at = COALESCE(closed_at, $3)
             WHERE id = $1 AND owner_id = $2",
            &[&id, &owner_id, &now],
        )
        .await
        .context("closing a survey")?;
    Ok(rows == 1)
}

/// The latest persona state of a survey, if its job has started, and how many of its answers
/// the persona versions saw (the most any version saw).
pub async fn persona_state(db: &Pool, survey_id: Uuid) -> anyhow::Result<Option<(String, i32)>> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    let row = client
        .query_opt_cached(
            "SELECT state, (SELECT max(response_count) FROM personas WHERE survey_id = $1)
             FROM personas WHERE survey_id = $1 ORDER BY version DESC LIMIT 1",
            &[&survey_id],
        )
        .await
        .context("reading the persona state")?;
    Ok(row.map(|row| (row.get(0), row.get(1))))
}

/// What storing an answer did.
pub enum Submitted {
    NotFound,
    Gone,
    /// Stored; `new_responses` answers of the survey no persona version has seen.
    Accepted {
        owner_id: Uuid,
        new_responses: i32,
    },
    /// This answer was the third: the first persona version (as `version`) and its outbox row
    /// exist.
    Started {
        version: i32,
        owner_id: Uuid,
    },
}

/// Stores a sealed answer; the third makes `first_version` (see `personas::threshold`).
pub async fn submit(
    db: &Pool,
    survey_id: Uuid,
    response_id: Uuid,
    sealed: &Sealed,
    first_version: &FirstVersion,
    request_id: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<Submitted> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    let message = &first_version.message;
    let row = client
        .query_one_cached(
            "SELECT outcome, response_count, persona_id, persona_version, owner_id, seen_count
             FROM submit_survey_response($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            &[
                &survey_id,
                &response_id,
                &sealed.key_id,
                &sealed.nonce,
                &sealed.ciphertext,
                &RESPONSE_THRESHOLD,
                &first_version.persona_id,
                &first_version.state.as_str(),
                &message.id,
                &message.queue.name(),
                &message.body,
                &request_id,
                &now,
            ],
        )
        .await
        .context("storing an answer")?;
    let outcome: String = row.get(0);
    Ok(match outcome.as_str() {
        "not_found" => Submitted::NotFound,
        "gone" => Submitted::Gone,
        "started" => Submitted::Started {
            version: row.get(3),
            owner_id: row.get(4),
        },
        _ => Submitted::Accepted {
            owner_id: row.get(4),
            new_responses: row.get::<_, i32>(1) - row.get::<_, i32>(5),
        },
    })
}
