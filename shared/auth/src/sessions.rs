//! Users and their sessions in PostgreSQL: sign-in (find or create by subject), refresh-token
//! rotation with reuse detection, logout, and the profile.

use anyhow::Context;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use platform::db::CachedStatements;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::tokens::{
    hash_refresh_token, new_refresh_token, AccessTokens, RefreshSuccessors, ACCESS_TOKEN_SECONDS,
    REFRESH_TOKEN_SECONDS,
};

/// A user as clients see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    /// First name, shown on the user's public survey page.
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// What a successful sign-in or refresh returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Opaque; single use. Each refresh returns a new one and retires this one (a repeat within
    /// the reuse grace returns the same new one).
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 3600)]
    pub expires_in: u64,
    pub user: UserView,
}

/// `GET /v1/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    #[serde(flatten)]
    pub user: UserView,
    /// Memory Crystals: the balance projection of the user's ledger (always its sum).
    pub crystal_balance: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired or revoked.
    #[error("invalid refresh token")]
    Invalid,
    /// A token that was already rotated was presented again: the family is now revoked.
    #[error("refresh token reuse detected")]
    Reused,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Finds or creates the user with `subject` and starts a new session family.
pub async fn sign_in(
    db: &Pool,
    tokens: &AccessTokens,
    subject: &str,
    display_name: &str,
) -> anyhow::Result<TokenResponse> {
    let mut client = db.get().await.context("connecting to PostgreSQL")?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one_cached(
            "INSERT INTO users (id, subject, display_name) VALUES ($1, $2, $3)
             ON CONFLICT (subject) DO UPDATE
                SET display_name = EXCLUDED.display_name, last_sign_in_at = now()
             RETURNING id, display_name, created_at",
            &[&Uuid::now_v7(), &subject, &display_name],
        )
        .await
        .context("upserting the user")?;
    let user = UserView {
        id: row.get(0),
        display_name: row.get(1),
        created_at: row.get(2),
    };
    let refresh_token = insert_refresh_token(&tx, user.id, Uuid::now_v7()).await?;
    tx.commit().await?;
    Ok(TokenResponse {
        access_token: tokens.issue(user.id)?,
        refresh_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
        user,
    })
}

async fn insert_refresh_token(
    tx: &deadpool_postgres::Transaction<'_>,
    user_id: Uuid,
    family_id: Uuid,
) -> anyhow::Result<String> {
    let (token, hash) = new_refresh_token()?;
    store_refresh_token(tx, &hash, user_id, family_id).await?;
    Ok(token)
}

async fn store_refresh_token(
    tx: &deadpool_postgres::Transaction<'_>,
    hash: &[u8],
    user_id: Uuid,
    family_id: Uuid,
) -> anyhow::Result<()> {
    tx.execute_cached(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        &[&hash, &family_id, &user_id, &(REFRESH_TOKEN_SECONDS as f64)],
    )
    .await
    .context("storing a refresh token")?;
    Ok(())
}

