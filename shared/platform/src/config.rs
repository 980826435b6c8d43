//! Typed configuration, read once per cold start: one struct per function, built from shared
//! sections, each reading only the variables that function uses. `template.yaml` gives each
//! function exactly those variables.
//!
//! | function | sections |
//! |---|---|
//! | `HttpApiFunction` | database, table, web, identity, surveys keys, cards bucket, quest time zone, chat, publishes synthesize + render + summarize_chat |
//! | `SynthesizeFunction` | database, table, its queue, answer keys, LLM, publishes render |
//! | `RenderCardFunction` | database, table, its queue, cards bucket, frontend URL |
//! | `SweeperFunction` | database, table, publishes and drains every queue |

use secrecy::SecretString;

use crate::{
    env::{self, named_keys, ConfigError, Env, NamedKey, SecretKey},
    outbox::{Queue, QueueUrls},
};

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The PostgreSQL source of truth.
#[derive(Debug, Clone, Default)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: libpq-style URL.
    pub url: SecretString,
    /// `DATABASE_CA_PEM` (PEM text) or `DATABASE_CA_FILE` (a path, e.g. a bundle in a Lambda
    /// layer: Lambda's environment is limited to 4 KB): the CA certificates that signed the
    /// database's certificate (for RDS, the region's bundle). When set, connections use TLS
    /// verified against them; add `?sslmode=require` to `DATABASE_URL` to refuse plaintext.
    /// Unset: no TLS (the local stack).
    pub ca_pem: Option<String>,
    /// `DB_POOL_SIZE`: connections per process. One Lambda instance serves one request at a
    /// time, so a small pool keeps RDS connection counts proportional to concurrency.
    pub pool_size: usize,
}

impl DatabaseConfig {
    pub fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            url: SecretString::from(env.required::<String>("DATABASE_URL")),
            ca_pem: ca_bundle(env),
            pool_size: env.optional("DB_POOL_SIZE", 2),
        }
    }
}

fn ca_bundle(env: &mut Env<Lookup>) -> Option<String> {
    if let Some(pem) = env.get("DATABASE_CA_PEM") {
        return Some(pem);
    }
    let path = env.get("DATABASE_CA_FILE")?;
    match std::fs::read_to_string(&path) {
        Ok(pem) => Some(pem),
        Err(error) => {
            env.problem("DATABASE_CA_FILE", format!("cannot be read ({error})"));
            None
        }
    }
}

/// `TABLE_NAME`: the single DynamoDB table (status read model, idempotency, markers, limits).
fn table_name(env: &mut Env<Lookup>) -> String {
    env.required("TABLE_NAME")
}

/// `FRONTEND_URL`: base of share links, without a trailing slash.
fn frontend_url(env: &mut Env<Lookup>) -> String {
    env.required_url("FRONTEND_URL")
        .trim_end_matches('/')
        .to_owned()
}

/// What only the HTTP side needs: CORS, body limits, links.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// `FRONTEND_URL`.
    pub frontend_url: String,
    /// `ALLOWED_ORIGINS`: comma-separated CORS origins; empty means no cross-origin access.
    pub allowed_origins: Vec<String>,
    /// `MAX_BODY_BYTES`: largest accepted request body.
    pub max_body_bytes: usize,
}

impl WebConfig {
    pub fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            frontend_url: frontend_url(env),
            ..Self::read_cors(env)
        }
    }

    /// CORS and the body limit only, for a function that builds no links (the chat stream).
    pub fn read_cors(env: &mut Env<Lookup>) -> Self {
        Self {
            frontend_url: String::new(),
            allowed_origins: env.list("ALLOWED_ORIGINS"),
            max_body_bytes: env.optional("MAX_BODY_BYTES", 64 * 1024),
        }
    }
}

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
    /// counters and duplicate markers (base64, at least 32 bytes).
    pub address_hash_key: SecretKey,
    /// `REFRESH_REUSE_GRACE_SECS` (default 10): how long a just-rotated refresh token may be
    /// presented again (two tabs refreshing at once) and rotate again instead of revoking its
    /// family.
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
            address_hash_key: env.required("ADDRESS_HASH_KEY"),
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
            jwt_signing_keys: env.required_with("JWT_SIGNING_KEYS", named_keys),
            jwt_issuer: env.optional("JWT_ISSUER", "https://api.remirai.app".to_owned()),
            jwt_audience: env.optional("JWT_AUDIENCE", "remirai-app".to_owned()),
            ..Self::default()
        }
    }
}

