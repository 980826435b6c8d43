//! What sign-in and our tokens read from the environment.

use platform::env::{Env, Lookup, NamedKey, SecretKey};

/// Sign-in and our tokens.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// `GOOGLE_CLIENT_ID`: Google ID tokens must carry it as `aud`.
    pub google_client_id: String,
    /// `GOOGLE_JWKS_URL`: where Google publishes its signing keys.
    pub google_jwks_url: String,
    /// `JWT_SIGNING_KEYS`: `kid:base64key[,kid:base64key...]`; the first signs, all verify, so a
    /// new key is rolled in first and the old one removed an hour (one token lifetime) later.
    pub jwt_signing_keys: Vec<NamedKey>,
    /// `JWT_ISSUER` / `JWT_AUDIENCE`: `iss` and `aud` of our access tokens.
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// `ADDRESS_HASH_KEY`: key of the keyed hash that replaces network addresses in rate-limit
    /// counters and duplicate markers (base64, at least 32 bytes); also, under its own label,
    /// of the derivation of each refresh token's successor ([`crate::RefreshSuccessors`]).
    pub address_hash_key: SecretKey,
    /// `REFRESH_REUSE_GRACE_SECS` (default 10): how long a just-rotated refresh token may be
    /// presented again (two tabs refreshing at once) and get the same successor again instead of
    /// revoking its family.
    pub refresh_reuse_grace: std::time::Duration,
}

impl IdentityConfig {
    pub fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            google_client_id: env.required("GOOGLE_CLIENT_ID"),
            google_jwks_url: env.optional_url(
                "GOOGLE_JWKS_URL",
                "https://www.googleapis.com/oauth2/v3/certs",
            ),
            address_hash_key: env.key("ADDRESS_HASH_KEY", "IDENTITY_SEED", "address-hash"),
            refresh_reuse_grace: std::time::Duration::from_secs(
                env.optional("REFRESH_REUSE_GRACE_SECS", 10),
            ),
            ..Self::read_tokens(env)
        }
    }

    /// Only our access tokens' keys, issuer and audience: for a function that authenticates
    /// callers but signs nobody in (the chat stream), so it never holds Google's or the address
    /// hash settings.
    pub fn read_tokens(env: &mut Env<Lookup>) -> Self {
        Self {
            jwt_signing_keys: env.keys("JWT_SIGNING_KEYS", "IDENTITY_SEED", "jwt-signing", false),
            jwt_issuer: env.optional("JWT_ISSUER", "https://api.remirai.app".to_owned()),
            jwt_audience: env.optional("JWT_AUDIENCE", "remirai-app".to_owned()),
            ..Self::default()
        }
    }
}
