//! Chat memory: every [`MEMORY_EVERY`] exchanges, the transaction that stores the tenth queues a
//! `summarize_chat` job (ids only) through the outbox; the `ChatMemoryFunction` worker folds the
//! newest earlier note and the exchanges after it into note version n, covering every exchange
//! up to number 10n, at most [`MAX_NOTE_CHARS`] characters, sealed like messages.
//!
//! The LLM writes the note when one is configured; offline the note is extractive and
//! deterministic ([`fold_extractive`]). Duplicate and reordered deliveries leave one note per
//! version (the primary key decides; a late job for an older version just fills its slot).
//! Undecodable jobs and jobs naming nothing real go to the dead-letter queue at once; they stay
//! there for ops (the sweeper drains only the saga's dead letters).

use std::sync::Arc;

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use deadpool_postgres::Pool;
use llm::{
    chat::{Speaker, Turn},
    LlmError, Provider,
};
use platform::{
    aws::AwsClients,
    crypto::Sealer,
    db,
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
}

impl MemoryWorker {
    pub fn new(config: ChatMemoryConfig, aws: &AwsClients) -> anyhow::Result<Self> {
        Ok(Self {
            db: db::pool(&config.database)?,
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
        let client = self
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
        if store::note_exists(&client, owner_id, version)
            .await
            .map_err(StepError::retryable)?
        {
            info!("memory note already written; nothing to do");
            return Ok(());
        }
        let base = store::latest_note(&client, owner_id, Some(version))
            .await
            .map_err(StepError::retryable)?;
        let previous = base
            .as_ref()
            .map(|note| self.open(owner_id, note.id, &note.sealed))
            .transpose()
            .map_err(StepError::retryable)?;
        let after = base.as_ref().map_or(0, |note| note.covers_upto);
        let turns = store::exchanges_between(&client, owner_id, after, upto)
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
            Err(LlmError::Transient(reason)) if message.receive_count < LLM_ATTEMPTS => {
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
        let stored = store::insert_note(&client, owner_id, &note, written_by)
            .await
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
