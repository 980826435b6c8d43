//! Export: the owner asks (`POST /v1/me/exports`), a worker builds the document, the owner
//! downloads it through a presigned link for 24 hours.
//!
//! One export runs at a time and three may be asked for in 24 hours. The document is stored
//! encrypted (SSE) in the private bucket under `exports/<256 random bits>.json`, chosen when
//! the export is asked for (so a redelivered job overwrites the same object, and an erase finds
//! it), and a lifecycle rule deletes it after a day. An export still pending after an hour
//! (its job dead-lettered) counts as failed, so it never blocks the next one.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_lc_rs::rand::SecureRandom;
use aws_sdk_s3::{
    presigning::PresigningConfig, primitives::ByteStream, types::ServerSideEncryption,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use platform::{
    aws::AwsClients,
    clock::Clock,
    crypto::Sealer,
    db::{self, CachedStatements},
    outbox::{self, Publisher, Queue},
    worker::{process_batch, Message, SqsQueueOps, StepError},
};
use serde::{Deserialize, Serialize};
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use crate::{
    document::{self, Sources},
    ExportConfig,
};

/// Exports asked for per account in any 24 hours.
pub const DAILY_EXPORTS: i64 = 3;
/// How long a ready export can be downloaded (and its object is kept).
pub const DOWNLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A pending export older than this failed (its job is in the dead-letter queue).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The message on the export queue: ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportJob {
    pub export_id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    Pending,
    Ready,
    Failed,
}

/// An export as its owner sees it.
#[derive(Debug, Clone)]
pub struct ExportView {
    pub id: Uuid,
    pub state: ExportState,
    /// A presigned GET of the document, while ready.
    pub download_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Another export is still being built.
    #[error("an export is in progress")]
    InProgress { id: Uuid },
    /// Three exports in the last 24 hours.
    #[error("too many exports")]
    TooMany { retry_after_secs: u64 },
    /// No such export of this owner (or it expired).
    #[error("no such export")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The export use cases of the HTTP API.
#[derive(Clone)]
pub struct Exports {
    pub db: Pool,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub clock: Arc<dyn Clock>,
    pub publisher: Publisher,
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl Exports {
    /// Asks for an export of `user`'s data.
    pub async fn request(
        &self,
        user: Uuid,
        request_id: Option<&str>,
    ) -> Result<ExportView, ExportError> {
        let now = self.clock.now();
        let mut client = self.db.get().await.context("connecting to PostgreSQL")?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        // One owner at a time: concurrent requests serialize here.
        tx.execute_cached("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user])
            .await
            .context("locking the owner")?;
        tx.execute_cached(
            "UPDATE data_exports SET state = 'failed', error_code = 'export_stale', finished_at = $2
             WHERE user_id = $1 AND state = 'pending'
               AND created_at < $2::timestamptz - make_interval(secs => $3)",
            &[&user, &now, &secs(STALE_AFTER)],
        )
        .await
        .context("failing stale exports")?;
        let pending = tx
            .query_opt_cached(
                "SELECT id FROM data_exports WHERE user_id = $1 AND state = 'pending'",
                &[&user],
            )
            .await
            .context("finding a pending export")?;
        if let Some(pending) = pending {
            return Err(ExportError::InProgress { id: pending.get(0) });
        }
        let recent = tx
            .query_one_cached(
                "SELECT count(*), min(created_at) FROM data_exports
                 WHERE user_id = $1 AND created_at > $2::timestamptz - make_interval(secs => $3)",
                &[&user, &now, &secs(DOWNLOAD_LIFETIME)],
            )
            .await
            .context("counting recent exports")?;
        if recent.get::<_, i64>(0) >= DAILY_EXPORTS {
            let oldest: DateTime<Utc> = recent.get(1);
            let free_at =
                oldest + chrono::Duration::from_std(DOWNLOAD_LIFETIME).unwrap_or_default();
            return Err(ExportError::TooMany {
                retry_after_secs: (free_at - now).num_seconds().max(1).unsigned_abs(),
            });
        }
        let id = Uuid::new_v4();
        tx.execute_cached(
            "INSERT INTO data_exports (id, user_id, state, object_key, created_at)
             VALUES ($1, $2, 'pending', $3, $4)",
            &[&id, &user, &object_key()?, &now],
        )
        .await
        .context("recording an export")?;
        let outbox_id =
            outbox::enqueue(&tx, Queue::Export, &ExportJob { export_id: id }, request_id).await?;
        tx.commit().await.context("committing an export request")?;
        drop(client);
        self.publisher.publish(&self.db, &[outbox_id]).await;
        info!(export_id = %id, "export requested");
        Ok(ExportView {
            id,
            state: ExportState::Pending,
            download_url: None,
            expires_at: None,
        })
    }

    /// `user`'s export `id`, with a download link while it is ready.
    pub async fn get(&self, user: Uuid, id: Uuid) -> Result<ExportView, ExportError> {
        let now = self.clock.now();
        let client = self.db.get().await.context("connecting to PostgreSQL")?;
        let row = client
            .query_opt_cached(
                "SELECT state, object_key, expires_at, created_at FROM data_exports
                 WHERE id = $1 AND user_id = $2",
                &[&id, &user],
            )
            .await
            .context("reading an export")?
            .ok_or(ExportError::NotFound)?;
        let (state, key, expires_at, created_at): (
            String,
            String,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let stale = now - created_at > chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
        let state = match state.as_str() {
            "ready" => ExportState::Ready,
            "pending" if !stale => ExportState::Pending,
            _ => ExportState::Failed,
        };
        let (download_url, expires_at) = match (state, expires_at) {
            (ExportState::Ready, Some(expires_at)) => {
                let left = (expires_at - now)
                    .to_std()
                    .map_err(|_| ExportError::NotFound)?;
                let url = self
                    .s3
                    .get_object()
                    .bucket(&self.bucket)
                    .key(&key)
                    .presigned(PresigningConfig::expires_in(left).context("a link lifetime")?)
                    .await
                    .context("presigning the download")?
                    .uri()
                    .to_owned();
                (Some(url), Some(expires_at))
            }
            _ => (None, None),
        };
        Ok(ExportView {
            id,
            state,
            download_url,
            expires_at,
        })
    }
}

/// `exports/<256 random bits, hex>.json`: unguessable, and naming no one.
fn object_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(format!("exports/{}.json", platform::crypto::hex(&bytes)))
}

/// The export function: builds and stores documents, one per message.
#[derive(Clone)]
pub struct ExportWorker {
    pub db: Pool,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub messages: Arc<Sealer>,
    pub quests: quests::Quests,
    pub clock: Arc<dyn Clock>,
    pub queue: SqsQueueOps,
}

impl ExportWorker {
    pub fn new(
        config: ExportConfig,
        aws: &AwsClients,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let db = db::pool(&config.database, &aws.secrets)?;
        Ok(Self {
            quests: quests::Quests {
                db: db.clone(),
                clock: clock.clone(),
                zone: config.quest_time_zone,
            },
            db,
            s3: aws.s3.clone(),
            bucket: config.bucket,
            messages: Arc::new(Sealer::new(&config.message_keys)?),
            clock,
            queue: SqsQueueOps {
                step: "export",
                client: aws.sqs.clone(),
                queue_url: config.queue.url,
                dead_letter_queue_url: config.queue.dead_letter_url,
            },
        })
    }

    /// The function's handler: one SQS batch, only failed ids reported.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        process_batch(event, &self.queue, |message| self.export(message)).await
    }

    pub async fn export(&self, message: Message<ExportJob>) -> Result<(), StepError> {
        let id = message.body.export_id;
        let span = tracing::info_span!("export", export_id = %id);
        self.build(id).instrument(span).await
    }

    async fn build(&self, id: Uuid) -> Result<(), StepError> {
        let client = self.db.get().await.map_err(StepError::retryable)?;
        let row = client
            .query_opt_cached(
                "SELECT user_id, object_key FROM data_exports WHERE id = $1 AND state = 'pending'",
                &[&id],
            )
            .await
            .map_err(StepError::retryable)?;
        let Some(row) = row else {
            info!("nothing to export (done, failed or erased)");
            return Ok(());
        };
        let (user, key): (Uuid, String) = (row.get(0), row.get(1));
        let now = self.clock.now();
        let sources = Sources {
            messages: &self.messages,
            quests: &self.quests,
            s3: &self.s3,
            bucket: &self.bucket,
            links_for: DOWNLOAD_LIFETIME,
        };
        let document = match document::build(&client, &sources, user, now).await {
            Ok(Some(document)) => document,
            Ok(None) => return Ok(()),
            Err(error) if is_unreadable(&error) => {
                warn!(
                    error = platform::telemetry::describe(&error),
                    "the export cannot be built"
                );
                self.fail(&client, id, "export_unreadable").await?;
                return Ok(());
            }
            Err(error) => return Err(StepError::retryable(error)),
        };
        let body = serde_json::to_vec(&document).map_err(StepError::retryable)?;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .content_disposition("attachment; filename=\"remirai-export.json\"")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(body))
            .send()
            .await
            .context("storing an export")
            .map_err(StepError::retryable)?;
        let expires_at = now + chrono::Duration::from_std(DOWNLOAD_LIFETIME).unwrap_or_default();
        client
            .execute_cached(
                "UPDATE data_exports SET state = 'ready', finished_at = $2, expires_at = $3
                 WHERE id = $1 AND state = 'pending'",
                &[&id, &now, &expires_at],
            )
            .await
            .context("marking an export ready")
            .map_err(StepError::retryable)?;
        info!("export ready");
        Ok(())
    }

    async fn fail(
        &self,
        client: &deadpool_postgres::Object,
        id: Uuid,
        code: &str,
    ) -> Result<(), StepError> {
        client
            .execute_cached(
                "UPDATE data_exports SET state = 'failed', error_code = $2, finished_at = now()
                 WHERE id = $1 AND state = 'pending'",
                &[&id, &code],
            )
            .await
            .context("failing an export")
            .map_err(StepError::retryable)?;
        Ok(())
    }
}

/// A sealed record that no configured key opens: no retry helps.
fn is_unreadable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<platform::crypto::CryptoError>()
            .is_some()
    })
}
