//! `AuthUser`: the extractor every protected route takes. `Authorization: Bearer <access token>`;
//! anything else is 401 with `WWW-Authenticate` (RFC 6750 section 3).

use axum::{extract::FromRequestParts, http::request::Parts};
use uuid::Uuid;

use crate::{ApiError, AppState, Problem};

/// The signed-in caller.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(Problem::new(
                "missing_token",
                "Sign in and send `Authorization: Bearer <access token>`.",
            )));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            })
            .ok_or_else(invalid_token)?;
        let id = state.tokens.verify(token).map_err(|reason| {
            tracing::info!(reason = reason.0, "access token rejected");
            invalid_token()
        })?;
        Ok(Self { id })
    }
}

pub(crate) fn invalid_token() -> ApiError {
    ApiError::Unauthorized(Problem::new(
        "invalid_token",
        "The access token is invalid or expired.",
    ))
}

/// For routes open to everyone that behave differently for a signed-in caller: no header, or an
/// invalid token, is simply anonymous.
impl axum::extract::OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Ok(None);
        }
        Ok(
            <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}
