//! Shares: the owner reports that they shared their persona on a channel, and gets a link that
//! names the share. The share counts (its `persona_shared` domain event, which the share quest
//! counts, so crystals follow) only once that link is **observed**: opened from another address
//! than the one the share was recorded from. A self-report alone never pays.

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
    ///
    /// `sender` is the keyed hash of the owner's address (kept until the share is observed).
    pub async fn record_share(
        &self,
        owner_id: Uuid,
        channel: ShareChannel,
        sender: &str,
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
            id: Uuid::new_v4(),
            persona_id: persona.id,
            channel,
            created_at: now,
        };
        tx.execute_cached(
            "INSERT INTO persona_shares (id, owner_id, persona_id, channel, created_at, sender_hash)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &share.id,
                &owner_id,
                &share.persona_id,
                &channel.as_str(),
                &now,
                &sender,
            ],
        )
        .await
        .context("recording a share")?;
        tx.commit().await.context("committing a share")?;
        tracing::info!(persona_id = %share.persona_id, channel = channel.as_str(), "persona shared");
        Ok(share)
    }

    /// Share `share_id`'s link was opened (the share page of persona version `persona_id`) from
    /// the address whose keyed hash is `viewer`: if that is not the address the share was
    /// recorded from, the share is observed, once, and counts. Returns whether it counted now.
    pub async fn observe_share(
        &self,
        share_id: Uuid,
        persona_id: Uuid,
        viewer: &str,
    ) -> Result<bool, SocialError> {
        let now = self.clock.now();
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let observed = tx
            .query_opt_cached(
                "UPDATE persona_shares SET observed_at = $4, sender_hash = NULL
                 WHERE id = $1 AND observed_at IS NULL AND sender_hash IS DISTINCT FROM $3
                   AND owner_id = (SELECT owner_id FROM personas WHERE id = $2)
                 RETURNING owner_id",
                &[&share_id, &persona_id, &viewer, &now],
            )
            .await
            .context("observing a share")?;
        let Some(observed) = observed else {
            return Ok(false);
        };
        events::record(&tx, observed.get(0), EventKind::PersonaShared, now).await?;
        tx.commit().await.context("committing an observed share")?;
        tracing::info!(%persona_id, "share observed");
        Ok(true)
    }
}
