//! The persona routes (F-002, F-004): start synthesis, poll its status, read the persona, retry,
//! re-render the card, publish. The saga runs in the workers; these routes only record commands
//! and read. Polling is served from DynamoDB alone.

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use domain::{
    archetypes::Archetype, personas::PersonaStatus, surveys::RESPONSE_THRESHOLD, synthesis::Stats,
};
use personas::{status::status_of, PersonaError, PersonaVersion, Started};
use serde::{Deserialize, Serialize};
use utoipa::{openapi::schema::Object, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::ErrorBody,
    idempotency::{IdempotencyKey, Replayable},
    json::ApiJson,
    openapi, request_context, ApiError, AppState, Problem,
};

/// Seconds a poller should wait between status requests while a job runs.
const POLL_SECONDS: u64 = 2;
const STATUS_LOCATION: &str = "/v1/personas/me/status";

#[derive(Debug, Serialize, ToSchema)]
pub struct CardView {
    /// A time-limited link to the 1080x1080 card.
    pub url: String,
    #[schema(schema_with = theme_schema)]
    pub theme: String,
    pub width: u32,
    pub height: u32,
    /// Every size: `square` (1080x1080), `story` (1080x1920), `link` (1200x630).
    pub sizes: Vec<CardSize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardSize {
    #[schema(schema_with = size_schema)]
    pub size: String,
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// The persona, as its owner sees it (never the system prompt).
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonaView {
    pub id: Uuid,
    pub version: i32,
    pub name: String,
    pub archetype: Archetype,
    pub stats: Stats,
    pub traits: Vec<String>,
    pub greeting: String,
    /// The owner's bond with their persona (it carries over across versions): 0 Stranger,
    /// 1 Acquaintance, 2 Friend, 3 Close Friend, 4 Soulmate.
    #[schema(maximum = 4)]
    pub bond_level: u8,
    pub bond_name: &'static str,
    pub bond_points: i32,
    pub card: Option<CardView>,
    /// Whether the persona as a whole (every version) is public.
    pub is_public: bool,
    /// Set when reports hid the persona (`hidden`) or ops took it down (`removed`): then nobody
    /// else sees it, whatever `is_public` says; you still do, and can chat with it.
    pub moderation: Option<ModerationView>,
    /// `rule_based` (offline), `rule_based_fallback` (the LLM kept failing) or `llm:<model>`.
    pub synthesized_by: String,
    pub created_at: DateTime<Utc>,
}

/// The persona's moderation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModerationView {
    #[schema(value_type = String, example = "hidden")]
    pub state: personas::moderation::ModerationState,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    /// Checked by the handler, so an unknown theme answers 422 `invalid_fields`.
    #[schema(schema_with = theme_schema)]
    pub theme: String,
}

/// The card sizes the renderer draws (`cards::Size`).
fn size_schema() -> Object {
    openapi::names(cards::Size::ALL.map(cards::Size::name)).build()
}

/// The card themes the renderer has (`cards::Theme`).
fn theme_schema() -> Object {
    openapi::names(cards::Theme::ALL.map(cards::Theme::name))
        .description(Some("A card theme."))
        .build()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaPatch {
    pub is_public: bool,
}

/// A 202 the client should poll: the job's status, with `Location` (replayable under an
/// `Idempotency-Key`).
fn accepted(row: &PersonaVersion) -> Result<Replayable, ApiError> {
    Ok(Replayable {
        status: StatusCode::ACCEPTED,
        body: serde_json::to_value(status_of(row)).map_err(anyhow::Error::from)?,
        location: Some(STATUS_LOCATION.to_owned()),
    })
}

/// Adds `Retry-After`: when to poll the status.
fn poll_after(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(POLL_SECONDS));
    response
}

impl From<PersonaError> for ApiError {
    fn from(error: PersonaError) -> Self {
        match error {
            PersonaError::NotEnoughResponses { response_count } => ApiError::Conflict(
                Problem::new("not_enough_responses", "At least three friends must answer first.")
                    .with_details(serde_json::json!({ "response_count": response_count, "threshold": RESPONSE_THRESHOLD })),
            ),
            PersonaError::NotEnoughNewResponses { new_responses, needed } => ApiError::Conflict(
                Problem::new(
                    "not_enough_new_responses",
                    "A new version needs at least three answers the last one did not see.",
                )
                .with_details(serde_json::json!({ "new_responses": new_responses, "needed": needed })),
            ),
            PersonaError::NoPersona => ApiError::NotFound(Problem::new("no_persona", "You have no persona yet.")),
            PersonaError::NotFailed => ApiError::Conflict(Problem::new("not_failed", "Only a failed persona can be retried.")),
            PersonaError::NotReady => ApiError::Conflict(Problem::new(
                "persona_not_ready",
                "The persona must be ready before its card can be rendered again.",
            )),
            PersonaError::Unexpected(error) => ApiError::Unexpected(error),
        }
    }
}

/// Starts (or returns) the persona job; a new version when new answers arrived.
#[utoipa::path(
    post,
    path = "/v1/personas/me/synthesize",
    tag = "personas",
    security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 202, description = "Accepted: the job's status", body = PersonaStatus, headers(
            ("Location" = String, description = "The status to poll"),
            ("Retry-After" = u64, description = "Seconds before polling"),
        )),
        (status = 400, description = "Bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "`not_enough_responses`, `not_enough_new_responses` (`details: {new_responses, needed}`), or `request_in_progress` for this key", body = ErrorBody),
    )
)]
pub async fn synthesize_persona(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    key.run(&state.idempotency, user.id, "personas.synthesize", &(), || async {
        let request_id = request_context::current_request_id();
        let row = match state.personas.request_synthesis(user.id, request_id.as_deref()).await? {
            Started::New(row) => {
                tracing::info!(persona_id = %row.id, version = row.version, "persona synthesis requested");
                row
            }
            Started::Existing(row) => row,
        };
        accepted(&row)
    })
    .await
    .map(poll_after)
}

