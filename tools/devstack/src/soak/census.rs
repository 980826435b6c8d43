//! The census after a soak: what it left behind in PostgreSQL, S3, the status table and the
//! dead-letter queues.

use std::collections::BTreeMap;

use anyhow::Context;
use domain::personas::PersonaState;
use futures_util::{stream, StreamExt, TryStreamExt};
use platform::{aws::AwsClients, worker::FAILURE_REASON_ATTRIBUTE};
use saga::Saga;

use super::SoakReport;
use crate::provision::LocalResources;

/// Counts what the soak left behind.
pub(super) async fn census(
    aws: &AwsClients,
    resources: &LocalResources,
    saga: &Saga,
    seeded: &[crate::seed::QueuedPersona],
) -> anyhow::Result<SoakReport> {
    let db = &saga.synthesize.personas.db;
    let client = db.get().await?;
    let mut report = SoakReport::default();
    for row in client
        .query(
            "SELECT state, COALESCE(error_code, ''), count(*) FROM personas GROUP BY 1, 2",
            &[],
        )
        .await?
    {
        let (state, code, count): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        match state.as_str() {
            "ready" => report.ready += count as usize,
            "failed" => *report.failed.entry(code).or_default() += count as usize,
            _ => report.lost += count as usize,
        }
    }
    report.duplicate_versions = client
        .query_one(
            "SELECT count(*) FROM (SELECT owner_id FROM personas GROUP BY owner_id HAVING count(*) > 1) d",
            &[],
        )
        .await?
        .get::<_, i64>(0) as usize;
    let listed_wrong: i64 = client
        .query_one(
            "SELECT count(*) FROM personas WHERE state = 'ready' AND jsonb_array_length(cards) <> 3",
            &[],
        )
        .await?
        .get(0);
    let ledger = client
        .query_one(
            "SELECT count(*), count(*) - count(DISTINCT (user_id, reason, reference)) FROM crystal_ledger",
            &[],
        )
        .await?;
    report.ledger_entries = ledger.get(0);
    report.duplicate_ledger_entries = ledger.get(1);
    drop(client);

    // Card objects per persona (keys are `cards/{persona}/{sha256}.png`).
    let bucket = resources
        .get("CardsBucket")
        .context("the cards bucket")?
        .reference
        .clone();
    let mut per_persona = BTreeMap::<String, usize>::new();
    let mut pages = aws
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("cards/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page?.contents() {
            if let Some(persona) = object.key().and_then(|k| k.split('/').nth(1)) {
                *per_persona.entry(persona.to_owned()).or_default() += 1;
                report.card_objects += 1;
            }
        }
    }
    report.duplicate_cards = per_persona
        .values()
        .map(|n| n.saturating_sub(3))
        .sum::<usize>()
        + listed_wrong as usize;

    // What clients poll.
    let status = saga.synthesize.personas.status.clone();
    let statuses: Vec<bool> = stream::iter(seeded.iter().map(|s| s.owner_id))
        .map(|owner| {
            let status = status.clone();
            async move {
                let current = status.get(owner).await?;
                anyhow::Ok(current.is_some_and(|(s, _)| s.state == PersonaState::Ready))
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    report.statuses_not_ready = statuses.iter().filter(|ready| !**ready).count();

    for id in ["SynthesizeDeadLetterQueue", "RenderDeadLetterQueue"] {
        let url = &resources.get(id).context("a dead-letter queue")?.reference;
        for message in crate::poller::peek(&aws.sqs, url).await? {
            let reason = message
                .message_attributes()
                .and_then(|a| a.get(FAILURE_REASON_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .unwrap_or("after 5 receives");
            report.dead_letters.push(format!(
                "{id}: {reason}: {}",
                message.body().unwrap_or_default()
            ));
        }
    }
    Ok(report)
}
