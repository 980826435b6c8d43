//! The export document (`schema_version` 1, field by field in `docs/api.md`): everything the
//! account holds, in one JSON document, with the chat in plaintext.
//!
//! Never a friend's answer: not its text, not its scale values, not the day it came. Friends
//! answered anonymously about the owner, who only ever sees aggregates (the answer counts, the
//! persona built from them), so the export holds exactly those aggregates, and says so.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_s3::presigning::PresigningConfig;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use platform::{
    crypto::{Sealed, Sealer},
    db::CachedStatements,
};
use serde::Serialize;
use uuid::Uuid;

/// The document's shape version.
pub const SCHEMA_VERSION: u32 = 1;

/// What the document says about what it leaves out.
pub const ABOUT: &str = "Everything Re:MirAI holds about your account. Your friends' answers are \
    not included, neither their words nor their scale values nor the days they answered: they \
    were given anonymously about you, and you only ever see them as aggregates (how many friends \
    answered, and the persona built from all of them).";

#[derive(Debug, Serialize)]
pub struct ExportDocument {
    pub schema_version: u32,
    pub generated_at: DateTime<Utc>,
    pub about: &'static str,
    pub profile: Profile,
    pub surveys: Vec<Survey>,
    pub personas: Vec<PersonaVersion>,
    pub visibility: Visibility,
    pub shares: Vec<Share>,
    pub chat: Chat,
    pub quests: Vec<Quest>,
    pub crystals: Crystals,
}

