//! What the chat functions read from the environment: the chat settings wherever chat is
//! served (the HTTP function's JSON route, the chat stream function), and the two chat
//! functions' configurations.

use llm::LlmSettings;
use platform::{
    config::{table_name, FunctionConfig, WebConfig},
    db::DatabaseConfig,
    env::{Env, Lookup, NamedKey},
    outbox::{Queue, QueueUrls, WorkerQueue},
};
use secrecy::SecretString;

/// `MESSAGE_KEYS`: `kid:base64key[,...]`, 32-byte AES-256-GCM keys sealing chat messages and
/// memory notes (never the answer keys); the first seals, all open.
fn message_keys(env: &mut Env<Lookup>) -> Vec<NamedKey> {
    env.keys("MESSAGE_KEYS", "MESSAGE_SEED", "messages", true)
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
            quest_time_zone: quests::config::quest_time_zone(env),
            reply_budget: std::time::Duration::from_millis(
                env.optional("CHAT_REPLY_BUDGET_MS", 3000),
            ),
        }
    }
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
    pub identity: auth::IdentityConfig,
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

impl FunctionConfig for ChatConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            web: WebConfig::read_cors(env),
            identity: auth::IdentityConfig::read_tokens(env),
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
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        let chat = ChatConfig::from_lookup(lookup).unwrap();
        assert_eq!(chat.chat.reply_budget, std::time::Duration::from_secs(3));
        assert_eq!(chat.chat.quest_time_zone, chrono_tz::Asia::Seoul);
        assert!(
            chat.chat.moderation.is_none(),
            "no OpenAI key, no remote moderation"
        );
        assert_eq!(chat.identity.jwt_signing_keys.len(), 1);
        let memory = ChatMemoryConfig::from_lookup(lookup).unwrap();
        assert_eq!(memory.queue.dead_letter_url, "http://localhost/q/cd");
    }
}
