//! Answering an accepted message (steps 4 and 5 of the crate documentation): the reply is
//! written in a task of its own — the model's, within the budget, or a fixed line — streamed to
//! the caller, and stored with everything an exchange changes.

use std::time::Duration;

use anyhow::Context;
use domain::periods;
use futures_util::StreamExt;
use llm::{chat::ChatPrompt, LlmError, Provider};
use platform::{
    events::{self, EventKind},
    outbox::{self, Queue},
};
use tokio::{sync::mpsc::UnboundedSender, task::JoinHandle, time::Instant};
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use crate::{
    lines,
    memory::{SummarizeJob, MEMORY_EVERY},
    reply::{EchoDetected, ReplyFilter},
    store::{self, Completed, NewReply, Persona},
    stored_instant, Bond, Chat, ChatError, ChatMessage, Exchange, Role, Source,
};

/// Kept out of the reply budget for storing the reply, so the whole reply is ready within it.
const STORE_MARGIN: Duration = Duration::from_millis(150);

/// How the reply to an awaiting message is written.
pub(crate) enum ReplyPlan {
    Converse(Box<ChatPrompt>),
    Support,
    Fallback,
}

/// A stored message waiting for its reply (see [`AwaitingReply::spawn`]).
pub struct AwaitingReply {
    pub(crate) chat: Chat,
    pub(crate) started: Instant,
    pub(crate) owner_id: Uuid,
    pub(crate) persona: Persona,
    pub(crate) message: ChatMessage,
    pub(crate) plan: ReplyPlan,
    pub(crate) request_id: Option<String>,
}

impl Chat {
    /// Stores the reply and everything an exchange changes, in one transaction; publishes the
    /// memory job after commit.
    async fn store_reply(
        &self,
        awaiting: &AwaitingReply,
        text: &str,
        source: Source,
    ) -> Result<Exchange, ChatError> {
        let owner_id = awaiting.owner_id;
        let id = Uuid::now_v7();
        let at = stored_instant(self.clock.now()).max(awaiting.message.created_at);
        let sealed = self.seal(owner_id, id, text)?;
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let reply = NewReply {
            id,
            owner_id,
            persona_id: awaiting.persona.id,
            reply_to: awaiting.message.id,
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
                        awaiting.request_id.as_deref(),
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
            message: awaiting.message.clone(),
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

impl AwaitingReply {
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

    /// Writes and stores the reply in the current task (what [`Self::spawn`] runs).
    pub(crate) async fn finish(
        self,
        sender: Option<UnboundedSender<String>>,
    ) -> Result<Exchange, ChatError> {
        let mut tokens = Tokens {
            sender,
            first_at: None,
        };
        let (text, source) = match &self.plan {
            ReplyPlan::Converse(prompt) => self.converse(prompt, &mut tokens).await,
            ReplyPlan::Support => {
                let text = lines::support(&self.message.content);
                tokens.emit_words(text);
                (text.to_owned(), Source::Safety)
            }
            ReplyPlan::Fallback => {
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
