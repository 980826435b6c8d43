//! Fixed-window rate limits, counted in DynamoDB so every Lambda instance shares them.
//!
//! One `UpdateItem ... ADD` per request (atomic, one round trip); the counter item expires by
//! TTL after its window. Subjects are user ids or keyed hashes of addresses, never raw addresses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

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

/// Counts one request of `subject` against `policy`; 429 with `Retry-After` past the limit.
pub async fn check(state: &AppState, policy: Policy, subject: &str) -> Result<(), ApiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let window = policy.window.as_secs().max(1);
    let window_start = now - now % window;
    let window_end = window_start + window;
    let output = state
        .aws
        .dynamodb
        .update_item()
        .table_name(&state.config.table_name)
        .key(
            "pk",
            AttributeValue::S(format!("rate#{}#{subject}#{window_start}", policy.name)),
        )
        .key("sk", AttributeValue::S("rate".into()))
        .update_expression("ADD #count :one SET expires_at = if_not_exists(expires_at, :expires)")
        .expression_attribute_names("#count", "count")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":expires", AttributeValue::N((window_end + 60).to_string()))
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
        return Err(ApiError::TooManyRequests {
            retry_after_secs: (window_end - now).max(1),
        });
    }
    Ok(())
}
