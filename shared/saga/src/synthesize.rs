//! Step 1: decrypt and aggregate the answers, compute the stats, have the LLM (or the
//! rule-based writer) write the text, and move the persona to `rendering` with the render
//! message in the outbox, in one transaction.
//!
//! Transient LLM failures come back through SQS after an exponential, jittered visibility delay,
//! at most one LLM attempt per receive; after the last one the rule-based text is used and
//! labelled `rule_based_fallback`. Permanent failures fail the persona with a reason.

use std::{sync::Arc, time::Duration};

use platform::db::CachedStatements;

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::{
    personas::{PersonaState, Step, SynthesizeJob},
    surveys::{question_bank, Answers},
    synthesis::{aggregate, rule_based, Brief},
};
use llm::{LlmError, Written};
use personas::{PersonaVersion, Personas};
use platform::{
    aws::AwsClients,
    crypto::{CryptoError, Sealed, Sealer},
    worker::{process_batch, Message, SqsQueueOps, StepError, MAX_RECEIVES},
};
use secrecy::ExposeSecret;
use tracing::{error, info, warn, Instrument};

use crate::{FaultPoint, Faults, SynthesizeConfig};

/// How old a `synthesizing` attempt must be before another delivery may take it over: the
/// synthesize queue's visibility timeout (template.yaml; a test checks they agree). Until then
/// the attempt's worker may still be running.
pub const REENTRY_AFTER: Duration = Duration::from_secs(360);

/// LLM attempts before the labelled rule-based fallback (one per SQS receive).
pub const LLM_ATTEMPTS: i32 = 3;
/// Label of text written by the fallback after the LLM kept failing.
pub const RULE_BASED_FALLBACK: &str = "rule_based_fallback";

/// The synthesize function: everything step 1 needs, built once per cold start.
#[derive(Clone)]
pub struct SynthesizeWorker {
    pub personas: Personas,
    pub cipher: Arc<Sealer>,
    pub llm: llm::Provider,
    pub queue: SqsQueueOps,
    /// First delay of the retry backoff of transient LLM failures.
    pub retry_base: Duration,
    /// See [`REENTRY_AFTER`].
    pub reentry_after: Duration,
    pub faults: Faults,
}

impl SynthesizeWorker {
    pub fn new(config: SynthesizeConfig, aws: &AwsClients) -> anyhow::Result<Self> {
        let llm = llm::Provider::connect(
            config.llm.base_url.as_deref(),
            config.llm.api_key.as_ref().map(|key| key.expose_secret()),
            &config.llm.models,
            config.llm.timeout,
        )?;
        Ok(Self {
            personas: crate::personas(
                &config.database,
                &config.table_name,
                config.publishes.clone(),
                aws,
            )?,
            cipher: Arc::new(Sealer::new(&config.answer_keys)?),
            llm,
            queue: crate::queue_ops("synthesize", &config.queue, aws),
            retry_base: config.llm.retry_base,
            reentry_after: REENTRY_AFTER,
            faults: Faults::none(),
        })
    }

