//! Erase: `DELETE /v1/me` shuts the account in one transaction, and a worker removes everything
//! it owns.
//!
//! At once (the request): the identity is detached (a new sign-in with the same Google account
//! makes a new, empty account), refresh tokens are deleted, the persona is unpublished (its page
//! and image answer 404), collecting surveys close, the erasure is recorded and queued, and an
//! erasure mark makes every route refuse the account's access tokens.
//!
//! Then the worker, each step idempotent, so a crash anywhere is resumed by the redelivery:
//! 1. journals the erase (subject hash and time only) and renews the mark;
//! 2. collects the persona ids and export keys (the rows that lead to objects and outbox
//!    messages go in the next step);
//! 3. deletes, in one transaction, the outbox messages naming the account and the user row, which
//!    cascades to every other row;
//! 4. deletes every card object of every persona version (listing each prefix, so renders of
//!    older versions go too) and the exports;
//! 5. deletes every DynamoDB item in the account's partitions (`platform::ownership`);
//! 6. waits out a grace period (a worker that read a persona just before step 3 could still
//!    upload a card or write a status) and runs 4 and 5 again, then forgets the erasure.
//!
//! A late saga, render or memory message for an erased persona finds no row and does nothing.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use platform::{
    aws::{AwsClients, Table},
    clock::Clock,
    db::{self, CachedStatements},
    env::SecretKey,
    outbox::{self, Publisher, Queue, QueueUrls},
    worker::{process_batch, Message, SqsQueueOps, StepError},
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tracing::{info, Instrument};
use uuid::Uuid;

mod restore;

use crate::{
    marks::{subject_hash, ErasureMarks, JournalEntry},
    EraseConfig,
};

/// The message on the erase queue: the erasure's id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseJob {
    pub erasure_id: Uuid,
}

/// Starts the erasure of `user` inside the caller's transaction, unless one is under way.
/// Returns the outbox row to publish after commit.
pub(crate) async fn start(
    client: &impl GenericClient,
    user: Uuid,
    address_hash_key: &[u8],
    now: DateTime<Utc>,
    request_id: Option<&str>,
) -> anyhow::Result<Option<Uuid>> {
    let row = client
        .query_opt_cached(
            "SELECT subject, erasing_since IS NOT NULL FROM users WHERE id = $1 FOR UPDATE",
            &[&user],
        )
        .await
        .context("locking the account")?;
    let Some(row) = row else {
        return Ok(None);
    };
    if row.get::<_, bool>(1) {
        return Ok(None);
    }
    let subject: String = row.get(0);
    let erasure = Uuid::new_v4();
    client
        .execute_cached(
            "UPDATE users SET erasing_since = $2, subject = 'erased:' || $3::uuid::text
             WHERE id = $1",
            &[&user, &now, &erasure],
        )
        .await
        .context("detaching the identity")?;
    client
        .execute_cached("DELETE FROM refresh_tokens WHERE user_id = $1", &[&user])
        .await
        .context("ending the sessions")?;
    client
        .execute_cached(
            "UPDATE persona_visibility SET is_public = false, updated_at = $2 WHERE owner_id = $1",
            &[&user, &now],
        )
        .await
        .context("unpublishing the persona")?;
    client
        .execute_cached(
            "UPDATE surveys SET status = 'closed', closed_at = COALESCE(closed_at, $2)
             WHERE owner_id = $1 AND status = 'collecting'",
            &[&user, &now],
        )
        .await
        .context("closing the surveys")?;
    client
        .execute_cached(
            "INSERT INTO account_erasures (id, user_id, subject_hash, requested_at)
             VALUES ($1, $2, $3, $4)",
            &[
                &erasure,
                &user,
                &subject_hash(address_hash_key, &subject),
                &now,
            ],
        )
        .await
        .context("recording the erasure")?;
    let outbox_id = outbox::enqueue(
        client,
        Queue::Erase,
        &EraseJob {
            erasure_id: erasure,
        },
        request_id,
    )
    .await?;
    info!(erasure_id = %erasure, "account erasure requested");
    Ok(Some(outbox_id))
}

