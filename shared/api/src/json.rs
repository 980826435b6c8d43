//! `ApiJson<T>`: axum's JSON extractor with our error body for every rejection.
//! Request types use `#[serde(deny_unknown_fields)]` (docs/api.md: unknown JSON fields are rejected).

use axum::{
    extract::{rejection::JsonRejection, FromRequest, Request},
    response::{IntoResponse, Response},
};
use serde::{de::DeserializeOwned, Serialize};

use crate::{ApiError, Problem};

/// A JSON request body (or response, for symmetry with `axum::Json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(error) => ApiError::BadRequest(
            Problem::new("malformed_json", "The body is not valid JSON.")
                .with_details(serde_json::json!({ "reason": error.body_text() })),
        ),
        // Wrong types, missing or unknown fields.
        JsonRejection::JsonDataError(error) => ApiError::BadRequest(
            Problem::new(
                "invalid_body",
                "The JSON body does not have the expected shape.",
            )
            .with_details(serde_json::json!({ "reason": error.body_text() })),
        ),
        JsonRejection::BytesRejection(error) if error.status() == 413 => ApiError::PayloadTooLarge,
        other => ApiError::BadRequest(Problem::new(
            "unreadable_body",
            format!("The body could not be read ({}).", other.status()),
        )),
    }
}
