//! Chat's SQL: the owner's `chats` row (bond, day counters, exchange count, refusals), the
//! sealed `chat_messages`, and the `chat_memories` notes. Rows hold ciphertext only; sealing and
//! opening happen in the use cases.

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use domain::archetypes::Archetype;
use platform::db::CachedStatements;
use platform::{crypto::Sealed, cursor::Cursor};
use uuid::Uuid;

use personas::versions::{self, Current};

use crate::{bond, Role, Source};

/// The persona that answers: the owner's current version (`personas::versions::SHOWN`; it keeps
/// speaking while a newer version is synthesized or its card re-rendered).
#[derive(Debug, Clone)]
pub struct Persona {
    pub id: Uuid,
    pub archetype: Archetype,
    /// The chat model's instructions (`context::instructions`), from the version's fields.
    pub instructions: String,
}

/// Whether the owner has a persona that can answer.
pub enum Speaking {
    Ready(Persona),
    NotReady,
    NoPersona,
}

/// The persona that speaks, in one round trip.
pub async fn speaking_persona(
    client: &impl GenericClient,
    owner_id: Uuid,
) -> anyhow::Result<Speaking> {
    let version = match versions::current_or_why(client, owner_id).await? {
        Current::Shown(version) => version,
        Current::NotYet => return Ok(Speaking::NotReady),
        Current::Nothing => return Ok(Speaking::NoPersona),
    };
    let (Some(name), Some(archetype), Some(stats)) =
        (version.name.as_deref(), version.archetype, version.stats)
    else {
        anyhow::bail!("a shown persona without its synthesis");
    };
    let instructions = crate::context::instructions(&crate::context::PersonaFacts {
        name,
        archetype,
        traits: &version.traits,
        stats,
        greeting: version.greeting.as_deref().unwrap_or_default(),
    });
    Ok(Speaking::Ready(Persona {
        id: version.id,
        archetype,
        instructions,
    }))
}

/// A stored message, still sealed.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: Uuid,
    pub role: Role,
    pub source: Option<Source>,
    pub sealed: Sealed,
    pub created_at: DateTime<Utc>,
}

const MESSAGE_COLUMNS: &str = "id, role, source, key_id, nonce, ciphertext, created_at";

fn message(row: &tokio_postgres::Row) -> StoredMessage {
    StoredMessage {
        id: row.get(0),
        role: if row.get::<_, &str>(1) == "user" {
            Role::User
        } else {
            Role::Persona
        },
        source: row.get::<_, Option<&str>>(2).and_then(Source::parse),
        sealed: Sealed {
            key_id: row.get(3),
            nonce: row.get(4),
            ciphertext: row.get(5),
        },
        created_at: row.get(6),
    }
}

/// The first attempt of a message sent with this idempotency key, and its reply if it has one.
pub async fn by_idempotency_key(
    client: &impl GenericClient,
    owner_id: Uuid,
    key_hash: &[u8],
) -> anyhow::Result<Option<(StoredMessage, Option<StoredMessage>)>> {
    let Some(user) = client
        .query_opt_cached(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages
                 WHERE owner_id = $1 AND idempotency_key = $2"
            ),
            &[&owner_id, &key_hash],
        )
        .await
        .context("finding a message by its idempotency key")?
    else {
        return Ok(None);
    };
    let user = message(&user);
    let reply = client
        .query_opt_cached(
            &format!("SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE reply_to = $1"),
            &[&user.id],
        )
        .await
        .context("finding a reply")?;
    Ok(Some((user, reply.as_ref().map(message))))
}

/// Why a message was not stored.
pub enum NotStored {
    /// The day's quota is used up.
    Quota,
    /// The same idempotency key is being stored by a concurrent request.
    Duplicate,
}

/// A new user message, for the insert.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub persona_id: Uuid,
    pub sealed: &'a Sealed,
    pub key_hash: Option<&'a [u8]>,
    pub at: DateTime<Utc>,
}

/// Counts the message against the owner's daily quota and stores it, in one transaction.
pub async fn insert_user_message(
    client: &mut deadpool_postgres::Object,
    message: NewMessage<'_>,
    today: NaiveDate,
    daily_quota: i32,
) -> anyhow::Result<Result<(), NotStored>> {
    let tx = client
        .transaction()
        .await
        .context("starting a transaction")?;
    // The row lock serializes the owner's messages: the quota is exact.
    let counted = tx
        .query_opt_cached(
            "INSERT INTO chats (owner_id, day, messages_today) VALUES ($1, $2, 1)
             ON CONFLICT (owner_id) DO UPDATE SET
                 messages_today = CASE WHEN chats.day = EXCLUDED.day THEN chats.messages_today + 1 ELSE 1 END,
                 bond_today = CASE WHEN chats.day = EXCLUDED.day THEN chats.bond_today ELSE 0 END,
                 day = EXCLUDED.day
             WHERE chats.day <> EXCLUDED.day OR chats.messages_today < $3
             RETURNING messages_today",
            &[&message.owner_id, &today, &daily_quota],
        )
        .await
        .context("counting a message against the daily quota")?;
    if counted.is_none() {
        return Ok(Err(NotStored::Quota));
    }
    let inserted = tx
        .execute_cached(
            "INSERT INTO chat_messages (id, owner_id, persona_id, role, idempotency_key, key_id, nonce, ciphertext, created_at)
             VALUES ($1, $2, $3, 'user', $4, $5, $6, $7, $8)",
            &[
                &message.id,
                &message.owner_id,
                &message.persona_id,
                &message.key_hash,
                &message.sealed.key_id,
                &message.sealed.nonce,
                &message.sealed.ciphertext,
                &message.at,
            ],
        )
        .await;
    match inserted {
        Ok(_) => {}
        Err(error)
            if error.as_db_error().and_then(|e| e.constraint())
                == Some("chat_messages_idempotency") =>
        {
            return Ok(Err(NotStored::Duplicate));
        }
        Err(error) => return Err(error).context("storing a message"),
    }
    tx.commit().await.context("committing a message")?;
    Ok(Ok(()))
}

