//! Identity: who the caller is. Google sign-in, the local-only dev sign-in, our access tokens,
//! sessions (refresh-token rotation with reuse detection, logout), and the profile.
//!
//! - [`google`]: verifies Google ID tokens against Google's cached keys.
//! - [`tokens`]: issues and verifies our access tokens; makes and hashes refresh tokens.
//! - [`sessions`]: the users and refresh tokens in PostgreSQL.
//! - [`config`]: what sign-in reads from the environment.
//!
//! The HTTP routes (`shared/api`) parse requests, rate-limit, and call [`Auth`].

pub mod config;
pub mod google;
pub mod sessions;
pub mod tokens;

use std::{sync::Arc, time::Duration};

use aws_lc_rs::digest;
use deadpool_postgres::Pool;
use platform::clock::Clock;
use uuid::Uuid;

pub use config::IdentityConfig;
use google::{GoogleError, GoogleVerifier};
pub use sessions::{Profile, RefreshError, TokenResponse, UserView};
pub use tokens::{AccessTokens, InvalidToken, RefreshSuccessors};

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The Google ID token is not valid for this app (the reason is for the log only).
    #[error("invalid Google ID token: {0}")]
    InvalidIdToken(&'static str),
    /// Google's keys could not be fetched: worth a retry later.
    #[error("Google's keys are unavailable")]
    ProviderUnavailable(#[source] anyhow::Error),
    /// Dev sign-in fields, by name: the reason only.
    #[error("invalid fields")]
    InvalidFields(serde_json::Map<String, serde_json::Value>),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The sign-in and session use cases, built once per cold start.
#[derive(Clone)]
pub struct Auth {
    pub db: Pool,
    pub tokens: Arc<AccessTokens>,
    /// Derives each refresh token's successor under `ADDRESS_HASH_KEY` (see
    /// [`sessions::refresh`]).
    pub successors: Arc<RefreshSuccessors>,
    pub google: Arc<GoogleVerifier>,
    /// See [`IdentityConfig::refresh_reuse_grace`].
    pub refresh_grace: Duration,
}

impl Auth {
    /// The use cases from their configuration, on `db` and `clock`.
    pub fn new(config: &IdentityConfig, db: Pool, clock: Arc<dyn Clock>) -> Self {
        let http = || {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
        };
        Self {
            db,
            tokens: Arc::new(AccessTokens::new(config, clock.clone())),
            successors: Arc::new(RefreshSuccessors::new(&config.address_hash_key)),
            google: Arc::new(GoogleVerifier::new(
                &config.google_client_id,
                &config.google_jwks_url,
                http,
                clock,
            )),
            refresh_grace: config.refresh_reuse_grace,
        }
    }

    /// Signs in with a Google ID token; creates the user on first sign-in.
    pub async fn sign_in_with_google(&self, id_token: &str) -> Result<TokenResponse, SignInError> {
        let identity = self
            .google
            .verify(id_token)
            .await
            .map_err(|error| match error {
                GoogleError::Invalid(reason) => SignInError::InvalidIdToken(reason),
                GoogleError::KeysUnavailable(cause) => SignInError::ProviderUnavailable(cause),
            })?;
        let name = first_name(identity.given_name.as_deref().or(identity.name.as_deref()));
        let subject = format!("google:{}", identity.sub);
        let response = sessions::sign_in(&self.db, &self.tokens, &subject, &name).await?;
        tracing::info!(user_id = %response.user.id, "signed in with Google");
        Ok(response)
    }

    /// The local stack's sign-in by email (only its hash is kept) and name.
    pub async fn sign_in_dev(&self, email: &str, name: &str) -> Result<TokenResponse, SignInError> {
        let email = email.trim().to_lowercase();
        let mut invalid = serde_json::Map::new();
        if !(3..=254).contains(&email.len()) || !email.contains('@') {
            invalid.insert("email".into(), "must be an email address".into());
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 50 || !domain::text::is_clean(name, false) {
            invalid.insert(
                "name".into(),
                "must have 1 to 50 characters, without control, bidi or zero-width characters"
                    .into(),
            );
        }
        if !invalid.is_empty() {
            return Err(SignInError::InvalidFields(invalid));
        }
        let digest = digest::digest(&digest::SHA256, email.as_bytes());
        let subject = format!("dev:{}", platform::crypto::hex(digest.as_ref()));
        Ok(sessions::sign_in(&self.db, &self.tokens, &subject, &first_name(Some(name))).await?)
    }

    /// Exchanges a refresh token for a new pair (see [`sessions::refresh`]).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, RefreshError> {
        sessions::refresh(
            &self.db,
            &self.tokens,
            &self.successors,
            refresh_token,
            self.refresh_grace,
        )
        .await
    }

    /// Ends the session `refresh_token` belongs to (unknown tokens too: nothing to end).
    pub async fn logout(&self, refresh_token: &str) -> anyhow::Result<()> {
        sessions::logout(&self.db, refresh_token).await
    }

    /// The profile of `user_id`, if the user exists.
    pub async fn profile(&self, user_id: Uuid) -> anyhow::Result<Option<Profile>> {
        sessions::profile(&self.db, user_id).await
    }
}

/// The first word of a name, at most 50 characters, without hidden characters (the name comes
/// from Google and is shown on the public survey page); "Friend" when there is none.
fn first_name(name: Option<&str>) -> String {
    name.map(domain::text::cleaned)
        .as_deref()
        .and_then(|n| n.split_whitespace().next())
        .map(|first| first.chars().take(50).collect())
        .unwrap_or_else(|| "Friend".to_owned())
}
