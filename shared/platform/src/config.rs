//! Typed configuration, read once per cold start.
//!
//! Every variable is read through [`Env`], which collects *all* problems before failing, so an
//! operator fixing a deployment sees every missing or malformed variable in one error, not one
//! per redeploy.

use std::{collections::BTreeMap, fmt, str::FromStr};

use base64::Engine;
use secrecy::{SecretSlice, SecretString};

/// Everything the HTTP function and the workers need to know about their environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: libpq-style URL of the PostgreSQL source of truth.
    pub database_url: SecretString,
    /// `DATABASE_CA_PEM` (PEM text) or `DATABASE_CA_FILE` (a path, e.g. a bundle in a Lambda
    /// layer: Lambda's environment is limited to 4 KB): the CA certificates that signed the
    /// database's certificate (for RDS, the region's bundle). When set, connections use TLS
    /// verified against them; add `?sslmode=require` to `DATABASE_URL` to refuse plaintext.
    /// Unset: no TLS (the local stack).
    pub database_ca_pem: Option<String>,
    /// `DB_POOL_SIZE`: connections per process. One Lambda instance serves one request at a
    /// time, so a small pool keeps RDS connection counts proportional to concurrency.
    pub db_pool_size: usize,
    /// `TABLE_NAME`: the single DynamoDB table (status read model, idempotency, markers, limits).
    pub table_name: String,
    /// `CARDS_BUCKET`: the private bucket holding rendered persona cards.
    pub cards_bucket: String,
    /// `SYNTHESIZE_QUEUE_URL`: saga step 1.
    pub synthesize_queue_url: String,
    /// `RENDER_QUEUE_URL`: saga step 2.
    pub render_queue_url: String,
    /// `SYNTHESIZE_DLQ_URL` / `RENDER_DLQ_URL`: where workers park messages that can never
    /// succeed, and where the sweeper finds them.
    pub synthesize_dlq_url: String,
    pub render_dlq_url: String,
    /// Which LLM writes personas; offline unless a key or `LLM_BASE_URL` is set.
    pub llm: LlmSettings,
    /// `FRONTEND_URL`: base of share links, without a trailing slash.
    pub frontend_url: String,
    /// `ALLOWED_ORIGINS`: comma-separated CORS origins; empty means no cross-origin access.
    pub allowed_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: largest accepted request body.
    pub max_body_bytes: usize,
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
    /// counters (base64, at least 32 bytes).
    pub address_hash_key: SecretKey,
    /// `ANSWER_KEYS`: `kid:base64key[,...]`, 32-byte AES-256-GCM keys sealing survey answers;
    /// the first seals, all open.
    pub answer_keys: Vec<NamedKey>,
}

/// The LLM provider settings. `base_url: None` selects the offline rule-based writer.
#[derive(Debug, Clone, Default)]
pub struct LlmSettings {
    pub base_url: Option<String>,
    pub api_key: Option<SecretString>,
    pub models: Vec<String>,
    pub timeout: std::time::Duration,
    /// First delay of the exponential, jittered retry of transient LLM failures.
    pub retry_base: std::time::Duration,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// `OPENAI_API_KEY`, `OPENROUTER_API_KEY` or `LLM_BASE_URL` (+ `LLM_API_KEY`) select an
    /// OpenAI-compatible server; `LLM_MODELS` overrides the model list (tried in turn).
    fn llm(&mut self) -> LlmSettings {
        let openai = self.get("OPENAI_API_KEY");
        let openrouter = self.get("OPENROUTER_API_KEY");
        let (default_base, default_models, key): (Option<&str>, &[&str], Option<String>) =
            match (openai, openrouter) {
                (Some(key), _) => (
                    Some("https://api.openai.com/v1"),
                    &["gpt-4o-mini", "gpt-4.1-mini"],
                    Some(key),
                ),
                (None, Some(key)) => (
                    Some("https://openrouter.ai/api/v1"),
                    &["openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"],
                    Some(key),
                ),
                (None, None) => (None, &["gpt-4o-mini"], None),
            };
        let base_url = match self.get("LLM_BASE_URL") {
            Some(_) => Some(self.required_url("LLM_BASE_URL")),
            None => default_base.map(str::to_owned),
        };
        let models = self.list("LLM_MODELS");
        LlmSettings {
            base_url,
            api_key: self.get("LLM_API_KEY").or(key).map(SecretString::from),
            models: if models.is_empty() {
                default_models.iter().map(|m| (*m).to_owned()).collect()
            } else {
                models
            },
            timeout: std::time::Duration::from_secs(self.optional("LLM_TIMEOUT_SECS", 25)),
            retry_base: std::time::Duration::from_millis(self.optional("LLM_RETRY_BASE_MS", 2000)),
        }
    }
}

