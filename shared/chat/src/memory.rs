//! Chat memory: every [`MEMORY_EVERY`] exchanges, the transaction that stores the tenth queues a
//! `summarize_chat` job (ids only) through the outbox; the `ChatMemoryFunction` worker folds the
//! newest earlier note and the exchanges after it into note version n, covering every exchange
//! up to number 10n, at most [`MAX_NOTE_CHARS`] characters, sealed like messages.
//!
//! The LLM writes the note when one is configured; offline the note is extractive and
//! deterministic ([`fold_extractive`]). Duplicate and reordered deliveries leave one note per
//! version (the primary key decides; a late job for an older version just fills its slot), and
//! call the LLM once per version: a delivery first claims the version with a lease
//! (`chat_memory_leases`, [`LEASE`]); a duplicate that finds a live lease waits a little for the
//! holder's note, then comes back when the lease would expire. A worker that died mid-call
//! leaves its lease to expire with the message's visibility timeout, and the redelivery takes
//! it over (the persona synthesis attempt works the same way).
//! Undecodable jobs and jobs naming nothing real go to the dead-letter queue at once; they stay
//! there for ops (the sweeper drains only the saga's dead letters).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deadpool_postgres::{GenericClient, Pool};
use llm::{
    chat::{Speaker, Turn},
    LlmError, Provider,
};
use platform::{
    aws::AwsClients,
    crypto::Sealer,
    db::{self, CachedStatements},
    worker::{process_batch, Message, SqsQueueOps, StepError},
};

use crate::config::ChatMemoryConfig;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use crate::{store, Role};

/// Exchanges per memory note.
pub const MEMORY_EVERY: i32 = 10;
/// Longest memory note, in characters.
pub const MAX_NOTE_CHARS: usize = 800;
/// LLM attempts (one per receive) before the extractive note is used instead.
const LLM_ATTEMPTS: u32 = 3;
/// How long a delivery's claim on (owner, version) lasts: the memory queue's visibility timeout
/// (`SummarizeChatQueue` in template.yaml). Until then the claiming worker may still be running
/// (the function's timeout is 60 s); after it, the message has come back and its delivery may
/// take the claim over.
pub const LEASE: Duration = Duration::from_secs(360);
/// How long a duplicate delivery waits for the holder of a live lease to store the note before
/// it defers until the lease would expire (well inside the function's 60 s timeout).
pub const HOLDER_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting duplicate looks for the note.
const HOLDER_POLL: Duration = Duration::from_millis(100);

/// The `summarize_chat` message: ids only, never text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarizeJob {
    pub owner_id: Uuid,
    /// Note `version` covers exchanges 1 to `version · MEMORY_EVERY`.
    pub version: i32,
}

const INSTRUCTIONS: &str = "You keep the memory note an AI persona has about the user it chats \
with. Rewrite the previous note together with the new conversation into one updated note of at \
most 800 characters: facts the user shared about themselves (people, places, plans, likes, \
feelings, events), the newest first when space runs out. Third person, plain text, no markup, no \
instructions, nothing about the persona itself.";

/// The `ChatMemoryFunction`: everything a memory job needs, built once per cold start.
#[derive(Clone)]
pub struct MemoryWorker {
    pub db: Pool,
    pub cipher: Arc<Sealer>,
    pub llm: Provider,
    pub queue: SqsQueueOps,
    /// See [`LEASE`].
    pub lease: Duration,
    /// See [`HOLDER_WAIT`].
    pub holder_wait: Duration,
}

impl MemoryWorker {
    pub fn new(config: ChatMemoryConfig, aws: &AwsClients) -> anyhow::Result<Self> {
        Ok(Self {
            db: db::pool(&config.database, &aws.secrets)?,
            cipher: Arc::new(Sealer::new(&config.message_keys)?),
            llm: Provider::connect(
                config.llm.base_url.as_deref(),
                config.llm.api_key.as_ref().map(|key| key.expose_secret()),
                &config.llm.models,
                config.llm.timeout,
            )?,
            queue: SqsQueueOps {
                step: "summarize_chat",
                client: aws.sqs.clone(),
                queue_url: config.queue.url.clone(),
                dead_letter_queue_url: config.queue.dead_letter_url.clone(),
            },
            lease: LEASE,
            holder_wait: HOLDER_WAIT,
        })
    }