/// The erase use case of the HTTP API.
#[derive(Clone)]
pub struct Erasures {
    pub db: Pool,
    pub marks: ErasureMarks,
    pub address_hash_key: Arc<SecretKey>,
    pub clock: Arc<dyn Clock>,
    pub publisher: Publisher,
}

impl Erasures {
    /// Shuts `user`'s account at once and queues the erase. Idempotent: an account already
    /// being erased only has its mark renewed.
    pub async fn request(&self, user: Uuid, request_id: Option<&str>) -> anyhow::Result<()> {
        let now = self.clock.now();
        let mut client = self.db.get().await.context("connecting to PostgreSQL")?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let key = self.address_hash_key.0.expose_secret();
        let outbox_id = start(&tx, user, key, now, request_id).await?;
        tx.commit().await.context("committing the erasure")?;
        drop(client);
        // Before the answer: from the answer on, every token of the account is refused.
        self.marks.mark(user, now).await?;
        if let Some(outbox_id) = outbox_id {
            self.publisher.publish(&self.db, &[outbox_id]).await;
        }
        Ok(())
    }
}

/// Where the erase worker can be made to crash, for tests that prove it resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EraseFault {
    /// Persona ids and export keys collected.
    AfterCollect,
    /// Rows deleted.
    AfterRows,
    /// Objects deleted.
    AfterObjects,
    /// Items deleted.
    AfterItems,
    /// The final pass is done, the erasure not yet forgotten.
    BeforeForget,
}

impl EraseFault {
    pub const ALL: [EraseFault; 5] = [
        EraseFault::AfterCollect,
        EraseFault::AfterRows,
        EraseFault::AfterObjects,
        EraseFault::AfterItems,
        EraseFault::BeforeForget,
    ];
}

type Injector = Arc<dyn Fn(EraseFault) -> Result<(), StepError> + Send + Sync>;

/// The erase function.
#[derive(Clone)]
pub struct EraseWorker {
    pub db: Pool,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub table: Table,
    pub marks: ErasureMarks,
    pub address_hash_key: Arc<SecretKey>,
    pub grace: Duration,
    pub clock: Arc<dyn Clock>,
    pub queue: SqsQueueOps,
    pub publisher: Publisher,
    faults: Option<Injector>,
}

/// One erasure in progress, as recorded.
struct Erasure {
    id: Uuid,
    user: Uuid,
    subject_hash: String,
    requested_at: DateTime<Utc>,
    personas: Option<Vec<Uuid>>,
    exports: Option<Vec<String>>,
    rows_erased_at: Option<DateTime<Utc>>,
}

impl EraseWorker {
    pub fn new(
        config: EraseConfig,
        aws: &AwsClients,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let table = Table::new(&aws.dynamodb, &config.table_name);
        let mut publishes = QueueUrls::default();
        publishes.0.insert(Queue::Erase, config.queue.url.clone());
        Ok(Self {
            db: db::pool(&config.database, &aws.secrets)?,
            s3: aws.s3.clone(),
            bucket: config.bucket,
            marks: ErasureMarks {
                table: table.clone(),
            },
            table,
            address_hash_key: Arc::new(config.address_hash_key),
            grace: config.grace,
            clock,
            queue: SqsQueueOps {
                step: "erase",
                client: aws.sqs.clone(),
                queue_url: config.queue.url,
                dead_letter_queue_url: config.queue.dead_letter_url,
            },
            publisher: Publisher::new(aws.sqs.clone(), publishes),
            faults: None,
        })
    }

    /// Installs a crash injector (tests).
    pub fn inject_faults(
        &mut self,
        injector: impl Fn(EraseFault) -> Result<(), StepError> + Send + Sync + 'static,
    ) {
        self.faults = Some(Arc::new(injector));
    }

    fn fault(&self, point: EraseFault) -> Result<(), StepError> {
        match &self.faults {
            Some(injector) => injector(point),
            None => Ok(()),
        }
    }

