//! Step 1: decrypt and aggregate the answers, compute the stats, have the LLM (or the
//! rule-based writer) write the text, and move the persona to `rendering` with the render
//! message in the outbox, in one transaction.
//!
//! Transient LLM failures come back through SQS after an exponential, jittered visibility delay,
//! at most one LLM attempt per receive; after the last one the rule-based text is used and
//! labelled `rule_based_fallback`. Permanent failures fail the persona with a reason.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use domain::{
    personas::{PersonaState, SynthesizeJob},
    surveys::{question_bank, Answers},
    synthesis::{aggregate, rule_based, Brief},
};
use llm::{LlmError, Written};
use personas::{queue_step, rows, PersonaRow, Personas};
use platform::{
    aws::AwsClients,
    crypto::{AnswerCipher, Sealed},
    worker::{process_batch, Message, SqsQueueOps, StepError},
    SynthesizeConfig,
};
use secrecy::ExposeSecret;
use tracing::{info, warn, Instrument};

use crate::{FaultPoint, Faults};

/// LLM attempts before the labelled rule-based fallback (one per SQS receive).
pub const LLM_ATTEMPTS: i32 = 3;
/// Label of text written by the fallback after the LLM kept failing.
pub const RULE_BASED_FALLBACK: &str = "rule_based_fallback";

/// The synthesize function: everything step 1 needs, built once per cold start.
#[derive(Clone)]
pub struct SynthesizeWorker {
    pub personas: Personas,
    pub cipher: Arc<AnswerCipher>,
    pub llm: llm::Provider,
    pub queue: SqsQueueOps,
    /// First delay of the retry backoff of transient LLM failures.
    pub retry_base: Duration,
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
            cipher: Arc::new(AnswerCipher::new(&config.answer_keys)?),
            llm,
            queue: crate::queue_ops(&config.queue, aws),
            retry_base: config.llm.retry_base,
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
        let (client, row) = personas.load_for_step(id).await?;
        if !matches!(row.state, PersonaState::Queued | PersonaState::Synthesizing) {
            info!(persona_id = %id, state = row.state.as_str(), "already past synthesis; nothing to do");
            // A crash after the commit may have skipped the status write; it is idempotent.
            return personas.write_final_status(&row).await;
        }
        let Some(row) = rows::transition(
            &client,
            "UPDATE personas SET state = 'synthesizing', state_version = state_version + 1,
                 synthesize_attempts = synthesize_attempts + 1,
                 synthesize_started_at = COALESCE(synthesize_started_at, now()), updated_at = now()
             WHERE id = $1 AND state = $2 AND state_version = $3",
            &[&id, &row.state.as_str(), &row.state_version],
        )
        .await
        .map_err(StepError::retryable)?
        else {
            info!(persona_id = %id, "another delivery moved the persona first");
            return Ok(());
        };
        drop(client);
        personas.write_progress(&row).await;

        let brief = self.brief(&row).await.map_err(StepError::retryable)?;
        let attempt = row.synthesize_attempts;
        let written = match self.llm.write(&brief, attempt.max(1) as u32).await {
            Ok(written) => written,
            Err(LlmError::Transient(reason)) if attempt < LLM_ATTEMPTS => {
                warn!(persona_id = %id, attempt, reason, "transient LLM failure; retrying later");
                return Err(StepError::Retryable {
                    error: anyhow::anyhow!("transient LLM failure: {reason}"),
                    after: Some(backoff(self.retry_base, attempt)),
                });
            }
            Err(LlmError::Transient(reason)) => {
                warn!(persona_id = %id, attempt, reason, "LLM kept failing; using the labelled rule-based text");
                Written {
                    text: rule_based(&brief),
                    synthesized_by: RULE_BASED_FALLBACK.to_owned(),
                }
            }
            Err(LlmError::Permanent(reason)) => {
                warn!(persona_id = %id, reason, "permanent LLM failure; the persona fails");
                personas
                    .fail(&row, "synthesize", &format!("llm_{reason}"), false)
                    .await?;
                return Ok(());
            }
        };
        self.faults.at(FaultPoint::AfterLlmBeforeCommit)?;

        let Some((moved, outbox_id)) = self
            .commit(&row, &brief, &written, message.request_id.as_deref())
            .await
            .map_err(StepError::retryable)?
        else {
            info!(persona_id = %id, "another delivery finished synthesis first");
            return Ok(());
        };
        info!(persona_id = %id, synthesized_by = written.synthesized_by, "synthesized");
        self.faults.at(FaultPoint::AfterSynthesisCommit)?;
        personas.publisher.publish(&personas.db, &[outbox_id]).await;
        personas.write_final_status(&moved).await
    }

    /// Stores the text and stats and queues the render step, in one transaction; `None` when
    /// another delivery got there first.
    async fn commit(
        &self,
        row: &PersonaRow,
        brief: &Brief,
        written: &Written,
        request_id: Option<&str>,
    ) -> anyhow::Result<Option<(PersonaRow, uuid::Uuid)>> {
        let mut client = self.personas.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let stats = brief.stats;
        let traits = serde_json::to_value(&written.text.traits)?;
        let archetype = serde_json::to_value(written.text.archetype)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let moved = rows::transition(
            &tx,
            "UPDATE personas SET state = 'rendering', state_version = state_version + 1,
                 name = $3, archetype = $4, traits = $5, greeting = $6, system_prompt = $7,
                 charisma = $8, intellect = $9, kindness = $10, energy = $11, synthesized_by = $12,
                 render_generation = render_generation + 1, synthesize_finished_at = now(),
                 updated_at = now()
             WHERE id = $1 AND state = 'synthesizing' AND state_version = $2",
            &[
                &row.id,
                &row.state_version,
                &written.text.name,
                &archetype,
                &traits,
                &written.text.greeting,
                &written.text.system_prompt,
                &i16::from(stats.charisma),
                &i16::from(stats.intellect),
                &i16::from(stats.kindness),
                &i16::from(stats.energy),
                &written.synthesized_by,
            ],
        )
        .await?;
        let Some(moved) = moved else {
            return Ok(None);
        };
        let outbox_id = queue_step(&tx, &moved, request_id)
            .await
            .context("queuing the render step")?;
        tx.commit().await.context("committing the synthesis")?;
        Ok(Some((moved, outbox_id)))
    }

    /// Decrypts and aggregates the survey's answers.
    async fn brief(&self, row: &PersonaRow) -> anyhow::Result<Brief> {
        let client = self.personas.connection().await?;
        let survey = client
            .query_one(
                "SELECT s.question_bank_version, u.display_name FROM surveys s
                 JOIN users u ON u.id = s.owner_id WHERE s.id = $1",
                &[&row.survey_id],
            )
            .await
            .context("reading the survey")?;
        let bank = question_bank(survey.get(0)).context("unknown question bank version")?;
        let rows = client
            .query(
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
            let plaintext = self
                .cipher
                .open(row.survey_id, response.get(0), &sealed)
                .context("opening an answer")?;
            responses.push(serde_json::from_slice(&plaintext).context("decoding an answer")?);
        }
        Ok(aggregate(&bank, survey.get::<_, &str>(1), &responses))
    }
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