    /// The function's handler: one SQS batch, only failed ids reported.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        process_batch(event, &self.queue, |message| self.synthesize(message)).await
    }

    pub async fn synthesize(&self, message: Message<SynthesizeJob>) -> Result<(), StepError> {
        let span =
            tracing::info_span!("step", persona_id = %message.body.persona_id, step = "synthesize");
        self.synthesize_step(message).instrument(span).await
    }

    async fn synthesize_step(&self, message: Message<SynthesizeJob>) -> Result<(), StepError> {
        let id = message.body.persona_id;
        let personas = &self.personas;
        let Some((client, row)) = personas.load_for_step(id).await? else {
            return Ok(());
        };
        let stale_run = message
            .body
            .generation
            .is_some_and(|generation| generation != row.synthesize_generation);
        if stale_run || !matches!(row.state, PersonaState::Queued | PersonaState::Synthesizing) {
            info!(persona_id = %id, state = row.state.as_str(), stale_run, "nothing to synthesize");
            return personas.repair_status(&row).await;
        }
        // An attempt starts from `queued`; a `synthesizing` row is re-entered only once its
        // attempt is older than the queue's visibility timeout (its worker died: the message came
        // back). A duplicate delivery while the attempt runs must not call the LLM a second time.
        let Some(row) = personas
            .start_synthesis(&client, &row, self.reentry_after)
            .await?
        else {
            return self.running_elsewhere(&client, id).await;
        };
        drop(client);
        let outcome = self
            .attempt(&row, message.request_id.as_deref(), message.receive_count)
            .await;
        match outcome {
            // The attempt is over without a result: back to `queued`, so the retry (after its
            // backoff) starts a new attempt instead of waiting out the re-entry window.
            Err(StepError::Retryable { error, after }) => {
                personas.release_synthesis(&row).await;
                Err(StepError::Retryable { error, after })
            }
            outcome => outcome,
        }
    }

    /// The start failed: another delivery moved the row, or an attempt is running. In the
    /// second case come back when that attempt would count as dead.
    async fn running_elsewhere(
        &self,
        client: &deadpool_postgres::Object,
        id: uuid::Uuid,
    ) -> Result<(), StepError> {
        let Some(remaining) = self
            .personas
            .attempt_time_left(client, id, self.reentry_after)
            .await?
        else {
            info!(persona_id = %id, "another delivery moved the persona first");
            return Ok(());
        };
        info!(persona_id = %id, remaining_s = remaining.as_secs_f64(), "an attempt is running; this delivery waits");
        Err(StepError::Retryable {
            error: anyhow::anyhow!("a synthesis attempt is already running"),
            after: Some(remaining),
        })
    }

    /// One attempt: the answers, the LLM (or the rule-based writer), the commit.
    async fn attempt(
        &self,
        row: &PersonaVersion,
        request_id: Option<&str>,
        receive_count: u32,
    ) -> Result<(), StepError> {
        let id = row.id;
        let personas = &self.personas;
        let brief = match self.brief(row).await {
            Ok(brief) => brief,
            Err(BriefError::Retryable(error)) => return Err(StepError::retryable(error)),
            Err(BriefError::Unreadable(code)) => {
                warn!(persona_id = %id, code, "the answers cannot be read; the persona fails");
                return personas.fail(row, Step::Synthesize, code, false).await;
            }
        };
        let attempt = row.synthesize_attempts;
        let written = match self.llm.write(&brief, attempt.max(1) as u32).await {
            Ok(written) => match written.text.check_publishable() {
                Ok(()) => written,
                Err(refused) => {
                    // Most likely an instruction hidden in a friend's answer that the model
                    // obeyed: publish the labelled rule-based text instead.
                    warn!(persona_id = %id, reason = refused.0, "LLM text not publishable; using the rule-based text");
                    platform::metrics::counter!("synthesis_fallbacks", "reason" => "unpublishable")
                        .increment(1);
                    Written {
                        text: rule_based(&brief),
                        synthesized_by: RULE_BASED_FALLBACK.to_owned(),
                    }
                }
            },
            Err(LlmError::Transient(reason)) if attempt < LLM_ATTEMPTS => {
                warn!(persona_id = %id, attempt, reason, "transient LLM failure; retrying later");
                return Err(StepError::Retryable {
                    error: anyhow::anyhow!("transient LLM failure: {reason}"),
                    after: Some(backoff(self.retry_base, attempt)),
                });
            }
            Err(LlmError::Transient(reason)) => {
                warn!(persona_id = %id, attempt, reason, "LLM kept failing; using the labelled rule-based text");
                platform::metrics::counter!("synthesis_fallbacks", "reason" => "llm_failing")
                    .increment(1);
                Written {
                    text: rule_based(&brief),
                    synthesized_by: RULE_BASED_FALLBACK.to_owned(),
                }
            }
            Err(LlmError::Unauthorized(status)) => {
                // Ops must fix the key; retry until the message's receives run out, then it is
                // dead-lettered with the reason and the sweeper fails the persona (retryable:
                // the owner, or ops, retry once the key works).
                error!(persona_id = %id, error_code = "llm_unauthorized", status, "the LLM provider refused our key");
                if receive_count >= MAX_RECEIVES {
                    return Err(StepError::permanent("llm_unauthorized"));
                }
                return Err(StepError::Retryable {
                    error: anyhow::anyhow!("llm_unauthorized"),
                    after: Some(backoff(self.retry_base, attempt)),
                });
            }
            Err(LlmError::Permanent(reason)) => {
                warn!(persona_id = %id, reason, "permanent LLM failure; the persona fails");
                return personas
                    .fail(row, Step::Synthesize, &format!("llm_{reason}"), false)
                    .await;
            }
        };
        self.faults.at(FaultPoint::AfterLlmBeforeCommit, id)?;

        // The answers this version was built from, which may be more than were in when it was
        // requested: the next version must be at least three answers past these (privacy).
        let used = i32::try_from(brief.response_count)
            .context("answer count")
            .map_err(StepError::retryable)?;
        let Some(committed) = personas
            .commit_synthesis(
                row,
                &written.text,
                &written.synthesized_by,
                brief.stats,
                used,
                request_id,
            )
            .await
            .map_err(StepError::retryable)?
        else {
            info!(persona_id = %id, "another delivery finished synthesis first");
            return Ok(());
        };
        info!(persona_id = %id, synthesized_by = written.synthesized_by, "synthesized");
        let by = match written.synthesized_by.as_str() {
            RULE_BASED_FALLBACK => "rule_based_fallback",
            llm::RULE_BASED => "rule_based",
            _ => "llm",
        };
        platform::metrics::counter!("personas_synthesized", "by" => by).increment(1);
        self.faults.at(FaultPoint::AfterSynthesisCommit, id)?;
        personas.announce(&committed).await
    }

    /// Decrypts and aggregates the survey's answers.
    async fn brief(&self, row: &PersonaVersion) -> Result<Brief, BriefError> {
        let client = self.personas.connection().await?;
        let survey = client
            .query_one_cached(
                "SELECT s.question_bank_version, u.display_name FROM surveys s
                 JOIN users u ON u.id = s.owner_id WHERE s.id = $1",
                &[&row.survey_id],
            )
            .await
            .context("reading the survey")?;
        let bank =
            question_bank(survey.get(0)).ok_or(BriefError::Unreadable("question_bank_unknown"))?;
        let rows = client
            .query_cached(
                "SELECT id, key_id, nonce, ciphertext FROM survey_responses WHERE survey_id = $1",
                &[&row.survey_id],
            )
            .await
            .context("reading the answers")?;
        let mut responses: Vec<Answers> = Vec::with_capacity(rows.len());
        for response in rows {
            let sealed = Sealed {
                key_id: response.get(1),
                nonce: response.get(2),
                ciphertext: response.get(3),
            };
            // No retry can bring back a key that is no longer configured or a ciphertext that
            // does not open: fail with a reason instead of retrying for half an hour.
            let plaintext = self
                .cipher
                .open(row.survey_id, response.get(0), &sealed)
                .map_err(|error| match error {
                    CryptoError::UnknownKey(_) => BriefError::Unreadable("answer_key_unknown"),
                    _ => BriefError::Unreadable("answer_unreadable"),
                })?;
            responses.push(
                serde_json::from_slice(&plaintext)
                    .map_err(|_| BriefError::Unreadable("answer_unreadable"))?,
            );
        }
        Ok(aggregate(bank, survey.get::<_, &str>(1), &responses))
    }
}

