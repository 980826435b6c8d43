//! `Idempotency-Key` for every POST that creates something, with the semantics of Powertools for
//! AWS Lambda: the first request takes an in-progress lock that expires with the invocation's
//! remaining time; a completed record replays the stored status and body; the same key with a
//! different body is 422; a duplicate while the first is in progress is 409; a failed request
//! deletes its record so a retry can run; a lock left by a crash expires and a retry proceeds.
//! <https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/>
//!
//! Records live in DynamoDB for 24 h (TTL). The key is scoped to the caller and the operation,
//! so one user's key can never replay another user's response. Never use this on responses that
//! carry secrets (tokens): the stored body is plaintext.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use aws_lc_rs::digest;
use aws_sdk_dynamodb::{
    operation::put_item::PutItemError,
    types::{AttributeValue, ReturnValuesOnConditionCheckFailure},
};
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use platform::{aws::Table, clock::Clock, telemetry::describe};
use serde::Serialize;
use serde_json::Value;
use utoipa::{
    openapi::path::{Parameter, ParameterIn},
    IntoParams,
};

use crate::{ApiError, Problem};

/// Where idempotency records live, and the clock their locks and expiry are read against.
#[derive(Clone)]
pub struct Idempotency {
    pub table: Table,
    pub clock: Arc<dyn Clock>,
}

impl Idempotency {
    fn now_ms(&self) -> u64 {
        self.clock.now().timestamp_millis().max(0) as u64
    }
}

pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");
/// How long a completed record replays.
const RECORD_TTL: Duration = Duration::from_secs(24 * 3600);
/// The lock's life outside Lambda (the HTTP function's timeout in the template).
const LOCAL_BUDGET: Duration = Duration::from_secs(10);

/// A response that can be stored and replayed.
#[derive(Debug, Clone)]
pub struct Replayable {
    pub status: StatusCode,
    pub body: Value,
    pub location: Option<String>,
}

impl Replayable {
    pub fn created(body: impl Serialize, location: Option<String>) -> Result<Self, ApiError> {
        Ok(Self {
            status: StatusCode::CREATED,
            body: serde_json::to_value(body).context("serializing a response")?,
            location,
        })
    }
}

impl IntoResponse for Replayable {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(location) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// The request's `Idempotency-Key` (if any) and, inside Lambda, the invocation's deadline (its
/// lock must expire then).
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    key: Option<String>,
    deadline_ms: Option<u64>,
}

impl<S: Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let key = match parts.headers.get(HEADER) {
            None => None,
            Some(value) => {
                let key = value.to_str().ok().map(str::trim).filter(|key| {
                    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
                });
                Some(key.map(str::to_owned).ok_or_else(|| {
                    ApiError::BadRequest(Problem::new(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                    ))
                })?)
            }
        };
        // Inside Lambda the lock lives exactly as long as this invocation can.
        let deadline_ms = parts
            .extensions
            .get::<lambda_http::Context>()
            .map(|context| context.deadline)
            .filter(|deadline| *deadline > 0);
        Ok(Self { key, deadline_ms })
    }
}

/// The header in the OpenAPI document, with the rule [`IdempotencyKey::from_request_parts`]
/// enforces (1 to 255 visible ASCII characters).
impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![crate::openapi::optional_header(
            "Idempotency-Key",
            255,
            "^[!-~]+$",
            "Makes a retry safe for 24 h: the same key with the same request replays the stored \
             response (with `idempotent-replayed: true`); with another request it answers 422 \
             `idempotency_key_reused`; while the first request still runs, 409 \
             `request_in_progress`. 1 to 255 visible ASCII characters, else 400 \
             `invalid_idempotency_key`; a fresh UUID per logical request is a good key.",
        )]
    }
}

impl IdempotencyKey {
    /// A key with an explicit lock deadline (tests, and callers outside HTTP).
    pub fn new(key: Option<String>, deadline_ms: Option<u64>) -> Self {
        Self { key, deadline_ms }
    }

