//! The one writer of a persona version's state: [`apply`] asks [`lifecycle::next`] where the
//! event leads, then writes the new state with the event's fields as a compare-and-set on the
//! state it read (and the row's counter, or the run the message belongs to). A duplicate, late
//! or reordered message finds the row moved on and writes nothing.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::GenericClient;
use domain::{
    personas::{PersonaState, RenderJob, Step, SynthesizeJob},
    synthesis::{PersonaText, Stats},
};
use platform::{
    db::CachedStatements,
    outbox::{self, Queue},
};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::{
    lifecycle::{self, Event},
    versions::{self, PersonaVersion, StoredCard},
};

/// What a transition writes besides the state.
pub(crate) enum Change<'a> {
    SynthesisStarted {
        /// A `synthesizing` attempt younger than this is still running: no takeover.
        reentry_after: Duration,
    },
    SynthesisReleased,
    Synthesized {
        text: &'a PersonaText,
        synthesized_by: &'a str,
        stats: Stats,
        /// The answers the version was built from.
        response_count: i32,
    },
    RenderStarted,
    Rendered {
        cards: &'a [StoredCard],
        design: i32,
    },
    StepFailed {
        step: Step,
        code: &'a str,
        retryable: bool,
    },
    Retried(Step),
    RerenderRequested {
        /// The theme to render in; `None` keeps the persona's own.
        theme: Option<&'a str>,
    },
}

impl Change<'_> {
    fn event(&self) -> Event {
        match self {
            Change::SynthesisStarted { .. } => Event::SynthesisStarted,
            Change::SynthesisReleased => Event::SynthesisReleased,
            Change::Synthesized { .. } => Event::Synthesized,
            Change::RenderStarted => Event::RenderStarted,
            Change::Rendered { .. } => Event::Rendered,
            Change::StepFailed { step, .. } => Event::StepFailed(*step),
            Change::Retried(step) => Event::Retried(*step),
            Change::RerenderRequested { .. } => Event::RerenderRequested,
        }
    }
}

/// Which row the compare-and-set accepts, besides its state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard {
    /// The row as read: its compare-and-set counter.
    Read(i32),
    /// A synthesize message's run (`None`: a message from before runs were numbered, any run).
    SynthesisRun(Option<i32>),
    /// A render message's generation.
    RenderRun(i32),
}

const RESET_RENDER: &str =
    "render_attempts = 0, render_started_at = NULL, render_finished_at = NULL";
const CLEAR_ERROR: &str = "failed_step = NULL, error_code = NULL, error_retryable = NULL";

