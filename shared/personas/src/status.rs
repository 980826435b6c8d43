//! The persona status read model in DynamoDB: one item per owner, rewritten by this crate after
//! every transition of the owner's newest version, read by the polling route without touching
//! PostgreSQL. Writes carry a sequence number and only a higher one replaces the item, so a late
//! or duplicate writer can never move the status backwards. Only this crate writes it.

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::personas::{PersonaState, PersonaStatus, StatusError, Step, StepState, StepStatus};
use platform::aws::Table;
use uuid::Uuid;

use crate::versions::PersonaVersion;

#[derive(Debug, Clone)]
pub struct StatusStore {
    pub table: Table,
}

fn key(owner_id: Uuid) -> AttributeValue {
    AttributeValue::S(platform::ownership::status_partition(owner_id))
}

impl StatusStore {
    /// Writes `status` if `sequence` is newer than what is stored; returns whether it did. The
    /// answer count ([`StatusStore::set_new_responses`]) is kept.
    pub(crate) async fn put(
        &self,
        owner_id: Uuid,
        sequence: i64,
        status: &PersonaStatus,
    ) -> anyhow::Result<bool> {
        let outcome = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("pk", key(owner_id))
            .key("sk", AttributeValue::S("current".into()))
            .update_expression("SET seq = :seq, doc = :doc")
            .condition_expression("attribute_not_exists(pk) OR seq < :seq")
            .expression_attribute_values(":seq", AttributeValue::N(sequence.to_string()))
            .expression_attribute_values(":doc", AttributeValue::S(serde_json::to_string(status)?))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(error).context("writing the persona status"),
        }
    }

    /// Records how many answers no persona version has seen (after each answer, and 0 when a
    /// version is made). Two answers racing may write out of order; the next answer corrects
    /// it. No status yet (its first write failed): nothing to add the count to.
    pub(crate) async fn set_new_responses(
        &self,
        owner_id: Uuid,
        new_responses: u32,
    ) -> anyhow::Result<()> {
        let outcome = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("pk", key(owner_id))
            .key("sk", AttributeValue::S("current".into()))
            .update_expression("SET new_responses = :n")
            .condition_expression("attribute_exists(doc)")
            .expression_attribute_values(":n", AttributeValue::N(new_responses.to_string()))
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(error).context("writing the answer count to the status"),
        }
    }

    /// The current status (with its answer count) and its sequence number.
    pub async fn get(&self, owner_id: Uuid) -> anyhow::Result<Option<(PersonaStatus, i64)>> {
        let item = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            // A poll after a write must see it (and never an older status and ETag after a
            // newer one), so reads are strongly consistent.
            .consistent_read(true)
            .key("pk", key(owner_id))
            .key("sk", AttributeValue::S("current".into()))
            .send()
            .await
            .context("reading the persona status")?
            .item;
        let Some(item) = item else { return Ok(None) };
        let doc = item
            .get("doc")
            .and_then(|v| v.as_s().ok())
            .context("status without doc")?;
        let seq = item
            .get("seq")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .context("status without seq")?;
        let new_responses = item
            .get("new_responses")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let status: PersonaStatus = serde_json::from_str(doc)?;
        Ok(Some((status.with_new_responses(new_responses), seq)))
    }
}

/// What clients see while polling, derived from the row.
pub fn status_of(row: &PersonaVersion) -> PersonaStatus {
    use PersonaState::*;
    let failed_at = |step: &str| row.state == Failed && row.failed_step.as_deref() == Some(step);
    let synthesize = match row.state {
        Queued => StepState::Pending,
        Synthesizing => StepState::Running,
        _ if failed_at("synthesize") => StepState::Failed,
        _ => StepState::Done,
    };
    let render = match row.state {
        Queued | Synthesizing => StepState::Pending,
        Rendering => StepState::Running,
        Ready => StepState::Done,
        _ if failed_at("render_card") => StepState::Failed,
        _ => StepState::Pending,
    };
    let step = match row.state {
        Queued | Synthesizing => Some(Step::Synthesize),
        Rendering => Some(Step::RenderCard),
        Failed if row.failed_step.as_deref() == Some("render_card") => Some(Step::RenderCard),
        Failed => Some(Step::Synthesize),
        _ => None,
    };
    let attempt = match step {
        Some(Step::Synthesize) => row.synthesize_attempts,
        Some(Step::RenderCard) => row.render_attempts,
        None => 0,
    };
    PersonaStatus {
        state: row.state,
        step,
        attempt: attempt.max(0) as u32,
        steps: vec![
            StepStatus {
                name: Step::Synthesize,
                status: synthesize,
                started_at: row.synthesize_started_at,
                finished_at: row.synthesize_finished_at,
                attempts: row.synthesize_attempts.max(0) as u32,
            },
            StepStatus {
                name: Step::RenderCard,
                status: render,
                started_at: row.render_started_at,
                finished_at: row.render_finished_at,
                attempts: row.render_attempts.max(0) as u32,
            },
        ],
        error: (row.state == Failed).then(|| StatusError {
            code: row.error_code.clone().unwrap_or_else(|| "failed".into()),
            retryable: row.error_retryable.unwrap_or(true),
        }),
        persona_id: Some(row.id),
        version: Some(row.version),
        // Filled in from the read model's answer count when the status is read.
        new_responses: 0,
        responses_needed: domain::personas::responses_needed(0),
    }
}
