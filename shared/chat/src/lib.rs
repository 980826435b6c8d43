//! Chat with your persona (F-003): the owner writes, the newest ready version of their persona
//! answers in character, streamed, within a budget; the chat, the bond and the memory belong to
//! the owner across persona versions.
//!
//! One message, from [`Chat::begin`] to the stored exchange:
//!
//! 1. the content is checked (1–1000 characters after trimming), the per-minute limit counted,
//!    the speaking persona found, and a retried `Idempotency-Key` answered from the stored
//!    exchange ([`Begun::Replayed`]);
//! 2. the safety check ([`safety`], plus [`moderation`] when configured) refuses the message
//!    (only a refusal is counted) or routes self-harm to the supportive reply;
//! 3. the user's message is sealed and stored at once, against the daily quota, so it is never
//!    lost whatever happens to the reply;
//! 4. [`Pending::spawn`] writes the reply in a task of its own (not tied to the client's
//!    connection): the model's deltas pass the [`reply::ReplyFilter`] and go to the caller's
//!    token channel; past the budget, or on an LLM failure or an echo of the system prompt, the
//!    in-character fallback is used instead;
//! 5. one transaction stores the sealed reply, numbers the exchange, awards the bond point,
//!    records `chat_sent`, and every tenth exchange queues a memory note ([`memory`]).
//!
//! No message text is ever logged, queued or stored in the clear.

pub mod bond;
pub mod config;
pub mod context;
pub mod lines;
pub mod memory;
pub mod moderation;
pub mod reply;
pub mod safety;
pub mod store;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_lc_rs::digest;
use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use domain::periods::{self, Period};
use futures_util::StreamExt;
use llm::{
    chat::{ChatPrompt, Speaker, Turn},
    LlmError, Provider,
};
use platform::{
    aws::Table,
    clock::Clock,
    crypto::{Sealed, Sealer},
    cursor::{Cursor, InvalidPage, Page, PageRequest},
    events::{self, EventKind},
    outbox::{self, Publisher, Queue},
    rate_limit::{self, LimitError, Limited, RateLimiter},
    telemetry::describe,
};
use secrecy::ExposeSecret;
use tokio::{sync::mpsc::UnboundedSender, task::JoinHandle, time::Instant};
use tracing::{info, warn, Instrument};
use uuid::Uuid;

pub use bond::Bond;
use config::ChatSettings;
use memory::{SummarizeJob, MEMORY_EVERY};
use moderation::Moderation;
use reply::{EchoDetected, ReplyFilter};
use safety::{Category, Verdict};
use store::{Completed, NewMessage, NewReply, NotStored, Persona, Speaking, StoredMessage};

/// Longest message, in characters after trimming.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Messages per user per day (the day in the quest time zone).
pub const DAILY_MESSAGES: i32 = 200;
/// Kept out of the reply budget for storing the reply, so the whole reply is ready within it.
const STORE_MARGIN: Duration = Duration::from_millis(150);
/// A first attempt this old without a reply died with its request: a retry with the same
/// `Idempotency-Key` completes it with the fallback instead of waiting forever.
const ABANDONED_AFTER: Duration = Duration::from_secs(30);

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Persona,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Persona => "persona",
        }
    }
}

/// Where a reply came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The model (the offline voice included).
    Llm,
    /// The in-character fallback: past the budget, an LLM failure, or a refused reply.
    Fallback,
    /// The fixed supportive reply to self-harm content.
    Safety,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Llm => "llm",
            Source::Fallback => "fallback",
            Source::Safety => "safety",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Source::Llm, Source::Fallback, Source::Safety]
            .into_iter()
            .find(|source| source.as_str() == text)
    }
}

/// A message as its owner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: Uuid,
    pub role: Role,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// `None` for the user's own messages.
    pub source: Option<Source>,
}

/// A message and its reply, and the bond after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub message: ChatMessage,
    pub reply: ChatMessage,
    pub bond: Bond,
}

/// Why a chat use case refused.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the message must have 1 to {MAX_MESSAGE_CHARS} characters")]
    InvalidContent,
    #[error("no persona yet")]
    NoPersona,
    #[error("the persona is not ready")]
    NotReady,
    /// The safety check refused the message.
    #[error("message blocked ({})", .0.as_str())]
    Blocked(Category),
    #[error(transparent)]
    RateLimited(#[from] Limited),
    #[error("the daily message quota is used up")]
    DailyQuotaExceeded { retry_after_secs: u64 },
    #[error("the idempotency key was used with another message")]
    KeyReused,
    #[error("a message with this idempotency key is still being answered")]
    InProgress,
    #[error(transparent)]
    InvalidPage(#[from] InvalidPage),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<LimitError> for ChatError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Unexpected(error) => Self::Unexpected(error),
        }
    }
}

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

