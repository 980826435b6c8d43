//! Surveys (F-001): an owner creates one, friends answer it anonymously, the third answer starts
//! the persona saga.

pub mod anonymity;
mod repo;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
    Json,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Duration, Utc};
use domain::{
    personas::{status_sequence, PersonaStatus},
    surveys::{
        question_bank, validate_answers, Question, CURRENT_VERSION, DEFAULT_TITLE, MAX_TITLE_CHARS,
        RESPONSE_THRESHOLD, SURVEY_LIFETIME_DAYS,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    client_address::AddressHash,
    error::ErrorBody,
    extract::{ApiPath, ApiQuery},
    idempotency::{IdempotencyKey, Replayable},
    json::ApiJson,
    rate_limit, request_context, ApiError, AppState, Problem,
};
use repo::{Created, Submitted, SurveyMeta};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSurvey {
    /// At most 80 characters; a default title when absent.
    pub title: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyView {
    pub id: Uuid,
    pub title: String,
    /// The link friends open.
    pub share_url: String,
    /// `collecting`, `closed` or `expired`.
    pub status: &'static str,
    pub question_count: usize,
    pub response_count: i32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyPage {
    pub items: Vec<SurveyView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 100 (default 20).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicSurvey {
    pub id: Uuid,
    pub title: String,
    /// The owner's first name only.
    pub owner_first_name: String,
    pub question_bank_version: i32,
    pub questions: Vec<Question>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// How many friends answered. A count only, by design: no per-response times exist, so
    /// the owner cannot tell who sent which answer.
    pub response_count: i32,
    pub threshold: i32,
    pub unlocked: bool,
    /// The survey's persona job: `awaiting_responses` until the third answer.
    pub persona_status: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitResponse {
    /// Question id → integer (scale), option id (choice) or string (text).
    #[schema(value_type = Object)]
    pub answers: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseAccepted {
    pub survey_id: Uuid,
    pub accepted: bool,
}

fn view(state: &AppState, survey: &SurveyMeta, now: DateTime<Utc>) -> SurveyView {
    SurveyView {
        id: survey.id,
        title: survey.title.clone(),
        share_url: format!("{}/s/{}", state.config.frontend_url, survey.id),
        status: survey.status_at(now),
        question_count: question_bank(survey.question_bank_version)
            .map(|bank| bank.questions.len())
            .unwrap_or_default(),
        response_count: survey.response_count,
        created_at: survey.created_at,
        expires_at: survey.expires_at,
    }
}

fn invalid_fields(fields: impl Serialize) -> ApiError {
    ApiError::Unprocessable(
        Problem::new("invalid_fields", "Some fields are invalid.")
            .with_details(serde_json::json!({ "fields": fields })),
    )
}

fn survey_not_found() -> ApiError {
    ApiError::not_found("There is no such survey.")
}

/// Creates the owner's survey (one collecting survey at a time).
#[utoipa::path(
    post,
    path = "/v1/surveys",
    tag = "surveys",
    security(("bearer" = [])),
    request_body = CreateSurvey,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses(
        (status = 201, description = "Created; `Location` is its progress", body = SurveyView),
        (status = 400, description = "Malformed body or key", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "A survey is already collecting, or the same key is in progress", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid title, or the key was used with another body", body = ErrorBody),
        (status = 429, description = "More than 5 surveys an hour", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<CreateSurvey>,
) -> Result<Response, ApiError> {
    let title = request
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(title) = title {
        if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
            return Err(invalid_fields(serde_json::json!({
                "title": "must be at most 80 characters without control characters"
            })));
        }
    }
    let title = title.unwrap_or(DEFAULT_TITLE).to_owned();
    key.run(
        &state,
        &format!("surveys.create#{}", user.id),
        &request,
        || async {
            rate_limit::check(&state, rate_limit::SURVEY_CREATE, &user.id.to_string()).await?;
            let now = state.clock.now();
            let expires_at = now + Duration::days(SURVEY_LIFETIME_DAYS);
            match repo::create(&state.db, user.id, &title, CURRENT_VERSION, now, expires_at).await?
            {
                Created::AlreadyCollecting(existing) => Err(ApiError::Conflict(
                    Problem::new(
                        "survey_already_collecting",
                        "You already have a survey collecting answers; close it first.",
                    )
                    .with_details(serde_json::json!({ "survey_id": existing })),
                )),
                Created::Survey(survey) => {
                    // The first status clients poll; never replaces a later one.
                    if let Err(error) = state
                        .status
                        .put(user.id, 0, &PersonaStatus::awaiting_responses())
                        .await
                    {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "could not write the initial status"
                        );
                    }
                    tracing::info!(survey_id = %survey.id, "survey created");
                    Replayable::created(
                        view(&state, &survey, now),
                        Some(format!("/v1/surveys/{}/progress", survey.id)),
                    )
                }
            }
        },
    )
    .await
}

/// The owner's surveys, newest first.
#[utoipa::path(
    get,
    path = "/v1/surveys/mine",
    tag = "surveys",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of surveys", body = SurveyPage),
        (status = 400, description = "Bad cursor or limit", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn mine(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<SurveyPage>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(Problem::new(
            "invalid_limit",
            "limit must be between 1 and 100.",
        )));
    }
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut surveys = repo::list_mine(&state.db, user.id, after, limit + 1).await?;
    let next_cursor = if surveys.len() as i64 > limit {
        surveys.truncate(limit as usize);
        surveys
            .last()
            .map(|last| encode_cursor(last.created_at, last.id))
    } else {
        None
    };
    let now = state.clock.now();
    Ok(Json(SurveyPage {
        items: surveys.iter().map(|s| view(&state, s, now)).collect(),
        next_cursor,
    }))
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.timestamp_micros()))
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::BadRequest(Problem::new("invalid_cursor", "The cursor is not valid."));
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(bad)?;
    let (micros, id) = text.split_once('|').ok_or_else(bad)?;
    // Within PostgreSQL's timestamp range and this product's lifetime.
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .filter(|at| (2000..=9999).contains(&chrono::Datelike::year(at)))
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// What a friend sees before answering: no sign-in needed.
#[utoipa::path(
    get,
    path = "/v1/surveys/{id}/public",
    tag = "surveys",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Title, the owner's first name, the questions", body = PublicSurvey),
        (status = 404, description = "No such survey", body = ErrorBody),
        (status = 410, description = "Closed or expired", body = ErrorBody),
    )
)]
pub async fn public(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PublicSurvey>, ApiError> {
    let survey = repo::find(&state.db, id)
        .await?
        .ok_or_else(survey_not_found)?;
    ensure_open(&survey, state.clock.now())?;
    let bank = question_bank(survey.question_bank_version)
        .ok_or_else(|| anyhow::anyhow!("survey with unknown question bank version"))?;
    Ok(Json(PublicSurvey {
        id: survey.id,
        title: survey.title,
        owner_first_name: survey.owner_first_name,
        question_bank_version: bank.version,
        questions: bank.questions,
        expires_at: survey.expires_at,
    }))
}

fn ensure_open(survey: &SurveyMeta, now: DateTime<Utc>) -> Result<(), ApiError> {
    match survey.status_at(now) {
        "collecting" => Ok(()),
        "expired" => Err(ApiError::Gone(Problem::new(
            "survey_expired",
            "This survey has expired.",
        ))),
        _ => Err(ApiError::Gone(Problem::new(
            "survey_closed",
            "This survey is closed.",
        ))),
    }
}

/// How far the owner's survey is (owner only; others get 404).
#[utoipa::path(
    get,
    path = "/v1/surveys/{id}/progress",
    tag = "surveys",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Counts and the persona job's state", body = Progress),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such survey of yours", body = ErrorBody),
    )
)]
pub async fn progress(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Progress>, ApiError> {
    let survey = repo::find(&state.db, id)
        .await?
        .filter(|survey| survey.owner_id == user.id)
        .ok_or_else(survey_not_found)?;
    let persona_status = repo::persona_state(&state.db, id)
        .await?
        .unwrap_or_else(|| "awaiting_responses".to_owned());
    Ok(Json(Progress {
        response_count: survey.response_count,
        threshold: RESPONSE_THRESHOLD,
        unlocked: survey.response_count >= RESPONSE_THRESHOLD,
        persona_status,
    }))
}

/// Closes the owner's survey; answers are kept.
#[utoipa::path(
    delete,
    path = "/v1/surveys/{id}",
    tag = "surveys",
    security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Closed (also when it already was)"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such survey of yours", body = ErrorBody),
    )
)]
pub async fn close(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    if repo::close(&state.db, user.id, id, state.clock.now()).await? {
        tracing::info!(survey_id = %id, "survey closed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(survey_not_found())
    }
}

/// A friend's anonymous answers. No sign-in; nothing about the sender is stored.
#[utoipa::path(
    post,
    path = "/v1/surveys/{id}/responses",
    tag = "surveys",
    request_body = SubmitResponse,
    params(
        ("id" = Uuid, Path),
        ("x-fingerprint" = Option<String>, Header, description = "Browser fingerprint for duplicate detection (hashed, never stored)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe"),
    ),
    responses(
        (status = 201, description = "Stored", body = ResponseAccepted),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "The owner cannot answer their own survey", body = ErrorBody),
        (status = 404, description = "No such survey", body = ErrorBody),
        (status = 409, description = "Already answered from this device in the last 24 h, or the same key is in progress", body = ErrorBody),
        (status = 410, description = "Closed or expired", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid answers; `details.fields` names each", body = ErrorBody),
        (status = 429, description = "More than 5 answers a minute from this address", body = ErrorBody),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    ApiPath(survey_id): ApiPath<Uuid>,
    user: Option<AuthUser>,
    address: AddressHash,
    key: IdempotencyKey,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SubmitResponse>,
) -> Result<Response, ApiError> {
    let fingerprint = match headers.get("x-fingerprint") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|f| (1..=256).contains(&f.len()))
                .ok_or_else(|| {
                    ApiError::BadRequest(Problem::new(
                        "invalid_fingerprint",
                        "x-fingerprint must be 1 to 256 visible characters.",
                    ))
                })?
                .to_owned(),
        ),
    };
    let now = state.clock.now();
    let survey = repo::find(&state.db, survey_id)
        .await?
        .ok_or_else(survey_not_found)?;
    ensure_open(&survey, now)?;
    if user.is_some_and(|user| user.id == survey.owner_id) {
        return Err(ApiError::Forbidden(Problem::new(
            "own_survey",
            "You cannot answer your own survey.",
        )));
    }
    let bank = question_bank(survey.question_bank_version)
        .ok_or_else(|| anyhow::anyhow!("survey with unknown question bank version"))?;
    let answers = validate_answers(&bank, &request.answers).map_err(|invalid| {
        ApiError::Unprocessable(
            Problem::new("invalid_answers", "Some answers are invalid.")
                .with_details(serde_json::json!({ "fields": invalid.fields })),
        )
    })?;
    let day_key = state.day_keys.today(&state, now).await?;
    let scope = format!("responses.submit#{survey_id}#{}", address.0);
    key.run_anonymous(&state, &day_key, &scope, &request, || async {
        let marker = reserve(
            &state,
            &day_key,
            now,
            survey_id,
            &address,
            fingerprint.as_deref(),
        )
        .await?;
        let response_id = Uuid::new_v4();
        let plaintext = serde_json::to_vec(&answers).map_err(anyhow::Error::from)?;
        let sealed = state
            .cipher
            .seal(survey_id, response_id, &plaintext)
            .map_err(anyhow::Error::from)?;
        let request_id = request_context::current_request_id();
        let outcome = repo::submit(
            &state.db,
            survey_id,
            response_id,
            &sealed,
            RESPONSE_THRESHOLD,
            request_id.as_deref(),
            now,
        )
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                state.day_keys.release(&state, marker).await;
                return Err(error.into());
            }
        };
        match outcome {
            Submitted::NotFound => {
                state.day_keys.release(&state, marker).await;
                return Err(survey_not_found());
            }
            Submitted::Gone => {
                state.day_keys.release(&state, marker).await;
                return Err(ApiError::Gone(Problem::new(
                    "survey_closed",
                    "This survey is closed.",
                )));
            }
            Submitted::Accepted => tracing::info!(%survey_id, "answer stored"),
            Submitted::Started {
                persona_id,
                version,
                outbox_id,
                owner_id,
            } => {
                tracing::info!(%survey_id, %persona_id, "third answer stored; persona job queued");
                state.publisher.publish(&state.db, &[outbox_id]).await;
                let status = PersonaStatus::queued(persona_id, version);
                if let Err(error) = state
                    .status
                    .put(owner_id, status_sequence(version, 1), &status)
                    .await
                {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "could not write the queued status"
                    );
                }
            }
        }
        Replayable::created(
            ResponseAccepted {
                survey_id,
                accepted: true,
            },
            None,
        )
    })
    .await
}