/// Why the answers could not be turned into a brief.
#[derive(Debug, thiserror::Error)]
enum BriefError {
    /// The database was unreachable or similar: try again.
    #[error(transparent)]
    Retryable(#[from] anyhow::Error),
    /// The answers can never be read (their key is gone, they do not open): the persona fails
    /// with this code.
    #[error("the answers cannot be read: {0}")]
    Unreadable(&'static str),
}

/// Exponential backoff with full jitter: a random delay up to `base · 2^(attempt-1)`, at least a
/// quarter of it, capped at 5 minutes.
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let ceiling = base
        .saturating_mul(1 << (attempt.clamp(1, 10) - 1))
        .min(Duration::from_secs(300));
    let random = u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    let fraction = 0.25 + 0.75 * (random as f64 / u64::MAX as f64);
    ceiling.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_its_bounds() {
        let base = Duration::from_secs(2);
        for attempt in 1..=5 {
            let ceiling = base * (1 << (attempt - 1));
            for _ in 0..50 {
                let delay = backoff(base, attempt);
                assert!(
                    delay <= ceiling && delay >= ceiling / 4,
                    "{attempt}: {delay:?}"
                );
            }
        }
        assert!(backoff(Duration::from_secs(60), 10) <= Duration::from_secs(300));
    }
}