/// What [`Chat::begin`] found.
pub enum Begun {
    /// A retry of a message already answered (same `Idempotency-Key`): the stored exchange.
    Replayed(Exchange),
    /// The message is stored; its reply is to be written.
    Started(Box<Pending>),
}

/// How a pending reply is written.
enum Plan {
    Converse(Box<ChatPrompt>),
    Support,
    Fallback,
}

/// A stored message waiting for its reply (see [`Pending::spawn`]).
pub struct Pending {
    chat: Chat,
    started: Instant,
    owner_id: Uuid,
    persona: Persona,
    message: ChatMessage,
    plan: Plan,
    request_id: Option<String>,
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

    /// Everything before the reply (see the crate documentation, steps 1 to 3).
    pub async fn begin(
        &self,
        owner_id: Uuid,
        content: &str,
        idempotency_key: Option<&str>,
        request_id: Option<String>,
    ) -> Result<Begun, ChatError> {
        let started = Instant::now();
        let content = content.trim();
        if !(1..=MAX_MESSAGE_CHARS).contains(&content.chars().count()) {
            return Err(ChatError::InvalidContent);
        }
        self.limits
            .check(rate_limit::CHAT, &owner_id.to_string())
            .await?;
        let mut client = self.connection().await?;
        let persona = match store::speaking_persona(&client, owner_id).await? {
            Speaking::Ready(persona) => persona,
            Speaking::NotReady => return Err(ChatError::NotReady),
            Speaking::NoPersona => return Err(ChatError::NoPersona),
        };
        let key_hash = idempotency_key.map(|key| digest::digest(&digest::SHA256, key.as_bytes()));
        let key_hash = key_hash.as_ref().map(|hash| hash.as_ref());
        if let Some(hash) = key_hash {
            if let Some((first, reply)) = store::by_idempotency_key(&client, owner_id, hash).await?
            {
                drop(client);
                return self
                    .resume(owner_id, persona, first, reply, content, started)
                    .await;
            }
        }
        let now = stored_instant(self.clock.now());
        let today = periods::local_day(self.zone, now);
        let support = match self.screen(content).await {
            Verdict::Blocked(category) => {
                store::count_refusal(&client, owner_id, today).await?;
                info!(category = category.as_str(), "chat message refused");
                return Err(ChatError::Blocked(category));
            }
            Verdict::Support => true,
            Verdict::Allowed => false,
        };
        let id = Uuid::now_v7();
        let sealed = self.seal(owner_id, id, content)?;
        let message = NewMessage {
            id,
            owner_id,
            persona_id: persona.id,
            sealed: &sealed,
            key_hash,
            at: now,
        };
        match store::insert_user_message(&mut client, message, today, DAILY_MESSAGES).await? {
            Ok(()) => {}
            Err(NotStored::Duplicate) => return Err(ChatError::InProgress),
            Err(NotStored::Quota) => {
                let end = periods::window(Period::Daily, self.zone, now)
                    .end
                    .unwrap_or(now);
                let retry_after_secs = (end - now).num_seconds().max(1) as u64;
                info!("daily chat quota used up");
                return Err(ChatError::DailyQuotaExceeded { retry_after_secs });
            }
        }
        let plan = if support {
            Plan::Support
        } else {
            Plan::Converse(Box::new(
                self.prompt(&client, owner_id, &persona, content).await?,
            ))
        };
        Ok(Begun::Started(Box::new(Pending {
            chat: self.clone(),
            started,
            owner_id,
            persona,
            message: ChatMessage {
                id,
                role: Role::User,
                content: content.to_owned(),
                created_at: now,
                source: None,
            },
            plan,
            request_id,
        })))
    }

    /// A retry of a message sent with the same idempotency key.
    async fn resume(
        &self,
        owner_id: Uuid,
        persona: Persona,
        first: StoredMessage,
        reply: Option<StoredMessage>,
        content: &str,
        started: Instant,
    ) -> Result<Begun, ChatError> {
        let message = self.open(owner_id, first)?;
        if message.content != content {
            return Err(ChatError::KeyReused);
        }
        if let Some(reply) = reply {
            let client = self.connection().await?;
            let bond = Bond {
                points: store::bond_points(&client, owner_id).await?,
            };
            return Ok(Begun::Replayed(Exchange {
                message,
                reply: self.open(owner_id, reply)?,
                bond,
            }));
        }
        let age = (self.clock.now() - message.created_at)
            .to_std()
            .unwrap_or_default();
        if age < ABANDONED_AFTER {
            return Err(ChatError::InProgress);
        }
        warn!("completing an abandoned chat message with the fallback");
        let pending = Pending {
            chat: self.clone(),
            started,
            owner_id,
            persona,
            message,
            plan: Plan::Fallback,
            request_id: None,
        };
        pending.finish(None).await.map(Begun::Replayed)
    }