/// Counts one refused message (the message itself is not kept).
pub async fn count_refusal(
    client: &impl GenericClient,
    owner_id: Uuid,
    today: NaiveDate,
) -> anyhow::Result<()> {
    client
        .execute_cached(
            "INSERT INTO chats (owner_id, day, refusals) VALUES ($1, $2, 1)
             ON CONFLICT (owner_id) DO UPDATE SET refusals = chats.refusals + 1",
            &[&owner_id, &today],
        )
        .await
        .context("counting a refusal")?;
    Ok(())
}

/// The owner's bond points (0 before the first exchange).
pub async fn bond_points(client: &impl GenericClient, owner_id: Uuid) -> anyhow::Result<i32> {
    let row = client
        .query_opt_cached(
            "SELECT bond_points FROM chats WHERE owner_id = $1",
            &[&owner_id],
        )
        .await
        .context("reading the bond")?;
    Ok(row.map(|row| row.get(0)).unwrap_or(0))
}

/// A page of the owner's messages, newest first, after `after`.
pub async fn history(
    client: &impl GenericClient,
    owner_id: Uuid,
    after: Cursor,
    limit: i64,
) -> anyhow::Result<Vec<StoredMessage>> {
    let rows = client
        .query_cached(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages
                 WHERE owner_id = $1 AND (created_at, id) < ($2, $3)
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ),
            &[&owner_id, &after.at, &after.id, &limit],
        )
        .await
        .context("reading the chat history")?;
    Ok(rows.iter().map(message).collect())
}

/// The last `limit` messages of conversational exchanges, oldest first (each exchange's user
/// message before its reply).
pub async fn recent_turns(
    client: &impl GenericClient,
    owner_id: Uuid,
    limit: i64,
) -> anyhow::Result<Vec<StoredMessage>> {
    let mut rows = client
        .query_cached(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages
                 WHERE owner_id = $1 AND exchange_no IS NOT NULL
                 ORDER BY exchange_no DESC, role = 'persona' DESC LIMIT $2"
            ),
            &[&owner_id, &limit],
        )
        .await
        .context("reading recent turns")?;
    rows.reverse();
    Ok(rows.iter().map(message).collect())
}

/// The messages of exchanges `after + 1 ..= upto`, in order.
pub async fn exchanges_between(
    client: &impl GenericClient,
    owner_id: Uuid,
    after: i32,
    upto: i32,
) -> anyhow::Result<Vec<StoredMessage>> {
    let rows = client
        .query_cached(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages
                 WHERE owner_id = $1 AND exchange_no > $2 AND exchange_no <= $3
                 ORDER BY exchange_no, role = 'persona'"
            ),
            &[&owner_id, &after, &upto],
        )
        .await
        .context("reading exchanges to fold")?;
    Ok(rows.iter().map(message).collect())
}

/// A stored memory note, still sealed.
#[derive(Debug, Clone)]
pub struct StoredNote {
    pub id: Uuid,
    pub version: i32,
    pub covers_upto: i32,
    pub sealed: Sealed,
}

const NOTE_COLUMNS: &str = "id, version, covers_upto, key_id, nonce, ciphertext";

fn note(row: &tokio_postgres::Row) -> StoredNote {
    StoredNote {
        id: row.get(0),
        version: row.get(1),
        covers_upto: row.get(2),
        sealed: Sealed {
            key_id: row.get(3),
            nonce: row.get(4),
            ciphertext: row.get(5),
        },
    }
}

/// The owner's newest memory note below `version` (any version when `None`).
pub async fn latest_note(
    client: &impl GenericClient,
    owner_id: Uuid,
    below: Option<i32>,
) -> anyhow::Result<Option<StoredNote>> {
    let row = client
        .query_opt_cached(
            &format!(
                "SELECT {NOTE_COLUMNS} FROM chat_memories
                 WHERE owner_id = $1 AND version < $2 ORDER BY version DESC LIMIT 1"
            ),
            &[&owner_id, &below.unwrap_or(i32::MAX)],
        )
        .await
        .context("reading the memory note")?;
    Ok(row.as_ref().map(note))
}

