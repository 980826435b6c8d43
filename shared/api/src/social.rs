//! Social routes (F-005): the public persona (JSON), the share page and its card image (HTML and
//! PNG, for browsers and link-preview crawlers), share reports, and compatibility. Thin handlers
//! over the `social` crate; the page itself is in [`page`].

mod page;
mod report;

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use domain::{
    archetypes::Archetype, compatibility::Compatibility, shares::ShareChannel, synthesis::Stats,
};
use serde::{Deserialize, Serialize};
use social::{CardImage, PublicPersona, SocialError};
use utoipa::{
    openapi::{
        schema::{ObjectBuilder, Schema, Type},
        RefOr,
    },
    IntoParams, PartialSchema, ToSchema,
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
    ApiError, AppState, Problem,
};

pub use page::{card_url, page_url};

/// The public card: a stable URL on our own domain (crawlers keep it for days).
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicCard {
    /// `{FRONTEND_URL}/p/{id}/card.png`, the 1200x630 PNG; never expires.
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// What anyone may see of a public persona: never the system prompt, the owner, their email
/// or the survey.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicPersonaView {
    /// The newest ready version's id (whichever version id was asked).
    pub id: Uuid,
    pub version: i32,
    pub name: String,
    pub archetype: Archetype,
    pub stats: Stats,
    pub traits: Vec<String>,
    pub greeting: String,
    pub card: PublicCard,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub channel: ShareChannel,
}

/// A recorded share.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareView {
    pub id: Uuid,
    /// The version that was shared.
    pub persona_id: Uuid,
    pub channel: ShareChannel,
    /// The page to share: `{FRONTEND_URL}/p/{persona_id}`.
    pub share_url: String,
    pub created_at: DateTime<Utc>,
}

/// A PNG image as a response body: its bytes, not JSON (OpenAPI 3.1 "working with binary data").
struct Png;

impl PartialSchema for Png {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("image/png")
            .into()
    }
}

impl ToSchema for Png {}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompatibilityQuery {
    /// Any version id of someone else's public persona.
    pub persona_id: Uuid,
}

impl From<SocialError> for ApiError {
    fn from(error: SocialError) -> Self {
        match error {
            SocialError::NotFound => ApiError::not_found("There is no such public persona."),
            SocialError::NoPersona => {
                ApiError::NotFound(Problem::new("no_persona", "You have no persona yet."))
            }
            SocialError::NotPublic => ApiError::Conflict(Problem::new(
                "persona_not_public",
                "Publish your persona first: a shared link to a private persona shows nothing.",
            )),
            SocialError::NotReady => ApiError::Conflict(Problem::new(
                "persona_not_ready",
                "Your persona must be ready before it can be compared.",
            )),
            SocialError::OwnPersona => ApiError::Unprocessable(Problem::new(
                "own_persona",
                "Pick someone else's persona: yours compared with itself says nothing.",
            )),
            SocialError::RateLimited(limited) => limited.into(),
            SocialError::Unexpected(error) => ApiError::Unexpected(error),
        }
    }
}

fn public_view(frontend_url: &str, persona: PublicPersona) -> PublicPersonaView {
    PublicPersonaView {
        card: PublicCard {
            url: card_url(frontend_url, persona.id),
            width: persona.card.width,
            height: persona.card.height,
        },
        id: persona.id,
        version: persona.version,
        name: persona.name,
        archetype: persona.archetype,
        stats: persona.stats,
        traits: persona.traits,
        greeting: persona.greeting,
    }
}

/// A public persona; no sign-in. Any of its version ids works (old QR codes keep working) and
/// answers with the newest ready version, while its owner keeps it public.
#[utoipa::path(
    get,
    path = "/v1/personas/{id}/public",
    tag = "social",
    params(("id" = Uuid, Path, description = "Any version id of the persona")),
    responses(
        (status = 200, description = "The newest ready version", body = PublicPersonaView),
        (status = 404, description = "Unknown, or not public", body = ErrorBody),
    )
)]
pub async fn public_persona(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PublicPersonaView>, ApiError> {
    let persona = state.social.public_persona(id).await?;
    Ok(Json(public_view(&state.config.web.frontend_url, persona)))
}

/// The share a share page's URL came from: its first `s` query parameter, when it is a share id.
/// Anything else (tracking parameters link apps add, a repeated or malformed `s`) is ignored:
/// the page always renders.
fn shared_from(query: Option<&str>) -> Option<Uuid> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("s="))
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// The share page: HTML with the card, name, archetype and greeting, and the Open Graph and
/// Twitter tags link previews are built from. No sign-in, no script.
#[utoipa::path(
    get,
    path = "/p/{id}",
    tag = "social",
    params(
        ("id" = String, Path, description = "Any version id of the persona"),
        ("s" = Option<String>, Query, description = "The share this link came from (`share_url` of a recorded share): opened from another address than the owner's, the share counts. Anything else, or a malformed value, is ignored"),
    ),
    responses(
        (status = 200, description = "The page (`Cache-Control: public, max-age=300`)", body = String, content_type = "text/html"),
        (status = 404, description = "Unknown, private or malformed: a page without any persona data", body = String, content_type = "text/html"),
    )
)]
pub async fn share_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    viewer: AddressHash,
) -> Result<Response, ApiError> {
    let frontend_url = &state.config.web.frontend_url;
    let Ok(id) = Uuid::parse_str(&id) else {
        return page::not_found(frontend_url);
    };
    match state.social.public_persona(id).await {
        Ok(persona) => {
            if let Some(share) = shared_from(query.as_deref()) {
                // Never fails the page: a share that cannot be observed now simply is not.
                if let Err(error) = state.social.observe_share(share, id, &viewer.0).await {
                    tracing::warn!(error = %error, "could not observe a share");
                }
            }
            page::share(frontend_url, &persona)
        }
        Err(SocialError::NotFound) => page::not_found(frontend_url),
        Err(error) => Err(error.into()),
    }
}

