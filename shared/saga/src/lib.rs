//! The persona saga (SPEC "Persona saga"): step 1 `synthesize` and step 2 `render_card` as SQS
//! workers, the sweeper that keeps every job moving, and the commands the HTTP API issues.
//!
//! PostgreSQL is the truth: every transition is a compare-and-set on the persona row and the
//! next step's message is written to the outbox in the same transaction. The DynamoDB status
//! read model is rewritten after every transition and never moves backwards.

pub mod commands;
pub mod faults;
pub mod personas;
pub mod render;
pub mod sweeper;
pub mod synthesize;

use std::sync::{Arc, OnceLock};

use deadpool_postgres::Pool;
use platform::{
    aws::AwsClients, crypto::AnswerCipher, db, outbox::Publisher, status::StatusStore,
    worker::SqsQueueOps, Config,
};
use secrecy::ExposeSecret;

pub use faults::{FaultPoint, Faults};

/// Everything the steps need, built once per cold start.
#[derive(Clone)]
pub struct Saga {
    pub db: Pool,
    pub config: Arc<Config>,
    pub aws: AwsClients,
    pub status: StatusStore,
    pub publisher: Publisher,
    pub cipher: Arc<AnswerCipher>,
    pub llm: llm::Provider,
    renderer: Arc<OnceLock<cards::Renderer>>,
    pub faults: Faults,
}

/// The message on the `render` queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderJob {
    pub persona_id: uuid::Uuid,
    /// Which render request this is; an older one finds the row moved on and does nothing.
    pub generation: i32,
}

impl Saga {
    pub fn new(config: Config, aws: AwsClients) -> anyhow::Result<Self> {
        let db = db::pool(&config)?;
        Self::with_pool(Arc::new(config), db, aws)
    }

    /// A saga sharing an existing pool (the HTTP function issues saga commands on its own pool).
    pub fn with_pool(config: Arc<Config>, db: Pool, aws: AwsClients) -> anyhow::Result<Self> {
        // The HTTP client (TLS setup) only when a real model is configured.
        let llm = match &config.llm.base_url {
            None => llm::Provider::Offline,
            Some(base_url) => llm::Provider::OpenAiCompatible(llm::OpenAiCompatible {
                base_url: base_url.clone(),
                api_key: config
                    .llm
                    .api_key
                    .as_ref()
                    .map(|key| key.expose_secret().to_owned()),
                models: config.llm.models.clone(),
                timeout: config.llm.timeout,
                http: reqwest::Client::builder()
                    .timeout(config.llm.timeout)
                    .build()?,
            }),
        };
        Ok(Self {
            db,
            status: StatusStore {
                dynamodb: aws.dynamodb.clone(),
                table: config.table_name.clone(),
            },
            publisher: Publisher {
                sqs: aws.sqs.clone(),
                synthesize_queue_url: config.synthesize_queue_url.clone(),
                render_queue_url: config.render_queue_url.clone(),
            },
            cipher: Arc::new(AnswerCipher::new(&config.answer_keys)?),
            llm,
            renderer: Arc::new(OnceLock::new()),
            faults: Faults::none(),
            config,
            aws,
        })
    }

    /// A pooled connection; failing to get one is worth a retry.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, platform::worker::StepError> {
        self.db.get().await.map_err(|error| {
            platform::worker::StepError::retryable(
                anyhow::Error::from(error).context("connecting to PostgreSQL"),
            )
        })
    }

    /// The card renderer, built (fonts parsed) on first use only: the synthesize worker never
    /// pays for it.
    pub fn renderer(&self) -> &cards::Renderer {
        self.renderer.get_or_init(cards::Renderer::new)
    }

    /// Queue operations of the synthesize worker's queue.
    pub fn synthesize_queue(&self) -> SqsQueueOps {
        SqsQueueOps {
            client: self.aws.sqs.clone(),
            queue_url: self.config.synthesize_queue_url.clone(),
            dead_letter_queue_url: self.config.synthesize_dlq_url.clone(),
        }
    }

    /// Queue operations of the render worker's queue.
    pub fn render_queue(&self) -> SqsQueueOps {
        SqsQueueOps {
            client: self.aws.sqs.clone(),
            queue_url: self.config.render_queue_url.clone(),
            dead_letter_queue_url: self.config.render_dlq_url.clone(),
        }
    }

    /// Rewrites the status read model from `row` (ignored when a newer status is stored).
    pub async fn write_status(&self, row: &personas::PersonaRow) -> anyhow::Result<()> {
        let status = personas::status_of(row);
        let sequence = domain::personas::status_sequence(row.version, row.state_version);
        self.status
            .put(row.owner_id, sequence, &status)
            .await
            .map(|_| ())
    }

    /// A progress write (`synthesizing`, `rendering` started): a later write supersedes it, so a
    /// failure is only logged.
    pub async fn write_progress(&self, row: &personas::PersonaRow) {
        if let Err(error) = self.write_status(row).await {
            tracing::warn!(persona_id = %row.id, error = format!("{error:#}"), "could not write the status");
        }
    }

    /// A terminal or hand-over write (`rendering` after synthesis, `ready`, `failed`): nothing
    /// else would write it, so a failure makes the step retry (the redelivery finds the row
    /// moved on and only rewrites the status).
    pub async fn write_final_status(
        &self,
        row: &personas::PersonaRow,
    ) -> Result<(), platform::worker::StepError> {
        self.write_status(row).await.map_err(|error| {
            platform::worker::StepError::retryable(error.context("writing the status"))
        })
    }
}

impl Saga {
    /// The synthesize function's handler: one SQS batch, only failed ids reported.
    pub async fn synthesize_batch(
        &self,
        event: aws_lambda_events::sqs::SqsEvent,
    ) -> aws_lambda_events::sqs::SqsBatchResponse {
        platform::worker::process_batch(event, &self.synthesize_queue(), |message| {
            self.synthesize(message)
        })
        .await
    }

    /// The render_card function's handler.
    pub async fn render_batch(
        &self,
        event: aws_lambda_events::sqs::SqsEvent,
    ) -> aws_lambda_events::sqs::SqsBatchResponse {
        platform::worker::process_batch(event, &self.render_queue(), |message| self.render(message))
            .await
    }
}