/// `ANSWER_KEYS`: `kid:base64key[,...]`, 32-byte AES-256-GCM keys sealing survey answers; the
/// first seals, all open.
fn answer_keys(env: &mut Env<Lookup>) -> Vec<NamedKey> {
    env.required_with("ANSWER_KEYS", named_keys)
}

/// `MESSAGE_KEYS`: `kid:base64key[,...]`, 32-byte AES-256-GCM keys sealing chat messages and
/// memory notes (never the answer keys); the first seals, all open.
fn message_keys(env: &mut Env<Lookup>) -> Vec<NamedKey> {
    env.required_with("MESSAGE_KEYS", named_keys)
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

impl LlmSettings {
    /// `OPENAI_API_KEY`, `OPENROUTER_API_KEY` or `LLM_BASE_URL` (+ `LLM_API_KEY`) select an
    /// OpenAI-compatible server; `LLM_MODELS` overrides the model list (tried in turn).
    pub fn read(env: &mut Env<Lookup>) -> Self {
        let openai = env.get("OPENAI_API_KEY");
        let openrouter = env.get("OPENROUTER_API_KEY");
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
        let (base_url, key, default_models) = match env.get("LLM_BASE_URL") {
            Some(_) => {
                let base = env.required_url("LLM_BASE_URL");
                // A provider's key goes only to that provider: with another server, only
                // `LLM_API_KEY` (the OpenAI key may be set for moderation alone).
                if default_base.is_some_and(|d| d == base.trim_end_matches('/')) {
                    (Some(base), key, default_models)
                } else {
                    (Some(base), None, &["gpt-4o-mini"][..])
                }
            }
            None => (default_base.map(str::to_owned), key, default_models),
        };
        let models = env.list("LLM_MODELS");
        Self {
            base_url,
            api_key: env.get("LLM_API_KEY").or(key).map(SecretString::from),
            models: if models.is_empty() {
                default_models.iter().map(|m| (*m).to_owned()).collect()
            } else {
                models
            },
            timeout: std::time::Duration::from_secs(env.optional("LLM_TIMEOUT_SECS", 25)),
            retry_base: std::time::Duration::from_millis(env.optional("LLM_RETRY_BASE_MS", 2000)),
        }
    }
}

/// `QUEST_TIME_ZONE`: the IANA zone whose midnight resets daily things (quests, check-ins, the
/// bond cap, the chat quota) and whose Monday midnight resets weekly ones. Default Asia/Seoul.
pub fn quest_time_zone(env: &mut Env<Lookup>) -> chrono_tz::Tz {
    match env.get("QUEST_TIME_ZONE") {
        None => domain::periods::DEFAULT_TIME_ZONE,
        Some(name) => name.trim().parse().unwrap_or_else(|_| {
            env.problem(
                "QUEST_TIME_ZONE",
                "is malformed (expected an IANA zone such as Asia/Seoul)",
            );
            domain::periods::DEFAULT_TIME_ZONE
        }),
    }
}

/// The remote moderation check of chat messages: OpenAI's `/moderations`, on when
/// `OPENAI_API_KEY` is set. It only adds to the rule-based check, which always runs.
#[derive(Debug, Clone)]
pub struct ModerationSettings {
    /// `MODERATION_BASE_URL` (tests point it at a local server); OpenAI's API by default.
    pub base_url: String,
    pub api_key: SecretString,
}

impl ModerationSettings {
    pub fn read(env: &mut Env<Lookup>) -> Option<Self> {
        let api_key = SecretString::from(env.get("OPENAI_API_KEY")?);
        Some(Self {
            base_url: env.optional_url("MODERATION_BASE_URL", "https://api.openai.com/v1"),
            api_key,
        })
    }
}

/// What chat needs wherever it is served (the HTTP function's JSON route, the chat stream
/// function).
#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub message_keys: Vec<NamedKey>,
    /// The chat model (the same `LLM_*` variables as synthesis; offline without them).
    pub llm: LlmSettings,
    pub moderation: Option<ModerationSettings>,
    /// The daily bond cap and message quota reset at midnight in this zone.
    pub quest_time_zone: chrono_tz::Tz,
    /// `CHAT_REPLY_BUDGET_MS` (3000): the whole reply must be ready within it, or the
    /// in-character fallback is stored instead.
    pub reply_budget: std::time::Duration,
}

