//! The background work of the local stack: the queue workers behind one poller per SQS event
//! source of the template, and the sweeper's loop.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::{
    poller::{Poller, SqsHandler},
    provision::LocalResources,
    template::Template,
};

/// The template's SQS-triggered functions, run by the local pollers exactly as their Lambda
/// mains run them.
pub fn saga_workers(saga: &saga::Saga) -> Workers {
    let mut workers = Workers::new();
    let synthesize = saga.clone();
    workers.insert(
        "SynthesizeFunction".into(),
        Arc::new(move |event| {
            let saga = synthesize.clone();
            Box::pin(async move { saga.synthesize_batch(event).await })
        }),
    );
    let render = saga.clone();
    workers.insert(
        "RenderCardFunction".into(),
        Arc::new(move |event| {
            let saga = render.clone();
            Box::pin(async move { saga.render_batch(event).await })
        }),
    );
    workers
}

/// The chat memory function, run by the local pollers as its Lambda main runs it.
pub fn chat_workers(memory: &chat::memory::MemoryWorker) -> Workers {
    let memory = memory.clone();
    let handler: SqsHandler = Arc::new(move |event| {
        let memory = memory.clone();
        Box::pin(async move { memory.handle_batch(event).await })
    });
    Workers::from([("ChatMemoryFunction".to_owned(), handler)])
}

/// The export and erase functions, run by the local pollers as their Lambda mains run them.
pub fn account_workers(export: &account::ExportWorker, erase: &account::EraseWorker) -> Workers {
    let export = export.clone();
    let erase = erase.clone();
    let export: SqsHandler = Arc::new(move |event| {
        let export = export.clone();
        Box::pin(async move { export.handle_batch(event).await })
    });
    let erase: SqsHandler = Arc::new(move |event| {
        let erase = erase.clone();
        Box::pin(async move { erase.handle_batch(event).await })
    });
    Workers::from([
        ("ExportFunction".to_owned(), export),
        ("EraseFunction".to_owned(), erase),
    ])
}

/// Runs the sweeper every `every` until `shutdown` (the template schedules it every minute; the
/// local stack runs it more often so a lost message is noticed quickly).
pub async fn sweeper_loop(
    saga: saga::Saga,
    settings: saga::sweeper::SweepSettings,
    every: std::time::Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {
                if let Err(error) = saga.sweep(settings).await {
                    tracing::warn!(error = format!("{error:#}"), "sweep failed");
                }
            }
        }
    }
}

/// The worker handlers the local stack can run, by the function's logical id in the template.
pub type Workers = BTreeMap<String, SqsHandler>;

/// One poller per SQS event source of the template. Every SQS-triggered function must have a
/// handler in `workers`, so a function added to the template cannot silently go unrun locally.
pub fn pollers(
    template: &Template,
    resources: &LocalResources,
    workers: &Workers,
) -> anyhow::Result<Vec<Poller>> {
    template
        .sqs_event_sources()?
        .into_iter()
        .map(|source| {
            let Some(handler) = workers.get(&source.function) else {
                bail!(
                    "template.yaml declares the SQS-triggered function {} but the local stack has no handler for it",
                    source.function
                );
            };
            let queue = resources
                .get(&source.queue)
                .with_context(|| format!("queue {} was not provisioned", source.queue))?;
            Ok(Poller {
                queue_url: queue.reference.clone(),
                queue_arn: queue.arn.clone(),
                handler: Arc::clone(handler),
                source,
            })
        })
        .collect()
}
