//! The persona saga (docs/architecture.md, "The persona saga"): step 1 `synthesize` and step 2 `render_card` as SQS
//! workers, and the sweeper that keeps every job moving. Each is built from its own function's
//! configuration; [`Saga`] bundles the three for the local stack, which runs them in one process.
//!
//! The workers do the work (the LLM, the renderer, S3); every state they record is a command of
//! the `personas` crate, which owns the lifecycle, the outbox messages of each transition and
//! the status read model.

pub mod config;
pub mod faults;
pub mod render;
pub mod sweeper;
pub mod synthesize;

use personas::{Personas, StatusStore};
use platform::{
    aws::{AwsClients, Table},
    db::{self, DatabaseConfig},
    outbox::{Publisher, QueueUrls, WorkerQueue},
    worker::SqsQueueOps,
};

pub use config::{RenderConfig, SweeperConfig, SynthesizeConfig};
pub use faults::{FaultPoint, Faults};
pub use render::RenderWorker;
pub use sweeper::Sweeper;
pub use synthesize::SynthesizeWorker;

/// The persona commands and status writes of a worker, on its own pool, publishing to `queues`.
fn personas(
    database: &DatabaseConfig,
    table_name: &str,
    queues: QueueUrls,
    aws: &AwsClients,
) -> anyhow::Result<Personas> {
    Ok(Personas {
        db: db::pool(database, &aws.secrets)?,
        status: StatusStore {
            table: Table::new(&aws.dynamodb, table_name),
        },
        publisher: Publisher::new(aws.sqs.clone(), queues),
    })
}

/// Queue operations (delayed retries, dead-lettering) on a worker's own queue.
fn queue_ops(step: &'static str, queue: &WorkerQueue, aws: &AwsClients) -> SqsQueueOps {
    SqsQueueOps {
        step,
        client: aws.sqs.clone(),
        queue_url: queue.url.clone(),
        dead_letter_queue_url: queue.dead_letter_url.clone(),
    }
}

/// The three saga functions in one process (the local stack and the tests).
#[derive(Clone)]
pub struct Saga {
    pub synthesize: SynthesizeWorker,
    pub render: RenderWorker,
    pub sweeper: Sweeper,
}

impl Saga {
    /// Each function from its own configuration.
    pub fn new(
        synthesize: SynthesizeConfig,
        render: RenderConfig,
        sweeper: SweeperConfig,
        aws: &AwsClients,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            synthesize: SynthesizeWorker::new(synthesize, aws)?,
            render: RenderWorker::new(render, aws)?,
            sweeper: Sweeper::new(sweeper, aws)?,
        })
    }

    /// Installs a failure injector in both steps.
    pub fn set_faults(&mut self, faults: Faults) {
        self.synthesize.faults = faults.clone();
        self.render.faults = faults;
    }

    pub async fn synthesize_batch(
        &self,
        event: aws_lambda_events::sqs::SqsEvent,
    ) -> aws_lambda_events::sqs::SqsBatchResponse {
        self.synthesize.handle_batch(event).await
    }

    pub async fn render_batch(
        &self,
        event: aws_lambda_events::sqs::SqsEvent,
    ) -> aws_lambda_events::sqs::SqsBatchResponse {
        self.render.handle_batch(event).await
    }

    pub async fn sweep(
        &self,
        settings: sweeper::SweepSettings,
    ) -> anyhow::Result<sweeper::SweepReport> {
        self.sweeper.sweep(settings).await
    }
}
