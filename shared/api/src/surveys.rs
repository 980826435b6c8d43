//! Survey routes (F-001): request and response types, OpenAPI operations, and thin handlers over
//! the `surveys` crate's use cases.

use axum::{
    extract::{FromRequestParts, State},
    http::{request::Parts, StatusCode},
    response::Response,
    Json,
};
use chrono::{DateTime, Utc};
use domain::{
    surveys::{question_bank, Question, CURRENT_VERSION, MAX_TITLE_CHARS},
    text::patterns,
};
use serde::{Deserialize, Serialize};
use surveys::{Survey, SurveyError};
use utoipa::{
    openapi::{
        path::{Parameter, ParameterIn},
        schema::{Object, Schema, SchemaType, Type},
    },
    IntoParams, ToSchema,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    client_address::AddressHash,
    error::ErrorBody,
    extract::{ApiPath, ApiQuery},
    idempotency::{IdempotencyKey, Replayable},
    json::ApiJson,
    openapi, request_context, ApiError, AppState, Problem,
};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSurvey {
    #[schema(schema_with = title_schema)]
    pub title: Option<String>,
}

fn title_schema() -> Object {
    openapi::text(MAX_TITLE_CHARS, patterns::clean(false, false))
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(
            "At most 80 characters, on one line, without control, bidi or zero-width \
             characters (else 422 `invalid_fields`); absent, null or blank: a default title.",
        ))
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SurveyView {
    pub id: Uuid,
    pub title: String,
    /// The link friends open.
    pub share_url: String,
    #[schema(schema_with = survey_status_schema)]
    pub status: &'static str,
    pub question_count: usize,
    pub response_count: i32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn survey_status_schema() -> Object {
    use domain::surveys::SurveyStatus::*;
    openapi::names([Collecting, Closed, Expired].map(|status| status.as_str())).build()
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
    /// Where the page starts: the previous page's `next_cursor`, exactly as given (opaque);
    /// absent for the first page. Any other value answers 400 `invalid_cursor`.
    #[param(format = "cursor")]
    pub cursor: Option<String>,
    /// How many items (default 20); outside 1 to 100, 400 `invalid_limit`.
    #[param(minimum = 1, maximum = 100)]
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
    /// Answers no persona version has seen yet.
    pub new_responses: i32,
    /// Answers still needed before a (new) persona version can be made: every version needs at
    /// least three answers the earlier ones did not see, so no friend's answers can be read by
    /// comparing two versions.
    pub responses_needed: i32,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitResponse {
    /// Question id → integer (scale), option id (choice) or string (text), checked against the
    /// survey's question bank (`question_bank_version` of its public view); 422
    /// `invalid_answers` names each bad one.
    #[schema(schema_with = answers_schema)]
    pub answers: serde_json::Map<String, serde_json::Value>,
}

fn answers_schema() -> Schema {
    let banks: Vec<_> = (1..=CURRENT_VERSION).filter_map(question_bank).collect();
    domain::surveys::answers_schema(&banks)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseAccepted {
    pub survey_id: Uuid,
    pub accepted: bool,
}

impl From<SurveyError> for ApiError {
    fn from(error: SurveyError) -> Self {
        let fields = |fields: serde_json::Value| serde_json::json!({ "fields": fields });
        match error {
            SurveyError::NotFound => ApiError::not_found("There is no such survey."),
            SurveyError::Closed => {
                ApiError::Gone(Problem::new("survey_closed", "This survey is closed."))
            }
            SurveyError::Expired => {
                ApiError::Gone(Problem::new("survey_expired", "This survey has expired."))
            }
            SurveyError::AlreadyCollecting { survey_id } => ApiError::Conflict(
                Problem::new(
                    "survey_already_collecting",
                    "You already have a survey collecting answers; close it first.",
                )
                .with_details(serde_json::json!({ "survey_id": survey_id })),
            ),
            SurveyError::InvalidTitle => ApiError::Unprocessable(
                Problem::new("invalid_fields", "Some fields are invalid.").with_details(fields(
                    serde_json::json!({
                        "title": "must be at most 80 characters without control, bidi or zero-width characters"
                    }),
                )),
            ),
            SurveyError::OwnSurvey => ApiError::Forbidden(Problem::new(
                "own_survey",
                "You cannot answer your own survey.",
            )),
            SurveyError::InvalidAnswers(invalid) => ApiError::Unprocessable(
                Problem::new("invalid_answers", "Some answers are invalid.")
                    .with_details(fields(serde_json::json!(invalid))),
            ),
            SurveyError::AlreadyAnswered => ApiError::Conflict(Problem::new(
                "already_answered",
                "An answer from this device already reached this survey in the last 24 hours.",
            )),
            SurveyError::InvalidPage(invalid) => invalid.into(),
            SurveyError::RateLimited(limited) => limited.into(),
            SurveyError::Unexpected(error) => ApiError::Unexpected(error),
        }
    }
}

fn view(state: &AppState, survey: &Survey, now: DateTime<Utc>) -> SurveyView {
    SurveyView {
        id: survey.id,
        title: survey.title.clone(),
        share_url: format!("{}/s/{}", state.config.web.frontend_url, survey.id),
        status: survey.status_at(now).as_str(),
        question_count: question_bank(survey.question_bank_version)
            .map(|bank| bank.questions.len())
            .unwrap_or_default(),
        response_count: survey.response_count,
        created_at: survey.created_at,
        expires_at: survey.expires_at,
    }
}

/// The `x-fingerprint` header: 1 to 256 visible characters, hashed into the duplicate marker
/// and never stored.
pub struct Fingerprint(pub Option<String>);

impl IntoParams for Fingerprint {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![openapi::optional_header(
            "x-fingerprint",
            256,
            "^[!-~]([ -~]*[!-~])?$",
            "A browser fingerprint for duplicate detection (hashed with the address, never \
             stored): 1 to 256 visible ASCII characters, else 400 `invalid_fingerprint`.",
        )]
    }
}

impl<S: Sync> FromRequestParts<S> for Fingerprint {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("x-fingerprint") else {
            return Ok(Self(None));
        };
        let fingerprint = value
            .to_str()
            .ok()
            .filter(|f| (1..=256).contains(&f.len()))
            .ok_or_else(|| {
                ApiError::BadRequest(Problem::new(
                    "invalid_fingerprint",
                    "x-fingerprint must be 1 to 256 visible characters.",
                ))
            })?;
        Ok(Self(Some(fingerprint.to_owned())))
    }
}

/// Creates the owner's survey (one collecting survey at a time).
#[utoipa::path(
    post,
    path = "/v1/surveys",
    tag = "surveys",
    security(("bearer" = [])),
    request_body = CreateSurvey,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Created", body = SurveyView,
            headers(("Location" = String, description = "The survey's progress"))),
        (status = 400, description = "Malformed body, unknown field, or bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "`survey_already_collecting` (`details.survey_id`: close it first), or `request_in_progress` for this key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_fields` (the title), or `idempotency_key_reused` with another body", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 5 surveys an hour", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<CreateSurvey>,
) -> Result<Response, ApiError> {
    key.run(
        &state.idempotency,
        user.id,
        "surveys.create",
        &request,
        || async {
            let survey = state
                .surveys
                .create(user.id, request.title.as_deref())
                .await?;
            let location = format!("/v1/surveys/{}/progress", survey.id);
            Replayable::created(view(&state, &survey, state.clock.now()), Some(location))
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
        (status = 400, description = "`invalid_cursor`, `invalid_limit` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn mine(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<SurveyPage>, ApiError> {
    let page = state
        .surveys
        .list_mine(user.id, query.cursor.as_deref(), query.limit)
        .await?;
    let now = state.clock.now();
    Ok(Json(SurveyPage {
        items: page.items.iter().map(|s| view(&state, s, now)).collect(),
        next_cursor: page.next_cursor,
    }))
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
        (status = 410, description = "`survey_closed` or `survey_expired`", body = ErrorBody),
    )
)]
pub async fn public(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PublicSurvey>, ApiError> {
    let (survey, bank) = state.surveys.public_view(id).await?;
    Ok(Json(PublicSurvey {
        id: survey.id,
        title: survey.title,
        owner_first_name: survey.owner_first_name,
        question_bank_version: bank.version,
        questions: bank.questions.clone(),
        expires_at: survey.expires_at,
    }))
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
    let progress = state.surveys.progress(user.id, id).await?;
    Ok(Json(Progress {
        response_count: progress.response_count,
        threshold: progress.threshold,
        unlocked: progress.unlocked,
        persona_status: progress.persona_status,
        new_responses: progress.new_responses,
        responses_needed: progress.responses_needed,
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
    state.surveys.close(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A friend's anonymous answers. No sign-in; nothing about the sender is stored.
#[utoipa::path(
    post,
    path = "/v1/surveys/{id}/responses",
    tag = "surveys",
    // Anonymous; a signed-in caller is recognized (an owner cannot answer their own survey).
    security((), ("bearer" = [])),
    request_body = SubmitResponse,
    params(("id" = Uuid, Path), Fingerprint, IdempotencyKey),
    responses(
        (status = 201, description = "Stored", body = ResponseAccepted),
        (status = 400, description = "Malformed body, unknown field, bad `x-fingerprint` or bad `Idempotency-Key`", body = ErrorBody),
        (status = 403, description = "`own_survey`: a signed-in owner cannot answer their own survey", body = ErrorBody),
        (status = 404, description = "No such survey", body = ErrorBody),
        (status = 409, description = "`already_answered` from this address and fingerprint in the last 24 h, or `request_in_progress` for this key", body = ErrorBody),
        (status = 410, description = "`survey_closed` or `survey_expired`", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_answers` (`details.fields` names each), or `idempotency_key_reused` with other answers", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 5 answers a minute to this survey from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    ApiPath(survey_id): ApiPath<Uuid>,
    Fingerprint(fingerprint): Fingerprint,
    user: Option<AuthUser>,
    address: AddressHash,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<SubmitResponse>,
) -> Result<Response, ApiError> {
    let answerer = user.map(|user| user.id);
    let submission = state
        .surveys
        .prepare_answer(survey_id, answerer, &request.answers)
        .await?;
    let day_key = *submission.day_key();
    let scope = format!("responses.submit#{survey_id}#{}", address.0);
    key.run_anonymous(&state.idempotency, &day_key, &scope, &request, || async {
        let request_id = request_context::current_request_id();
        state
            .surveys
            .store_answer(
                submission,
                &address.0,
                fingerprint.as_deref(),
                request_id.as_deref(),
            )
            .await?;
        let accepted = ResponseAccepted {
            survey_id,
            accepted: true,
        };
        Replayable::created(accepted, None)
    })
    .await
}

/// The survey routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(mine))
        .routes(routes!(public))
        .routes(routes!(progress))
        .routes(routes!(close))
        .routes(routes!(submit))
}