    /// The function's handler for its queue: one SQS batch, only failed ids reported.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        process_batch(event, &self.queue, |message| self.erase(message)).await
    }

    pub async fn erase(&self, message: Message<EraseJob>) -> Result<(), StepError> {
        let id = message.body.erasure_id;
        let span = tracing::info_span!("erase", erasure_id = %id);
        self.run(id).instrument(span).await
    }

    async fn run(&self, id: Uuid) -> Result<(), StepError> {
        let Some(mut erasure) = self.load(id).await.map_err(StepError::retryable)? else {
            info!("nothing to erase (already done)");
            return Ok(());
        };
        let now = self.clock.now();
        self.marks
            .mark(erasure.user, now)
            .await
            .map_err(StepError::retryable)?;
        self.marks
            .journal(
                id,
                &JournalEntry {
                    requested_at: erasure.requested_at,
                    subject_hash: erasure.subject_hash.clone(),
                },
            )
            .await
            .map_err(StepError::retryable)?;
        if erasure.personas.is_none() {
            self.collect(&mut erasure)
                .await
                .map_err(StepError::retryable)?;
        }
        self.fault(EraseFault::AfterCollect)?;
        let rows_erased_at = match erasure.rows_erased_at {
            Some(at) => at,
            None => self
                .erase_rows(&erasure, now)
                .await
                .map_err(StepError::retryable)?,
        };
        self.fault(EraseFault::AfterRows)?;
        self.erase_objects(&erasure)
            .await
            .map_err(StepError::retryable)?;
        self.fault(EraseFault::AfterObjects)?;
        self.erase_items(erasure.user)
            .await
            .map_err(StepError::retryable)?;
        self.fault(EraseFault::AfterItems)?;
        let final_pass_at =
            rows_erased_at + chrono::Duration::from_std(self.grace).unwrap_or_default();
        if now < final_pass_at {
            // Workers that read a persona before its row went may still write; the objects and
            // items are swept again once they cannot.
            let after = (final_pass_at - now).to_std().unwrap_or_default();
            info!(
                wait_s = after.as_secs_f64(),
                "rows erased; the final pass waits out the grace"
            );
            return Err(StepError::Retryable {
                error: anyhow::anyhow!("waiting out the erase grace period"),
                after: Some(after.max(Duration::from_secs(1))),
            });
        }
        self.fault(EraseFault::BeforeForget)?;
        let client = self.db.get().await.map_err(StepError::retryable)?;
        client
            .execute_cached("DELETE FROM account_erasures WHERE id = $1", &[&id])
            .await
            .context("forgetting the erasure")
            .map_err(StepError::retryable)?;
        info!("account erased");
        platform::metrics::counter!("accounts_erased").increment(1);
        Ok(())
    }

    async fn load(&self, id: Uuid) -> anyhow::Result<Option<Erasure>> {
        let client = self.db.get().await.context("connecting to PostgreSQL")?;
        let row = client
            .query_opt_cached(
                "SELECT user_id, subject_hash, requested_at, persona_ids, export_keys, rows_erased_at
                 FROM account_erasures WHERE id = $1",
                &[&id],
            )
            .await
            .context("reading the erasure")?;
        Ok(row.map(|row| Erasure {
            id,
            user: row.get(0),
            subject_hash: row.get(1),
            requested_at: row.get(2),
            personas: row.get(3),
            exports: row.get(4),
            rows_erased_at: row.get(5),
        }))
    }

    /// Step 2: what leads to objects, written down before the rows that hold it go.
    async fn collect(&self, erasure: &mut Erasure) -> anyhow::Result<()> {
        let client = self.db.get().await.context("connecting to PostgreSQL")?;
        let row = client
            .query_one_cached(
                "UPDATE account_erasures SET
                     persona_ids = COALESCE(persona_ids,
                         ARRAY(SELECT id FROM personas WHERE owner_id = $2)),
                     export_keys = COALESCE(export_keys,
                         ARRAY(SELECT object_key FROM data_exports WHERE user_id = $2))
                 WHERE id = $1 RETURNING persona_ids, export_keys",
                &[&erasure.id, &erasure.user],
            )
            .await
            .context("collecting what the account's rows lead to")?;
        erasure.personas = row.get(0);
        erasure.exports = row.get(1);
        Ok(())
    }

    /// Step 3: every row, in one transaction.
    async fn erase_rows(
        &self,
        erasure: &Erasure,
        now: DateTime<Utc>,
    ) -> anyhow::Result<DateTime<Utc>> {
        let personas: Vec<String> = erasure
            .personas
            .iter()
            .flatten()
            .map(Uuid::to_string)
            .collect();
        let mut client = self.db.get().await.context("connecting to PostgreSQL")?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        // Outbox messages carry ids only and no foreign key: the ones naming the account go
        // by hand (saga and render jobs by persona, memory jobs by owner, export jobs by export).
        tx.execute_cached(
            "DELETE FROM outbox
             WHERE body->>'persona_id' = ANY($1)
                OR body->>'owner_id' = $2::uuid::text
                OR body->>'export_id' IN (SELECT id::text FROM data_exports WHERE user_id = $2)",
            &[&personas, &erasure.user],
        )
        .await
        .context("deleting the account's outbox messages")?;
        // Every other table references the user with ON DELETE CASCADE (the crystal ledger's
        // append-only trigger allows deletes once the user row is gone).
        tx.execute_cached("DELETE FROM users WHERE id = $1", &[&erasure.user])
            .await
            .context("deleting the account's rows")?;
        tx.execute_cached(
            "UPDATE account_erasures SET rows_erased_at = $2 WHERE id = $1",
            &[&erasure.id, &now],
        )
        .await
        .context("recording the rows erased")?;
        tx.commit().await.context("committing the row erase")?;
        Ok(now)
    }

    /// Step 4: card objects of every persona version (every render, listed), and the exports.
    async fn erase_objects(&self, erasure: &Erasure) -> anyhow::Result<()> {
        for persona in erasure.personas.iter().flatten() {
            let prefix = format!("cards/{persona}/");
            let mut token = None;
            loop {
                let page = self
                    .s3
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .context("listing a persona's cards")?;
                for object in page.contents() {
                    if let Some(key) = object.key() {
                        self.delete_object(key).await?;
                    }
                }
                token = page.next_continuation_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        for key in erasure.exports.iter().flatten() {
            self.delete_object(key).await?;
        }
        Ok(())
    }

    async fn delete_object(&self, key: &str) -> anyhow::Result<()> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .context("deleting an object")?;
        Ok(())
    }

    /// Step 5: every item in the account's partitions.
    async fn erase_items(&self, user: Uuid) -> anyhow::Result<()> {
        for partition in platform::ownership::partitions_of(user) {
            let mut start = None;
            loop {
                let page = self
                    .table
                    .client
                    .query()
                    .table_name(&self.table.name)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", AttributeValue::S(partition.clone()))
                    .projection_expression("pk, sk")
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .context("listing the account's items")?;
                let deletes: Vec<WriteRequest> = page
                    .items()
                    .iter()
                    .filter_map(|item| {
                        let request = DeleteRequest::builder()
                            .set_key(Some(item.clone()))
                            .build()
                            .ok()?;
                        Some(WriteRequest::builder().delete_request(request).build())
                    })
                    .collect();
                for chunk in deletes.chunks(25) {
                    let mut pending = chunk.to_vec();
                    // BatchWriteItem may leave some unprocessed under throttling: send them again.
                    for _ in 0..5 {
                        let output = self
                            .table
                            .client
                            .batch_write_item()
                            .request_items(&self.table.name, pending)
                            .send()
                            .await
                            .context("deleting the account's items")?;
                        pending = output
                            .unprocessed_items
                            .and_then(|mut left| left.remove(&self.table.name))
                            .unwrap_or_default();
                        if pending.is_empty() {
                            break;
                        }
                    }
                    anyhow::ensure!(pending.is_empty(), "DynamoDB kept items unprocessed");
                }
                start = page.last_evaluated_key;
                if start.is_none() {
                    break;
                }
            }
        }
        Ok(())
    }
}
