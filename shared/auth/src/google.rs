//! Verifies Google ID tokens against Google's published keys (JWKS).
//!
//! Keys are cached for as long as the JWKS response's `Cache-Control: max-age` allows. A token
//! signed with a key id we do not know triggers one refetch (single flight: concurrent
//! verifications wait for the same fetch), at most once per [`UNKNOWN_KID_REFETCH_INTERVAL`],
//! so a flood of forged key ids cannot turn us into a load generator against Google.
//! <https://developers.google.com/identity/gsi/web/guides/verify-google-id-token>

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use platform::clock::Clock;
use serde::Deserialize;

/// The two spellings of Google's issuer.
const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
const MAX_TOKEN_BYTES: usize = 4096;
const LEEWAY_SECONDS: u64 = 60;
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Used when the JWKS response has no usable `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The claims we use from a verified Google ID token.
#[derive(Debug, Clone, Deserialize)]
pub struct GoogleIdentity {
    pub sub: String,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    /// Required: jsonwebtoken's `required_spec_claims` does not cover `iat`, so the type does.
    iat: u64,
    exp: u64,
    /// Google does not set `nbf`, but a token that carries one (of any type) must honour it.
    #[serde(default)]
    nbf: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    /// The token is not a valid Google ID token for us (401).
    #[error("invalid Google ID token: {0}")]
    Invalid(&'static str),
    /// Google's keys could not be fetched and none are cached (503).
    #[error("Google's signing keys are unavailable: {0:#}")]
    KeysUnavailable(anyhow::Error),
}

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Instant,
    max_age: Duration,
}

pub struct GoogleVerifier {
    jwks_url: String,
    /// Built on the first key fetch: building a TLS client loads the system's root
    /// certificates (milliseconds), which every cold start would pay for a route few use. A
    /// failed build fails only that fetch (503) and is tried again on the next one.
    http: std::sync::OnceLock<reqwest::Client>,
    build_http: Box<dyn Fn() -> reqwest::Result<reqwest::Client> + Send + Sync>,
    validation: Validation,
    cache: RwLock<Option<KeyCache>>,
    /// Held while fetching (the single flight).
    fetching: tokio::sync::Mutex<FetchHistory>,
    clock: Arc<dyn Clock>,
}

impl GoogleVerifier {
    pub fn new(
        client_id: &str,
        jwks_url: &str,
        build_http: impl Fn() -> reqwest::Result<reqwest::Client> + Send + Sync + 'static,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[client_id]);
        validation.set_issuer(&ISSUERS);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // `exp`, `nbf` and `iat` are checked against our clock in `verify`.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Self {
            jwks_url: jwks_url.to_owned(),
            http: std::sync::OnceLock::new(),
            build_http: Box::new(build_http),
            validation,
            cache: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(FetchHistory::default()),
            clock,
        }
    }

    pub async fn verify(&self, id_token: &str) -> Result<GoogleIdentity, GoogleError> {
        if id_token.len() > MAX_TOKEN_BYTES {
            return Err(GoogleError::Invalid("too long"));
        }
        let header = decode_header(id_token).map_err(|_| GoogleError::Invalid("malformed"))?;
        if header.alg != Algorithm::RS256 {
            return Err(GoogleError::Invalid("algorithm"));
        }
        let kid = header.kid.ok_or(GoogleError::Invalid("no kid"))?;
        let key = self.key(&kid).await?;
        let identity = decode::<GoogleIdentity>(id_token, &key, &self.validation)
            .map_err(|_| GoogleError::Invalid("rejected"))?
            .claims;
        let now = self.clock.now().timestamp().max(0) as u64;
        if identity.exp + LEEWAY_SECONDS <= now {
            return Err(GoogleError::Invalid("expired"));
        }
        if identity.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
            return Err(GoogleError::Invalid("not yet valid"));
        }
        if identity.iat > now + LEEWAY_SECONDS {
            return Err(GoogleError::Invalid("issued in the future"));
        }
        if identity.email_verified != Some(true) {
            return Err(GoogleError::Invalid("email not verified"));
        }
        Ok(identity)
    }

    /// The key `kid`, from the cache or after (at most) one fetch.
    async fn key(&self, kid: &str) -> Result<DecodingKey, GoogleError> {
        if let Lookup::Fresh(key) = self.lookup(kid) {
            return Ok(key);
        }
        let mut history = self.fetching.lock().await;
        // Someone else may have fetched while we waited.
        let stale = match self.lookup(kid) {
            Lookup::Fresh(key) => return Ok(key),
            Lookup::UnknownInFreshCache => {
                if history
                    .unknown_kid
                    .is_some_and(|at| at.elapsed() < UNKNOWN_KID_REFETCH_INTERVAL)
                {
                    return Err(GoogleError::Invalid("unknown kid"));
                }
                history.unknown_kid = Some(Instant::now());
                None
            }
            Lookup::Stale(key) => Some(key),
            Lookup::Empty => None,
        };
        // Google is down: requests queued behind the failed fetch fail fast instead of each
        // waiting out another timeout.
        if stale.is_none()
            && history
                .failure
                .is_some_and(|at| at.elapsed() < FAILURE_BACKOFF)
        {
            return Err(GoogleError::KeysUnavailable(anyhow::anyhow!(
                "recent JWKS fetch failed"
            )));
        }
        match self.fetch().await {
            Ok(cache) => {
                history.failure = None;
                let key = cache.keys.get(kid).cloned();
                *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some(cache);
                key.ok_or(GoogleError::Invalid("unknown kid"))
            }
            Err(error) => {
                history.failure = Some(Instant::now());
                match stale {
                    // Availability over freshness: a key Google published recently is still good.
                    Some(key) => {
                        tracing::warn!(
                            error = platform::telemetry::describe(&error),
                            "JWKS refresh failed; using cached keys"
                        );
                        Ok(key)
                    }
                    None => Err(GoogleError::KeysUnavailable(error)),
                }
            }
        }
    }

    fn lookup(&self, kid: &str) -> Lookup {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let Some(cache) = cache.as_ref() else {
            return Lookup::Empty;
        };
        let fresh = cache.fetched_at.elapsed() < cache.max_age;
        match (cache.keys.get(kid), fresh) {
            (Some(key), true) => Lookup::Fresh(key.clone()),
            (Some(key), false) => Lookup::Stale(key.clone()),
            (None, true) => Lookup::UnknownInFreshCache,
            (None, false) => Lookup::Empty,
        }
    }

    async fn fetch(&self) -> anyhow::Result<KeyCache> {
        let http = match self.http.get() {
            Some(http) => http,
            None => {
                let built = (self.build_http)()?;
                self.http.get_or_init(|| built)
            }
        };
        let response = http
            .get(&self.jwks_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_MAX_AGE)
            .min(LONGEST_MAX_AGE);
        let set: JwkSet = response.json().await?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, key))
            })
            .collect();
        tracing::info!(
            max_age_seconds = max_age.as_secs(),
            "fetched Google's signing keys"
        );
        Ok(KeyCache {
            keys,
            fetched_at: Instant::now(),
            max_age,
        })
    }
}

#[derive(Default)]
struct FetchHistory {
    /// When an unknown `kid` last caused a fetch.
    unknown_kid: Option<Instant>,
    /// When a fetch last failed.
    failure: Option<Instant>,
}

/// How long a failed fetch is not retried (requests answer 503 meanwhile).
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

enum Lookup {
    Fresh(DecodingKey),
    Stale(DecodingKey),
    UnknownInFreshCache,
    Empty,
}

/// `max-age` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| value.trim().parse().ok().map(Duration::from_secs))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=19845, must-revalidate, no-transform"),
            Some(Duration::from_secs(19845))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