#[derive(Debug, Serialize)]
pub struct Profile {
    pub id: Uuid,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct Survey {
    pub id: Uuid,
    pub title: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// How many friends answered (the only thing of the answers the owner ever sees).
    pub response_count: i32,
}

#[derive(Debug, Serialize)]
pub struct PersonaVersion {
    pub id: Uuid,
    pub version: i32,
    pub state: String,
    pub name: Option<String>,
    pub archetype: Option<String>,
    pub traits: serde_json::Value,
    pub greeting: Option<String>,
    pub stats: Option<Stats>,
    /// Who wrote the text: `llm:<model>`, `rule_based` or `rule_based_fallback`.
    pub synthesized_by: Option<String>,
    pub theme: String,
    /// Links to the card images, valid until the export expires.
    pub cards: Vec<CardLink>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub charisma: i16,
    pub intellect: i16,
    pub kindness: i16,
    pub energy: i16,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct CardLink {
    pub size: String,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub url: String,
    #[serde(skip_serializing, default)]
    pub key: String,
}

#[derive(Debug, Serialize)]
pub struct Visibility {
    pub is_public: bool,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Share {
    pub persona_id: Uuid,
    pub channel: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct Chat {
    pub bond_points: i32,
    /// Both roles, oldest first, in plaintext.
    pub messages: Vec<ChatMessage>,
    pub memory_notes: Vec<MemoryNote>,
}

#[derive(Debug, Serialize)]
pub struct ChatMessage {
    pub id: Uuid,
    pub persona_id: Uuid,
    pub role: String,
    /// `llm`, `fallback` or `safety` for the persona's replies.
    pub source: Option<String>,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct MemoryNote {
    pub version: i32,
    pub content: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct Quest {
    pub id: &'static str,
    pub title: &'static str,
    pub period: &'static str,
    pub requirement: u32,
    pub progress: u32,
    pub state: domain::quests::QuestState,
}

#[derive(Debug, Serialize)]
pub struct Crystals {
    pub balance: i64,
    /// Every entry, newest first: quest rewards and daily check-ins.
    pub ledger: Vec<LedgerEntry>,
}

#[derive(Debug, Serialize)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub amount: i32,
    pub reason: String,
    pub quest_id: Option<String>,
    pub check_in_day: Option<NaiveDate>,
    pub streak: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// What building a document needs.
pub struct Sources<'a> {
    pub messages: &'a Sealer,
    pub quests: &'a quests::Quests,
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    /// Card links work this long.
    pub links_for: Duration,
}

/// Builds `user`'s document; `None` when the user no longer exists.
pub async fn build(
    client: &impl GenericClient,
    sources: &Sources<'_>,
    user: Uuid,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<ExportDocument>> {
    let Some(profile) = client
        .query_opt_cached(
            "SELECT id, display_name, created_at, last_sign_in_at FROM users WHERE id = $1",
            &[&user],
        )
        .await
        .context("reading the profile")?
    else {
        return Ok(None);
    };
    let profile = Profile {
        id: profile.get(0),
        display_name: profile.get(1),
        created_at: profile.get(2),
        last_sign_in_at: profile.get(3),
    };
    Ok(Some(ExportDocument {
        schema_version: SCHEMA_VERSION,
        generated_at: now,
        about: ABOUT,
        profile,
        surveys: surveys(client, user).await?,
        personas: personas(client, sources, user).await?,
        visibility: visibility(client, user).await?,
        shares: shares(client, user).await?,
        chat: chat(client, sources.messages, user).await?,
        quests: quests(sources.quests, user).await?,
        crystals: crystals(client, user).await?,
    }))
}

async fn surveys(client: &impl GenericClient, user: Uuid) -> anyhow::Result<Vec<Survey>> {
    let rows = client
        .query_cached(
            "SELECT id, title, status, created_at, expires_at, closed_at, response_count
             FROM surveys WHERE owner_id = $1 ORDER BY created_at",
            &[&user],
        )
        .await
        .context("reading the surveys")?;
    Ok(rows
        .iter()
        .map(|row| Survey {
            id: row.get(0),
            title: row.get(1),
            status: row.get(2),
            created_at: row.get(3),
            expires_at: row.get(4),
            closed_at: row.get(5),
            response_count: row.get(6),
        })
        .collect())
}

async fn personas(
    client: &impl GenericClient,
    sources: &Sources<'_>,
    user: Uuid,
) -> anyhow::Result<Vec<PersonaVersion>> {
    let rows = client
        .query_cached(
            "SELECT id, version, state, name, archetype, COALESCE(traits, '[]'::jsonb), greeting,
                    charisma, intellect, kindness, energy, synthesized_by, theme,
                    COALESCE(cards, '[]'::jsonb), created_at
             FROM personas WHERE owner_id = $1 ORDER BY version",
            &[&user],
        )
        .await
        .context("reading the persona versions")?;
    let presign = PresigningConfig::expires_in(sources.links_for)?;
    let mut versions = Vec::with_capacity(rows.len());
    for row in rows {
        let mut cards: Vec<CardLink> =
            serde_json::from_value(row.get(13)).context("a persona's stored cards")?;
        for card in &mut cards {
            card.url = sources
                .s3
                .get_object()
                .bucket(sources.bucket)
                .key(&card.key)
                .presigned(presign.clone())
                .await
                .context("presigning a card link")?
                .uri()
                .to_owned();
        }
        let stat = |i: usize| row.get::<_, Option<i16>>(i);
        let stats = match (stat(7), stat(8), stat(9), stat(10)) {
            (Some(charisma), Some(intellect), Some(kindness), Some(energy)) => Some(Stats {
                charisma,
                intellect,
                kindness,
                energy,
            }),
            _ => None,
        };
        versions.push(PersonaVersion {
            id: row.get(0),
            version: row.get(1),
            state: row.get(2),
            name: row.get(3),
            archetype: row.get(4),
            traits: row.get(5),
            greeting: row.get(6),
            stats,
            synthesized_by: row.get(11),
            theme: row.get(12),
            cards,
            created_at: row.get(14),
        });
    }
    Ok(versions)
}

async fn visibility(client: &impl GenericClient, user: Uuid) -> anyhow::Result<Visibility> {
    let row = client
        .query_opt_cached(
            "SELECT is_public, updated_at FROM persona_visibility WHERE owner_id = $1",
            &[&user],
        )
        .await
        .context("reading the visibility")?;
    Ok(match row {
        Some(row) => Visibility {
            is_public: row.get(0),
            updated_at: row.get(1),
        },
        None => Visibility {
            is_public: false,
            updated_at: None,
        },
    })
}

async fn shares(client: &impl GenericClient, user: Uuid) -> anyhow::Result<Vec<Share>> {
    let rows = client
        .query_cached(
            "SELECT persona_id, channel, created_at FROM persona_shares
             WHERE owner_id = $1 ORDER BY created_at",
            &[&user],
        )
        .await
        .context("reading the shares")?;
    Ok(rows
        .iter()
        .map(|row| Share {
            persona_id: row.get(0),
            channel: row.get(1),
            created_at: row.get(2),
        })
        .collect())
}

fn open(
    sealer: &Sealer,
    owner: Uuid,
    id: Uuid,
    row: &tokio_postgres::Row,
    from: usize,
) -> anyhow::Result<String> {
    let sealed = Sealed {
        key_id: row.get(from),
        nonce: row.get(from + 1),
        ciphertext: row.get(from + 2),
    };
    let plaintext = sealer
        .open(owner, id, &sealed)
        .context("opening a sealed chat record")?;
    String::from_utf8(plaintext).context("a chat record that is not text")
}

async fn chat(client: &impl GenericClient, sealer: &Sealer, user: Uuid) -> anyhow::Result<Chat> {
    let bond_points = client
        .query_opt_cached(
            "SELECT bond_points FROM chats WHERE owner_id = $1",
            &[&user],
        )
        .await
        .context("reading the bond")?
        .map(|row| row.get(0))
        .unwrap_or(0);
    let rows = client
        .query_cached(
            "SELECT id, persona_id, role, source, created_at, key_id, nonce, ciphertext
             FROM chat_messages WHERE owner_id = $1 ORDER BY created_at, id",
            &[&user],
        )
        .await
        .context("reading the chat")?;
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.get(0);
        messages.push(ChatMessage {
            id,
            persona_id: row.get(1),
            role: row.get(2),
            source: row.get(3),
            content: open(sealer, user, id, row, 5)?,
            created_at: row.get(4),
        });
    }
    let rows = client
        .query_cached(
            "SELECT id, version, created_at, key_id, nonce, ciphertext
             FROM chat_memories WHERE owner_id = $1 ORDER BY version",
            &[&user],
        )
        .await
        .context("reading the memory notes")?;
    let mut memory_notes = Vec::with_capacity(rows.len());
    for row in &rows {
        memory_notes.push(MemoryNote {
            version: row.get(1),
            content: open(sealer, user, row.get(0), row, 3)?,
            created_at: row.get(2),
        });
    }
    Ok(Chat {
        bond_points,
        messages,
        memory_notes,
    })
}

async fn quests(quests: &quests::Quests, user: Uuid) -> anyhow::Result<Vec<Quest>> {
    let board = quests
        .board(user)
        .await
        .map_err(|error| anyhow::anyhow!("reading the quests: {error}"))?;
    Ok(board
        .into_iter()
        .map(|progress| Quest {
            id: progress.quest.id,
            title: progress.quest.title,
            period: domain::quests::period_name(progress.quest.period),
            requirement: progress.quest.requirement,
            progress: progress.progress,
            state: progress.state,
        })
        .collect())
}

async fn crystals(client: &impl GenericClient, user: Uuid) -> anyhow::Result<Crystals> {
    let balance = client
        .query_opt_cached(
            "SELECT balance FROM crystal_balances WHERE user_id = $1",
            &[&user],
        )
        .await
        .context("reading the balance")?
        .map(|row| row.get(0))
        .unwrap_or(0);
    let rows = client
        .query_cached(
            "SELECT id, amount, reason, quest_id, check_in_day, streak, created_at
             FROM crystal_ledger WHERE user_id = $1 ORDER BY created_at DESC, id DESC",
            &[&user],
        )
        .await
        .context("reading the ledger")?;
    let ledger = rows
        .iter()
        .map(|row| LedgerEntry {
            id: row.get(0),
            amount: row.get(1),
            reason: row.get(2),
            quest_id: row.get(3),
            check_in_day: row.get(4),
            streak: row.get(5),
            created_at: row.get(6),
        })
        .collect();
    Ok(Crystals { balance, ledger })
}