impl ChatSettings {
    pub fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            message_keys: message_keys(env),
            llm: LlmSettings::read(env),
            moderation: ModerationSettings::read(env),
            quest_time_zone: quest_time_zone(env),
            reply_budget: std::time::Duration::from_millis(
                env.optional("CHAT_REPLY_BUDGET_MS", 3000),
            ),
        }
    }
}

/// The queue an SQS-triggered function consumes, and its dead-letter queue.
#[derive(Debug, Clone, Default)]
pub struct WorkerQueue {
    pub url: String,
    pub dead_letter_url: String,
}

impl WorkerQueue {
    pub fn read(env: &mut Env<Lookup>, queue: Queue) -> Self {
        Self {
            url: env.required_url(queue.url_variable()),
            dead_letter_url: env.required_url(queue.dead_letter_variable()),
        }
    }
}

/// `HttpApiFunction`: every command and query route.
#[derive(Debug, Clone)]
pub struct HttpApiConfig {
    pub database: DatabaseConfig,
    pub table_name: String,
    /// `CARDS_BUCKET`: cards are read (presigned) from it.
    pub cards_bucket: String,
    /// The saga queues commands publish to.
    pub queues: QueueUrls,
    pub web: WebConfig,
    pub identity: IdentityConfig,
    pub answer_keys: Vec<NamedKey>,
    /// `QUEST_TIME_ZONE`: where quest days and weeks begin.
    pub quest_time_zone: chrono_tz::Tz,
    /// The chat routes answer JSON here (the chat stream function streams them).
    pub chat: ChatSettings,
}

/// `SynthesizeFunction`: saga step 1.
#[derive(Debug, Clone)]
pub struct SynthesizeConfig {
    pub database: DatabaseConfig,
    pub table_name: String,
    pub queue: WorkerQueue,
    /// The render queue it hands over to.
    pub publishes: QueueUrls,
    pub answer_keys: Vec<NamedKey>,
    pub llm: LlmSettings,
}

/// `RenderCardFunction`: saga step 2.
#[derive(Debug, Clone)]
pub struct RenderConfig {
    pub database: DatabaseConfig,
    pub table_name: String,
    pub queue: WorkerQueue,
    /// `CARDS_BUCKET`: the private bucket cards are written to.
    pub cards_bucket: String,
    /// `FRONTEND_URL`: the QR code links to the persona's page there.
    pub frontend_url: String,
}

/// `SweeperFunction`: republishes the outbox, re-drives stuck jobs, drains dead letters.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    pub database: DatabaseConfig,
    pub table_name: String,
    /// Every queue: any outbox row may need republishing.
    pub queues: QueueUrls,
    /// The saga's dead-letter queues only: their messages become failed personas. Other
    /// queues' dead letters stay in their queue for ops.
    pub dead_letter_queues: QueueUrls,
}

/// `ChatFunction`: the chat routes behind a Function URL that streams (Server-Sent Events).
#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub database: DatabaseConfig,
    /// Rate-limit counters.
    pub table_name: String,
    /// CORS origins and the body limit.
    pub web: WebConfig,
    /// Verifying access tokens only.
    pub identity: IdentityConfig,
    /// The summarize_chat queue memory jobs go to.
    pub publishes: QueueUrls,
    pub chat: ChatSettings,
}

/// `ChatMemoryFunction`: folds older chat turns into the owner's memory note.
#[derive(Debug, Clone)]
pub struct ChatMemoryConfig {
    pub database: DatabaseConfig,
    pub queue: WorkerQueue,
    pub message_keys: Vec<NamedKey>,
    /// Summaries by the LLM when one is configured; extractive and deterministic otherwise.
    pub llm: LlmSettings,
}

/// Reading a function's configuration from the process environment or any lookup (the local
/// stack and tests supply values without touching the process environment).
pub trait FunctionConfig: Sized {
    fn read(env: &mut Env<Lookup>) -> Self;

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        env::read(lookup, Self::read)
    }

    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The Lambda path: the process environment overlaid with the secrets its `SECRET_ARNS`
    /// names, fetched from Secrets Manager in one round trip.
    fn load(
        aws: &crate::aws::AwsClients,
    ) -> impl std::future::Future<Output = anyhow::Result<Self>> + Send {
        async move {
            let arns = env::read(
                |name| std::env::var(name).ok(),
                |env| env.list(crate::secrets::ARNS_VARIABLE),
            )?;
            let secrets = crate::secrets::fetch(&aws.secrets, &arns).await?;
            Ok(Self::from_lookup(|name| {
                secrets
                    .get(name)
                    .cloned()
                    .or_else(|| std::env::var(name).ok())
            })?)
        }
    }
}

