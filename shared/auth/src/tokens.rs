//! Our access tokens (JWT, HS256 pinned, 1 h, `kid` for rotation) and opaque refresh tokens.

use std::sync::Arc;

use aws_lc_rs::{digest, rand::SecureRandom};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use platform::clock::Clock;

use crate::config::IdentityConfig;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Lifetime of an access token.
pub const ACCESS_TOKEN_SECONDS: u64 = 3600;
/// Lifetime of a refresh token.
pub const REFRESH_TOKEN_SECONDS: i64 = 7 * 24 * 3600;
/// Tokens longer than this are rejected before any parsing (oversized headers, garbage).
const MAX_TOKEN_BYTES: usize = 2048;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECONDS: u64 = 30;

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    // Every field is required by its type; `iat` in particular is not covered by
    // jsonwebtoken's `required_spec_claims`.
    iss: String,
    aud: String,
    sub: String,
    exp: u64,
    iat: u64,
    /// Never issued by us, but a token that carries one must honour it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// Why a presented access token was refused. Deliberately coarse: the client learns only that
/// the token is not valid.
#[derive(Debug, thiserror::Error)]
#[error("invalid access token: {0}")]
pub struct InvalidToken(pub &'static str);

/// Issues and verifies our access tokens.
pub struct AccessTokens {
    /// (kid, signing key, verification key); the first signs.
    keys: Vec<(String, EncodingKey, DecodingKey)>,
    issuer: String,
    audience: String,
    validation: Validation,
    clock: Arc<dyn Clock>,
}

impl AccessTokens {
    pub fn new(config: &IdentityConfig, clock: Arc<dyn Clock>) -> Self {
        let keys = config
            .jwt_signing_keys
            .iter()
            .map(|key| {
                let secret = key.secret.0.expose_secret();
                (
                    key.kid.clone(),
                    EncodingKey::from_secret(secret),
                    DecodingKey::from_secret(secret),
                )
            })
            .collect();
        // The algorithm is pinned: a token whose header names any other is refused, which stops
        // `alg: none` and RS/HS confusion.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Times are checked below against our clock (which tests move), not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self {
            keys,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            validation,
            clock,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now().timestamp().max(0) as u64
    }

    /// A signed access token for `user_id`, valid for [`ACCESS_TOKEN_SECONDS`].
    pub fn issue(&self, user_id: Uuid) -> anyhow::Result<String> {
        let (kid, key, _) = self
            .keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no signing key configured"))?;
        let now = self.now();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_string(),
            iat: now,
            exp: now + ACCESS_TOKEN_SECONDS,
            nbf: None,
        };
        Ok(encode(&header, &claims, key)?)
    }

    /// The user id of a valid token.
    pub fn verify(&self, token: &str) -> Result<Uuid, InvalidToken> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken("too long"));
        }
        let header = decode_header(token).map_err(|_| InvalidToken("malformed header"))?;
        let kid = header.kid.ok_or(InvalidToken("no kid"))?;
        let (_, _, key) = self
            .keys
            .iter()
            .find(|(known, _, _)| *known == kid)
            .ok_or(InvalidToken("unknown kid"))?;
        let data = decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| InvalidToken("rejected"))?;
        let now = self.now();
        if data.claims.exp + LEEWAY_SECONDS <= now {
            return Err(InvalidToken("expired"));
        }
        if data
            .claims
            .nbf
            .is_some_and(|nbf| nbf > now + LEEWAY_SECONDS)
        {
            return Err(InvalidToken("not yet valid"));
        }
        if data.claims.iat > now + LEEWAY_SECONDS {
            return Err(InvalidToken("issued in the future"));
        }
        Uuid::parse_str(&data.claims.sub).map_err(|_| InvalidToken("bad subject"))
    }
}

/// A fresh opaque refresh token (256 random bits, base64url) and the hash we store.
pub fn new_refresh_token() -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    Ok((token, hash))
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}