/// Moves version `id`, read in state `from`, by `change`. `None` when the lifecycle forbids the
/// event from `from`, or the row is no longer as read (another writer won).
pub(crate) async fn apply(
    client: &impl GenericClient,
    id: Uuid,
    from: PersonaState,
    guard: Guard,
    change: &Change<'_>,
) -> anyhow::Result<Option<PersonaVersion>> {
    let event = change.event();
    let to = match lifecycle::next(from, event) {
        Ok(to) => to,
        Err(illegal) => {
            tracing::info!(persona_id = %id, %illegal, "nothing written");
            return Ok(None);
        }
    };
    let (to, from) = (to.as_str(), from.as_str());
    let (guard_sql, guard_value) = match guard {
        Guard::Read(state_version) => ("state_version = $2", state_version),
        Guard::SynthesisRun(run) => ("($2 < 0 OR synthesize_generation = $2)", run.unwrap_or(-1)),
        Guard::RenderRun(generation) => ("render_generation = $2", generation),
    };
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id, &guard_value, &to, &from];
    let mut extra_guard = "";
    let sets: String;
    // Values the parameters borrow.
    let reentry_secs: f64;
    let archetype: String;
    let traits: serde_json::Value;
    let stat_values: [i16; 4];
    let cards_json: serde_json::Value;
    match change {
        Change::SynthesisStarted { reentry_after } => {
            sets = "synthesize_attempts = synthesize_attempts + 1, \
                    synthesize_started_at = COALESCE(synthesize_started_at, now())"
                .into();
            if from == PersonaState::Synthesizing.as_str() {
                extra_guard = " AND updated_at < now() - make_interval(secs => $5)";
                reentry_secs = reentry_after.as_secs_f64();
                params.push(&reentry_secs);
            }
        }
        Change::SynthesisReleased => sets = String::new(),
        Change::Synthesized {
            text,
            synthesized_by,
            stats,
            response_count,
        } => {
            archetype = serde_json::to_value(text.archetype)?
                .as_str()
                .unwrap_or_default()
                .to_owned();
            traits = serde_json::to_value(&text.traits)?;
            stat_values = [
                i16::from(stats.charisma),
                i16::from(stats.intellect),
                i16::from(stats.kindness),
                i16::from(stats.energy),
            ];
            sets = "name = $5, archetype = $6, traits = $7, greeting = $8, \
                    charisma = $9, intellect = $10, kindness = $11, energy = $12, \
                    synthesized_by = $13, response_count = $14, \
                    render_generation = render_generation + 1, synthesize_finished_at = now()"
                .into();
            let fields: [&(dyn ToSql + Sync); 10] = [
                &text.name,
                &archetype,
                &traits,
                &text.greeting,
                &stat_values[0],
                &stat_values[1],
                &stat_values[2],
                &stat_values[3],
                synthesized_by,
                response_count,
            ];
            params.extend(fields);
        }
        Change::RenderStarted => {
            sets = "render_attempts = render_attempts + 1, \
                    render_started_at = COALESCE(render_started_at, now())"
                .into()
        }
        Change::Rendered { cards, design } => {
            cards_json = serde_json::to_value(cards)?;
            sets =
                format!("cards = $5, card_design = $6, render_finished_at = now(), {CLEAR_ERROR}");
            let fields: [&(dyn ToSql + Sync); 2] = [&cards_json, design];
            params.extend(fields);
        }
        Change::StepFailed {
            code, retryable, ..
        } => {
            sets = "failed_step = $5, error_code = $6, error_retryable = $7".into();
            let fields: [&(dyn ToSql + Sync); 3] = [step_name(event), code, retryable];
            params.extend(fields);
        }
        Change::Retried(Step::Synthesize) => {
            sets = format!(
                "synthesize_generation = synthesize_generation + 1, synthesize_attempts = 0, \
                 synthesize_started_at = NULL, synthesize_finished_at = NULL, \
                 {RESET_RENDER}, {CLEAR_ERROR}"
            )
        }
        Change::Retried(Step::RenderCard) => {
            sets =
                format!("render_generation = render_generation + 1, {RESET_RENDER}, {CLEAR_ERROR}")
        }
        Change::RerenderRequested { theme } => {
            sets = match theme {
                Some(theme) => {
                    params.push(theme);
                    format!("render_generation = render_generation + 1, {RESET_RENDER}, theme = $5")
                }
                None => format!("render_generation = render_generation + 1, {RESET_RENDER}"),
            }
        }
    }
    let separator = if sets.is_empty() { "" } else { ", " };
    let sql = format!(
        "UPDATE personas SET state = $3, state_version = state_version + 1, updated_at = now()\
         {separator}{sets}
         WHERE id = $1 AND state = $4 AND {guard_sql}{extra_guard}
         RETURNING {}",
        versions::COLUMNS
    );
    let row = client
        .query_opt_cached(&sql, &params)
        .await
        .with_context(|| format!("moving a persona ({})", event.name()))?;
    Ok(row.as_ref().map(versions::from_row))
}

/// The step a failure event names, as stored in `failed_step`.
fn step_name(event: Event) -> &'static &'static str {
    match event {
        Event::StepFailed(Step::RenderCard) => &"render_card",
        _ => &"synthesize",
    }
}

/// Queues the message of the step `version` is in: render for `rendering`, synthesize
/// otherwise. Written inside the caller's transaction; publish the returned outbox id after
/// commit.
pub(crate) async fn queue_step(
    client: &impl GenericClient,
    version: &PersonaVersion,
    request_id: Option<&str>,
) -> anyhow::Result<Uuid> {
    match version.state {
        PersonaState::Rendering => {
            let job = RenderJob {
                persona_id: version.id,
                generation: version.render_generation,
            };
            outbox::enqueue(client, Queue::Render, &job, request_id).await
        }
        _ => {
            let job = SynthesizeJob {
                persona_id: version.id,
                generation: Some(version.synthesize_generation),
            };
            outbox::enqueue(client, Queue::Synthesize, &job, request_id).await
        }
    }
}