impl FunctionConfig for HttpApiConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            cards_bucket: env.required("CARDS_BUCKET"),
            queues: QueueUrls::read(
                env,
                &[Queue::Synthesize, Queue::Render, Queue::SummarizeChat],
            ),
            web: WebConfig::read(env),
            identity: IdentityConfig::read(env),
            answer_keys: answer_keys(env),
            quest_time_zone: quest_time_zone(env),
            chat: ChatSettings::read(env),
        }
    }
}

impl FunctionConfig for SynthesizeConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            queue: WorkerQueue::read(env, Queue::Synthesize),
            publishes: QueueUrls::read(env, &[Queue::Render]),
            answer_keys: answer_keys(env),
            llm: LlmSettings::read(env),
        }
    }
}

impl FunctionConfig for RenderConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            queue: WorkerQueue::read(env, Queue::Render),
            cards_bucket: env.required("CARDS_BUCKET"),
            frontend_url: frontend_url(env),
        }
    }
}

impl FunctionConfig for SweeperConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            queues: QueueUrls::read(env, &Queue::ALL),
            dead_letter_queues: QueueUrls::read_dead_letters(env, &Queue::SAGA),
        }
    }
}

impl FunctionConfig for ChatConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            web: WebConfig::read_cors(env),
            identity: IdentityConfig::read_tokens(env),
            publishes: QueueUrls::read(env, &[Queue::SummarizeChat]),
            chat: ChatSettings::read(env),
        }
    }
}

