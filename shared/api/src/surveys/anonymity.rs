//! Duplicate-answer detection that cannot identify anyone (SPEC "Anonymity").
//!
//! A marker is `HMAC-SHA256(day key, survey id ‖ address hash ‖ fingerprint)`. Day keys are 32
//! random bytes per UTC day, kept in the DynamoDB table under `pk = anonymity#day-key` (encrypted
//! at rest, readable only by the HTTP function's role; locally, in the emulator's table) and
//! cached per process. Only the two newest are kept: when today's key is created, older ones are
//! deleted (and TTL removes any that slip through), after which no marker can be linked to an
//! address or fingerprint again, even by us. A marker lives 24 h; a submission is a duplicate
//! when a live marker exists under today's or yesterday's key.

use std::{collections::BTreeMap, sync::Mutex};

use anyhow::Context;
use aws_lc_rs::{hmac, rand::SecureRandom};
use aws_sdk_dynamodb::{
    primitives::Blob,
    types::{AttributeValue, ConditionCheck, Put, TransactWriteItem},
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use uuid::Uuid;

use crate::AppState;

const DAY_KEY_PK: &str = "anonymity#day-key";

/// Day keys cached for the life of the process (a Lambda container).
#[derive(Default)]
pub struct DayKeys {
    cache: Mutex<BTreeMap<NaiveDate, [u8; 32]>>,
}

/// The reserved marker, released again if the answer is not stored after all.
pub struct Marker {
    pk: String,
}

impl DayKeys {
    /// The key of `day`, created if `create` and missing.
    async fn key(
        &self,
        state: &AppState,
        day: NaiveDate,
        create: bool,
    ) -> anyhow::Result<Option<[u8; 32]>> {
        if let Some(key) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&day)
        {
            return Ok(Some(*key));
        }
        let stored = read_day_key(state, day).await?;
        let key = match (stored, create) {
            (Some(key), _) => Some(key),
            (None, false) => None,
            (None, true) => Some(create_day_key(state, day).await?),
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
    pub async fn today(&self, state: &AppState, now: DateTime<Utc>) -> anyhow::Result<[u8; 32]> {
        self.key(state, now.date_naive(), true)
            .await?
            .context("today's day key")
    }

    /// Builds the DynamoDB transaction items that reserve the marker for this submission: no
    /// live marker under yesterday's key, and today's put only if absent or expired.
    pub async fn marker_items(
        &self,
        state: &AppState,
        now: DateTime<Utc>,
        survey_id: Uuid,
        address_hash: &str,
        fingerprint: Option<&str>,
    ) -> anyhow::Result<(Marker, Vec<TransactWriteItem>)> {
        let today = now.date_naive();
        let today_key = self.key(state, today, true).await?.context("today's key")?;
        let yesterday_key = match today.pred_opt() {
            Some(yesterday) => self.key(state, yesterday, false).await?,
            None => None,
        };
        let value = format!(
            "{survey_id}\u{1f}{address_hash}\u{1f}{}",
            fingerprint.unwrap_or("")
        );
        let now_s = AttributeValue::N(now.timestamp().to_string());
        let table = &state.config.table_name;
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
    pub async fn release(&self, state: &AppState, marker: Marker) {
        let outcome = state
            .aws
            .dynamodb
            .delete_item()
            .table_name(&state.config.table_name)
            .key("pk", AttributeValue::S(marker.pk))
            .key("sk", AttributeValue::S("marker".into()))
            .send()
            .await;
        if let Err(error) = outcome {
            tracing::warn!(
                error = format!("{:#}", anyhow::Error::from(error)),
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

async fn read_day_key(state: &AppState, day: NaiveDate) -> anyhow::Result<Option<[u8; 32]>> {
    let item = state
        .aws
        .dynamodb
        .get_item()
        .table_name(&state.config.table_name)
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
async fn create_day_key(state: &AppState, day: NaiveDate) -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let expires = day.and_hms_opt(0, 0, 0).context("midnight")?.and_utc() + Duration::hours(48);
    let outcome = state
        .aws
        .dynamodb
        .put_item()
        .table_name(&state.config.table_name)
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
            delete_keys_before(state, day.pred_opt().unwrap_or(day)).await?;
            Ok(key)
        }
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            read_day_key(state, day)
                .await?
                .context("a day key vanished")
        }
        Err(error) => Err(error).context("creating a day key"),
    }
}

async fn delete_keys_before(state: &AppState, oldest_kept: NaiveDate) -> anyhow::Result<()> {
    let old = state
        .aws
        .dynamodb
        .query()
        .table_name(&state.config.table_name)
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
            state
                .aws
                .dynamodb
                .delete_item()
                .table_name(&state.config.table_name)
                .key("pk", AttributeValue::S(DAY_KEY_PK.into()))
                .key("sk", sk)
                .send()
                .await
                .context("deleting an old day key")?;
        }
    }
    Ok(())
}