/// The saga's progress, from the DynamoDB read model only. Send `If-None-Match` with the last
/// `ETag` to get 304 while nothing changed.
#[utoipa::path(
    get,
    path = "/v1/personas/me/status",
    tag = "personas",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The status (`Retry-After` while a job runs)", body = PersonaStatus,
            headers(("ETag" = String, description = "Send as `If-None-Match` to get 304 while nothing changed"))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn persona_status(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (status, sequence) = state.personas.status(user.id).await?;
    // The answer count changes without a new status sequence, so it is part of the tag.
    let etag = format!("\"{sequence}.{}\"", status.new_responses);
    let running = status.state.is_running();
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(status).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // Revalidate every time (the ETag makes that cheap) instead of never storing.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if running {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(POLL_SECONDS));
    }
    Ok(response)
}

/// The newest ready persona.
#[utoipa::path(
    get,
    path = "/v1/personas/me",
    tag = "personas",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The persona", body = PersonaView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "`no_persona`: no ready persona yet", body = ErrorBody),
    )
)]
pub async fn my_persona(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<PersonaView>, ApiError> {
    let row = state
        .personas
        .current(user.id)
        .await?
        .ok_or(PersonaError::NoPersona)?;
    Ok(Json(view(&state, &row).await?))
}

pub async fn view(state: &AppState, row: &PersonaVersion) -> Result<PersonaView, ApiError> {
    let (Some(name), Some(archetype), Some(stats)) = (row.name.clone(), row.archetype, row.stats)
    else {
        return Err(anyhow::anyhow!("a ready persona without its synthesis").into());
    };
    let bond = state.chat.bond(row.owner_id).await?;
    Ok(PersonaView {
        id: row.id,
        version: row.version,
        name,
        archetype,
        stats,
        traits: row.traits.clone(),
        greeting: row.greeting.clone().unwrap_or_default(),
        bond_level: bond.level(),
        bond_name: bond.name(),
        bond_points: bond.points,
        card: card_view(state, row).await?,
        is_public: row.is_public,
        moderation: state
            .personas
            .moderation(row.owner_id)
            .await?
            .map(|moderation| ModerationView {
                state: moderation.state,
                since: moderation.since,
            }),
        synthesized_by: row.synthesized_by.clone().unwrap_or_default(),
        created_at: row.created_at,
    })
}

/// The square card with links to every size.
async fn card_view(state: &AppState, row: &PersonaVersion) -> Result<Option<CardView>, ApiError> {
    let mut sizes = Vec::with_capacity(row.cards.len());
    for card in &row.cards {
        sizes.push(CardSize {
            size: card.size.clone(),
            url: state.cards.link(card).await?,
            width: card.width,
            height: card.height,
        });
    }
    let Some(square) = sizes.iter().find(|s| s.size == "square") else {
        return Ok(None);
    };
    Ok(Some(CardView {
        url: square.url.clone(),
        theme: row.theme.clone(),
        width: square.width,
        height: square.height,
        sizes,
    }))
}

/// Restarts a failed persona at the step that failed.
#[utoipa::path(
    post,
    path = "/v1/personas/me/retry",
    tag = "personas",
    security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 202, description = "Re-queued: the job's status", body = PersonaStatus, headers(
            ("Location" = String, description = "The status to poll"),
            ("Retry-After" = u64, description = "Seconds before polling"),
        )),
        (status = 400, description = "Bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "`no_persona`", body = ErrorBody),
        (status = 409, description = "`not_failed`: only a failed persona can be retried; or `request_in_progress` for this key", body = ErrorBody),
    )
)]
pub async fn retry_persona(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    key.run(
        &state.idempotency,
        user.id,
        "personas.retry",
        &(),
        || async {
            let request_id = request_context::current_request_id();
            let row = state.personas.retry(user.id, request_id.as_deref()).await?;
            tracing::info!(persona_id = %row.id, "persona retry requested");
            accepted(&row)
        },
    )
    .await
    .map(poll_after)
}

