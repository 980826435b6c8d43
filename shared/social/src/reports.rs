//! Reports on public personas. A signed-in user reports someone else's public persona with a
//! reason (and a note); one reporter counts once per persona, and at the hide threshold of
//! distinct reporters the persona is hidden (`personas::moderation`). Reporters are kept only as
//! a keyed hash, enough to count each once.

use std::sync::Arc;

use anyhow::Context;
use aws_lc_rs::hmac;
use domain::reports::{ReportReason, MAX_NOTE_CHARS};
use platform::{db::CachedStatements, env::SecretKey, rate_limit};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{Social, SocialError};

/// What reports need besides the database.
#[derive(Clone)]
pub struct ReportSettings {
    /// The key of the reporter hash (the address-hash key).
    pub key: Arc<SecretKey>,
    /// Distinct reporters that hide a persona (`REPORT_HIDE_THRESHOLD`).
    pub hide_threshold: u32,
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// `false` when this reporter had already reported this persona (not counted again).
    pub counted: bool,
    /// Whether this report hid the persona.
    pub hid: bool,
}

/// Why a report was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidNote;

/// The note as stored: trimmed, empty as none; too long or with hidden characters refused.
pub fn clean_note(note: Option<&str>) -> Result<Option<String>, InvalidNote> {
    let Some(note) = note.map(str::trim).filter(|note| !note.is_empty()) else {
        return Ok(None);
    };
    if note.chars().count() > MAX_NOTE_CHARS || !domain::text::is_clean(note, true) {
        return Err(InvalidNote);
    }
    Ok(Some(note.to_owned()))
}

impl Social {
    /// `reporter` reports the public persona that version `persona_id` belongs to.
    pub async fn report(
        &self,
        reporter: Uuid,
        persona_id: Uuid,
        reason: ReportReason,
        note: Option<String>,
    ) -> Result<Reported, SocialError> {
        self.limits
            .check(rate_limit::REPORT, &reporter.to_string())
            .await?;
        let now = self.clock.now();
        let mut client = self.connection().await?;
        let tx = client
            .transaction()
            .await
            .context("starting a transaction")?;
        let owner: Uuid = tx
            .query_opt_cached(
                "SELECT owner_id FROM personas WHERE id = $1 FOR SHARE",
                &[&persona_id],
            )
            .await
            .context("finding the reported persona")?
            .map(|row| row.get(0))
            .ok_or(SocialError::NotFound)?;
        if owner == reporter {
            return Err(SocialError::OwnPersona);
        }
        // Only what anyone can see can be reported: a public, shown, not hidden persona.
        if personas::versions::current_public(&tx, persona_id)
            .await?
            .is_none()
        {
            return Err(SocialError::NotFound);
        }
        let counted = tx
            .execute_cached(
                "INSERT INTO persona_reports (owner_id, reporter_hash, persona_id, reason, note, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (owner_id, reporter_hash) DO NOTHING",
                &[
                    &owner,
                    &self.reporter_hash(reporter),
                    &persona_id,
                    &reason.as_str(),
                    &note,
                    &now,
                ],
            )
            .await
            .context("recording a report")?
            == 1;
        let mut hid = false;
        if counted {
            let reporters: i64 = tx
                .query_one_cached(
                    "SELECT count(*) FROM persona_reports WHERE owner_id = $1",
                    &[&owner],
                )
                .await
                .context("counting reporters")?
                .get(0);
            if reporters >= i64::from(self.reports.hide_threshold) {
                hid = personas::moderation::hide(&tx, owner, now).await?;
            }
        }
        tx.commit().await.context("committing a report")?;
        if counted {
            platform::metrics::counter!("persona_reports", "reason" => reason.as_str())
                .increment(1);
            // The same count without the reason: what the surge alarm watches.
            platform::metrics::counter!("persona_reports_total").increment(1);
        }
        if hid {
            platform::metrics::counter!("personas_hidden").increment(1);
            tracing::warn!(%persona_id, "persona hidden after reports");
        }
        Ok(Reported { counted, hid })
    }

    fn reporter_hash(&self, reporter: Uuid) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.reports.key.0.expose_secret());
        let mut input = b"persona-report\0".to_vec();
        input.extend_from_slice(reporter.as_bytes());
        platform::crypto::hex(hmac::sign(&key, &input).as_ref())
    }
}
