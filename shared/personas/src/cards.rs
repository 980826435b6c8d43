//! Links to a persona's stored cards: the bucket is private, so clients get presigned GETs.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_s3::presigning::PresigningConfig;

use crate::StoredCard;

/// How long a presigned card link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(3600);

/// Presigns card links in the cards bucket.
#[derive(Clone, Debug)]
pub struct CardLinks {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl CardLinks {
    /// A time-limited GET link to `card`.
    pub async fn link(&self, card: &StoredCard) -> anyhow::Result<String> {
        let presigned = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&card.key)
            .presigned(PresigningConfig::expires_in(LINK_LIFETIME)?)
            .await
            .context("presigning a card link")?;
        Ok(presigned.uri().to_owned())
    }
}
