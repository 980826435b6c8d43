//! The persona's lifecycle in one place: the events that move a persona version and the one
//! function, [`next`], that says where each legal event leads. Every writer of the `personas`
//! table asks it before it writes (see `transitions`), and the database repeats the guard: each
//! write is a compare-and-set on the state read, so a late or duplicated message cannot move a
//! row backwards.
//!
//! A version begins as `awaiting_responses` (no row yet: its survey has fewer than three answers,
//! or fewer than three that no earlier version saw) and the row is born `queued`. The states are
//! `domain::personas::PersonaState`, which the status read model shares.
//!
//! `docs/architecture.md` shows [`markdown_table`]; a test fails when the two disagree.

use domain::personas::{PersonaState, Step};

/// What moves a persona version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The survey's third answer: the first version is made, in the answer's transaction.
    ThresholdReached,
    /// The owner asks for a new version once three answers no version saw are in.
    Refreshed,
    /// A synthesize worker takes the job (or takes over an attempt whose worker died).
    SynthesisStarted,
    /// An attempt ended without a result (a transient failure): the job waits for its retry.
    SynthesisReleased,
    /// Text and stats are stored; the render step is queued.
    Synthesized,
    /// A render worker takes the job (its attempt is counted; the state stays).
    RenderStarted,
    /// The cards are stored.
    Rendered,
    /// A step failed for good, or its message reached the dead-letter queue.
    StepFailed(Step),
    /// The owner retries a failed job at the step that failed.
    Retried(Step),
    /// The owner picked another theme, or ops re-render after a card design change.
    RerenderRequested,
}

impl Event {
    /// Every event, in the order of the documented table.
    pub const ALL: [Event; 12] = [
        Event::ThresholdReached,
        Event::Refreshed,
        Event::SynthesisStarted,
        Event::SynthesisReleased,
        Event::Synthesized,
        Event::RenderStarted,
        Event::Rendered,
        Event::StepFailed(Step::Synthesize),
        Event::StepFailed(Step::RenderCard),
        Event::Retried(Step::Synthesize),
        Event::Retried(Step::RenderCard),
        Event::RerenderRequested,
    ];

    /// The event's name in logs and in the documented table.
    pub fn name(self) -> &'static str {
        match self {
            Event::ThresholdReached => "threshold reached",
            Event::Refreshed => "refreshed",
            Event::SynthesisStarted => "synthesis started",
            Event::SynthesisReleased => "synthesis released",
            Event::Synthesized => "synthesized",
            Event::RenderStarted => "render started",
            Event::Rendered => "rendered",
            Event::StepFailed(Step::Synthesize) => "synthesize failed",
            Event::StepFailed(Step::RenderCard) => "render failed",
            Event::Retried(Step::Synthesize) => "retried (synthesize)",
            Event::Retried(Step::RenderCard) => "retried (render)",
            Event::RerenderRequested => "re-render requested",
        }
    }
}

/// Every state, in the order of the documented table.
pub const STATES: [PersonaState; 6] = [
    PersonaState::AwaitingResponses,
    PersonaState::Queued,
    PersonaState::Synthesizing,
    PersonaState::Rendering,
    PersonaState::Ready,
    PersonaState::Failed,
];

/// An event that the persona's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a persona that is {} cannot take \"{}\"", .state.as_str(), .event.name())]
pub struct IllegalTransition {
    pub state: PersonaState,
    pub event: Event,
}

/// Where `event` takes a version in `state`: the persona's whole transition table.
pub fn next(state: PersonaState, event: Event) -> Result<PersonaState, IllegalTransition> {
    use Event::*;
    use PersonaState::*;
    let to = match (state, event) {
        (AwaitingResponses, ThresholdReached | Refreshed) => Queued,
        (Queued, SynthesisStarted) => Synthesizing,
        // Only once the attempt is older than the queue's visibility timeout (its worker died);
        // the write guards the age.
        (Synthesizing, SynthesisStarted) => Synthesizing,
        (Synthesizing, SynthesisReleased) => Queued,
        (Synthesizing, Synthesized) => Rendering,
        (Rendering, RenderStarted) => Rendering,
        (Rendering, Rendered) => Ready,
        (Queued | Synthesizing, StepFailed(Step::Synthesize)) => Failed,
        (Rendering, StepFailed(Step::RenderCard)) => Failed,
        (Failed, Retried(Step::Synthesize)) => Queued,
        (Failed, Retried(Step::RenderCard)) => Rendering,
        (Ready, RerenderRequested) => Rendering,
        _ => return Err(IllegalTransition { state, event }),
    };
    Ok(to)
}

/// The states `event` may start from (what the compare-and-set accepts).
pub fn sources(event: Event) -> Vec<PersonaState> {
    STATES
        .into_iter()
        .filter(|state| next(*state, event).is_ok())
        .collect()
}

/// The transition table as markdown: a row per state, a column per event, the next state in
/// each cell where the event is legal.
pub fn markdown_table() -> String {
    let mut table = String::from("| state \\ event |");
    for event in Event::ALL {
        table.push_str(&format!(" {} |", event.name()));
    }
    table.push_str("\n|---|");
    table.push_str(&"---|".repeat(Event::ALL.len()));
    for state in STATES {
        table.push_str(&format!("\n| `{}` |", state.as_str()));
        for event in Event::ALL {
            match next(state, event) {
                Ok(to) => table.push_str(&format!(" `{}` |", to.as_str())),
                Err(_) => table.push_str(" |"),
            }
        }
    }
    table.push('\n');
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_goes_from_the_third_answer_to_ready() {
        let mut state = PersonaState::AwaitingResponses;
        for event in [
            Event::ThresholdReached,
            Event::SynthesisStarted,
            Event::Synthesized,
            Event::RenderStarted,
            Event::Rendered,
        ] {
            state = next(state, event).unwrap();
        }
        assert_eq!(state, PersonaState::Ready);
    }

    #[test]
    fn a_finished_version_never_moves_back_into_synthesis() {
        for event in [
            Event::SynthesisStarted,
            Event::Synthesized,
            Event::ThresholdReached,
        ] {
            assert!(next(PersonaState::Ready, event).is_err());
            assert!(next(PersonaState::Failed, event).is_err());
        }
        assert!(next(PersonaState::Rendering, Event::StepFailed(Step::Synthesize)).is_err());
    }

    #[test]
    fn a_retry_resumes_at_the_step_that_failed() {
        assert_eq!(
            next(PersonaState::Failed, Event::Retried(Step::RenderCard)),
            Ok(PersonaState::Rendering)
        );
        assert_eq!(
            next(PersonaState::Failed, Event::Retried(Step::Synthesize)),
            Ok(PersonaState::Queued)
        );
    }

    #[test]
    fn every_running_state_can_fail_and_every_failure_can_be_retried() {
        for state in PersonaState::RUNNING {
            assert!(Event::ALL
                .iter()
                .any(|event| matches!(event, Event::StepFailed(_))
                    && next(state, *event) == Ok(PersonaState::Failed)));
        }
        assert_eq!(
            sources(Event::Retried(Step::Synthesize)),
            [PersonaState::Failed]
        );
    }
}
