//! Re-applying erasures after a database restore: the snapshot brings back accounts that were
//! erased after it was taken; the erasure journal (in DynamoDB, which the restore does not
//! touch) names them by a keyed hash of their identity subject.

use anyhow::Context;
use chrono::{DateTime, Utc};
use platform::db::CachedStatements;
use secrecy::ExposeSecret;
use tracing::info;
use uuid::Uuid;

use super::{start, EraseWorker};
use crate::marks::subject_hash;

impl EraseWorker {
    /// After a database restore: erases again every account whose erasure the journal has
    /// since `since` (the snapshot's time) and the restored database brought back. Returns how
    /// many were started.
    pub async fn reapply_since(&self, since: DateTime<Utc>) -> anyhow::Result<usize> {
        let entries = self.marks.journal_since(since).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let wanted: std::collections::HashSet<String> = entries
            .into_iter()
            .map(|entry| entry.subject_hash)
            .collect();
        let key = self.address_hash_key.0.expose_secret();
        let client = self.db.get().await.context("connecting to PostgreSQL")?;
        let users = client
            .query_cached(
                "SELECT id, subject FROM users WHERE erasing_since IS NULL",
                &[],
            )
            .await
            .context("reading the restored users")?;
        drop(client);
        let mut started = 0;
        for user in users {
            let (id, subject): (Uuid, String) = (user.get(0), user.get(1));
            if !wanted.contains(&subject_hash(key, &subject)) {
                continue;
            }
            let mut client = self.db.get().await.context("connecting to PostgreSQL")?;
            let tx = client.transaction().await?;
            let outbox_id = start(&tx, id, key, self.clock.now(), None).await?;
            tx.commit().await?;
            drop(client);
            if let Some(outbox_id) = outbox_id {
                self.publisher.publish(&self.db, &[outbox_id]).await;
                started += 1;
            }
        }
        info!(started, "erasures re-applied after a restore");
        Ok(started)
    }

    /// The function's handler for direct invocations by ops:
    /// `{"reapply_erasures": {"since": "<RFC 3339>"}}`.
    pub async fn handle_command(
        &self,
        command: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let since = command
            .get("reapply_erasures")
            .and_then(|args| args.get("since"))
            .and_then(serde_json::Value::as_str)
            .and_then(|since| DateTime::parse_from_rfc3339(since).ok())
            .context("expected {\"reapply_erasures\": {\"since\": \"<RFC 3339 time>\"}}")?;
        let started = self.reapply_since(since.with_timezone(&Utc)).await?;
        Ok(serde_json::json!({ "reapplied": started }))
    }
}
