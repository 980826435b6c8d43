//! Fixed-window rate limits, counted in DynamoDB so every Lambda instance shares them.
//!
//! One `UpdateItem ... ADD` per request (atomic, one round trip); the counter item expires by
//! TTL after its window. Subjects are user ids or keyed hashes of addresses, never raw addresses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};

use crate::{ApiError, AppState};

/// A limit: at most `limit` requests per `window` per subject.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub name: &'static str,
    pub limit: u32,
    pub window: Duration,
}

/// Sign-in, refresh, logout: 10 per minute per address (SPEC "Operations").
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

struct Window {
    pk: String,
    end: u64,
    now: u64,
}

fn window(policy: Policy, subject: &str) -> Window {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let length = policy.window.as_secs().max(1);
    let start = now - now % length;
    Window {
        pk: format!("rate#{}#{subject}#{start}", policy.name),
        end: start + length,
        now,
    }
}

impl Window {
    fn rejection(&self) -> ApiError {
        ApiError::TooManyRequests {
            retry_after_secs: (self.end - self.now).max(1),
        }
    }
}

/// The same count as [`check`], as an item of a DynamoDB transaction (so a route can count and
/// write its own items in one round trip). The item's condition fails past the limit; the
/// returned error is what to answer then.
pub fn transact_item(
    state: &AppState,
    policy: Policy,
    subject: &str,
) -> anyhow::Result<(TransactWriteItem, ApiError)> {
    let window = window(policy, subject);
    let update = Update::builder()
        .table_name(&state.config.table_name)
        .key("pk", AttributeValue::S(window.pk.clone()))
        .key("sk", AttributeValue::S("rate".into()))
        .update_expression("ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)")
        .condition_expression("attribute_not_exists(#count) OR #count < :limit")
        .expression_attribute_names("#count", "count")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":limit", AttributeValue::N(policy.limit.to_string()))
        .expression_attribute_values(":expires", AttributeValue::N((window.end + 60).to_string()))
        .build()?;
    Ok((
        TransactWriteItem::builder().update(update).build(),
        window.rejection(),
    ))
}

/// Counts one request of `subject` against `policy`; 429 with `Retry-After` past the limit.
pub async fn check(state: &AppState, policy: Policy, subject: &str) -> Result<(), ApiError> {
    let window = window(policy, subject);
    let output = state
        .aws
        .dynamodb
        .update_item()
        .table_name(&state.config.table_name)
        .key("pk", AttributeValue::S(window.pk.clone()))
        .key("sk", AttributeValue::S("rate".into()))
        .update_expression("ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)")
        .expression_attribute_names("#count", "count")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":expires", AttributeValue::N((window.end + 60).to_string()))
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
        return Err(window.rejection());
    }
    Ok(())
}
