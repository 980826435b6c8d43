//! Step 2: render the three card sizes, upload them under content-addressed keys with immutable
//! caching, and mark the persona `ready`. Uploading is idempotent (the same card has the same
//! key), so a redelivered message that already uploaded just finds the row moved on.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_lc_rs::digest;
use aws_sdk_s3::primitives::ByteStream;
use cards::{Card, CardData, Theme};
use domain::personas::{PersonaState, RenderJob, Step};
use personas::{Personas, StoredCard};
use platform::{
    aws::AwsClients,
    outbox::QueueUrls,
    worker::{process_batch, Message, SqsQueueOps, StepError},
};
use tracing::{info, warn, Instrument};

use crate::{FaultPoint, Faults, RenderConfig};

/// Cards never change once written: a new render gets a new key.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The render_card function: everything step 2 needs, built once per cold start.
#[derive(Clone)]
pub struct RenderWorker {
    pub personas: Personas,
    pub s3: aws_sdk_s3::Client,
    pub cards_bucket: String,
    pub frontend_url: String,
    renderer: Arc<OnceLock<cards::Renderer>>,
    pub queue: SqsQueueOps,
    pub faults: Faults,
}

impl RenderWorker {
    pub fn new(config: RenderConfig, aws: &AwsClients) -> anyhow::Result<Self> {
        Ok(Self {
            // Step 2 is the last: it publishes nothing.
            personas: crate::personas(
                &config.database,
                &config.table_name,
                QueueUrls::default(),
                aws,
            )?,
            s3: aws.s3.clone(),
            cards_bucket: config.cards_bucket,
            frontend_url: config.frontend_url,
            renderer: Arc::new(OnceLock::new()),
            queue: crate::queue_ops("render_card", &config.queue, aws),
            faults: Faults::none(),
        })
    }

    /// The card renderer, built (fonts parsed) on first use only.
    pub fn renderer(&self) -> &cards::Renderer {
        self.renderer.get_or_init(cards::Renderer::new)
    }

    /// The function's handler: one SQS batch, only failed ids reported.
    pub async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        process_batch(event, &self.queue, |message| self.render(message)).await
    }

    pub async fn render(&self, message: Message<RenderJob>) -> Result<(), StepError> {
        let span = tracing::info_span!("step", persona_id = %message.body.persona_id, step = "render_card");
        self.render_step(message).instrument(span).await
    }

    async fn render_step(&self, message: Message<RenderJob>) -> Result<(), StepError> {
        let RenderJob {
            persona_id: id,
            generation,
        } = message.body;
        let personas = &self.personas;
        let Some((client, row)) = personas.load_for_step(id).await? else {
            return Ok(());
        };
        if row.state != PersonaState::Rendering || row.render_generation != generation {
            info!(
                state = row.state.as_str(),
                "render message for a finished or newer render; nothing to do"
            );
            return personas.repair_status(&row).await;
        }
        let Some(row) = personas.start_render(&client, &row, generation).await? else {
            return Ok(());
        };
        drop(client);

        let (Some(name), Some(archetype), Some(stats)) =
            (row.name.clone(), row.archetype, row.stats)
        else {
            personas
                .fail(&row, Step::RenderCard, "missing_synthesis", false)
                .await?;
            return Ok(());
        };
        let data = CardData {
            name,
            archetype,
            stats,
            share_url: format!("{}/p/{id}", self.frontend_url),
            theme: Theme::parse(&row.theme).unwrap_or(Theme::Default),
        };
        let started = Instant::now();
        let renderer = self.clone();
        // CPU-bound; a panic inside the renderer is contained and fails this persona only.
        let rendered =
            tokio::task::spawn_blocking(move || renderer.renderer().render_all(&data)).await;
        let cards = match rendered {
            Ok(Ok(cards)) => cards,
            Ok(Err(error)) => {
                warn!(error = %error, "rendering failed");
                personas
                    .fail(&row, Step::RenderCard, "render_failed", false)
                    .await?;
                return Ok(());
            }
            Err(_) => {
                warn!("the renderer panicked");
                personas
                    .fail(&row, Step::RenderCard, "render_failed", false)
                    .await?;
                return Ok(());
            }
        };
        info!(
            render_ms = started.elapsed().as_secs_f64() * 1000.0,
            "cards rendered"
        );
        let mut stored = Vec::with_capacity(cards.len());
        for card in &cards {
            stored.push(self.upload(id, card).await.map_err(StepError::retryable)?);
        }
        self.faults.at(FaultPoint::AfterUploadBeforeCommit, id)?;
        let Some(ready) = personas
            .commit_render(&row, generation, &stored, cards::DESIGN_VERSION)
            .await?
        else {
            info!("another delivery finished the render first");
            return Ok(());
        };
        self.faults
            .at(FaultPoint::AfterRenderCommitBeforeStatus, id)?;
        personas.announce(&ready).await?;
        info!("persona ready");
        Ok(())
    }

    async fn upload(&self, persona_id: uuid::Uuid, card: &Card) -> anyhow::Result<StoredCard> {
        let hash = platform::crypto::hex(digest::digest(&digest::SHA256, &card.png).as_ref());
        let key = format!("cards/{persona_id}/{hash}.png");
        self.s3
            .put_object()
            .bucket(&self.cards_bucket)
            .key(&key)
            .content_type("image/png")
            .cache_control(CACHE_CONTROL)
            .body(ByteStream::from(card.png.clone()))
            .send()
            .await
            .context("uploading a card")?;
        Ok(StoredCard {
            size: card.size.name().to_owned(),
            key,
            width: card.width,
            height: card.height,
        })
    }
}