/// Renders the card again in another theme (step 2 only).
#[utoipa::path(
    post,
    path = "/v1/personas/me/card",
    tag = "personas",
    security(("bearer" = [])),
    request_body = CardRequest,
    params(IdempotencyKey),
    responses(
        (status = 202, description = "Rendering: the job's status", body = PersonaStatus, headers(
            ("Location" = String, description = "The status to poll"),
            ("Retry-After" = u64, description = "Seconds before polling"),
        )),
        (status = 400, description = "Malformed body, unknown field, or bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "`no_persona`", body = ErrorBody),
        (status = 409, description = "`persona_not_ready`, or `request_in_progress` for this key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_fields` (an unknown theme), or `idempotency_key_reused` with another theme", body = ErrorBody),
    )
)]
pub async fn render_card(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<CardRequest>,
) -> Result<Response, ApiError> {
    if cards::Theme::parse(&request.theme).is_none() {
        return Err(ApiError::Unprocessable(
            Problem::new("invalid_fields", "Some fields are invalid.").with_details(
                serde_json::json!({ "fields": { "theme": "must be one of default, dark, neon, pastel" } }),
            ),
        ));
    }
    key.run(
        &state.idempotency,
        user.id,
        "personas.card",
        &request,
        || async {
            let request_id = request_context::current_request_id();
            let row = state
                .personas
                .rerender(user.id, &request.theme, request_id.as_deref())
                .await?;
            accepted(&row)
        },
    )
    .await
    .map(poll_after)
}

/// Publishes or unpublishes the persona as a whole: every version at once, and later versions
/// too (its public route, share page, card image and compatibility).
#[utoipa::path(
    patch,
    path = "/v1/personas/me",
    tag = "personas",
    security(("bearer" = [])),
    request_body = PersonaPatch,
    responses(
        (status = 200, description = "Updated", body = PersonaView),
        (status = 400, description = "Malformed body or unknown field", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "`no_persona`: no ready persona", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn update_persona(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(request): ApiJson<PersonaPatch>,
) -> Result<Json<PersonaView>, ApiError> {
    let row = state
        .personas
        .set_public(user.id, request.is_public)
        .await?;
    Ok(Json(view(&state, &row).await?))
}

/// The persona routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(synthesize_persona))
        .routes(routes!(persona_status))
        .routes(routes!(my_persona, update_persona))
        .routes(routes!(retry_persona))
        .routes(routes!(render_card))
}