impl FunctionConfig for ChatMemoryConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            queue: WorkerQueue::read(env, Queue::SummarizeChat),
            message_keys: message_keys(env),
            llm: LlmSettings::read(env),
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
            ("MESSAGE_KEYS", "m1:BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="),
            ("SUMMARIZE_CHAT_QUEUE_URL", "http://localhost/q/c"),
        ])
    }

    fn lookup<'a>(env: &'a HashMap<&str, &str>) -> impl Fn(&str) -> Option<String> + 'a {
        |k| env.get(k).map(|v| v.to_string())
    }

    #[test]
    fn a_complete_environment_reads_with_defaults() {
        let env = complete();
        let config = HttpApiConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(config.web.frontend_url, "https://remirai.app");
        assert_eq!(
            config.web.allowed_origins,
            ["https://remirai.app", "http://localhost:5173"]
        );
        assert_eq!(config.database.pool_size, 2);
        let kids: Vec<_> = config
            .identity
            .jwt_signing_keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, ["k2", "k1"]);
        assert_eq!(config.web.max_body_bytes, 65536);
        assert_eq!(
            config.queues.get(Queue::Render),
            Some("http://localhost/q/r")
        );
    }

    #[test]
    fn a_providers_key_goes_only_to_that_provider() {
        let llm = |extra: &[(&'static str, &'static str)]| {
            let mut env = complete();
            env.extend(extra.iter().copied());
            let config = HttpApiConfig::from_lookup(lookup(&env)).unwrap();
            let key = config
                .chat
                .llm
                .api_key
                .map(|k| secrecy::ExposeSecret::expose_secret(&k).to_owned());
            (config.chat.llm.base_url, key, config.chat.llm.models)
        };
        let (base, key, models) = llm(&[("OPENAI_API_KEY", "sk-openai")]);
        assert_eq!(base.as_deref(), Some("https://api.openai.com/v1"));
        assert_eq!(key.as_deref(), Some("sk-openai"));
        assert_eq!(models, ["gpt-4o-mini", "gpt-4.1-mini"]);

        // The OpenAI key set for moderation alone never goes to another server.
        let (base, key, models) = llm(&[
            ("OPENAI_API_KEY", "sk-openai"),
            ("LLM_BASE_URL", "https://llm.internal/v1"),
        ]);
        assert_eq!(base.as_deref(), Some("https://llm.internal/v1"));
        assert_eq!(key, None);
        assert_eq!(models, ["gpt-4o-mini"]);
        let (_, key, _) = llm(&[
            ("OPENAI_API_KEY", "sk-openai"),
            ("LLM_BASE_URL", "https://llm.internal/v1"),
            ("LLM_API_KEY", "own-key"),
        ]);
        assert_eq!(key.as_deref(), Some("own-key"));
        let (_, key, _) = llm(&[
            ("OPENROUTER_API_KEY", "sk-or"),
            ("LLM_BASE_URL", "https://openrouter.ai/api/v1/"),
        ]);
        assert_eq!(key.as_deref(), Some("sk-or"), "the provider's own URL");
    }

    #[test]
    fn the_error_names_every_missing_and_malformed_variable() {
        let mut env = complete();
        env.remove("TABLE_NAME");
        env.remove("CARDS_BUCKET");
        env.insert("DB_POOL_SIZE", "many");
        env.insert("FRONTEND_URL", "remirai.app");
        env.insert("JWT_SIGNING_KEYS", "k1:c2hvcnQ=");
        let error = HttpApiConfig::from_lookup(lookup(&env)).unwrap_err();
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
    fn workers_read_only_what_they_use() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("DATABASE_URL", "postgres://u:p@localhost/db"),
            ("TABLE_NAME", "table"),
            ("CARDS_BUCKET", "cards"),
            ("RENDER_QUEUE_URL", "http://localhost/q/r"),
            ("RENDER_DLQ_URL", "http://localhost/q/rd"),
            ("FRONTEND_URL", "https://remirai.app"),
        ]);
        let render = RenderConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(render.queue.dead_letter_url, "http://localhost/q/rd");
        // The synthesize worker needs its own queue and the answer keys, never Google or JWT.
        let error = SynthesizeConfig::from_lookup(lookup(&env)).unwrap_err();
        let names: Vec<_> = error.problems.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["ANSWER_KEYS", "SYNTHESIZE_DLQ_URL", "SYNTHESIZE_QUEUE_URL"]
        );
    }

    #[test]
    fn the_chat_functions_never_need_google_the_address_key_or_the_answer_keys() {
        let env: HashMap<&str, &str> = HashMap::from([
            ("DATABASE_URL", "postgres://u:p@localhost/db"),
            ("TABLE_NAME", "table"),
            ("SUMMARIZE_CHAT_QUEUE_URL", "http://localhost/q/c"),
            ("SUMMARIZE_CHAT_DLQ_URL", "http://localhost/q/cd"),
            (
                "JWT_SIGNING_KEYS",
                "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            ),
            (
                "MESSAGE_KEYS",
                "m1:BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=",
            ),
        ]);
        let chat = ChatConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(chat.chat.reply_budget, std::time::Duration::from_secs(3));
        assert_eq!(chat.chat.quest_time_zone, chrono_tz::Asia::Seoul);
        assert!(
            chat.chat.moderation.is_none(),
            "no OpenAI key, no remote moderation"
        );
        assert_eq!(chat.identity.jwt_signing_keys.len(), 1);
        let memory = ChatMemoryConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(memory.queue.dead_letter_url, "http://localhost/q/cd");
    }

    #[test]
    fn the_database_ca_comes_from_text_or_a_file_and_an_unreadable_file_is_named() {
        let mut env = complete();
        env.insert("DATABASE_CA_FILE", "/nonexistent/bundle.pem");
        let error = HttpApiConfig::from_lookup(lookup(&env)).unwrap_err();
        assert!(error.problems.contains_key("DATABASE_CA_FILE"));

        env.insert("DATABASE_CA_PEM", "-----BEGIN CERTIFICATE-----");
        let config = HttpApiConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(
            config.database.ca_pem.as_deref(),
            Some("-----BEGIN CERTIFICATE-----")
        );
    }

    #[test]
    fn the_quest_time_zone_defaults_to_seoul_and_a_bad_zone_is_named() {
        let mut env = complete();
        let config = HttpApiConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(config.quest_time_zone, chrono_tz::Asia::Seoul);

        env.insert("QUEST_TIME_ZONE", "Europe/Paris");
        let config = HttpApiConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(config.quest_time_zone, chrono_tz::Europe::Paris);

        env.insert("QUEST_TIME_ZONE", "Mars/Olympus");
        let error = HttpApiConfig::from_lookup(lookup(&env)).unwrap_err();
        assert!(error.problems.contains_key("QUEST_TIME_ZONE"));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let env = complete();
        let config = HttpApiConfig::from_lookup(lookup(&env)).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("u:p@"));
        assert!(!debug.contains("AgICAgIC"));
    }
}