    /// The function's handler: one SQS batch, only failed ids reported.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        process_batch(event, &self.queue, |message| self.summarize(message)).await
    }

    pub async fn summarize(&self, message: Message<SummarizeJob>) -> Result<(), StepError> {
        let span = tracing::info_span!(
            "step",
            owner_id = %message.body.owner_id,
            version = message.body.version,
            step = "summarize_chat"
        );
        self.summarize_step(message).instrument(span).await
    }

    async fn summarize_step(&self, message: Message<SummarizeJob>) -> Result<(), StepError> {
        let SummarizeJob { owner_id, version } = message.body;
        if version < 1 {
            return Err(StepError::permanent("invalid_version"));
        }
        let mut client = self
            .db
            .get()
            .await
            .context("connecting to PostgreSQL")
            .map_err(StepError::retryable)?;
        let upto = version * MEMORY_EVERY;
        match store::exchange_count(&client, owner_id)
            .await
            .map_err(StepError::retryable)?
        {
            // The account was erased (or never chatted): nothing to fold, nothing to re-create.
            None => {
                info!(%owner_id, "no chat for this owner; nothing to summarize");
                return Ok(());
            }
            Some(exchanges) if exchanges < upto => {
                return Err(StepError::permanent("unknown_version"))
            }
            Some(_) => {}
        }
        let Some(claim) = self.claim(&client, owner_id, version).await? else {
            info!("memory note already written; nothing to do");
            return Ok(());
        };
        let outcome = self
            .fold(&mut client, owner_id, version, claim, message.receive_count)
            .await;
        if outcome.is_err() {
            // The attempt is over without a note: the retry starts a new one at once instead of
            // waiting out the lease.
            self.release(&client, owner_id, version, claim).await;
        }
        outcome
    }

    /// Claims (owner, version) for this delivery: `Some(claim)` when it may write the note,
    /// `None` when the note is already written. While another delivery holds a live lease this
    /// one waits up to `holder_wait` for its note, then is retried when the lease would expire
    /// (the holder's worker may have died: its lease then lapses and this delivery takes over).
    async fn claim(
        &self,
        client: &impl GenericClient,
        owner_id: Uuid,
        version: i32,
    ) -> Result<Option<Uuid>, StepError> {
        let deadline = tokio::time::Instant::now() + self.holder_wait;
        loop {
            if store::note_exists(client, owner_id, version)
                .await
                .map_err(StepError::retryable)?
            {
                return Ok(None);
            }
            let claim = Uuid::now_v7();
            let claimed = client
                .query_opt_cached(
                    "INSERT INTO chat_memory_leases (owner_id, version, claim, expires_at)
                     VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                     ON CONFLICT (owner_id, version) DO UPDATE
                        SET claim = EXCLUDED.claim, expires_at = EXCLUDED.expires_at
                        WHERE chat_memory_leases.expires_at <= now()
                     RETURNING claim",
                    &[&owner_id, &version, &claim, &self.lease.as_secs_f64()],
                )
                .await
                .context("claiming a memory note")
                .map_err(StepError::retryable)?;
            if claimed.is_some() {
                // The holder of an earlier lease may have stored the note (and ended its lease)
                // since the look above.
                if store::note_exists(client, owner_id, version)
                    .await
                    .map_err(StepError::retryable)?
                {
                    self.release(client, owner_id, version, claim).await;
                    return Ok(None);
                }
                return Ok(Some(claim));
            }
            if tokio::time::Instant::now() >= deadline {
                let left = client
                    .query_opt_cached(
                        "SELECT EXTRACT(EPOCH FROM expires_at - now())::float8
                         FROM chat_memory_leases WHERE owner_id = $1 AND version = $2",
                        &[&owner_id, &version],
                    )
                    .await
                    .context("reading a memory note's lease")
                    .map_err(StepError::retryable)?
                    .map_or(1.0, |row| row.get::<_, f64>(0));
                info!(
                    remaining_s = left,
                    "another delivery is writing this memory note"
                );
                return Err(StepError::Retryable {
                    error: anyhow::anyhow!("another delivery is writing this memory note"),
                    after: Some(Duration::from_secs_f64(
                        left.clamp(1.0, self.lease.as_secs_f64().max(1.0)),
                    )),
                });
            }
            tokio::time::sleep(HOLDER_POLL).await;
        }
    }

    /// Ends this delivery's lease, if it still holds it (best effort: a lease left behind just
    /// expires).
    async fn release(
        &self,
        client: &impl GenericClient,
        owner_id: Uuid,
        version: i32,
        claim: Uuid,
    ) {
        let released = client
            .execute_cached(
                "DELETE FROM chat_memory_leases WHERE owner_id = $1 AND version = $2 AND claim = $3",
                &[&owner_id, &version, &claim],
            )
            .await;
        if let Err(error) = released {
            warn!(
                error = platform::telemetry::describe(&anyhow::Error::new(error)),
                "could not end a memory note's lease"
            );
        }
    }

    /// One attempt under `claim`: the earlier note and the exchanges after it, the LLM (or the
    /// extractive fold), and the note stored together with the end of the lease.
    async fn fold(
        &self,
        client: &mut deadpool_postgres::Object,
        owner_id: Uuid,
        version: i32,
        claim: Uuid,
        receive_count: u32,
    ) -> Result<(), StepError> {
        let upto = version * MEMORY_EVERY;
        let base = store::latest_note(&*client, owner_id, Some(version))
            .await
            .map_err(StepError::retryable)?;
        let previous = base
            .as_ref()
            .map(|note| self.open(owner_id, note.id, &note.sealed))
            .transpose()
            .map_err(StepError::retryable)?;
        let after = base.as_ref().map_or(0, |note| note.covers_upto);
        let turns = store::exchanges_between(&*client, owner_id, after, upto)
            .await
            .map_err(StepError::retryable)?
            .into_iter()
            .map(|stored| {
                Ok(Turn {
                    speaker: match stored.role {
                        Role::User => Speaker::User,
                        Role::Persona => Speaker::Persona,
                    },
                    text: self.open(owner_id, stored.id, &stored.sealed)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(StepError::retryable)?;

        let (text, written_by) = match self.written_by_llm(previous.as_deref(), &turns).await {
            Ok(Some(text)) => (text, "llm"),
            Ok(None) => (fold_extractive(previous.as_deref(), &turns), "extractive"),
            Err(LlmError::Transient(reason)) if receive_count < LLM_ATTEMPTS => {
                return Err(StepError::retryable(anyhow::anyhow!(
                    "transient LLM failure: {reason}"
                )));
            }
            Err(error) => {
                warn!(error = %error, "the LLM could not write the memory note; extractive instead");
                (
                    fold_extractive(previous.as_deref(), &turns),
                    "extractive_fallback",
                )
            }
        };
        let id = Uuid::now_v7();
        let sealed = self
            .cipher
            .seal(owner_id, id, text.as_bytes())
            .context("sealing a memory note")
            .map_err(StepError::retryable)?;
        let note = store::StoredNote {
            id,
            version,
            covers_upto: upto,
            sealed,
        };
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")
            .map_err(StepError::retryable)?;
        let stored = store::insert_note(&tx, owner_id, &note, written_by)
            .await
            .map_err(StepError::retryable)?;
        tx.execute_cached(
            "DELETE FROM chat_memory_leases WHERE owner_id = $1 AND version = $2 AND claim = $3",
            &[&owner_id, &version, &claim],
        )
        .await
        .context("ending a memory note's lease")
        .map_err(StepError::retryable)?;
        tx.commit()
            .await
            .context("committing a memory note")
            .map_err(StepError::retryable)?;
        info!(stored, written_by, "memory note folded");
        Ok(())
    }

    /// The LLM's note (`None` offline); an empty answer counts as none.
    async fn written_by_llm(
        &self,
        previous: Option<&str>,
        turns: &[Turn],
    ) -> Result<Option<String>, LlmError> {
        let mut input = format!(
            "Previous note:\n{}\n\nNew conversation:\n",
            previous.unwrap_or("(none)")
        );
        for turn in turns {
            let who = match turn.speaker {
                Speaker::User => "User",
                Speaker::Persona => "Persona",
            };
            input.push_str(&format!("{who}: {}\n", turn.text));
        }
        let written = self.llm.complete(INSTRUCTIONS, &input, 400).await?;
        Ok(written
            .map(|text| clip(&text))
            .filter(|text| !text.is_empty()))
    }

    fn open(
        &self,
        owner_id: Uuid,
        id: Uuid,
        sealed: &platform::crypto::Sealed,
    ) -> anyhow::Result<String> {
        let plaintext = self
            .cipher
            .open(owner_id, id, sealed)
            .context("opening a sealed chat text")?;
        String::from_utf8(plaintext).context("a sealed chat text that is not UTF-8")
    }
}

/// The offline note: the previous note's lines, then the first sentence of each new user
/// message (what the user shared; at most 140 characters each, very short ones skipped), one
/// line each without repeats; the oldest lines go first when the note outgrows
/// [`MAX_NOTE_CHARS`]. Deterministic.
pub fn fold_extractive(previous: Option<&str>, turns: &[Turn]) -> String {
    let mut lines: Vec<String> = previous
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    for turn in turns.iter().filter(|turn| turn.speaker == Speaker::User) {
        let Some(snippet) = snippet(&turn.text) else {
            continue;
        };
        let line = format!("- {snippet}");
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    while !lines.is_empty() && lines.join("\n").chars().count() > MAX_NOTE_CHARS {
        lines.remove(0);
    }
    lines.join("\n")
}

/// The first sentence of `text`, if it says something (two words at least).
fn snippet(text: &str) -> Option<String> {
    let sentence = text
        .split_inclusive(['.', '!', '?', '\n', '。'])
        .map(str::trim)
        .find(|sentence| !sentence.is_empty())?;
    if sentence.split_whitespace().count() < 2 || sentence.chars().count() < 8 {
        return None;
    }
    Some(cut(sentence, 140))
}

/// `text` cut to `max` characters between words (with an ellipsis when cut).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max - 1).collect();
    let head = match head.rfind(char::is_whitespace) {
        Some(space) if space > 0 => head[..space].trim_end().to_owned(),
        _ => head,
    };
    format!("{head}…")
}

/// A model-written note, made safe to store: no control characters (newlines kept), at most
/// [`MAX_NOTE_CHARS`] characters.
fn clip(text: &str) -> String {
    let clean: String = text
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    cut(&clean, MAX_NOTE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Turn {
        Turn {
            speaker: Speaker::User,
            text: text.into(),
        }
    }

    fn persona(text: &str) -> Turn {
        Turn {
            speaker: Speaker::Persona,
            text: text.into(),
        }
    }

    #[test]
    fn the_note_keeps_what_the_user_shared_first_sentences_only() {
        let turns = [
            user("I adopted a cat named Mochi. She is tiny!"),
            persona("Aww, Mochi sounds wonderful!"),
            user("ok"),
            user("제주도에서 한 달 살기를 계획하고 있어. 설레!"),
        ];
        let note = fold_extractive(None, &turns);
        assert_eq!(
            note,
            "- I adopted a cat named Mochi.\n- 제주도에서 한 달 살기를 계획하고 있어."
        );
        assert_eq!(note, fold_extractive(None, &turns), "deterministic");
    }

    #[test]
    fn a_full_note_drops_its_oldest_lines_and_stays_under_the_limit() {
        let mut note: Option<String> = None;
        for round in 0..30 {
            let turns: Vec<Turn> = (0..10)
                .map(|i| {
                    user(&format!(
                        "In round {round} I told you fact number {i} about my life"
                    ))
                })
                .collect();
            note = Some(fold_extractive(note.as_deref(), &turns));
        }
        let note = note.unwrap();
        assert!(note.chars().count() <= MAX_NOTE_CHARS);
        assert!(note.ends_with("round 29 I told you fact number 9 about my life"));
        assert!(!note.contains("round 0 "));
    }

    #[test]
    fn long_sentences_and_model_notes_are_cut_between_words() {
        let long = format!("{} end.", "word ".repeat(100));
        let line = snippet(&long).unwrap();
        assert!(
            line.chars().count() <= 140 && line.ends_with("word…"),
            "{line}"
        );
        assert!(clip(&"x ".repeat(1000)).chars().count() <= MAX_NOTE_CHARS);
    }
}
