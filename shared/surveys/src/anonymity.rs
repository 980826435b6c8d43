//! Duplicate-answer detection that cannot identify anyone (docs/privacy.md).
//!
//! A marker is `HMAC-SHA256(day key, survey id ‖ address hash ‖ fingerprint)`. Day keys are 32
//! random bytes per UTC day, kept in the anonymity DynamoDB table under `pk = anonymity#day-key`
//! (encrypted at rest, readable only by the HTTP function's role; locally, in the emulator's
//! table), and cached per process. That table has no point-in-time recovery and is left out of
//! backup plans, and the duplicate markers live there too: no restore can bring back a deleted
//! key. Only the two newest are kept: when today's key is created, older ones are
//! deleted (and TTL removes any that slip through), after which no marker can be linked to an
//! address or fingerprint again, even by us. A marker lives 24 h; a submission is a duplicate
//! when a live marker exists under today's or yesterday's key.

use std::{collections::BTreeMap, sync::Mutex};

use anyhow::Context;
use aws_lc_rs::{hmac, rand::SecureRandom};
use aws_sdk_dynamodb::{
    operation::transact_write_items::TransactWriteItemsError,
    primitives::Blob,
    types::{AttributeValue, ConditionCheck, Put, TransactWriteItem},
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use uuid::Uuid;

use platform::{
    aws::Table,
    rate_limit::{self, RateLimiter},
};

use crate::SurveyError;

const DAY_KEY_PK: &str = "anonymity#day-key";

/// Day keys, stored in the table and cached for the life of the process (a Lambda container).
pub struct DayKeys {
    table: Table,
    cache: Mutex<BTreeMap<NaiveDate, [u8; 32]>>,
}

/// The reserved marker, released again if the answer is not stored after all.
pub struct Marker {
    pk: String,
}

impl DayKeys {
    pub fn new(table: Table) -> Self {
        Self {
            table,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// The key of `day`, created if `create` and missing.
    async fn key(&self, day: NaiveDate, create: bool) -> anyhow::Result<Option<[u8; 32]>> {
        if let Some(key) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&day)
        {
            return Ok(Some(*key));
        }
        let stored = read_day_key(&self.table, day).await?;
        let key = match (stored, create) {
            (Some(key), _) => Some(key),
            (None, false) => None,
            (None, true) => Some(create_day_key(&self.table, day).await?),
        };
        if let Some(key) = key {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(day, key);
            // Forget keys that are no longer needed here either.
            cache.retain(|cached, _| *cached >= day.pred_opt().unwrap_or(day));
        }
        Ok(key)
    }

    /// Today's key (created if missing).
    pub async fn today(&self, now: DateTime<Utc>) -> anyhow::Result<[u8; 32]> {
        self.key(now.date_naive(), true)
            .await?
            .context("today's day key")
    }

    /// Builds the DynamoDB transaction items that reserve the marker for this submission: no
    /// live marker under yesterday's key, and today's put only if absent or expired.
    pub async fn marker_items(
        &self,
        now: DateTime<Utc>,
        survey_id: Uuid,
        address_hash: &str,
        fingerprint: Option<&str>,
    ) -> anyhow::Result<(Marker, Vec<TransactWriteItem>)> {
        let today = now.date_naive();
        let today_key = self.key(today, true).await?.context("today's key")?;
        let yesterday_key = match today.pred_opt() {
            Some(yesterday) => self.key(yesterday, false).await?,
            None => None,
        };
        let value = format!(
            "{survey_id}\u{1f}{address_hash}\u{1f}{}",
            fingerprint.unwrap_or("")
        );
        let now_s = AttributeValue::N(now.timestamp().to_string());
        let table = &self.table.name;
        let mut items = Vec::new();
        if let Some(key) = yesterday_key {
            items.push(
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(table)
                            .key("pk", AttributeValue::S(marker_pk(&key, &value)))
                            .key("sk", AttributeValue::S("marker".into()))
                            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
                            .expression_attribute_values(":now", now_s.clone())
                            .build()?,
                    )
                    .build(),
            );
        }
        let pk = marker_pk(&today_key, &value);
        items.push(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .item("pk", AttributeValue::S(pk.clone()))
                        .item("sk", AttributeValue::S("marker".into()))
                        .item(
                            "expires_at",
                            AttributeValue::N((now + Duration::hours(24)).timestamp().to_string()),
                        )
                        .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
                        .expression_attribute_values(":now", now_s)
                        .build()?,
                )
                .build(),
        );
        Ok((Marker { pk }, items))
    }

    /// Deletes a reserved marker (the answer was not stored, so the friend may try again).
    pub async fn release(&self, marker: Marker) {
        let outcome = self
            .table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .key("pk", AttributeValue::S(marker.pk))
            .key("sk", AttributeValue::S("marker".into()))
            .send()
            .await;
        if let Err(error) = outcome {
            tracing::warn!(
                error = platform::telemetry::describe(&anyhow::Error::from(error)),
                "could not release a marker"
            );
        }
    }
}

fn marker_pk(key: &[u8; 32], value: &str) -> String {
    format!("marker#{}", keyed(key, value))
}

