//! The persona saga's states and the status clients poll (docs/architecture.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::surveys::RESPONSE_THRESHOLD;

/// `awaiting_responses → queued → synthesizing → rendering → ready | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonaState {
    AwaitingResponses,
    Queued,
    Synthesizing,
    Rendering,
    Ready,
    Failed,
}

impl PersonaState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingResponses => "awaiting_responses",
            Self::Queued => "queued",
            Self::Synthesizing => "synthesizing",
            Self::Rendering => "rendering",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    /// A job in one of these states is in flight: a worker or a queued message will move it.
    pub const RUNNING: [PersonaState; 3] = [Self::Queued, Self::Synthesizing, Self::Rendering];

    pub fn is_running(self) -> bool {
        Self::RUNNING.contains(&self)
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::AwaitingResponses,
            Self::Queued,
            Self::Synthesizing,
            Self::Rendering,
            Self::Ready,
            Self::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

/// The saga's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Synthesize,
    RenderCard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepStatus {
    pub name: Step,
    pub status: StepState,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusError {
    pub code: String,
    pub retryable: bool,
}

/// What `GET /v1/personas/me/status` returns; the DynamoDB read model stores exactly this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PersonaStatus {
    pub state: PersonaState,
    pub step: Option<Step>,
    pub attempt: u32,
    pub steps: Vec<StepStatus>,
    pub error: Option<StatusError>,
    pub persona_id: Option<Uuid>,
    pub version: Option<i32>,
    /// Answers no persona version has seen yet.
    #[serde(default)]
    pub new_responses: u32,
    /// How many more answers a new persona version needs: a version is made from at least
    /// three answers no earlier version saw, so no version can single out one friend's answers
    /// by comparison with the one before.
    #[serde(default = "default_responses_needed")]
    pub responses_needed: u32,
}

fn default_responses_needed() -> u32 {
    RESPONSE_THRESHOLD.unsigned_abs()
}

/// Answers a new persona version needs beyond those earlier versions saw (and the first
/// version needs in all).
pub fn responses_needed(new_responses: u32) -> u32 {
    RESPONSE_THRESHOLD
        .unsigned_abs()
        .saturating_sub(new_responses)
}

impl PersonaStatus {
    /// The status with the count of answers no version has seen yet.
    pub fn with_new_responses(mut self, new_responses: u32) -> Self {
        self.new_responses = new_responses;
        self.responses_needed = responses_needed(new_responses);
        self
    }

    /// Before the third answer.
    pub fn awaiting_responses() -> Self {
        Self {
            state: PersonaState::AwaitingResponses,
            step: None,
            attempt: 0,
            steps: Vec::new(),
            error: None,
            persona_id: None,
            version: None,
            new_responses: 0,
            responses_needed: default_responses_needed(),
        }
    }

    /// A new job, waiting for the synthesize worker.
    pub fn queued(persona_id: Uuid, version: i32) -> Self {
        let pending = |name| StepStatus {
            name,
            status: StepState::Pending,
            started_at: None,
            finished_at: None,
            attempts: 0,
        };
        Self {
            state: PersonaState::Queued,
            step: Some(Step::Synthesize),
            attempt: 0,
            steps: vec![pending(Step::Synthesize), pending(Step::RenderCard)],
            error: None,
            persona_id: Some(persona_id),
            version: Some(version),
            new_responses: 0,
            responses_needed: default_responses_needed(),
        }
    }
}

/// Orders status writes so the read model never moves backwards: a later persona version, or a
/// later transition of the same version (the row's compare-and-set counter), wins.
pub fn status_sequence(version: i32, state_version: i32) -> i64 {
    i64::from(version) * 1_000_000 + i64::from(state_version)
}

/// The message on the `synthesize` queue: ids only, never answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthesizeJob {
    pub persona_id: Uuid,
    /// Which synthesis run this is (a retry starts a new one); an older one finds the row moved
    /// on and does nothing, and its dead letter cannot fail the newer run. Absent in messages
    /// queued before runs were numbered.
    #[serde(default)]
    pub generation: Option<i32>,
}

/// The message on the `render` queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderJob {
    pub persona_id: Uuid,
    /// Which render request this is; an older one finds the row moved on and does nothing.
    pub generation: i32,
}
