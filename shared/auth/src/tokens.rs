//! Our access tokens (JWT, HS256 pinned, 1 h, `kid` for rotation) and opaque refresh tokens.

use std::sync::Arc;

use aws_lc_rs::{digest, hmac, rand::SecureRandom};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use platform::clock::Clock;

use crate::config::IdentityConfig;
use platform::env::SecretKey;
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

/// Domain-separation label of [`RefreshSuccessors`]: the key is shared with the address hash
/// (`ADDRESS_HASH_KEY`), whose inputs are network addresses and never start with this label
/// (nor contain its NUL byte), so neither use can produce the other's outputs.
const SUCCESSOR_LABEL: &[u8] = b"remirai/refresh-token-successor/v1\0";

/// Derives the successor of a refresh token: `base64url(HMAC-SHA256(key, label ‖ presented))`.
///
/// Refresh tokens are stored only as SHA-256 hashes, so a successor issued once cannot be read
/// back; deriving it from the presented token instead lets a repeat within the reuse grace
/// recompute the very same successor and find its stored hash, so the repeat gets the same token
/// (an idempotent replay) rather than a second live branch of the family (see
/// [`crate::sessions::refresh`]).
///
/// The successor is as unpredictable as a random token to anyone without the key: the presented
/// token carries 256 random bits (the first of a family is random, every later one is a keyed
/// hash of a unique predecessor), and HMAC-SHA256 under a secret key is a pseudorandom function.
/// Whoever holds both the key and one token could compute the rest of its chain, which is why
/// the key must be a server secret (at least 32 bytes) and never a constant.
pub struct RefreshSuccessors {
    /// `None` when the configured key is too short: deriving then fails rather than producing
    /// successors anyone could compute.
    key: Option<hmac::Key>,
}

impl std::fmt::Debug for RefreshSuccessors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshSuccessors")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl RefreshSuccessors {
    /// Successors keyed by `key` (the `ADDRESS_HASH_KEY` of [`IdentityConfig`]).
    pub fn new(key: &SecretKey) -> Self {
        let bytes = key.0.expose_secret();
        Self {
            key: (bytes.len() >= 32).then(|| hmac::Key::new(hmac::HMAC_SHA256, bytes)),
        }
    }

    /// The successor of `presented` and the hash we store of it.
    pub fn successor(&self, presented: &str) -> anyhow::Result<(String, Vec<u8>)> {
        let key = self.key.as_ref().ok_or_else(|| {
            anyhow::anyhow!("no refresh successor key (ADDRESS_HASH_KEY) configured")
        })?;
        let mut context = hmac::Context::with_key(key);
        context.update(SUCCESSOR_LABEL);
        context.update(presented.as_bytes());
        let token = URL_SAFE_NO_PAD.encode(context.sign().as_ref());
        let hash = hash_refresh_token(&token);
        Ok((token, hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey(secrecy::SecretSlice::from(vec![byte; 32]))
    }

    #[test]
    fn a_successor_is_deterministic_per_token_and_key() {
        let successors = RefreshSuccessors::new(&key(1));
        let (token, hash) = successors.successor("presented").unwrap();
        assert_eq!(successors.successor("presented").unwrap().0, token);
        assert_eq!(hash, hash_refresh_token(&token));
        assert_eq!(token.len(), 43, "the same form as a random token");
        assert_ne!(successors.successor("another").unwrap().0, token);
        assert_ne!(
            RefreshSuccessors::new(&key(2))
                .successor("presented")
                .unwrap()
                .0,
            token
        );
    }

    #[test]
    fn without_a_key_no_successor_is_derived() {
        assert!(RefreshSuccessors::new(&SecretKey::default())
            .successor("presented")
            .is_err());
    }
}
