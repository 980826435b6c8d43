//! What the HTTP API function reads from the environment.

use platform::{
    config::{cards_bucket, table_name, FunctionConfig, WebConfig},
    db::DatabaseConfig,
    env::{Env, Lookup, NamedKey},
    outbox::{Queue, QueueUrls},
};

/// `HttpApiFunction`: every command and query route.
#[derive(Debug, Clone)]
pub struct HttpApiConfig {
    pub database: DatabaseConfig,
    pub table_name: String,
    /// `ANONYMITY_TABLE_NAME`: the table of the day keys and duplicate markers, the one without
    /// point-in-time recovery and left out of backups (no restore brings a deleted key back).
    pub anonymity_table_name: String,
    /// `CARDS_BUCKET`: cards are read (presigned) from it.
    pub cards_bucket: String,
    /// The queues commands publish to.
    pub queues: QueueUrls,
    pub web: WebConfig,
    pub identity: auth::IdentityConfig,
    /// `ANSWER_KEYS`: `kid:base64key[,...]`, 32-byte AES-256-GCM keys sealing survey answers;
    /// the first seals, all open.
    pub answer_keys: Vec<NamedKey>,
    /// `QUEST_TIME_ZONE`: where quest days and weeks begin.
    pub quest_time_zone: chrono_tz::Tz,
    /// The chat routes answer JSON here (the chat stream function streams them).
    pub chat: chat::config::ChatSettings,
    /// `REPORT_HIDE_THRESHOLD` (3): distinct reporters that hide a public persona.
    pub report_hide_threshold: u32,
}

impl FunctionConfig for HttpApiConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            anonymity_table_name: env.required("ANONYMITY_TABLE_NAME"),
            cards_bucket: cards_bucket(env),
            queues: QueueUrls::read(
                env,
                &[
                    Queue::Synthesize,
                    Queue::Render,
                    Queue::SummarizeChat,
                    Queue::Export,
                    Queue::Erase,
                ],
            ),
            web: WebConfig::read(env),
            identity: auth::IdentityConfig::read(env),
            answer_keys: env.keys("ANSWER_KEYS", "ANSWER_SEED", "answers", true),
            quest_time_zone: quests::config::quest_time_zone(env),
            chat: chat::config::ChatSettings::read(env),
            report_hide_threshold: {
                let threshold = env.optional(
                    "REPORT_HIDE_THRESHOLD",
                    domain::reports::DEFAULT_HIDE_THRESHOLD,
                );
                if threshold == 0 {
                    env.problem("REPORT_HIDE_THRESHOLD", "must be at least 1");
                }
                threshold
            },
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
            ("ANONYMITY_TABLE_NAME", "anonymity"),
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
            ("EXPORT_QUEUE_URL", "http://localhost/q/x"),
            ("ERASE_QUEUE_URL", "http://localhost/q/e"),
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
    fn the_database_ca_comes_from_text_or_a_file_and_an_unreadable_file_is_named() {
        let mut env = complete();
        env.insert("DATABASE_CA_FILE", "/nonexistent/bundle.pem");
        let error = HttpApiConfig::from_lookup(lookup(&env)).unwrap_err();
        assert!(error.problems.contains_key("DATABASE_CA_FILE"));

        env.insert("DATABASE_CA_PEM", "-----BEGIN CERTIFICATE-----");
        let config = HttpApiConfig::from_lookup(lookup(&env)).unwrap();
        assert_eq!(
            config.database.tls,
            platform::db::DatabaseTls::Verified("-----BEGIN CERTIFICATE-----".to_owned())
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
