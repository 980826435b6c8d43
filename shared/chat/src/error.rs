//! Why a chat use case refused: [`ChatError`].

use platform::{
    cursor::InvalidPage,
    rate_limit::{LimitError, Limited},
};

use crate::{safety::Category, MAX_MESSAGE_CHARS};

/// Why a chat use case refused.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the message must have 1 to {MAX_MESSAGE_CHARS} characters")]
    InvalidContent,
    #[error("no persona yet")]
    NoPersona,
    #[error("the persona is not ready")]
    NotReady,
    /// The safety check refused the message.
    #[error("message blocked ({})", .0.as_str())]
    Blocked(Category),
    #[error(transparent)]
    RateLimited(#[from] Limited),
    #[error("the daily message quota is used up")]
    DailyQuotaExceeded { retry_after_secs: u64 },
    #[error("the idempotency key was used with another message")]
    KeyReused,
    #[error("a message with this idempotency key is still being answered")]
    InProgress,
    #[error(transparent)]
    InvalidPage(#[from] InvalidPage),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<LimitError> for ChatError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Unexpected(error) => Self::Unexpected(error),
        }
    }
}
