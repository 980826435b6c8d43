//! Your data: export everything (`POST /v1/me/exports`, `GET /v1/me/exports/{id}`) and erase
//! the account (`DELETE /v1/me`). The work is the `account` crate's; its workers do the slow
//! part.

use ::account::{ExportError, ExportState, ExportView};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{AccountHolder, AuthUser},
    error::ErrorBody,
    extract::ApiPath,
    idempotency::{IdempotencyKey, Replayable},
    request_context, ApiError, AppState, Problem,
};

/// An export of the caller's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportStatus {
    pub id: Uuid,
    /// `pending` while the document is built, then `ready` (download it) or `failed` (ask for
    /// another).
    #[schema(value_type = String, example = "pending")]
    pub state: ExportState,
    /// A link to the JSON document, valid until `expires_at`; only when `ready`.
    pub download_url: Option<String>,
    /// When the document and its link are deleted (24 h after it was built); only when `ready`.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<ExportView> for ExportStatus {
    fn from(view: ExportView) -> Self {
        Self {
            id: view.id,
            state: view.state,
            download_url: view.download_url,
            expires_at: view.expires_at,
        }
    }
}

/// `DELETE /v1/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasing {
    /// Always `erasing`: the account is closed, and everything it owns is being deleted.
    #[schema(example = "erasing")]
    pub state: &'static str,
}

impl From<ExportError> for ApiError {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::InProgress { id } => ApiError::Conflict(
                Problem::new(
                    "export_in_progress",
                    "An export is still being prepared; wait for it to finish.",
                )
                .with_details(serde_json::json!({ "export_id": id })),
            ),
            ExportError::TooMany { retry_after_secs } => ApiError::QuotaExceeded {
                problem: Problem::new(
                    "export_limit_reached",
                    "At most three exports a day; try again after the time in Retry-After.",
                ),
                retry_after_secs,
            },
            ExportError::NotFound => {
                ApiError::NotFound(Problem::new("export_not_found", "There is no such export."))
            }
            ExportError::Unexpected(error) => ApiError::Unexpected(error),
        }
    }
}

/// Asks for an export of everything the account holds (one JSON document). Poll the returned
/// `Location`.
#[utoipa::path(
    post,
    path = "/v1/me/exports",
    tag = "account",
    security(("bearer" = [])),
    params(IdempotencyKey),
    responses(
        (status = 202, description = "Being prepared", body = ExportStatus, headers(
            ("Location" = String, description = "The export to poll"),
        )),
        (status = 400, description = "Bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "`export_in_progress` (`details.export_id`), or `request_in_progress` for this key", body = ErrorBody),
        (status = 429, description = "`export_limit_reached`: three exports in the last 24 hours", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until another export may be asked for"))),
    )
)]
pub async fn request_export(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    key.run(
        &state.idempotency,
        user.id,
        "account.export",
        &(),
        || async {
            let request_id = request_context::current_request_id();
            let view = state
                .exports
                .request(user.id, request_id.as_deref())
                .await?;
            let location = format!("/v1/me/exports/{}", view.id);
            Ok(Replayable {
                status: StatusCode::ACCEPTED,
                body: serde_json::to_value(ExportStatus::from(view))
                    .map_err(anyhow::Error::from)?,
                location: Some(location),
            })
        },
    )
    .await
}

/// One of the caller's exports; another user's (or an expired one) is 404.
#[utoipa::path(
    get,
    path = "/v1/me/exports/{id}",
    tag = "account",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The export", body = ExportStatus),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "`export_not_found`", body = ErrorBody),
    )
)]
pub async fn export_status(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ExportStatus>, ApiError> {
    Ok(Json(state.exports.get(user.id, id).await?.into()))
}

/// Deletes the account and everything it owns. From this answer on, the account's tokens are
/// refused and its share pages are gone; the rest is erased within minutes. Idempotent.
#[utoipa::path(
    delete,
    path = "/v1/me",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The account is being erased", body = Erasing),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn erase_account(
    State(state): State<AppState>,
    user: AccountHolder,
) -> Result<Response, ApiError> {
    let request_id = request_context::current_request_id();
    state
        .erasures
        .request(user.id, request_id.as_deref())
        .await?;
    let mut response = (StatusCode::ACCEPTED, Json(Erasing { state: "erasing" })).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The account routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_export))
        .routes(routes!(export_status))
        .routes(routes!(erase_account))
}
