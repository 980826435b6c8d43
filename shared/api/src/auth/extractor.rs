//! `AuthUser`: the extractor every protected route takes. `Authorization: Bearer <access token>`;
//! anything else is 401 with `WWW-Authenticate` (RFC 6750 section 3).

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};
use uuid::Uuid;

use crate::{ApiError, Problem};
use ::account::ErasureMarks;
use ::auth::AccessTokens;
use platform::clock::Clock;

/// Verifies callers: our access token, and that its account was not erased since it was issued
/// (an access token lives an hour and needs no database, so an erased account's tokens are
/// refused by the erasure mark).
#[derive(Clone)]
pub struct Authenticator {
    pub tokens: Arc<AccessTokens>,
    pub marks: ErasureMarks,
    pub clock: Arc<dyn Clock>,
}

/// The signed-in caller.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
}

/// Any state that holds the authenticator: the whole API's, or the chat stream function's.
impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let authenticator = Authenticator::from_ref(state);
        let id = bearer(parts, &authenticator)?;
        if authenticator
            .marks
            .is_erased(id, authenticator.clock.now())
            .await?
        {
            return Err(ApiError::Unauthorized(Problem::new(
                "account_erased",
                "This account was deleted.",
            )));
        }
        Ok(Self { id })
    }
}

/// The caller of `DELETE /v1/me` only: a valid access token, even of an account already being
/// erased, so that asking again answers 202 like the first time.
#[derive(Debug, Clone, Copy)]
pub struct AccountHolder {
    pub id: Uuid,
}

impl<S> FromRequestParts<S> for AccountHolder
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let id = bearer(parts, &Authenticator::from_ref(state))?;
        Ok(Self { id })
    }
}

/// The user id of a valid `Authorization: Bearer <access token>`.
fn bearer(parts: &Parts, authenticator: &Authenticator) -> Result<Uuid, ApiError> {
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
    authenticator.tokens.verify(token).map_err(|reason| {
        tracing::info!(reason = reason.0, "access token rejected");
        invalid_token()
    })
}

pub(crate) fn invalid_token() -> ApiError {
    ApiError::Unauthorized(Problem::new(
        "invalid_token",
        "The access token is invalid or expired.",
    ))
}

/// For routes open to everyone that behave differently for a signed-in caller: no header, or an
/// invalid token, is simply anonymous.
impl<S> axum::extract::OptionalFromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Ok(None);
        }
        Ok(
            <Self as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}
