//! Quest progress, claims, check-ins and the crystal ledger in PostgreSQL. Balances are never
//! written here: the ledger's trigger (migration V8) projects each entry onto
//! `crystal_balances` inside the inserting statement.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use domain::quests::LastCheckIn;
use platform::cursor::Cursor;
use platform::db::CachedStatements;
use uuid::Uuid;

/// The ledger reason of a quest claim.
pub const QUEST_REWARD: &str = "quest_reward";
/// The ledger reason of a daily check-in.
pub const DAILY_CHECK_IN: &str = "daily_check_in";

/// What to count for one quest: events of `kind` in `[start, end)` (unbounded where absent),
/// at most `cap` of them, and whether the entry `reference` was paid.
#[derive(Debug, Clone)]
pub struct Tally {
    pub kind: &'static str,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub cap: i64,
    pub reference: String,
}

/// A tally's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub progress: i64,
    pub claimed: bool,
}

/// Counts every tally in one round trip, in order.
pub async fn count(
    client: &impl GenericClient,
    user_id: Uuid,
    tallies: &[Tally],
) -> anyhow::Result<Vec<Counted>> {
    let kinds: Vec<&str> = tallies.iter().map(|t| t.kind).collect();
    let starts: Vec<Option<DateTime<Utc>>> = tallies.iter().map(|t| t.start).collect();
    let ends: Vec<Option<DateTime<Utc>>> = tallies.iter().map(|t| t.end).collect();
    let caps: Vec<i64> = tallies.iter().map(|t| t.cap).collect();
    let references: Vec<&str> = tallies.iter().map(|t| t.reference.as_str()).collect();
    let rows = client
        .query_cached(
            "SELECT (SELECT count(*) FROM (
                        SELECT 1 FROM domain_events e
                        WHERE e.user_id = $1 AND e.kind = q.kind
                          AND e.occurred_at >= COALESCE(q.starts, '-infinity')
                          AND e.occurred_at < COALESCE(q.ends, 'infinity')
                        LIMIT q.cap) counted),
                    EXISTS (SELECT 1 FROM crystal_ledger l
                            WHERE l.user_id = $1 AND l.reason = 'quest_reward'
                              AND l.reference = q.reference)
             FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[], $6::text[])
                  WITH ORDINALITY AS q(kind, starts, ends, cap, reference, position)
             ORDER BY q.position",
            &[&user_id, &kinds, &starts, &ends, &caps, &references],
        )
        .await
        .context("counting quest progress")?;
    Ok(rows
        .iter()
        .map(|row| Counted {
            progress: row.get(0),
            claimed: row.get(1),
        })
        .collect())
}

/// A ledger entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub user_id: Uuid,
    pub amount: i32,
    pub reason: &'static str,
    pub reference: &'a str,
    pub created_at: DateTime<Utc>,
    pub quest_id: Option<&'a str>,
    pub period_start: Option<DateTime<Utc>>,
    pub check_in_day: Option<NaiveDate>,
    pub streak: Option<i32>,
}

/// Appends `entry` and returns the user's balance after it, or `None` when an entry with the
/// same (user, reason, reference) exists: that unique constraint, not a prior read, is what makes
/// a period pay once when claims race (the loser waits for the winner's commit, then finds it).
pub async fn append(
    tx: &deadpool_postgres::Transaction<'_>,
    entry: &NewEntry<'_>,
) -> anyhow::Result<Option<i64>> {
    let inserted = tx
        .query_opt_cached(
            "INSERT INTO crystal_ledger
                 (id, user_id, amount, reason, reference, created_at, quest_id, period_start, check_in_day, streak)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (user_id, reason, reference) DO NOTHING
             RETURNING id",
            &[
                &Uuid::now_v7(),
                &entry.user_id,
                &entry.amount,
                &entry.reason,
                &entry.reference,
                &entry.created_at,
                &entry.quest_id,
                &entry.period_start,
                &entry.check_in_day,
                &entry.streak,
            ],
        )
        .await
        .context("appending a ledger entry")?;
    if inserted.is_none() {
        return Ok(None);
    }
    // The projection row is locked by this transaction until commit, so this is exactly the
    // balance after this entry.
    Ok(Some(balance(tx, entry.user_id).await?))
}

/// The user's balance (0 before their first entry).
pub async fn balance(client: &impl GenericClient, user_id: Uuid) -> anyhow::Result<i64> {
    let row = client
        .query_opt_cached(
            "SELECT balance FROM crystal_balances WHERE user_id = $1",
            &[&user_id],
        )
        .await
        .context("reading the balance")?;
    Ok(row.map_or(0, |row| row.get(0)))
}

/// The user's latest check-in.
pub async fn last_check_in(
    client: &impl GenericClient,
    user_id: Uuid,
) -> anyhow::Result<Option<LastCheckIn>> {
    let row = client
        .query_opt_cached(
            "SELECT check_in_day, streak FROM crystal_ledger
             WHERE user_id = $1 AND reason = 'daily_check_in'
             ORDER BY check_in_day DESC LIMIT 1",
            &[&user_id],
        )
        .await
        .context("reading the last check-in")?;
    Ok(row.map(|row| LastCheckIn {
        day: row.get(0),
        streak: u32::try_from(row.get::<_, i32>(1)).unwrap_or(1),
    }))
}

/// A ledger entry as its owner sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Uuid,
    pub amount: i32,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub quest_id: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub check_in_day: Option<NaiveDate>,
    pub streak: Option<i32>,
}

/// The user's ledger entries, newest first, after `after` (created_at, id).
pub async fn entries(
    client: &impl GenericClient,
    user_id: Uuid,
    after: Cursor,
    limit: i64,
) -> anyhow::Result<Vec<Entry>> {
    let Cursor { at, id } = after;
    let rows = client
        .query_cached(
            "SELECT id, amount, reason, created_at, quest_id, period_start, check_in_day, streak
             FROM crystal_ledger
             WHERE user_id = $1 AND (created_at, id) < ($2, $3)
             ORDER BY created_at DESC, id DESC LIMIT $4",
            &[&user_id, &at, &id, &limit],
        )
        .await
        .context("listing ledger entries")?;
    Ok(rows
        .iter()
        .map(|row| Entry {
            id: row.get(0),
            amount: row.get(1),
            reason: row.get(2),
            created_at: row.get(3),
            quest_id: row.get(4),
            period_start: row.get(5),
            check_in_day: row.get(6),
            streak: row.get(7),
        })
        .collect())
}