    /// The key as sent, for a use case that keeps its own idempotency record (chat: its replay
    /// comes from the sealed messages, since a stored response body would hold their text).
    pub fn value(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Runs `operation` at most once per key of `owner`: `name` names the operation (for
    /// example `surveys.create`), `request` is the parsed body whose hash detects a key reused
    /// for a different request. The record is in the owner's partition
    /// (`platform::ownership::idempotency_partition`), so erasing the account deletes it.
    pub async fn run<F, Fut>(
        self,
        store: &Idempotency,
        owner: uuid::Uuid,
        name: &str,
        request: &impl Serialize,
        operation: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Replayable, ApiError>>,
    {
        self.run_with(store, Digest::Plain(owner), name, request, operation)
            .await
    }

    /// [`IdempotencyKey::run`] for anonymous routes: the record's key and request hash are
    /// HMACs under `day_key` (deleted after two days, like the duplicate markers) and its expiry
    /// is rounded to the day, so the record cannot link an answer to an address or a time.
    pub async fn run_anonymous<F, Fut>(
        self,
        store: &Idempotency,
        day_key: &[u8; 32],
        scope: &str,
        request: &impl Serialize,
        operation: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Replayable, ApiError>>,
    {
        self.run_with(store, Digest::Keyed(day_key), scope, request, operation)
            .await
    }

    async fn run_with<F, Fut>(
        self,
        idempotency: &Idempotency,
        digest: Digest<'_>,
        scope: &str,
        request: &impl Serialize,
        operation: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Replayable, ApiError>>,
    {
        let Some(key) = self.key else {
            return operation().await.map(IntoResponse::into_response);
        };
        let lock_until_ms = self
            .deadline_ms
            .unwrap_or_else(|| idempotency.now_ms() + LOCAL_BUDGET.as_millis() as u64);
        let store = Store {
            idempotency,
            key: match digest {
                Digest::Plain(owner) => (
                    platform::ownership::idempotency_partition(owner),
                    format!("{scope}#{key}"),
                ),
                Digest::Keyed(_) => (
                    format!("idem#{}", digest.of(format!("{scope}#{key}").as_bytes())),
                    "idem".to_owned(),
                ),
            },
            round_expiry: matches!(digest, Digest::Keyed(_)),
        };
        let body = serde_json::to_vec(request).context("serializing a request for its hash")?;
        let request_hash = digest.of(&body);
        if let Some(existing) = store.lock(&request_hash, lock_until_ms).await? {
            return existing.into_outcome(&request_hash);
        }
        match operation().await {
            Ok(response) if response.status.is_success() => {
                if let Err(error) = store.complete(&response).await {
                    // The effect happened; a retry will be answered 409 until the lock expires.
                    tracing::error!(
                        error = describe(&error),
                        "could not store an idempotent response"
                    );
                }
                Ok(response.into_response())
            }
            outcome => {
                if let Err(error) = store.release().await {
                    tracing::error!(
                        error = describe(&error),
                        "could not release an idempotency lock"
                    );
                }
                outcome.map(IntoResponse::into_response)
            }
        }
    }
}

/// How record keys and request hashes are made.
#[derive(Clone, Copy)]
enum Digest<'a> {
    /// SHA-256: for authenticated routes, whose caller is known anyway.
    Plain(uuid::Uuid),
    /// HMAC-SHA256 under a day key.
    Keyed(&'a [u8; 32]),
}

impl Digest<'_> {
    fn of(self, bytes: &[u8]) -> String {
        let tag: Vec<u8> = match self {
            Digest::Plain(_) => digest::digest(&digest::SHA256, bytes).as_ref().to_vec(),
            Digest::Keyed(key) => {
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
                aws_lc_rs::hmac::sign(&key, bytes).as_ref().to_vec()
            }
        };
        platform::crypto::hex(&tag)
    }
}

struct Store<'a> {
    idempotency: &'a Idempotency,
    /// Partition and sort key.
    key: (String, String),
    /// Round the record's expiry up to a whole day (anonymous records carry no send time).
    round_expiry: bool,
}

/// A record that already existed when we tried to take the lock.
struct Existing {
    request_hash: String,
    completed: Option<Replayable>,
}

impl Existing {
    fn into_outcome(self, request_hash: &str) -> Result<Response, ApiError> {
        if self.request_hash != request_hash {
            return Err(ApiError::Unprocessable(Problem::new(
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body.",
            )));
        }
        match self.completed {
            Some(response) => {
                let mut response = response.into_response();
                response
                    .headers_mut()
                    .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
                Ok(response)
            }
            None => Err(ApiError::Conflict(Problem::new(
                "request_in_progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
            ))),
        }
    }
}

impl Store<'_> {
    fn table(&self) -> &str {
        &self.idempotency.table.name
    }

    fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.idempotency.table.client
    }

    /// Takes the lock; returns the existing record when someone else holds or completed it.
    async fn lock(
        &self,
        request_hash: &str,
        lock_until_ms: u64,
    ) -> Result<Option<Existing>, ApiError> {
        let now_ms = self.idempotency.now_ms();
        let mut expires_s = now_ms / 1000 + RECORD_TTL.as_secs();
        if self.round_expiry {
            expires_s += 86_400 - expires_s % 86_400;
        }
        let outcome = self
            .client()
            .put_item()
            .table_name(self.table())
            .item("pk", AttributeValue::S(self.key.0.clone()))
            .item("sk", AttributeValue::S(self.key.1.clone()))
            .item("status", AttributeValue::S("in_progress".into()))
            .item("request_hash", AttributeValue::S(request_hash.into()))
            .item(
                "lock_until_ms",
                AttributeValue::N(lock_until_ms.to_string()),
            )
            .item("expires_at", AttributeValue::N(expires_s.to_string()))
            // Free, expired (TTL deletes lazily), or an in-progress lock whose owner died.
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now_s \
                 OR (#status = :in_progress AND lock_until_ms < :now_ms)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now_s", AttributeValue::N((now_ms / 1000).to_string()))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":in_progress", AttributeValue::S("in_progress".into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match outcome {
            Ok(_) => Ok(None),
            Err(error) => match error.into_service_error() {
                PutItemError::ConditionalCheckFailedException(failed) => {
                    let item = failed.item.unwrap_or_default();
                    Ok(Some(existing(&item)?))
                }
                other => Err(anyhow::Error::from(other)
                    .context("taking an idempotency lock")
                    .into()),
            },
        }
    }

    async fn complete(&self, response: &Replayable) -> anyhow::Result<()> {
        let mut update = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("pk", AttributeValue::S(self.key.0.clone()))
            .key("sk", AttributeValue::S(self.key.1.clone()))
            .update_expression(
                "SET #status = :completed, response_status = :code, response_body = :body \
                 REMOVE lock_until_ms",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", AttributeValue::S("completed".into()))
            .expression_attribute_values(
                ":code",
                AttributeValue::N(response.status.as_u16().to_string()),
            )
            .expression_attribute_values(":body", AttributeValue::S(response.body.to_string()));
        if let Some(location) = &response.location {
            update = update
                .update_expression(
                    "SET #status = :completed, response_status = :code, response_body = :body, \
                     response_location = :location REMOVE lock_until_ms",
                )
                .expression_attribute_values(":location", AttributeValue::S(location.clone()));
        }
        update
            .send()
            .await
            .context("storing an idempotent response")?;
        Ok(())
    }

    async fn release(&self) -> anyhow::Result<()> {
        self.client()
            .delete_item()
            .table_name(self.table())
            .key("pk", AttributeValue::S(self.key.0.clone()))
            .key("sk", AttributeValue::S(self.key.1.clone()))
            .send()
            .await
            .context("releasing an idempotency lock")?;
        Ok(())
    }
}

fn existing(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> Result<Existing, ApiError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let completed = if text("status").as_deref() == Some("completed") {
        let status = item
            .get("response_status")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u16>().ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .context("a completed idempotency record without a status")?;
        let body = text("response_body")
            .map(|body| serde_json::from_str(&body))
            .transpose()
            .context("a completed idempotency record with a bad body")?
            .unwrap_or(Value::Null);
        Some(Replayable {
            status,
            body,
            location: text("response_location"),
        })
    } else {
        None
    };
    Ok(Existing {
        request_hash: text("request_hash").unwrap_or_default(),
        completed,
    })
}
