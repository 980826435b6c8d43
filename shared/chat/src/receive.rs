//! Receiving a message (steps 1 to 3 of the crate documentation): the checks, the replay of a
//! retried `Idempotency-Key`, the safety screen, and the stored user message awaiting its reply.

use std::time::Duration;

use aws_lc_rs::digest;
use domain::periods::{self, Period};
use llm::chat::{ChatPrompt, Speaker, Turn};
use platform::{rate_limit, telemetry::describe};
use tokio::time::Instant;
use tracing::{info, warn};
use uuid::Uuid;

use crate::{
    answer::{AwaitingReply, ReplyPlan},
    context,
    safety::{self, Verdict},
    store::{self, NewMessage, NotStored, Persona, Speaking, StoredMessage},
    stored_instant, Bond, Chat, ChatError, ChatMessage, Exchange, Role, DAILY_MESSAGES,
    MAX_MESSAGE_CHARS,
};

/// A first attempt this old without a reply died with its request: a retry with the same
/// `Idempotency-Key` completes it with the fallback instead of waiting forever.
const ABANDONED_AFTER: Duration = Duration::from_secs(30);

/// What [`Chat::begin`] found.
pub enum Received {
    /// A retry of a message already answered (same `Idempotency-Key`): the stored exchange.
    Replayed(Exchange),
    /// The message is stored; its reply is to be written.
    Accepted(Box<AwaitingReply>),
}

impl Chat {
    /// Everything before the reply (see the crate documentation, steps 1 to 3).
    pub async fn begin(
        &self,
        owner_id: Uuid,
        content: &str,
        idempotency_key: Option<&str>,
        request_id: Option<String>,
    ) -> Result<Received, ChatError> {
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
            ReplyPlan::Support
        } else {
            ReplyPlan::Converse(Box::new(
                self.prompt(&client, owner_id, &persona, content).await?,
            ))
        };
        Ok(Received::Accepted(Box::new(AwaitingReply {
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
    ) -> Result<Received, ChatError> {
        let message = self.open(owner_id, first)?;
        if message.content != content {
            return Err(ChatError::KeyReused);
        }
        if let Some(reply) = reply {
            let client = self.connection().await?;
            let bond = Bond {
                points: store::bond_points(&client, owner_id).await?,
            };
            return Ok(Received::Replayed(Exchange {
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
        let awaiting = AwaitingReply {
            chat: self.clone(),
            started,
            owner_id,
            persona,
            message,
            plan: ReplyPlan::Fallback,
            request_id: None,
        };
        awaiting.finish(None).await.map(Received::Replayed)
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
            &persona.instructions,
            memory,
            history,
            content,
        ))
    }
}
