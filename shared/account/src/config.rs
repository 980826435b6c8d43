//! What the export and erase functions read from the environment.

use std::time::Duration;

use platform::{
    config::{cards_bucket, table_name, FunctionConfig},
    db::DatabaseConfig,
    env::{Env, Lookup, NamedKey, SecretKey},
    outbox::{Queue, WorkerQueue},
};

/// `ExportFunction`: builds the owner's data export.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    pub database: DatabaseConfig,
    pub queue: WorkerQueue,
    /// `CARDS_BUCKET`: the private bucket exports are stored in (and card links point into).
    pub bucket: String,
    /// `MESSAGE_KEYS`: the chat is exported in plaintext.
    pub message_keys: Vec<NamedKey>,
    /// `QUEST_TIME_ZONE`: where the quests' days and weeks begin.
    pub quest_time_zone: chrono_tz::Tz,
}

/// `EraseFunction`: erases an account.
#[derive(Debug, Clone)]
pub struct EraseConfig {
    pub database: DatabaseConfig,
    pub table_name: String,
    pub queue: WorkerQueue,
    /// `CARDS_BUCKET`: card objects and exports are deleted from it.
    pub bucket: String,
    /// `ADDRESS_HASH_KEY`: the erasure journal's subjects are hashed with it (re-applying the
    /// journal after a restore finds the restored users by it).
    pub address_hash_key: SecretKey,
    /// `ERASE_GRACE_SECS` (35): after the rows are gone, how long until the final pass over the
    /// objects and items, so a worker that read a persona just before (a render takes at most
    /// its 30 s timeout) cannot leave a card or a status behind.
    pub grace: Duration,
}

impl FunctionConfig for ExportConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            queue: WorkerQueue::read(env, Queue::Export),
            bucket: cards_bucket(env),
            message_keys: env.keys("MESSAGE_KEYS", "MESSAGE_SEED", "messages", true),
            quest_time_zone: quests::config::quest_time_zone(env),
        }
    }
}

impl FunctionConfig for EraseConfig {
    fn read(env: &mut Env<Lookup>) -> Self {
        Self {
            database: DatabaseConfig::read(env),
            table_name: table_name(env),
            queue: WorkerQueue::read(env, Queue::Erase),
            bucket: cards_bucket(env),
            address_hash_key: env.key("ADDRESS_HASH_KEY", "IDENTITY_SEED", "address-hash"),
            grace: Duration::from_secs(env.optional("ERASE_GRACE_SECS", 35)),
        }
    }
}