/// Rotates `presented`: it is retired and its successor, a token of the same family, returned.
/// A retired token presented again revokes the family, so a stolen token that the attacker and
/// the user both use is cut off at the second use (RFC 9700 section 4.14.2) — except within
/// `grace` of its rotation: two tabs refreshing at once must not log the user out everywhere (the
/// "reuse interval" Okta and Auth0 offer).
///
/// Within the grace a repeat is an idempotent replay: it gets the SAME successor as the first
/// rotation (with a fresh access token), never a new one, so the family keeps a single live
/// refresh token and the reuse detection above still sees every later second use. Tokens are
/// stored only as SHA-256 hashes, so the successor is not read back but derived again from
/// `presented` under a server key ([`RefreshSuccessors`]) and found by its hash. A repeat whose
/// successor is not found (the key changed in between, or the token was rotated before successors
/// were derived) is refused as invalid rather than branching the family.
///
/// The row lock serializes concurrent refreshes of one token: the second waits for the first to
/// commit, then sees the token rotated within the grace and replays.
pub async fn refresh(
    db: &Pool,
    tokens: &AccessTokens,
    successors: &RefreshSuccessors,
    presented: &str,
    grace: std::time::Duration,
) -> Result<TokenResponse, RefreshError> {
    let hash = hash_refresh_token(presented);
    let mut client = db.get().await.context("connecting to PostgreSQL")?;
    let tx = client
        .transaction()
        .await
        .context("starting a transaction")?;
    let row = tx
        .query_opt_cached(
            "SELECT t.family_id, t.user_id, t.rotated_at IS NOT NULL, t.revoked_at IS NOT NULL,
                    t.expires_at < now(), u.display_name, u.created_at,
                    t.rotated_at >= now() - make_interval(secs => $2)
             FROM refresh_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1
             FOR UPDATE OF t",
            &[&hash, &grace.as_secs_f64()],
        )
        .await
        .context("reading the refresh token")?;
    let Some(row) = row else {
        return Err(RefreshError::Invalid);
    };
    let (family_id, user_id): (Uuid, Uuid) = (row.get(0), row.get(1));
    let (rotated, revoked, expired): (bool, bool, bool) = (row.get(2), row.get(3), row.get(4));
    if revoked || expired {
        return Err(RefreshError::Invalid);
    }
    let within_grace: Option<bool> = row.get(7);
    if rotated && within_grace != Some(true) {
        revoke_family(&tx, family_id).await?;
        tx.commit().await.context("committing the revocation")?;
        tracing::warn!(%user_id, "refresh token reuse; session family revoked");
        return Err(RefreshError::Reused);
    }
    let (refresh_token, successor_hash) = successors.successor(presented)?;
    if rotated {
        // A replay within the grace: the successor must already be stored, in this family.
        let successor = tx
            .query_opt_cached(
                "SELECT revoked_at IS NOT NULL OR expires_at < now() FROM refresh_tokens
                 WHERE token_hash = $1 AND family_id = $2",
                &[&successor_hash, &family_id],
            )
            .await
            .context("reading the successor of a refresh token")?;
        match successor.map(|row| row.get::<_, bool>(0)) {
            Some(false) => {}
            Some(true) => return Err(RefreshError::Invalid),
            None => {
                tracing::warn!(%user_id, "a refresh token replayed within the grace has no derivable successor");
                return Err(RefreshError::Invalid);
            }
        }
    } else {
        tx.execute_cached(
            "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1",
            &[&hash],
        )
        .await
        .context("retiring the refresh token")?;
        store_refresh_token(&tx, &successor_hash, user_id, family_id).await?;
    }
    tx.commit().await.context("committing the rotation")?;
    Ok(TokenResponse {
        access_token: tokens.issue(user_id)?,
        refresh_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECONDS,
        user: UserView {
            id: user_id,
            display_name: row.get(5),
            created_at: row.get(6),
        },
    })
}

async fn revoke_family(
    tx: &deadpool_postgres::Transaction<'_>,
    family_id: Uuid,
) -> anyhow::Result<()> {
    tx.execute_cached(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE family_id = $1 AND revoked_at IS NULL",
        &[&family_id],
    )
    .await
    .context("revoking a session family")?;
    Ok(())
}

/// Revokes the family of `presented`, if it is one of ours.
pub async fn logout(db: &Pool, presented: &str) -> anyhow::Result<()> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    client
        .execute_cached(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE revoked_at IS NULL
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
            &[&hash_refresh_token(presented)],
        )
        .await
        .context("revoking the session family")?;
    Ok(())
}

/// The profile of `user_id`, if the user exists.
pub async fn profile(db: &Pool, user_id: Uuid) -> anyhow::Result<Option<Profile>> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    let row = client
        .query_opt_cached(
            "SELECT u.id, u.display_name, u.created_at,
                    COALESCE((SELECT balance FROM crystal_balances b WHERE b.user_id = u.id), 0)
             FROM users u WHERE u.id = $1",
            &[&user_id],
        )
        .await
        .context("reading the profile")?;
    Ok(row.map(|row| Profile {
        user: UserView {
            id: row.get(0),
            display_name: row.get(1),
            created_at: row.get(2),
        },
        crystal_balance: row.get(3),
    }))
}

/// Deletes up to `limit` expired refresh tokens (the sweeper's housekeeping; a bounded batch
/// never holds long locks). Returns how many.
pub async fn prune_expired(db: &Pool, limit: i64) -> anyhow::Result<u64> {
    let client = db.get().await.context("connecting to PostgreSQL")?;
    client
        .execute_cached(
            "DELETE FROM refresh_tokens WHERE token_hash IN (
                 SELECT token_hash FROM refresh_tokens WHERE expires_at < now() LIMIT $1)",
            &[&limit],
        )
        .await
        .context("pruning expired refresh tokens")
}
