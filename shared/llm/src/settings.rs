//! Which LLM provider to use, read from the environment. No provider configured: the offline,
//! rule-based writer.

use platform::env::{Env, Lookup};
use secrecy::SecretString;

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
