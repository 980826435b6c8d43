//! Social (F-005): public personas, the share page's data and card image, shares,
//! compatibility between two personas, and reports on public personas.
//!
//! Visibility belongs to the owner's persona as a whole (`persona_visibility`, written by
//! `personas::Personas::set_public`): every public read here resolves the asked version id to
//! its owner and serves that owner's newest version with cards, only while the owner's persona
//! is public. So an old QR code keeps working, and unpublishing hides every version at once.

pub mod compatibility;
pub mod public;
pub mod reports;
pub mod shares;

use std::sync::Arc;

use anyhow::Context;
use deadpool_postgres::Pool;
use personas::cards::CardLinks;
use platform::{
    clock::Clock,
    rate_limit::{LimitError, Limited, RateLimiter},
};

pub use public::{CardImage, PublicPersona};
pub use shares::Share;

/// Why a social use case refused.
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    /// No such persona, or its owner's persona is not public.
    #[error("no such public persona")]
    NotFound,
    /// The caller has no persona with cards yet.
    #[error("no persona yet")]
    NoPersona,
    /// The caller's persona is private, so a shared link would show nothing.
    #[error("the persona is not public")]
    NotPublic,
    /// The caller's own persona is not ready (compatibility needs it).
    #[error("the persona is not ready")]
    NotReady,
    /// The caller asked to compare their persona with itself.
    #[error("the persona is the caller's own")]
    OwnPersona,
    #[error(transparent)]
    RateLimited(#[from] Limited),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<LimitError> for SocialError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Unexpected(error) => Self::Unexpected(error),
        }
    }
}

/// The social use cases and the handles they need.
#[derive(Clone)]
pub struct Social {
    pub db: Pool,
    pub clock: Arc<dyn Clock>,
    pub limits: RateLimiter,
    /// The card bucket (the share image is read from it).
    pub cards: CardLinks,
    pub reports: reports::ReportSettings,
}

impl Social {
    async fn connection(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.db.get().await.context("connecting to PostgreSQL")
    }
}
