//! The one error type of the HTTP layer and the standard error body (docs/api.md, "Errors"):
//! `{"error": {"code", "message", "details", "request_id"}}`.
//!
//! Each variant documents its status. 5xx bodies are generic; the cause chain goes to the log
//! only, tagged with the request id, so a user can quote the id and ops can find the cause.

use std::borrow::Cow;

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use platform::{
    cursor::InvalidPage,
    rate_limit::{LimitError, Limited},
};

use crate::request_context;

/// A client-facing problem: a stable snake_case code, a sentence, optional structured details.
#[derive(Debug, Clone)]
pub struct Problem {
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
    pub details: Option<Value>,
}

impl Problem {
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed request (bad JSON, unknown field, bad query).
    #[error("bad request: {}", .0.code)]
    BadRequest(Problem),
    /// 401 with `WWW-Authenticate: Bearer`: missing or invalid credentials.
    #[error("unauthorized: {}", .0.code)]
    Unauthorized(Problem),
    /// 403: authenticated but not allowed. Other users' resources answer 404 instead, so their
    /// existence is never confirmed.
    #[error("forbidden: {}", .0.code)]
    Forbidden(Problem),
    /// 404 `not_found`: no such route or resource (or one that belongs to someone else).
    #[error("not found: {}", .0.code)]
    NotFound(Problem),
    /// 405 `method_not_allowed`, with the `Allow` header of the route.
    #[error("method not allowed")]
    MethodNotAllowed { allow: Option<HeaderValue> },
    /// 409: conflicts with the current state (duplicate, already running, in progress).
    #[error("conflict: {}", .0.code)]
    Conflict(Problem),
    /// 410: the resource existed but is closed or expired.
    #[error("gone: {}", .0.code)]
    Gone(Problem),
    /// 413 `payload_too_large`.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`: a JSON body without `Content-Type: application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 422: well-formed but semantically invalid input.
    #[error("unprocessable: {}", .0.code)]
    Unprocessable(Problem),
    /// 429 `rate_limited` with `Retry-After`.
    #[error("rate limited")]
    TooManyRequests { retry_after_secs: u64 },
    /// 429 with `Retry-After` and a code of its own (`daily_quota_exceeded`): a quota, not a
    /// burst limit.
    #[error("quota exceeded: {}", .problem.code)]
    QuotaExceeded {
        problem: Problem,
        retry_after_secs: u64,
    },
    /// 503: a dependency is down; details say which, never why.
    #[error("unavailable: {}", .0.code)]
    Unavailable(Problem),
    /// 500 `internal_error`: anything unexpected. The body is generic; the cause is logged.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The standard error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorObject {
    /// Stable, machine-readable snake_case code.
    #[schema(example = "not_found")]
    pub code: String,
    /// A human sentence; safe to show.
    pub message: String,
    /// Structured context, e.g. the offending fields.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The id of the request, also in the `x-request-id` header and every log line.
    pub request_id: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } | Self::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// 404 for a route or resource.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::NotFound(Problem::new("not_found", message))
    }

    pub(crate) fn problem(&self) -> Problem {
        match self {
            Self::BadRequest(p)
            | Self::Unauthorized(p)
            | Self::Forbidden(p)
            | Self::NotFound(p)
            | Self::Conflict(p)
            | Self::Gone(p)
            | Self::Unprocessable(p)
            | Self::Unavailable(p) => p.clone(),
            Self::MethodNotAllowed { .. } => Problem::new(
                "method_not_allowed",
                "This route does not accept that method; see the Allow header.",
            ),
            Self::PayloadTooLarge => Problem::new(
                "payload_too_large",
                "The request body is larger than this API accepts.",
            ),
            Self::UnsupportedMediaType => Problem::new(
                "unsupported_media_type",
                "Send the body as JSON with `Content-Type: application/json`.",
            ),
            Self::TooManyRequests { retry_after_secs } => Problem::new(
                "rate_limited",
                "Too many requests; try again after the time in Retry-After.",
            )
            .with_details(serde_json::json!({ "retry_after_seconds": retry_after_secs })),
            Self::QuotaExceeded { problem, .. } => problem.clone(),
            Self::Unexpected(_) => Problem::new(
                "internal_error",
                "Something went wrong on our side. Quote the request id if you contact us.",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Unexpected(cause) = &self {
            tracing::error!(
                error = platform::telemetry::describe(cause),
                "unexpected error"
            );
        }
        let problem = self.problem();
        let body = ErrorBody {
            error: ErrorObject {
                code: problem.code.into_owned(),
                message: problem.message.into_owned(),
                details: problem.details,
                request_id: request_context::current_request_id().unwrap_or_default(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized(problem) => {
                // RFC 6750 section 3: name the error only when a token was presented.
                let challenge = if problem.code == "missing_token" {
                    "Bearer realm=\"remirai\""
                } else {
                    "Bearer realm=\"remirai\", error=\"invalid_token\""
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            Self::MethodNotAllowed { allow: Some(allow) } => {
                headers.insert(header::ALLOW, allow);
            }
            Self::TooManyRequests { retry_after_secs }
            | Self::QuotaExceeded {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// 400 `invalid_cursor` (a cursor no page of ours handed out) or `invalid_limit` (outside 1 to
/// 100), for every cursor-paginated list.
impl From<InvalidPage> for ApiError {
    fn from(invalid: InvalidPage) -> Self {
        Self::BadRequest(match invalid {
            InvalidPage::Cursor => Problem::new("invalid_cursor", "The cursor is not valid."),
            InvalidPage::Limit => Problem::new("invalid_limit", "limit must be between 1 and 100."),
        })
    }
}

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        Self::TooManyRequests {
            retry_after_secs: limited.retry_after_secs,
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Limited(limited) => limited.into(),
            LimitError::Unexpected(error) => Self::Unexpected(error),
        }
    }
}
