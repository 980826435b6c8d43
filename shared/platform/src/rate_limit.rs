//! Fixed-window rate limits, counted in DynamoDB so every Lambda instance shares them.
//!
//! One `UpdateItem ... ADD` per request (atomic, one round trip); the counter item expires by
//! TTL after its window. Subjects are user ids or keyed hashes of addresses, never raw addresses;
//! every counter of a subject is in its partition (`ownership::rate_partition`), so erasing an
//! account deletes them all.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};

use crate::{aws::Table, clock::Clock};

/// A limit: at most `limit` requests per `window` per subject.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
}

/// Sign-in, refresh, logout: 10 per minute per address (docs/api.md, "Rate limits").
pub const AUTH: Policy = Policy {
    name: "auth",
    limit: 10,
    window: Duration::from_secs(60),
};

/// Survey creation: 5 per hour per user.
pub const SURVEY_CREATE: Policy = Policy {
    name: "survey-create",
    limit: 5,
    window: Duration::from_secs(3600),
};

/// Answer submission: 5 per minute per survey per address.
pub const ANSWER_SUBMIT: Policy = Policy {
    name: "answer-submit",
    limit: 5,
    window: Duration::from_secs(60),
};

/// Share reports: 30 per minute per user. A person shares a handful of times; more is a script
/// filling the table.
pub const SHARE_RECORD: Policy = Policy {
    name: "share-record",
    limit: 30,
    window: Duration::from_secs(60),
};

/// Reports on public personas: 10 per hour per user. Hiding needs distinct reporters, so more
/// from one user only fills the table.
pub const REPORT: Policy = Policy {
    name: "report",
    limit: 10,
    window: Duration::from_secs(3600),
};

/// Chat messages: 30 per minute per user (the daily quota of 200 is counted in PostgreSQL, per
/// day in the quest time zone).
pub const CHAT: Policy = Policy {
    name: "chat",
    limit: 30,
    window: Duration::from_secs(60),
};

/// Over the limit: try again after `retry_after_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited for {retry_after_secs} s")]
pub struct Limited {
    pub retry_after_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Limited(#[from] Limited),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Counts requests against policies.
#[derive(Clone)]
pub struct RateLimiter {
    pub table: Table,
    pub clock: Arc<dyn Clock>,
}

struct Window {
    pk: String,
    sk: String,
    end: u64,
    now: u64,
}

impl Window {
    fn rejection(&self) -> Limited {
        Limited {
            retry_after_secs: (self.end - self.now).max(1),
        }
    }
}

impl RateLimiter {
    fn window(&self, policy: Policy, subject: &str) -> Window {
        let now = self.clock.now().timestamp().max(0) as u64;
        let length = policy.window.as_secs().max(1);
        let start = now - now % length;
        Window {
            pk: crate::ownership::rate_partition(subject),
            sk: format!("{}#{start}", policy.name),
            end: start + length,
            now,
        }
    }

    /// The same count as [`RateLimiter::check`], as an item of a DynamoDB transaction (so a use
    /// case can count and write its own items in one round trip). The item's condition fails
    /// past the limit; the returned [`Limited`] is what to answer then.
    pub fn transact_item(
        &self,
        policy: Policy,
        subject: &str,
    ) -> anyhow::Result<(TransactWriteItem, Limited)> {
        let window = self.window(policy, subject);
        let update = Update::builder()
            .table_name(&self.table.name)
            .key("pk", AttributeValue::S(window.pk.clone()))
            .key("sk", AttributeValue::S(window.sk.clone()))
            .update_expression(
                "ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)",
            )
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(policy.limit.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window.end + 60).to_string()),
            )
            .build()?;
        Ok((
            TransactWriteItem::builder().update(update).build(),
            window.rejection(),
        ))
    }

    /// Counts one request of `subject` against `policy`; [`Limited`] past the limit.
    pub async fn check(&self, policy: Policy, subject: &str) -> Result<(), LimitError> {
        let window = self.window(policy, subject);
        let output = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key("pk", AttributeValue::S(window.pk.clone()))
            .key("sk", AttributeValue::S(window.sk.clone()))
            .update_expression(
                "ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)",
            )
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window.end + 60).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .context("counting a request against its rate limit")?;
        let count: u64 = output
            .attributes
            .as_ref()
            .and_then(|attributes| attributes.get("count"))
            .and_then(|value| value.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if count > u64::from(policy.limit) {
            tracing::info!(policy = policy.name, "rate limited");
            return Err(window.rejection().into());
        }
        Ok(())
    }
}