/// Whether note `version` exists.
pub async fn note_exists(
    client: &impl GenericClient,
    owner_id: Uuid,
    version: i32,
) -> anyhow::Result<bool> {
    let row = client
        .query_opt_cached(
            "SELECT 1 FROM chat_memories WHERE owner_id = $1 AND version = $2",
            &[&owner_id, &version],
        )
        .await
        .context("looking for a memory note")?;
    Ok(row.is_some())
}

/// Stores note `version` unless a duplicate delivery stored it first; returns whether it did.
pub async fn insert_note(
    client: &impl GenericClient,
    owner_id: Uuid,
    note: &StoredNote,
    written_by: &str,
) -> anyhow::Result<bool> {
    let inserted = client
        .execute_cached(
            "INSERT INTO chat_memories (owner_id, version, id, covers_upto, written_by, key_id, nonce, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (owner_id, version) DO NOTHING",
            &[
                &owner_id,
                &note.version,
                &note.id,
                &note.covers_upto,
                &written_by,
                &note.sealed.key_id,
                &note.sealed.nonce,
                &note.sealed.ciphertext,
            ],
        )
        .await
        .context("storing a memory note")?;
    Ok(inserted == 1)
}

/// The owner's exchange count, if they ever chatted.
pub async fn exchange_count(
    client: &impl GenericClient,
    owner_id: Uuid,
) -> anyhow::Result<Option<i32>> {
    let row = client
        .query_opt_cached(
            "SELECT exchanges FROM chats WHERE owner_id = $1",
            &[&owner_id],
        )
        .await
        .context("reading the exchange count")?;
    Ok(row.map(|row| row.get(0)))
}

/// The reply, for the transaction that completes an exchange.
pub struct NewReply<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub persona_id: Uuid,
    pub reply_to: Uuid,
    pub source: Source,
    pub sealed: &'a Sealed,
    pub at: DateTime<Utc>,
}

/// What completing an exchange did.
pub enum Completed {
    /// Stored; the owner's bond points after it, and the exchange number (`None` for safety).
    Stored {
        bond_points: i32,
        exchange_no: Option<i32>,
    },
    /// Another request completed the exchange first (a stale retry racing the original).
    AlreadyReplied,
}

/// Inside the caller's transaction: stores the reply and, for a conversational exchange,
/// numbers it, awards the bond point (within the daily cap) and counts the exchange.
pub async fn complete_exchange(
    tx: &impl GenericClient,
    reply: NewReply<'_>,
    today: NaiveDate,
) -> anyhow::Result<Completed> {
    let chat = tx
        .query_one_cached(
            "SELECT bond_points, day, bond_today, exchanges FROM chats WHERE owner_id = $1 FOR UPDATE",
            &[&reply.owner_id],
        )
        .await
        .context("locking the chat")?;
    let replied = tx
        .query_opt_cached(
            "SELECT 1 FROM chat_messages WHERE reply_to = $1",
            &[&reply.reply_to],
        )
        .await
        .context("checking for a reply")?;
    if replied.is_some() {
        return Ok(Completed::AlreadyReplied);
    }
    let (mut points, day, bond_today, exchanges): (i32, NaiveDate, i32, i32) =
        (chat.get(0), chat.get(1), chat.get(2), chat.get(3));
    let mut earned_today = if day == today { bond_today } else { 0 };
    let conversational = reply.source != Source::Safety;
    let exchange_no = conversational.then_some(exchanges + 1);
    if conversational && bond::earns_point(earned_today) {
        points += 1;
        earned_today += 1;
    }
    tx.execute_cached(
        "UPDATE chats SET bond_points = $2, bond_today = $3, exchanges = $4,
             messages_today = CASE WHEN day = $5 THEN messages_today ELSE 0 END, day = $5
         WHERE owner_id = $1",
        &[
            &reply.owner_id,
            &points,
            &earned_today,
            &exchange_no.unwrap_or(exchanges),
            &today,
        ],
    )
    .await
    .context("updating the bond")?;
    if let Some(number) = exchange_no {
        tx.execute_cached(
            "UPDATE chat_messages SET exchange_no = $2 WHERE id = $1",
            &[&reply.reply_to, &number],
        )
        .await
        .context("numbering the exchange")?;
    }
    tx.execute_cached(
        "INSERT INTO chat_messages (id, owner_id, persona_id, role, source, reply_to, exchange_no, key_id, nonce, ciphertext, created_at)
         VALUES ($1, $2, $3, 'persona', $4, $5, $6, $7, $8, $9, $10)",
        &[
            &reply.id,
            &reply.owner_id,
            &reply.persona_id,
            &reply.source.as_str(),
            &reply.reply_to,
            &exchange_no,
            &reply.sealed.key_id,
            &reply.sealed.nonce,
            &reply.sealed.ciphertext,
            &reply.at,
        ],
    )
    .await
    .context("storing a reply")?;
    Ok(Completed::Stored {
        bond_points: points,
        exchange_no,
    })
}
