//! The persona status read model in DynamoDB: one item per owner, rewritten on every saga
//! transition, read by the polling route without touching PostgreSQL. Writes carry a sequence
//! number and only a higher one replaces the item, so a late or duplicate writer can never move
//! the status backwards.

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::personas::PersonaStatus;

use crate::aws::Table;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct StatusStore {
    pub table: Table,
}

fn key(owner_id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("persona-status#{owner_id}"))
}

impl StatusStore {
    /// Writes `status` if `sequence` is newer than what is stored; returns whether it did.
    pub async fn put(
        &self,
        owner_id: Uuid,
        sequence: i64,
        status: &PersonaStatus,
    ) -> anyhow::Result<bool> {
        let outcome = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item("pk", key(owner_id))
            .item("sk", AttributeValue::S("current".into()))
            .item("seq", AttributeValue::N(sequence.to_string()))
            .item("doc", AttributeValue::S(serde_json::to_string(status)?))
            .condition_expression("attribute_not_exists(pk) OR seq < :seq")
            .expression_attribute_values(":seq", AttributeValue::N(sequence.to_string()))
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

    /// The current status and its sequence number.
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
        Ok(Some((serde_json::from_str(doc)?, seq)))
    }
}
