//! Quest, reward and ledger routes (F-006): the quest board, claims, the daily check-in and the
//! crystal ledger, as thin handlers over the `quests` crate's use cases.

use axum::{extract::State, http::StatusCode, response::Response, Json};
use chrono::{DateTime, NaiveDate, Utc};
use domain::quests::{period_name, QuestState, CATALOG_VERSION};
use quests::{Entry, QuestError};
use serde::Serialize;
use utoipa::{openapi::schema::Object, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::AuthUser,
    error::ErrorBody,
    extract::{ApiPath, ApiQuery},
    idempotency::{IdempotencyKey, Replayable},
    openapi,
    surveys::PageQuery,
    ApiError, AppState, Problem,
};

/// One quest and where the caller stands in its current period.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestView {
    /// Stable slug.
    #[schema(example = "daily_bond")]
    pub id: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// `once`, `daily` (resets at 00:00 in the quest time zone) or `weekly` (Monday 00:00).
    #[schema(schema_with = period_schema)]
    pub period: &'static str,
    /// Events needed in the period.
    pub requirement: u32,
    /// Events counted in the current period, at most `requirement`.
    pub progress: u32,
    pub state: QuestState,
    /// Memory Crystals a claim pays.
    pub reward: u32,
    /// When the current period ends; absent for `once` quests.
    pub resets_at: Option<DateTime<Utc>>,
}

fn period_schema() -> Object {
    use domain::periods::Period::*;
    openapi::names([Once, Daily, Weekly].map(period_name)).build()
}

/// `GET /v1/quests`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuestBoard {
    pub catalog_version: i32,
    /// The IANA zone whose midnight (and Monday midnight) resets periods.
    #[schema(example = "Asia/Seoul")]
    pub time_zone: String,
    pub quests: Vec<QuestView>,
}

/// What a claim paid.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimView {
    pub reward: u32,
    /// The crystal balance after this reward.
    pub balance: i64,
}

/// What a daily check-in paid.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckInView {
    pub reward: u32,
    /// Consecutive days checked in, today included.
    pub streak: u32,
    pub balance: i64,
}

/// The quest period a ledger entry pays for.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaidQuest {
    pub id: String,
    /// Start of the paid period; absent for `once` quests.
    pub period_start: Option<DateTime<Utc>>,
}

/// The check-in a ledger entry pays for.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaidCheckIn {
    /// The day, in the quest time zone.
    pub day: NaiveDate,
    pub streak: i32,
}

/// One entry of the append-only crystal ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub id: uuid::Uuid,
    /// Crystals added (positive) or spent (negative).
    pub amount: i32,
    /// `quest_reward` or `daily_check_in`.
    #[schema(schema_with = reason_schema)]
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// Set when `reason` is `quest_reward`.
    pub quest: Option<PaidQuest>,
    /// Set when `reason` is `daily_check_in`.
    pub check_in: Option<PaidCheckIn>,
}