    /// The rule-based verdict, with the remote moderation's categories added when it answers.
    async fn screen(&self, content: &str) -> Verdict {
        let mut categories = safety::rule_categories(content);
        if let Some(moderation) = &self.moderation {
            match moderation.check(content).await {
                Ok(found) => categories.extend(found),
                Err(error) => warn!(
                    error = describe(&error),
                    "moderation unavailable; the rule-based verdict stands"
                ),
            }
        }
        safety::verdict(&categories)
    }

    /// The model's context: the last turns and the newest memory note.
    async fn prompt(
        &self,
        client: &deadpool_postgres::Object,
        owner_id: Uuid,
        persona: &Persona,
        content: &str,
    ) -> Result<ChatPrompt, ChatError> {
        let recent = store::recent_turns(client, owner_id, context::HISTORY_TURNS as i64).await?;
        let history = recent
            .into_iter()
            .map(|stored| {
                let message = self.open(owner_id, stored)?;
                Ok(Turn {
                    speaker: match message.role {
                        Role::User => Speaker::User,
                        Role::Persona => Speaker::Persona,
                    },
                    text: message.content,
                })
            })
            .collect::<Result<Vec<_>, ChatError>>()?;
        let memory = match store::latest_note(client, owner_id, None).await? {
            Some(note) => Some(self.open_text(owner_id, note.id, &note.sealed)?),
            None => None,
        };
        Ok(context::prompt(
            persona.archetype,
            &persona.system_prompt,
            memory,
            history,
            content,
        ))
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

    /// Stores the reply and everything an exchange changes, in one transaction; publishes the
    /// memory job after commit.
    async fn store_reply(
        &self,
        pending: &Pending,
        text: &str,
        source: Source,
    ) -> Result<Exchange, ChatError> {
        let owner_id = pending.owner_id;
        let id = Uuid::now_v7();
        let at = stored_instant(self.clock.now()).max(pending.message.created_at);
        let sealed = self.seal(owner_id, id, text)?;
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let reply = NewReply {
            id,
            owner_id,
            persona_id: pending.persona.id,
            reply_to: pending.message.id,
            source,
            sealed: &sealed,
            at,
        };
        let today = periods::local_day(self.zone, at);
        let Completed::Stored {
            bond_points,
            exchange_no,
        } = store::complete_exchange(&tx, reply, today).await?
        else {
            return Err(ChatError::InProgress);
        };
        let mut queued = None;
        if let Some(number) = exchange_no {
            events::record(&tx, owner_id, EventKind::ChatSent, at).await?;
            if number % MEMORY_EVERY == 0 {
                let job = SummarizeJob {
                    owner_id,
                    version: number / MEMORY_EVERY,
                };
                queued = Some(
                    outbox::enqueue(
                        &tx,
                        Queue::SummarizeChat,
                        &job,
                        pending.request_id.as_deref(),
                    )
                    .await?,
                );
            }
        }
        tx.commit().await.context("committing a reply")?;
        drop(client);
        if let Some(outbox_id) = queued {
            self.publisher.publish(&self.db, &[outbox_id]).await;
        }
        Ok(Exchange {
            message: pending.message.clone(),
            reply: ChatMessage {
                id,
                role: Role::Persona,
                content: text.to_owned(),
                created_at: at,
                source: Some(source),
            },
            bond: Bond {
                points: bond_points,
            },
        })
    }
}

/// `at` as PostgreSQL stores it (microseconds), so an answer and its later replay agree.
fn stored_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Where the reply's text goes as it is written.
struct Tokens {
    sender: Option<UnboundedSender<String>>,
    first_at: Option<Instant>,
}

impl Tokens {
    fn emit(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        self.first_at.get_or_insert_with(Instant::now);
        if let Some(sender) = &self.sender {
            // A client that went away does not stop the reply.
            let _ = sender.send(text);
        }
    }

    /// A fixed line, word by word.
    fn emit_words(&mut self, text: &str) {
        for word in text.split_inclusive(' ') {
            self.emit(word.to_owned());
        }
    }
}

/// Why the model's reply was not used.
enum Failure {
    Llm(LlmError),
    Echo,
}

impl From<LlmError> for Failure {
    fn from(error: LlmError) -> Self {
        Self::Llm(error)
    }
}

impl From<EchoDetected> for Failure {
    fn from(_: EchoDetected) -> Self {
        Self::Echo
    }
}

/// Streams the model's reply through `filter` into `tokens`.
async fn generate(
    llm: &Provider,
    prompt: &ChatPrompt,
    filter: &mut ReplyFilter,
    tokens: &mut Tokens,
) -> Result<(), Failure> {
    let mut deltas = llm.chat(prompt);
    while let Some(delta) = deltas.next().await {
        tokens.emit(filter.push(&delta?)?);
        if filter.is_full() {
            break;
        }
    }
    tokens.emit(filter.finish()?);
    Ok(())
}

impl Pending {
    /// The user's stored message.
    pub fn message(&self) -> &ChatMessage {
        &self.message
    }

