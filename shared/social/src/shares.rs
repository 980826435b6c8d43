//! Shares: the owner reports that they shared their persona on a channel. The share row and the
//! `persona_shared` domain event (which the share quest counts) are written in one transaction.

use anyhow::Context;
use chrono::{DateTime, Utc};
use domain::shares::ShareChannel;
use personas::versions;
use platform::db::CachedStatements;
use platform::{
    events::{self, EventKind},
    rate_limit::SHARE_RECORD,
};
use uuid::Uuid;

use crate::{Social, SocialError};

/// A recorded share.
#[derive(Debug, Clone)]
pub struct Share {
    pub id: Uuid,
    /// The version that was current when it was shared.
    pub persona_id: Uuid,
    pub channel: ShareChannel,
    pub created_at: DateTime<Utc>,
}

impl Social {
    /// Records that `owner_id` shared their persona on `channel`. Their persona must have
    /// cards ([`SocialError::NoPersona`]) and be public ([`SocialError::NotPublic`]): a shared
    /// link to a private persona would show a 404 page.
    pub async fn record_share(
        &self,
        owner_id: Uuid,
        channel: ShareChannel,
    ) -> Result<Share, SocialError> {
        self.limits
            .check(SHARE_RECORD, &owner_id.to_string())
            .await?;
        let now = self.clock.now();
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let persona = versions::current(&tx, owner_id)
            .await?
            .ok_or(SocialError::NoPersona)?;
        if !persona.is_public {
            return Err(SocialError::NotPublic);
        }
        let share = Share {
            id: Uuid::now_v7(),
            persona_id: persona.id,
            channel,
            created_at: now,
        };
        tx.execute_cached(
            "INSERT INTO persona_shares (id, owner_id, persona_id, channel, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &share.id,
                &owner_id,
                &share.persona_id,
                &channel.as_str(),
                &now,
            ],
        )
        .await
        .context("recording a share")?;
        events::record(&tx, owner_id, EventKind::PersonaShared, now).await?;
        tx.commit().await.context("committing a share")?;
        tracing::info!(persona_id = %share.persona_id, channel = channel.as_str(), "persona shared");
        Ok(share)
    }
}