/// One DynamoDB round trip: the per-survey-per-address rate limit and the duplicate marker. The
/// rate-limit subject is keyed with the day key too, so counters cannot link one address across
/// surveys. Concurrent submissions from one address touch the same counter and may cancel each
/// other (`TransactionConflict`); those are retried with jitter.
async fn reserve(
    state: &AppState,
    day_key: &[u8; 32],
    now: DateTime<Utc>,
    survey_id: Uuid,
    address: &AddressHash,
    fingerprint: Option<&str>,
) -> Result<anonymity::Marker, ApiError> {
    let subject = anonymity::keyed(day_key, &format!("{survey_id}#{}", address.0));
    let (limit_item, limited) =
        rate_limit::transact_item(state, rate_limit::ANSWER_SUBMIT, &subject)?;
    let (marker, marker_items) = state
        .day_keys
        .marker_items(state, now, survey_id, &address.0, fingerprint)
        .await?;
    let items: Vec<_> = std::iter::once(limit_item).chain(marker_items).collect();
    for attempt in 0..4u64 {
        let request = state
            .aws
            .dynamodb
            .transact_write_items()
            .set_transact_items(Some(items.clone()));
        let canceled = match request.send().await {
            Ok(_) => return Ok(marker),
            Err(error) => match error.into_service_error() {
                TransactWriteItemsError::TransactionCanceledException(canceled) => canceled,
                other => {
                    return Err(anyhow::Error::from(other)
                        .context("reserving an answer")
                        .into())
                }
            },
        };
        let reasons = canceled.cancellation_reasons.unwrap_or_default();
        let code = |index: usize| {
            reasons
                .get(index)
                .and_then(|r| r.code.as_deref())
                .unwrap_or("None")
        };
        if code(0) == "ConditionalCheckFailed" {
            return Err(limited);
        }
        if (1..reasons.len()).any(|i| code(i) == "ConditionalCheckFailed") {
            tracing::info!(%survey_id, "duplicate answer refused");
            return Err(ApiError::Conflict(Problem::new(
                "already_answered",
                "An answer from this device already reached this survey in the last 24 hours.",
            )));
        }
        if !(0..reasons.len()).any(|i| code(i) == "TransactionConflict") {
            return Err(anyhow::anyhow!("answer reservation canceled").into());
        }
        let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 40;
        tokio::time::sleep(std::time::Duration::from_millis(
            20 * (attempt + 1) + jitter,
        ))
        .await;
    }
    Err(ApiError::TooManyRequests {
        retry_after_secs: 1,
    })
}
