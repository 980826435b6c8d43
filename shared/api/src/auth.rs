//! The identity routes: Google sign-in, refresh rotation, logout, the profile, and the
//! local-only dev sign-in. The use cases and their SQL are in the `auth` crate.
//!
//! Rule for every protected route: a resource that belongs to another user answers 404, exactly
//! like one that does not exist, never 403, so ids cannot be probed for existence.

mod extractor;

use ::auth::{Profile, RefreshError, SignInError, TokenResponse};
use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::{
    openapi::schema::{Object, ObjectBuilder, Type},
    ToSchema,
};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use extractor::{AccountHolder, AuthUser, Authenticator};

use platform::rate_limit;

use crate::{
    client_address::AddressHash, error::ErrorBody, json::ApiJson, openapi, ApiError, AppState,
    Problem,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleSignIn {
    /// The ID token Google Identity Services gave the web app.
    pub id_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevSignIn {
    /// Identifies the local user; only its hash is kept.
    #[schema(schema_with = email_schema)]
    pub email: String,
    #[schema(schema_with = name_schema)]
    pub name: String,
}

fn email_schema() -> Object {
    // ASCII, so the server's byte count is this character count.
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(3))
        .max_length(Some(254))
        .pattern(Some("^[!-~]*@[!-~]*$"))
        .description(Some(
            "An address with an `@`, 3 to 254 characters (else 422).",
        ))
        .build()
}

fn name_schema() -> Object {
    openapi::text(50, domain::text::patterns::clean(false, true))
        .description(Some(
            "1 to 50 characters once trimmed, on one line, without control, bidi or zero-width \
             characters (else 422); its first word is the name friends see.",
        ))
        .build()
}

/// Signs in with a Google ID token; creates the user on first sign-in.
#[utoipa::path(
    post,
    path = "/v1/auth/google",
    tag = "auth",
    request_body = GoogleSignIn,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "Malformed body or unknown field", body = ErrorBody),
        (status = 401, description = "`invalid_id_token`: not valid for this app", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 10 auth requests a minute from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`identity_provider_unavailable`: Google's keys could not be fetched", body = ErrorBody),
    )
)]
pub async fn google_sign_in(
    State(state): State<AppState>,
    address: AddressHash,
    ApiJson(request): ApiJson<GoogleSignIn>,
) -> Result<Json<TokenResponse>, ApiError> {
    state.limits.check(rate_limit::AUTH, &address.0).await?;
    Ok(Json(
        state.auth.sign_in_with_google(&request.id_token).await?,
    ))
}

impl From<SignInError> for ApiError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::InvalidIdToken(reason) => {
                tracing::info!(reason, "Google ID token rejected");
                ApiError::Unauthorized(Problem::new(
                    "invalid_id_token",
                    "The Google ID token is not valid for this app.",
                ))
            }
            SignInError::ProviderUnavailable(cause) => {
                tracing::error!(
                    error = platform::telemetry::describe(&cause),
                    "Google keys unavailable"
                );
                ApiError::Unavailable(Problem::new(
                    "identity_provider_unavailable",
                    "Google sign-in is temporarily unavailable; try again shortly.",
                ))
            }
            SignInError::InvalidFields(fields) => ApiError::Unprocessable(
                Problem::new("invalid_fields", "Some fields are invalid.")
                    .with_details(serde_json::json!({ "fields": fields })),
            ),
            SignInError::Unexpected(error) => ApiError::Unexpected(error),
        }
    }
}

/// Exchanges a refresh token for a new pair; the presented token is retired.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 400, description = "Malformed body or unknown field", body = ErrorBody),
        (status = 401, description = "`invalid_refresh_token` (unknown, expired or revoked) or `refresh_token_reused` (which revokes the session)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 10 auth requests a minute from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    address: AddressHash,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    state.limits.check(rate_limit::AUTH, &address.0).await?;
    match state.auth.refresh(&request.refresh_token).await {
        Ok(response) => Ok(Json(response)),
        Err(RefreshError::Invalid) => Err(ApiError::Unauthorized(Problem::new(
            "invalid_refresh_token",
            "The refresh token is unknown, expired or revoked; sign in again.",
        ))),
        Err(RefreshError::Reused) => Err(ApiError::Unauthorized(Problem::new(
            "refresh_token_reused",
            "This refresh token was already used; the session has been ended for safety.",
        ))),
        Err(RefreshError::Unexpected(error)) => Err(error.into()),
    }
}

/// Ends the session the refresh token belongs to. Answers 204 for unknown tokens too.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session is ended"),
        (status = 400, description = "Malformed body or unknown field", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 10 auth requests a minute from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    address: AddressHash,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state.limits.check(rate_limit::AUTH, &address.0).await?;
    state.auth.logout(&request.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's profile and crystal balance.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 401, description = "Missing or invalid access token", body = ErrorBody),
    )
)]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Profile>, ApiError> {
    state
        .auth
        .profile(user.id)
        .await?
        .map(Json)
        .ok_or_else(extractor::invalid_token)
}

/// Local stack only: signs in as a local user without Google. Never routed inside Lambda.
#[utoipa::path(
    post,
    path = "/v1/auth/dev",
    tag = "auth",
    request_body = DevSignIn,
    responses(
        (status = 200, description = "Signed in as a local user", body = TokenResponse),
        (status = 400, description = "Malformed body or unknown field", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_fields`: the email or name", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than 10 auth requests a minute from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn dev_sign_in(
    State(state): State<AppState>,
    address: AddressHash,
    ApiJson(request): ApiJson<DevSignIn>,
) -> Result<Json<TokenResponse>, ApiError> {
    state.limits.check(rate_limit::AUTH, &address.0).await?;
    Ok(Json(
        state
            .auth
            .sign_in_dev(&request.email, &request.name)
            .await?,
    ))
}

/// The identity routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(google_sign_in))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// The local stack's dev sign-in; never merged into the router Lambda serves.
pub fn local_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(dev_sign_in))
}
