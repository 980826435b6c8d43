//! `POST /v1/personas/{id}/reports`: report someone else's public persona.

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use domain::reports::{ReportReason, MAX_NOTE_CHARS};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::AuthUser, error::ErrorBody, extract::ApiPath, json::ApiJson, openapi, ApiError, AppState,
    Problem,
};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "harassment", "note": "The greeting insults people."}))]
pub struct ReportRequest {
    pub reason: ReportReason,
    /// What is wrong, for the people who review reports; at most 500 characters.
    #[schema(schema_with = note_schema)]
    pub note: Option<String>,
}

fn note_schema() -> utoipa::openapi::schema::Object {
    openapi::text(MAX_NOTE_CHARS, domain::text::patterns::clean(true, false))
        .description(Some(
            "At most 500 characters, without control, bidi or zero-width characters (else 422).",
        ))
        .build()
}

/// `202`: the report is received (whether or not this reporter had reported this persona before).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportReceived {
    #[schema(example = "received")]
    pub state: &'static str,
}

/// Reports someone else's public persona (any of its version ids). At
/// `REPORT_HIDE_THRESHOLD` distinct reporters (3) it is hidden until ops review it. One reporter
/// counts once per persona; a repeat is accepted and not counted.
#[utoipa::path(
    post,
    path = "/v1/personas/{id}/reports",
    tag = "social",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Any version id of the persona")),
    request_body = ReportRequest,
    responses(
        (status = 202, description = "Received", body = ReportReceived),
        (status = 400, description = "Malformed body, unknown field or reason", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "Unknown, or not public", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`own_persona`: your own persona; `invalid_fields`: the note", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 10 reports an hour", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn report_persona(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<ReportRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let note = social::reports::clean_note(request.note.as_deref()).map_err(|_| {
        ApiError::Unprocessable(
            Problem::new("invalid_fields", "Some fields are invalid.").with_details(
                serde_json::json!({ "fields": { "note": "must have at most 500 characters, without control, bidi or zero-width characters" } }),
            ),
        )
    })?;
    state
        .social
        .report(user.id, id, request.reason, note)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReportReceived { state: "received" }),
    ))
}
