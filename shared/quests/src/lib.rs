//! Quests and Memory Crystals (F-006): progress counted from domain events in the current
//! period, claims that pay once per period, the daily check-in streak, and the crystal ledger.
//!
//! Periods are computed in the quest time zone (`QUEST_TIME_ZONE`, `domain::periods`); every
//! instant is stored in UTC. The catalog and the streak rule are domain data
//! (`domain::quests`); the SQL is in [`repo`].

pub mod config;
pub mod repo;

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use deadpool_postgres::Pool;
use domain::{
    periods::{self, Period},
    quests::{self, check_in_reward, next_streak, Quest, QuestState, CATALOG},
};
use platform::{
    clock::Clock,
    cursor::{Cursor, InvalidPage, Page, PageRequest},
};
use uuid::Uuid;

pub use repo::Entry;
use repo::{NewEntry, Tally, DAILY_CHECK_IN, QUEST_REWARD};

/// Why a quest use case refused.
#[derive(Debug, thiserror::Error)]
pub enum QuestError {
    #[error("no such quest")]
    UnknownQuest,
    #[error("the quest is not completed")]
    NotCompleted { progress: u32, requirement: u32 },
    #[error("the quest was already claimed in this period")]
    AlreadyClaimed {
        /// When the next period starts; `None` for a once-quest.
        resets_at: Option<DateTime<Utc>>,
    },
    #[error("already checked in today")]
    AlreadyCheckedIn { next_check_in_at: DateTime<Utc> },
    #[error(transparent)]
    InvalidPage(#[from] InvalidPage),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A quest as it stands for one user in the current period.
#[derive(Debug, Clone)]
pub struct QuestProgress {
    pub quest: &'static Quest,
    /// Events counted in the period, at most the requirement.
    pub progress: u32,
    pub state: QuestState,
    /// When the period ends; `None` for a once-quest.
    pub resets_at: Option<DateTime<Utc>>,
}

/// What a claim paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub reward: u32,
    pub balance: i64,
}

/// What a daily check-in paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedIn {
    pub reward: u32,
    pub streak: u32,
    pub balance: i64,
}

/// The quest use cases and the handles they need.
#[derive(Clone)]
pub struct Quests {
    pub db: Pool,
    pub clock: Arc<dyn Clock>,
    /// Where days and weeks begin.
    pub zone: Tz,
}

impl Quests {
    /// Every quest of the catalog with the user's progress and state in its current period.
    pub async fn board(&self, user_id: Uuid) -> Result<Vec<QuestProgress>, QuestError> {
        let now = self.clock.now();
        let client = self.db.get().await.context("connecting to PostgreSQL")?;
        let tallies: Vec<Tally> = CATALOG.iter().map(|q| self.tally(q, now)).collect();
        let counted = repo::count(&client, user_id, &tallies).await?;
        Ok(CATALOG
            .iter()
            .zip(counted)
            .map(|(quest, counted)| {
                let progress = u32::try_from(counted.progress).unwrap_or(u32::MAX);
                QuestProgress {
                    quest,
                    progress,
                    state: quest.state(progress, counted.claimed),
                    resets_at: quest.window(self.zone, now).end,
                }
            })
            .collect())
    }

    /// Pays the quest's reward for the current period, once.
    pub async fn claim(&self, user_id: Uuid, quest_id: &str) -> Result<Claimed, QuestError> {
        let quest = quests::find(quest_id).ok_or(QuestError::UnknownQuest)?;
        let now = self.clock.now();
        let window = quest.window(self.zone, now);
        let tally = self.tally(quest, now);
        let mut client = self.db.get().await.context("connecting to PostgreSQL")?;
        let tx = client.transaction().await.context("starting a claim")?;
        let counted = repo::count(&tx, user_id, std::slice::from_ref(&tally)).await?;
        let progress = counted.first().map_or(0, |c| c.progress);
        let progress = u32::try_from(progress).unwrap_or(u32::MAX);
        if progress < quest.requirement {
            return Err(QuestError::NotCompleted {
                progress,
                requirement: quest.requirement,
            });
        }
        let entry = NewEntry {
            user_id,
            amount: reward_amount(quest.reward)?,
            reason: QUEST_REWARD,
            reference: &tally.reference,
            created_at: now,
            quest_id: Some(quest.id),
            period_start: tally.start,
            check_in_day: None,
            streak: None,
        };
        let Some(balance) = repo::append(&tx, &entry).await? else {
            return Err(QuestError::AlreadyClaimed {
                resets_at: window.end,
            });
        };
        tx.commit().await.context("committing a claim")?;
        tracing::info!(quest_id = quest.id, "quest claimed");
        Ok(Claimed {
            reward: quest.reward,
            balance,
        })
    }

    /// The daily check-in: one per day in the quest time zone, paying more as the streak of
    /// consecutive days grows (`domain::quests::check_in_reward`).
    pub async fn check_in(&self, user_id: Uuid) -> Result<CheckedIn, QuestError> {
        let now = self.clock.now();
        let today = periods::local_day(self.zone, now);
        let already = || QuestError::AlreadyCheckedIn {
            next_check_in_at: periods::window(Period::Daily, self.zone, now)
                .end
                .unwrap_or(now),
        };
        let mut client = self.db.get().await.context("connecting to PostgreSQL")?;
        let tx = client.transaction().await.context("starting a check-in")?;
        let last = repo::last_check_in(&tx, user_id).await?;
        let streak = next_streak(last, today).ok_or_else(already)?;
        let reward = check_in_reward(streak);
        let reference = today.to_string();
        let entry = NewEntry {
            user_id,
            amount: reward_amount(reward)?,
            reason: DAILY_CHECK_IN,
            reference: &reference,
            created_at: now,
            quest_id: None,
            period_start: None,
            check_in_day: Some(today),
            streak: Some(i32::try_from(streak).context("a streak beyond i32")?),
        };
        // Two check-ins racing on one day: the unique reference lets one in.
        let balance = repo::append(&tx, &entry).await?.ok_or_else(already)?;
        tx.commit().await.context("committing a check-in")?;
        tracing::info!(streak, "checked in");
        Ok(CheckedIn {
            reward,
            streak,
            balance,
        })
    }

    /// The user's ledger, newest first, a page at a time.
    pub async fn ledger(
        &self,
        user_id: Uuid,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<Entry>, QuestError> {
        let request = PageRequest::parse(cursor, limit)?;
        let client = self.db.get().await.context("connecting to PostgreSQL")?;
        let entries = repo::entries(&client, user_id, request.after, request.fetch()).await?;
        Ok(request.page(entries, |entry| Cursor {
            at: entry.created_at,
            id: entry.id,
        }))
    }

    fn tally(&self, quest: &'static Quest, now: DateTime<Utc>) -> Tally {
        let window = quest.window(self.zone, now);
        let bounded = quest.period != Period::Once;
        Tally {
            kind: quest.event,
            start: bounded.then_some(window.start),
            end: window.end,
            cap: i64::from(quest.requirement),
            reference: quest.claim_reference(self.zone, now),
        }
    }
}

fn reward_amount(reward: u32) -> anyhow::Result<i32> {
    i32::try_from(reward).context("a reward beyond i32")
}

#[cfg(test)]
mod tests {
    use domain::quests::CATALOG;
    use platform::events::EventKind;

    #[test]
    fn every_quest_counts_an_event_kind_that_is_recorded() {
        for quest in CATALOG {
            assert!(EventKind::parse(quest.event).is_some(), "{}", quest.id);
        }
    }
}
