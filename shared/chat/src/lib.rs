//! Chat with your persona (F-003): the owner writes, the newest ready version of their persona
//! answers in character, streamed, within a budget; the chat, the bond and the memory belong to
//! the owner across persona versions.
//!
//! One message, from [`Chat::begin`] to the stored exchange:
//!
//! 1. the content is checked (1–1000 characters after trimming), the per-minute limit counted,
//!    the speaking persona found, and a retried `Idempotency-Key` answered from the stored
//!    exchange ([`Received::Replayed`]);
//! 2. the safety check ([`safety`], plus [`moderation`] when configured) refuses the message
//!    (only a refusal is counted) or routes self-harm to the supportive reply;
//! 3. the user's message is sealed and stored at once, against the daily quota, so it is never
//!    lost whatever happens to the reply;
//! 4. [`AwaitingReply::spawn`] writes the reply in a task of its own (not tied to the client's
//!    connection): the model's deltas pass the [`reply::ReplyFilter`] and go to the caller's
//!    token channel; past the budget, or on an LLM failure or an echo of the system prompt, the
//!    in-character fallback is used instead;
//! 5. one transaction stores the sealed reply, numbers the exchange, awards the bond point,
//!    records `chat_sent`, and every tenth exchange queues a memory note ([`memory`]).
//!
//! No message text is ever logged, queued or stored in the clear.

mod answer;
pub mod bond;
pub mod config;
pub mod context;
mod error;
pub mod lines;
pub mod memory;
mod message;
pub mod moderation;
mod receive;
pub mod reply;
pub mod safety;
pub mod store;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use llm::Provider;
use platform::{
    aws::Table,
    clock::Clock,
    crypto::{Sealed, Sealer},
    cursor::{Cursor, Page, PageRequest},
    outbox::Publisher,
    rate_limit::RateLimiter,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

pub use answer::AwaitingReply;
pub use bond::Bond;
pub use error::ChatError;
pub use message::{ChatMessage, Exchange, Role, Source};
pub use receive::Received;

use config::ChatSettings;
use moderation::Moderation;
use store::StoredMessage;

/// Longest message, in characters after trimming.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Messages per user per day (the day in the quest time zone).
pub const DAILY_MESSAGES: i32 = 200;

/// The chat use cases, built once per cold start.
#[derive(Clone)]
pub struct Chat {
    pub db: Pool,
    /// Seals messages and memory notes under `MESSAGE_KEYS` (owner id ‖ message id).
    pub cipher: Arc<Sealer>,
    pub llm: Provider,
    pub moderation: Option<Moderation>,
    pub limits: RateLimiter,
    pub publisher: Publisher,
    pub clock: Arc<dyn Clock>,
    pub zone: Tz,
    pub budget: Duration,
}

impl Chat {
    /// The chat use cases from their settings, on `db`, counting limits in `table`.
    pub fn new(
        settings: &ChatSettings,
        db: Pool,
        table: Table,
        publisher: Publisher,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            cipher: Arc::new(Sealer::new(&settings.message_keys)?),
            llm: Provider::connect(
                settings.llm.base_url.as_deref(),
                settings.llm.api_key.as_ref().map(|key| key.expose_secret()),
                &settings.llm.models,
                settings.llm.timeout,
            )?,
            moderation: settings
                .moderation
                .as_ref()
                .map(Moderation::new)
                .transpose()?,
            limits: RateLimiter {
                table,
                clock: clock.clone(),
            },
            db,
            publisher,
            clock,
            zone: settings.quest_time_zone,
            budget: settings.reply_budget,
        })
    }

    async fn connection(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.db.get().await.context("connecting to PostgreSQL")
    }

    /// The owner's messages, newest first, a page at a time.
    pub async fn history(
        &self,
        owner_id: Uuid,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<ChatMessage>, ChatError> {
        let request = PageRequest::parse(cursor, limit)?;
        let client = self.connection().await?;
        let rows = store::history(&client, owner_id, request.after, request.fetch()).await?;
        let messages = rows
            .into_iter()
            .map(|row| self.open(owner_id, row))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(request.page(messages, |message| Cursor {
            at: message.created_at,
            id: message.id,
        }))
    }

    /// The owner's bond with their persona.
    pub async fn bond(&self, owner_id: Uuid) -> anyhow::Result<Bond> {
        let client = self.connection().await?;
        Ok(Bond {
            points: store::bond_points(&client, owner_id).await?,
        })
    }

    fn seal(&self, owner_id: Uuid, id: Uuid, text: &str) -> anyhow::Result<Sealed> {
        self.cipher
            .seal(owner_id, id, text.as_bytes())
            .context("sealing a chat message")
    }

    fn open_text(&self, owner_id: Uuid, id: Uuid, sealed: &Sealed) -> anyhow::Result<String> {
        let plaintext = self
            .cipher
            .open(owner_id, id, sealed)
            .context("opening a chat message")?;
        String::from_utf8(plaintext).context("a chat message that is not UTF-8")
    }

    fn open(&self, owner_id: Uuid, stored: StoredMessage) -> Result<ChatMessage, ChatError> {
        Ok(ChatMessage {
            content: self.open_text(owner_id, stored.id, &stored.sealed)?,
            id: stored.id,
            role: stored.role,
            created_at: stored.created_at,
            source: stored.source,
        })
    }
}

/// `at` as PostgreSQL stores it (microseconds), so an answer and its later replay agree.
fn stored_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}