fn reason_schema() -> Object {
    openapi::names([quests::repo::QUEST_REWARD, quests::repo::DAILY_CHECK_IN]).build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerPage {
    pub items: Vec<LedgerEntry>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<QuestError> for ApiError {
    fn from(error: QuestError) -> Self {
        match error {
            QuestError::UnknownQuest => ApiError::not_found("There is no such quest."),
            QuestError::NotCompleted {
                progress,
                requirement,
            } => ApiError::Conflict(
                Problem::new("quest_not_completed", "This quest is not completed yet.")
                    .with_details(
                        serde_json::json!({ "progress": progress, "requirement": requirement }),
                    ),
            ),
            QuestError::AlreadyClaimed { resets_at } => ApiError::Conflict(
                Problem::new(
                    "already_claimed",
                    "This quest's reward was already claimed in this period.",
                )
                .with_details(serde_json::json!({ "resets_at": resets_at })),
            ),
            QuestError::AlreadyCheckedIn { next_check_in_at } => ApiError::Conflict(
                Problem::new("already_checked_in", "You already checked in today.")
                    .with_details(serde_json::json!({ "next_check_in_at": next_check_in_at })),
            ),
            QuestError::InvalidPage(invalid) => invalid.into(),
            QuestError::Unexpected(error) => ApiError::Unexpected(error),
        }
    }
}

/// A 200 response that an `Idempotency-Key` can replay.
fn paid(body: impl Serialize) -> Result<Replayable, ApiError> {
    Ok(Replayable {
        status: StatusCode::OK,
        ..Replayable::created(body, None)?
    })
}

fn ledger_entry(entry: Entry) -> LedgerEntry {
    LedgerEntry {
        id: entry.id,
        amount: entry.amount,
        reason: entry.reason,
        created_at: entry.created_at,
        quest: entry.quest_id.map(|id| PaidQuest {
            id,
            period_start: entry.period_start,
        }),
        check_in: entry
            .check_in_day
            .zip(entry.streak)
            .map(|(day, streak)| PaidCheckIn { day, streak }),
    }
}

/// Every quest with the caller's progress and state in its current period.
#[utoipa::path(
    get,
    path = "/v1/quests",
    tag = "quests",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The quest board", body = QuestBoard),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn board(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<QuestBoard>, ApiError> {
    let quests = state.quests.board(user.id).await?;
    Ok(Json(QuestBoard {
        catalog_version: CATALOG_VERSION,
        time_zone: state.quests.zone.name().to_owned(),
        quests: quests
            .into_iter()
            .map(|q| QuestView {
                id: q.quest.id,
                title: q.quest.title,
                description: q.quest.description,
                period: period_name(q.quest.period),
                requirement: q.quest.requirement,
                progress: q.progress,
                state: q.state,
                reward: q.quest.reward,
                resets_at: q.resets_at,
            })
            .collect(),
    }))
}

/// Claims a completed quest's reward for the current period; it pays once per period.
#[utoipa::path(
    post,
    path = "/v1/quests/{id}/claim",
    tag = "quests",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The quest's `id` on the board; another answers 404"),
        IdempotencyKey,
    ),
    responses(
        (status = 200, description = "Paid", body = ClaimView),
        (status = 400, description = "Bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such quest", body = ErrorBody),
        (status = 409, description = "`quest_not_completed` (`details: {progress, requirement}`), `already_claimed` in this period (`details: {resets_at}`), or `request_in_progress` for this key", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused` to claim another quest", body = ErrorBody),
    )
)]
pub async fn claim(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let request = serde_json::json!({ "quest_id": id });
    key.run(
        &state.idempotency,
        user.id,
        "quests.claim",
        &request,
        || async {
            let claimed = state.quests.claim(user.id, &id).await?;
            paid(ClaimView {
                reward: claimed.reward,
                balance: claimed.balance,
            })
        },
    )
    .await
}

/// Today's check-in; the reward grows with the streak of consecutive days (10 crystals on the
/// first day, 5 more each further day, 40 from the 7th day on; a missed day restarts at 10).
#[utoipa::path(
    post,
    path = "/v1/rewards/daily",
    tag = "quests",
    security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Checked in", body = CheckInView),
        (status = 400, description = "Bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "`already_checked_in` today (`details: {next_check_in_at}`), or `request_in_progress` for this key", body = ErrorBody),
    )
)]
pub async fn check_in(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    key.run(
        &state.idempotency,
        user.id,
        "rewards.daily",
        &(),
        || async {
            let checked_in = state.quests.check_in(user.id).await?;
            paid(CheckInView {
                reward: checked_in.reward,
                streak: checked_in.streak,
                balance: checked_in.balance,
            })
        },
    )
    .await
}

/// The caller's crystal ledger, newest first.
#[utoipa::path(
    get,
    path = "/v1/me/ledger",
    tag = "quests",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of ledger entries", body = LedgerPage),
        (status = 400, description = "`invalid_cursor`, `invalid_limit` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn ledger(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<LedgerPage>, ApiError> {
    let page = state
        .quests
        .ledger(user.id, query.cursor.as_deref(), query.limit)
        .await?;
    let page = page.map(ledger_entry);
    Ok(Json(LedgerPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// The quest and reward routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(board))
        .routes(routes!(claim))
        .routes(routes!(check_in))
        .routes(routes!(ledger))
}