/// A symmetric key with an id, so keys can rotate: the first of a list is used for new data,
/// all of them for existing data.
#[derive(Debug, Clone)]
pub struct NamedKey {
    pub kid: String,
    pub secret: SecretKey,
}

/// Secret key material (at least 32 bytes), never printed.
#[derive(Debug, Clone)]
pub struct SecretKey(pub SecretSlice<u8>);

impl Default for SecretKey {
    fn default() -> Self {
        Self(SecretSlice::from(Vec::new()))
    }
}

impl FromStr for SecretKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| "expected base64".to_owned())?;
        if bytes.len() < 32 {
            return Err(format!("expected at least 32 bytes, got {}", bytes.len()));
        }
        Ok(Self(SecretSlice::from(bytes)))
    }
}

/// Parses `kid:base64key[,kid:base64key...]`.
fn named_keys(text: &str) -> Result<Vec<NamedKey>, String> {
    text.split(',')
        .map(|entry| {
            let (kid, key) = entry
                .trim()
                .split_once(':')
                .ok_or("expected kid:base64key entries")?;
            if kid.is_empty() || kid.len() > 64 {
                return Err("a kid must have 1 to 64 characters".to_owned());
            }
            Ok(NamedKey {
                kid: kid.to_owned(),
                secret: key.parse()?,
            })
        })
        .collect()
}

/// Every problem found while reading the environment, by variable name.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: BTreeMap<String, String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: ")?;
        let mut first = true;
        for (name, problem) in &self.problems {
            if !first {
                write!(f, "; ")?;
            }
            first = false;
            write!(f, "{name} {problem}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so the local stack and tests can supply values
    /// without touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Env::new(lookup);
        let config = Config {
            database_url: SecretString::from(env.required::<String>("DATABASE_URL")),
            database_ca_pem: env.ca_bundle(),
            db_pool_size: env.optional("DB_POOL_SIZE", 2),
            table_name: env.required("TABLE_NAME"),
            cards_bucket: env.required("CARDS_BUCKET"),
            synthesize_queue_url: env.required_url("SYNTHESIZE_QUEUE_URL"),
            render_queue_url: env.required_url("RENDER_QUEUE_URL"),
            synthesize_dlq_url: env.required_url("SYNTHESIZE_DLQ_URL"),
            render_dlq_url: env.required_url("RENDER_DLQ_URL"),
            llm: env.llm(),
            frontend_url: env
                .required_url("FRONTEND_URL")
                .trim_end_matches('/')
                .to_owned(),
            allowed_origins: env.list("ALLOWED_ORIGINS"),
            max_body_bytes: env.optional("MAX_BODY_BYTES", 64 * 1024),
            google_client_id: env.required("GOOGLE_CLIENT_ID"),
            google_jwks_url: env.optional_url(
                "GOOGLE_JWKS_URL",
                "https://www.googleapis.com/oauth2/v3/certs",
            ),
            jwt_signing_keys: env.required_with("JWT_SIGNING_KEYS", named_keys),
            jwt_issuer: env.optional("JWT_ISSUER", "https://api.remirai.app".to_owned()),
            jwt_audience: env.optional("JWT_AUDIENCE", "remirai-app".to_owned()),
            address_hash_key: env.required("ADDRESS_HASH_KEY"),
            answer_keys: env.required_with("ANSWER_KEYS", named_keys),
        };
        env.finish().map(|()| config)
    }
}

