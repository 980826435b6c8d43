//! Failure injection at the saga's boundaries, for tests that prove every step survives a crash
//! at any point. In production no injector is installed and every point is a no-op.

use std::sync::Arc;

use platform::worker::StepError;
use uuid::Uuid;

/// Where a step can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Synthesize: the LLM answered, nothing is committed yet.
    AfterLlmBeforeCommit,
    /// Synthesize: committed (render message in the outbox), not yet published.
    AfterSynthesisCommit,
    /// Render: cards uploaded, the persona not yet marked ready.
    AfterUploadBeforeCommit,
    /// Render: marked ready, the status not yet written.
    AfterRenderCommitBeforeStatus,
}

/// Decides, at `point` of the step working on persona `id`, whether the step fails there.
type Injector = Arc<dyn Fn(FaultPoint, Uuid) -> Result<(), StepError> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Faults(Option<Injector>);

impl Faults {
    pub fn none() -> Self {
        Self(None)
    }

    /// Fails where `injector` says, whatever the persona.
    pub fn inject(
        injector: impl Fn(FaultPoint) -> Result<(), StepError> + Send + Sync + 'static,
    ) -> Self {
        Self(Some(Arc::new(move |point, _| injector(point))))
    }

    /// Fails where `injector` says for that persona (the soak crashes each persona's steps at
    /// chosen boundaries, once each).
    pub fn inject_per_persona(
        injector: impl Fn(FaultPoint, Uuid) -> Result<(), StepError> + Send + Sync + 'static,
    ) -> Self {
        Self(Some(Arc::new(injector)))
    }

    pub fn at(&self, point: FaultPoint, persona_id: Uuid) -> Result<(), StepError> {
        match &self.0 {
            Some(injector) => injector(point, persona_id),
            None => Ok(()),
        }
    }
}