/// The 1200x630 card of a public persona, at a stable public URL (the page's `og:image`): the
/// bytes themselves, cacheable, with a strong `ETag` (`If-None-Match` → 304).
#[utoipa::path(
    get,
    path = "/p/{id}/card.png",
    tag = "social",
    params(("id" = Uuid, Path, description = "Any version id of the persona")),
    responses(
        (status = 200, description = "The PNG (`Cache-Control: public, max-age=300`)", body = inline(Png), content_type = "image/png",
            headers(("ETag" = String, description = "Send as `If-None-Match` to get 304 while the card is unchanged"))),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "Unknown, or not public", body = ErrorBody),
    )
)]
pub async fn share_card(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok());
    let (mut response, etag) = match state.social.card_image(id, if_none_match).await? {
        CardImage::Unchanged { etag } => (StatusCode::NOT_MODIFIED.into_response(), etag),
        CardImage::Png { etag, bytes } => {
            let png = [(header::CONTENT_TYPE, "image/png")];
            ((png, Body::from(bytes)).into_response(), etag)
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(page::CACHE_CONTROL),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Records that the owner shared their persona (it feeds the share quest).
#[utoipa::path(
    post,
    path = "/v1/personas/me/shares",
    tag = "social",
    security(("bearer" = [])),
    request_body = ShareRequest,
    params(IdempotencyKey),
    responses(
        (status = 201, description = "Recorded", body = ShareView),
        (status = 400, description = "Malformed body, unknown field or channel, or bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "`no_persona`: no persona with a card yet", body = ErrorBody),
        (status = 409, description = "`persona_not_public`, or `request_in_progress` for this key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused` with another channel", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 30 shares a minute", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn record_share(
    State(state): State<AppState>,
    user: AuthUser,
    address: AddressHash,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<ShareRequest>,
) -> Result<Response, ApiError> {
    key.run(
        &state.idempotency,
        user.id,
        "personas.shares",
        &request,
        || async {
            let share = state
                .social
                .record_share(user.id, request.channel, &address.0)
                .await?;
            Replayable::created(
                ShareView {
                    id: share.id,
                    persona_id: share.persona_id,
                    channel: share.channel,
                    share_url: format!(
                        "{}?s={}",
                        page_url(&state.config.web.frontend_url, share.persona_id),
                        share.id
                    ),
                    created_at: share.created_at,
                },
                None,
            )
        },
    )
    .await
}

/// How the caller's ready persona gets on with someone else's public one. Deterministic and
/// symmetric; see `domain::compatibility` for the formula and the archetype table.
#[utoipa::path(
    get,
    path = "/v1/social/compatibility",
    tag = "social",
    security(("bearer" = [])),
    params(CompatibilityQuery),
    responses(
        (status = 200, description = "Score 0–100, label, per-stat breakdown and reasons", body = Compatibility),
        (status = 400, description = "`invalid_query`: missing or malformed `persona_id`, or an unknown parameter", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "Unknown, or not public", body = ErrorBody),
        (status = 409, description = "`persona_not_ready`: your own persona is not ready", body = ErrorBody),
        (status = 422, description = "`own_persona`: the id is one of your own persona's versions", body = ErrorBody),
    )
)]
pub async fn compatibility(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<CompatibilityQuery>,
) -> Result<Json<Compatibility>, ApiError> {
    Ok(Json(
        state
            .social
            .compatibility(user.id, query.persona_id)
            .await?,
    ))
}

/// The social routes: public views, the share page and its image, shares, compatibility.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(public_persona))
        .routes(routes!(share_page))
        .routes(routes!(share_card))
        .routes(routes!(record_share))
        .routes(routes!(compatibility))
        .routes(routes!(report::report_persona))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_link_names_its_share_and_anything_else_is_ignored() {
        let id = Uuid::new_v4();
        assert_eq!(shared_from(Some(&format!("utm_source=x&s={id}"))), Some(id));
        assert_eq!(shared_from(Some(&format!("s={id}&s=null"))), Some(id));
        assert_eq!(shared_from(Some("s=null&s=null")), None);
        assert_eq!(shared_from(Some("ss=1")), None);
        assert_eq!(shared_from(None), None);
    }
}
