//! What an erase leaves in DynamoDB on purpose.
//!
//! - An **erasure mark** per erased user, checked on every authenticated request: an access token
//!   lives an hour and is verified without a database, so from the erase's response on, the mark
//!   is what refuses it (routes that never touch PostgreSQL, such as the status poll, included).
//!   Its key is a SHA-256 of the user id (the id itself is gone everywhere else), and it expires
//!   once every token issued before the erase has.
//! - The **erasure journal**: one item per erase, with only a keyed hash of the identity subject
//!   and the time, so that after a database restore the erasures the snapshot predates can be
//!   applied again. It lives in the table without the database's snapshots, for as long as
//!   database backups are kept.

use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::{digest, hmac};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use platform::aws::Table;
use uuid::Uuid;

/// How long a mark refuses tokens: longer than an access token lives (1 h), with margin.
pub const MARK_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// How long journal entries are kept: longer than any database backup is.
pub const JOURNAL_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);
const JOURNAL_PARTITION: &str = "erasure-journal";

/// One entry of the erasure journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub requested_at: DateTime<Utc>,
    /// HMAC-SHA256 of the identity subject under the address-hash key, hex.
    pub subject_hash: String,
}

/// The erasure marks and the journal.
#[derive(Clone, Debug)]
pub struct ErasureMarks {
    pub table: Table,
}

fn mark_key(user: Uuid) -> AttributeValue {
    let hash = digest::digest(&digest::SHA256, user.as_bytes());
    AttributeValue::S(format!("erased#{}", platform::crypto::hex(hash.as_ref())))
}

/// The journal's hash of an identity subject (`google:<sub>`).
pub fn subject_hash(key: &[u8], subject: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    platform::crypto::hex(hmac::sign(&key, subject.as_bytes()).as_ref())
}

impl ErasureMarks {
    /// Marks `user` erased (idempotent) from `now` on.
    pub async fn mark(&self, user: Uuid, now: DateTime<Utc>) -> anyhow::Result<()> {
        let expires = now.timestamp() + MARK_LIFETIME.as_secs() as i64;
        self.table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item("pk", mark_key(user))
            .item("sk", AttributeValue::S("erased".into()))
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .send()
            .await
            .context("writing an erasure mark")?;
        Ok(())
    }

    /// Whether `user` was erased (a strongly consistent read: a request right after the erase's
    /// response must see the mark).
    pub async fn is_erased(&self, user: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let item = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .key("pk", mark_key(user))
            .key("sk", AttributeValue::S("erased".into()))
            .consistent_read(true)
            .send()
            .await
            .context("reading an erasure mark")?
            .item;
        // TTL deletes lazily: an expired mark no longer counts.
        Ok(item.is_some_and(|item| {
            item.get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .is_some_and(|expires| expires > now.timestamp())
        }))
    }

    /// Journals an erase (idempotent for the same erase).
    pub async fn journal(&self, erasure: Uuid, entry: &JournalEntry) -> anyhow::Result<()> {
        let expires = entry.requested_at.timestamp() + JOURNAL_LIFETIME.as_secs() as i64;
        self.table
            .client
            .put_item()
            .table_name(&self.table.name)
            .item("pk", AttributeValue::S(JOURNAL_PARTITION.into()))
            .item(
                "sk",
                AttributeValue::S(format!(
                    "{}#{erasure}",
                    entry.requested_at.format("%Y-%m-%dT%H:%M:%S%.6fZ")
                )),
            )
            .item(
                "subject_hash",
                AttributeValue::S(entry.subject_hash.clone()),
            )
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .send()
            .await
            .context("journaling an erasure")?;
        Ok(())
    }

    /// The journal's entries requested at or after `since`, oldest first.
    pub async fn journal_since(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<JournalEntry>> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .key_condition_expression("pk = :pk AND sk >= :since")
                .expression_attribute_values(":pk", AttributeValue::S(JOURNAL_PARTITION.into()))
                .expression_attribute_values(
                    ":since",
                    AttributeValue::S(since.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .context("reading the erasure journal")?;
            for item in page.items() {
                let (Some(sk), Some(hash)) = (
                    item.get("sk").and_then(|v| v.as_s().ok()),
                    item.get("subject_hash").and_then(|v| v.as_s().ok()),
                ) else {
                    continue;
                };
                let Some(requested_at) = sk
                    .split('#')
                    .next()
                    .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                else {
                    continue;
                };
                entries.push(JournalEntry {
                    requested_at: requested_at.with_timezone(&Utc),
                    subject_hash: hash.clone(),
                });
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(entries);
            }
        }
    }
}