/// Hex HMAC-SHA256 of `value` under a day key: unlinkable once the key is deleted.
pub fn keyed(key: &[u8; 32], value: &str) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), value.as_bytes());
    platform::crypto::hex(tag.as_ref())
}

async fn read_day_key(table: &Table, day: NaiveDate) -> anyhow::Result<Option<[u8; 32]>> {
    let item = table
        .client
        .get_item()
        .table_name(&table.name)
        .key("pk", AttributeValue::S(DAY_KEY_PK.into()))
        .key("sk", AttributeValue::S(day.to_string()))
        .consistent_read(true)
        .send()
        .await
        .context("reading a day key")?
        .item;
    Ok(item
        .and_then(|item| item.get("key").and_then(|v| v.as_b().ok()).cloned())
        .and_then(|blob| blob.into_inner().try_into().ok()))
}

/// Creates the key of `day` (the first writer wins; everyone uses the winner's key) and deletes
/// keys older than the day before.
async fn create_day_key(table: &Table, day: NaiveDate) -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let expires = day.and_hms_opt(0, 0, 0).context("midnight")?.and_utc() + Duration::hours(48);
    let outcome = table
        .client
        .put_item()
        .table_name(&table.name)
        .item("pk", AttributeValue::S(DAY_KEY_PK.into()))
        .item("sk", AttributeValue::S(day.to_string()))
        .item("key", AttributeValue::B(Blob::new(key.to_vec())))
        .item(
            "expires_at",
            AttributeValue::N(expires.timestamp().to_string()),
        )
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match outcome {
        Ok(_) => {
            delete_keys_before(table, day.pred_opt().unwrap_or(day)).await?;
            Ok(key)
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            read_day_key(table, day)
                .await?
                .context("a day key vanished")
        }
        Err(error) => Err(error).context("creating a day key"),
    }
}

async fn delete_keys_before(table: &Table, oldest_kept: NaiveDate) -> anyhow::Result<()> {
    let old = table
        .client
        .query()
        .table_name(&table.name)
        .key_condition_expression("pk = :pk AND sk < :oldest")
        .expression_attribute_values(":pk", AttributeValue::S(DAY_KEY_PK.into()))
        .expression_attribute_values(":oldest", AttributeValue::S(oldest_kept.to_string()))
        .send()
        .await
        .context("listing old day keys")?
        .items
        .unwrap_or_default();
    for item in old {
        if let Some(sk) = item.get("sk").cloned() {
            table
                .client
                .delete_item()
                .table_name(&table.name)
                .key("pk", AttributeValue::S(DAY_KEY_PK.into()))
                .key("sk", sk)
                .send()
                .await
                .context("deleting an old day key")?;
        }
    }
    Ok(())
}

impl DayKeys {
    /// Reserves this submission in one DynamoDB transaction: the per-survey-per-address rate
    /// limit and the duplicate marker. The rate-limit subject is keyed with the day key too, so
    /// counters cannot link one address across surveys. Concurrent submissions from one address
    /// touch the same counter and may cancel each other (`TransactionConflict`); those are
    /// retried with jitter.
    pub async fn reserve(
        &self,
        limits: &RateLimiter,
        day_key: &[u8; 32],
        now: DateTime<Utc>,
        survey_id: Uuid,
        address_hash: &str,
        fingerprint: Option<&str>,
    ) -> Result<Marker, SurveyError> {
        let subject = keyed(day_key, &format!("{survey_id}#{address_hash}"));
        let (limit_item, limited) = limits.transact_item(rate_limit::ANSWER_SUBMIT, &subject)?;
        let (marker, marker_items) = self
            .marker_items(now, survey_id, address_hash, fingerprint)
            .await?;
        let items: Vec<_> = std::iter::once(limit_item).chain(marker_items).collect();
        for attempt in 0..4u64 {
            let request = self
                .table
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()));
            let canceled = match request.send().await {
                Ok(_) => return Ok(marker),
                Err(error) => match error.into_service_error() {
                    TransactWriteItemsError::TransactionCanceledException(canceled) => canceled,
                    other => {
                        return Err(anyhow::Error::from(other)
                            .context("reserving an answer")
                            .into())
                    }
                },
            };
            let reasons = canceled.cancellation_reasons.unwrap_or_default();
            let code = |index: usize| {
                reasons
                    .get(index)
                    .and_then(|r| r.code.as_deref())
                    .unwrap_or("None")
            };
            if code(0) == "ConditionalCheckFailed" {
                return Err(SurveyError::RateLimited(limited));
            }
            if (1..reasons.len()).any(|i| code(i) == "ConditionalCheckFailed") {
                tracing::info!(%survey_id, "duplicate answer refused");
                return Err(SurveyError::AlreadyAnswered);
            }
            if !(0..reasons.len()).any(|i| code(i) == "TransactionConflict") {
                return Err(anyhow::anyhow!("answer reservation canceled").into());
            }
            let jitter = u64::from(Uuid::new_v4().as_bytes()[0]) % 40;
            tokio::time::sleep(std::time::Duration::from_millis(
                20 * (attempt + 1) + jitter,
            ))
            .await;
        }
        Err(SurveyError::RateLimited(rate_limit::Limited {
            retry_after_secs: 1,
        }))
    }
}