/// Reads variables and remembers what was wrong with them.
pub struct Env<F> {
    lookup: F,
    problems: BTreeMap<String, String>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Self {
            lookup,
            problems: BTreeMap::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    fn parse<T: FromStr + Default>(&mut self, name: &str, raw: &str) -> T
    where
        T::Err: fmt::Display,
    {
        raw.trim().parse().unwrap_or_else(|error| {
            self.problems
                .insert(name.to_owned(), format!("is malformed ({error})"));
            T::default()
        })
    }

    /// A variable that must be present and parse as `T`.
    pub fn required<T: FromStr + Default>(&mut self, name: &str) -> T
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            Some(raw) => self.parse(name, &raw),
            None => {
                self.problems.insert(name.to_owned(), "is missing".into());
                T::default()
            }
        }
    }

    /// A variable that may be absent, in which case `default` applies.
    pub fn optional<T: FromStr + Default>(&mut self, name: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            Some(raw) => self.parse(name, &raw),
            None => default,
        }
    }

    /// A required absolute `http(s)://` URL.
    pub fn required_url(&mut self, name: &str) -> String {
        let value: String = self.required(name);
        let is_url = value.starts_with("https://") || value.starts_with("http://");
        if !value.is_empty() && !is_url {
            self.problems.insert(
                name.to_owned(),
                "is malformed (expected an http(s) URL)".into(),
            );
        }
        value
    }

    fn ca_bundle(&mut self) -> Option<String> {
        if let Some(pem) = self.get("DATABASE_CA_PEM") {
            return Some(pem);
        }
        let path = self.get("DATABASE_CA_FILE")?;
        match std::fs::read_to_string(&path) {
            Ok(pem) => Some(pem),
            Err(error) => {
                self.problems.insert(
                    "DATABASE_CA_FILE".into(),
                    format!("cannot be read ({error})"),
                );
                None
            }
        }
    }

    /// An optional `http(s)://` URL with a default.
    pub fn optional_url(&mut self, name: &str, default: &str) -> String {
        match self.get(name) {
            Some(_) => self.required_url(name),
            None => default.to_owned(),
        }
    }

    /// A required variable parsed by `parse`.
    pub fn required_with<T: Default>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        let Some(raw) = self.get(name) else {
            self.problems.insert(name.to_owned(), "is missing".into());
            return T::default();
        };
        parse(&raw).unwrap_or_else(|problem| {
            self.problems
                .insert(name.to_owned(), format!("is malformed ({problem})"));
            T::default()
        })
    }

    /// A comma-separated list; absent means empty.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `Ok` when every variable read so far was fine.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn complete() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("DATABASE_URL", "postgres://u:p@localhost/db"),
            ("TABLE_NAME", "table"),
            ("CARDS_BUCKET", "cards"),
            ("SYNTHESIZE_QUEUE_URL", "http://localhost/q/s"),
            ("RENDER_QUEUE_URL", "http://localhost/q/r"),
            ("SYNTHESIZE_DLQ_URL", "http://localhost/q/sd"),
            ("RENDER_DLQ_URL", "http://localhost/q/rd"),
            ("FRONTEND_URL", "https://remirai.app/"),
            (
                "ALLOWED_ORIGINS",
                "https://remirai.app, http://localhost:5173",
            ),
            ("GOOGLE_CLIENT_ID", "client.apps.googleusercontent.com"),
            (
                "JWT_SIGNING_KEYS",
                "k2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            ),
            ("ADDRESS_HASH_KEY", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="),
            ("ANSWER_KEYS", "a1:AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="),
        ])
    }

    #[test]
    fn a_complete_environment_reads_with_defaults() {
        let env = complete();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(config.frontend_url, "https://remirai.app");
        assert_eq!(
            config.allowed_origins,
            ["https://remirai.app", "http://localhost:5173"]
        );
        assert_eq!(config.db_pool_size, 2);
        let kids: Vec<_> = config
            .jwt_signing_keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, ["k2", "k1"]);
        assert_eq!(config.max_body_bytes, 65536);
    }

    #[test]
    fn the_error_names_every_missing_and_malformed_variable() {
        let mut env = complete();
        env.remove("TABLE_NAME");
        env.remove("CARDS_BUCKET");
        env.insert("DB_POOL_SIZE", "many");
        env.insert("FRONTEND_URL", "remirai.app");
        env.insert("JWT_SIGNING_KEYS", "k1:c2hvcnQ=");
        let error = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        let names: Vec<_> = error.problems.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "CARDS_BUCKET",
                "DB_POOL_SIZE",
                "FRONTEND_URL",
                "JWT_SIGNING_KEYS",
                "TABLE_NAME"
            ]
        );
        let message = error.to_string();
        assert!(message.contains("TABLE_NAME is missing"), "{message}");
        assert!(message.contains("DB_POOL_SIZE is malformed"), "{message}");
    }

    #[test]
    fn the_database_ca_comes_from_text_or_a_file_and_an_unreadable_file_is_named() {
        let mut env = complete();
        env.insert("DATABASE_CA_FILE", "/nonexistent/bundle.pem");
        let error = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
        assert!(error.problems.contains_key("DATABASE_CA_FILE"));

        env.insert("DATABASE_CA_PEM", "-----BEGIN CERTIFICATE-----");
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(
            config.database_ca_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----")
        );
    }

    #[test]
    fn the_database_url_never_shows_in_debug_output() {
        let env = complete();
        let config = Config::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("u:p@"));
        assert!(!debug.contains("AgICAgIC"));
    }
}