    /// Writes and stores the reply in a task of its own, so a client that disconnects (which
    /// drops the request's future) still finds the whole reply stored. The reply's text goes to
    /// `tokens` as it is let out; the sender is dropped when the task ends.
    pub fn spawn(
        self,
        tokens: Option<UnboundedSender<String>>,
    ) -> JoinHandle<Result<Exchange, ChatError>> {
        tokio::spawn(self.finish(tokens).in_current_span())
    }

    async fn finish(self, sender: Option<UnboundedSender<String>>) -> Result<Exchange, ChatError> {
        let mut tokens = Tokens {
            sender,
            first_at: None,
        };
        let (text, source) = match &self.plan {
            Plan::Converse(prompt) => self.converse(prompt, &mut tokens).await,
            Plan::Support => {
                let text = lines::support(&self.message.content);
                tokens.emit_words(text);
                (text.to_owned(), Source::Safety)
            }
            Plan::Fallback => {
                let text = lines::fallback(self.persona.archetype, &self.message.content);
                tokens.emit_words(text);
                (text.to_owned(), Source::Fallback)
            }
        };
        let exchange = self.chat.store_reply(&self, &text, source).await?;
        let millis = |at: Instant| at.duration_since(self.started).as_secs_f64() * 1000.0;
        let whole_ms = millis(Instant::now());
        info!(
            persona_id = %self.persona.id,
            source = source.as_str(),
            first_token_ms = tokens.first_at.map(millis),
            latency_ms = whole_ms,
            "chat reply stored"
        );
        // Replies by source (the fallback share) and their times, as metrics.
        platform::metrics::counter!("chat_replies", "source" => source.as_str()).increment(1);
        platform::metrics::histogram!("chat_reply_ms", "source" => source.as_str())
            .record(whole_ms);
        if let Some(first) = tokens.first_at {
            platform::metrics::histogram!("chat_first_token_ms", "source" => source.as_str())
                .record(millis(first));
        }
        Ok(exchange)
    }

    /// The model's reply within the budget, or the fallback.
    async fn converse(&self, prompt: &ChatPrompt, tokens: &mut Tokens) -> (String, Source) {
        let mut filter = ReplyFilter::new(&prompt.system);
        let deadline = self.started + self.chat.budget.saturating_sub(STORE_MARGIN);
        let outcome = tokio::time::timeout_at(
            deadline,
            generate(&self.chat.llm, prompt, &mut filter, tokens),
        )
        .await;
        let reason = match outcome {
            Ok(Ok(())) if !filter.text().trim().is_empty() => {
                return (filter.text().to_owned(), Source::Llm);
            }
            Ok(Ok(())) => "empty_reply".to_owned(),
            Ok(Err(Failure::Llm(LlmError::Transient(reason)))) => reason,
            Ok(Err(Failure::Llm(LlmError::Permanent(reason)))) => {
                warn!(
                    reason,
                    "permanent LLM failure in chat; check the configuration"
                );
                reason
            }
            Ok(Err(Failure::Llm(LlmError::Unauthorized(status)))) => {
                // A configuration fault (a revoked key): loud in the log, still a reply in chat.
                tracing::error!(
                    error_code = "llm_unauthorized",
                    status,
                    "the LLM provider refused our key"
                );
                "llm_unauthorized".to_owned()
            }
            Ok(Err(Failure::Echo)) => "echoed_system_prompt".to_owned(),
            Err(_) => "budget_exceeded".to_owned(),
        };
        warn!(persona_id = %self.persona.id, reason, "chat reply replaced by the fallback");
        let class = match reason.as_str() {
            "budget_exceeded" | "echoed_system_prompt" | "empty_reply" | "llm_unauthorized" => {
                reason.as_str()
            }
            _ => "llm_error",
        };
        platform::metrics::counter!("chat_fallbacks", "reason" => class.to_owned()).increment(1);
        let text = lines::fallback(prompt.archetype, &prompt.message);
        // Only when nothing was streamed yet can the fallback stream too; otherwise the final
        // event carries it and says `fallback`.
        if filter.text().is_empty() {
            tokens.emit_words(text);
        }
        (text.to_owned(), Source::Fallback)
    }
}
