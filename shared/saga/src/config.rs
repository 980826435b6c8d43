//! What the saga's functions read from the environment.

use platform::{
    config::{cards_bucket, frontend_url, table_name, FunctionConfig},
    db::DatabaseConfig,
    env::{Env, Lookup, NamedKey},
    outbox::{Queue, QueueUrls, WorkerQueue},
};

/// `SynthesizeFunction`: saga step 1.
#[derive(Debug, Clone)]
pub struct SynthesizeConfig {
    pub database: DatabaseConfig,
    pub table_name: String,
    pub queue: WorkerQueue,
    /// The render queue it hands over to.
    pub publishes: QueueUrls,
    /// `ANSWER_KEYS`: `kid:base64key[,...]`, the keys that open survey answers.
    pub answer_keys: Vec<NamedKey>,
    pub llm: llm::LlmSettings,
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

impl FunctionConfig for SynthesizeConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            queue: WorkerQueue::read(env, Queue::Synthesize),
            publishes: QueueUrls::read(env, &[Queue::Render]),
            answer_keys: env.keys("ANSWER_KEYS", "ANSWER_SEED", "answers", true),
            llm: llm::LlmSettings::read(env),
        }
    }
}

impl FunctionConfig for RenderConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            queue: WorkerQueue::read(env, Queue::Render),
            cards_bucket: cards_bucket(env),
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

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
        let lookup = |k: &str| env.get(k).map(|v| v.to_string());
        let render = RenderConfig::from_lookup(lookup).unwrap();
        assert_eq!(render.queue.dead_letter_url, "http://localhost/q/rd");
        // The synthesize worker needs its own queue and the answer keys, never Google or JWT.
        let error = SynthesizeConfig::from_lookup(lookup).unwrap_err();
        let names: Vec<_> = error.problems.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["ANSWER_KEYS", "SYNTHESIZE_DLQ_URL", "SYNTHESIZE_QUEUE_URL"]
        );
    }
}
