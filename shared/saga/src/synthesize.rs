//! Step 1: decrypt and aggregate the answers, compute the stats, have the LLM (or the
//! rule-based writer) write the text, and move the persona to `rendering` with the render
//! message in the outbox, in one transaction.
//!
//! Transient LLM failures come back through SQS after an exponential, jittered visibility delay,
//! at most one LLM attempt per receive; after the last one the rule-based text is used and
//! labelled `rule_based_fallback`. Permanent failures fail the persona with a reason.

use std::time::Duration;

use anyhow::Context;
use domain::{
    personas::{PersonaState, SynthesizeJob},
    surveys::{question_bank, Answers},
    synthesis::{aggregate, rule_based, Brief},
};
use llm::{LlmError, Written};
use platform::{
    crypto::Sealed,
    worker::{Message, StepError},
};
use tracing::{info, warn, Instrument};

use crate::{personas, FaultPoint, RenderJob, Saga};

/// LLM attempts before the labelled rule-based fallback (one per SQS receive).
pub const LLM_ATTEMPTS: i32 = 3;
/// Label of text written by the fallback after the LLM kept failing.
pub const RULE_BASED_FALLBACK: &str = "rule_based_fallback";

fn retryable(error: anyhow::Error) -> StepError {
    StepError::retryable(error)
}

impl Saga {
    pub async fn synthesize(&self, message: Message<SynthesizeJob>) -> Result<(), StepError> {
        let span =
            tracing::info_span!("step", persona_id = %message.body.persona_id, step = "synthesize");
        self.synthesize_step(message).instrument(span).await
    }

    async fn synthesize_step(&self, message: Message<SynthesizeJob>) -> Result<(), StepError> {
        let id = message.body.persona_id;
        let client = self.client().await?;
        let Some(row) = personas::load(&client, id).await.map_err(retryable)? else {
            warn!(persona_id = %id, "synthesize message for an unknown persona");
            return Err(StepError::permanent("unknown_persona"));
        };
        if !matches!(row.state, PersonaState::Queued | PersonaState::Synthesizing) {
            info!(persona_id = %id, state = row.state.as_str(), "already past synthesis; nothing to do");
            // A crash after the commit may have skipped the status write; it is idempotent.
            return self.write_final_status(&row).await;
        }
        let Some(row) = personas::transition(
            &client,
            "UPDATE personas SET state = 'synthesizing', state_version = state_version + 1,
                 synthesize_attempts = synthesize_attempts + 1,
                 synthesize_started_at = COALESCE(synthesize_started_at, now()), updated_at = now()
             WHERE id = $1 AND state = $2 AND state_version = $3",
            &[&id, &row.state.as_str(), &row.state_version],
        )
        .await
        .map_err(retryable)?
        else {
            info!(persona_id = %id, "another delivery moved the persona first");
            return Ok(());
        };
        drop(client);
        self.write_progress(&row).await;

        let brief = self.brief(&row).await.map_err(retryable)?;
        let attempt = row.synthesize_attempts;
        let written = match self.llm.write(&brief, attempt.max(1) as u32).await {
            Ok(written) => written,
            Err(LlmError::Transient(reason)) if attempt < LLM_ATTEMPTS => {
                warn!(persona_id = %id, attempt, reason, "transient LLM failure; retrying later");
                return Err(StepError::Retryable {
                    error: anyhow::anyhow!("transient LLM failure: {reason}"),
                    after: Some(backoff(self.config.llm.retry_base, attempt)),
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
                self.fail(&row, "synthesize", &format!("llm_{reason}"), false)
                    .await?;
                return Ok(());
            }
        };
        self.faults.at(FaultPoint::AfterLlmBeforeCommit)?;

        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")
            .map_err(retryable)?;
        let stats = brief.stats;
        let traits = serde_json::to_value(&written.text.traits).map_err(|e| retryable(e.into()))?;
        let archetype = serde_json::to_value(written.text.archetype)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let moved = personas::transition(
            &tx,
            "UPDATE personas SET state = 'rendering', state_version = state_version + 1,
                 name = $3, archetype = $4, traits = $5, greeting = $6, system_prompt = $7,
                 charisma = $8, intellect = $9, kindness = $10, energy = $11, synthesized_by = $12,
                 render_generation = render_generation + 1, synthesize_finished_at = now(),
                 updated_at = now()
             WHERE id = $1 AND state = 'synthesizing' AND state_version = $2",
            &[
                &id,
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
        .await
        .map_err(retryable)?;
        let Some(moved) = moved else {
            info!(persona_id = %id, "another delivery finished synthesis first");
            return Ok(());
        };
        let outbox_id = uuid::Uuid::now_v7();
        let job = RenderJob {
            persona_id: id,
            generation: moved.render_generation,
        };
        tx.execute(
            "INSERT INTO outbox (id, queue, body, request_id) VALUES ($1, 'render', $2, $3)",
            &[
                &outbox_id,
                &serde_json::to_value(&job).map_err(|e| retryable(e.into()))?,
                &message.request_id,
            ],
        )
        .await
        .context("queuing the render step")
        .map_err(retryable)?;
        tx.commit()
            .await
            .context("committing the synthesis")
            .map_err(retryable)?;
        drop(client);
        info!(persona_id = %id, synthesized_by = written.synthesized_by, "synthesized");
        self.faults.at(FaultPoint::AfterSynthesisCommit)?;
        self.publisher.publish(&self.db, &[outbox_id]).await;
        self.write_final_status(&moved).await
    }

    /// Decrypts and aggregates the survey's answers.
    async fn brief(&self, row: &personas::PersonaRow) -> anyhow::Result<Brief> {
        let client = self.db.get().await.context("connecting to PostgreSQL")?;
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

    /// Marks the persona failed (CAS from its current state).
    pub async fn fail(
        &self,
        row: &personas::PersonaRow,
        step: &str,
        code: &str,
        retryable_error: bool,
    ) -> Result<(), StepError> {
        let client = self.client().await?;
        let failed = personas::transition(
            &client,
            "UPDATE personas SET state = 'failed', state_version = state_version + 1,
                 failed_step = $3, error_code = $4, error_retryable = $5, updated_at = now()
             WHERE id = $1 AND state_version = $2 AND state IN ('queued', 'synthesizing', 'rendering')",
            &[&row.id, &row.state_version, &step, &code, &retryable_error],
        )
        .await
        .map_err(retryable)?;
        match failed {
            Some(failed) => self.write_final_status(&failed).await,
            None => Ok(()),
        }
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
