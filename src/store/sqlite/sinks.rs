//! Forwarding's state in the store (docs/sinks.md): each sink's cursor, an id per
//! instance, and the chains' heads it reads up to.

use super::SqliteStore;
use crate::store::{StoreError, StoredEntry};

impl SqliteStore {
    /// Each instance's newest committed id (`chain_head`).
    pub async fn heads(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT instance, last_id FROM chain_head ORDER BY instance").fetch_all(self.pool()).await?)
    }

    /// The entries with ids after `after`, oldest first: `instance`'s, or
    /// every instance's when `None` (no column holds the instance: a
    /// filter on it reads it from each entry's JSON).
    pub async fn entries_after(
        &self,
        instance: Option<&str>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let query = match instance {
            None => sqlx::query_as("SELECT id, entry FROM audit_log WHERE id > ?2 ORDER BY id LIMIT ?3"),
            Some(_) => sqlx::query_as(
                "SELECT id, entry FROM audit_log \
                 WHERE id > ?2 AND json_extract(entry, '$.instance') = ?1 ORDER BY id LIMIT ?3",
            ),
        };
        Ok(query.bind(instance).bind(after).bind(i64::from(limit)).fetch_all(self.pool()).await?)
    }

    /// How far `sink` has delivered each instance's chain.
    pub async fn sink_cursor(&self, sink: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT instance, last_id FROM sink_cursor WHERE sink = ? ORDER BY instance")
            .bind(sink)
            .fetch_all(self.pool())
            .await?)
    }

    /// Records `sink`'s delivery up to these ids, in one transaction; a
    /// cursor never moves back.
    pub async fn save_sink_cursor(&self, sink: &str, cursor: &[(String, String)]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for (instance, last_id) in cursor {
            sqlx::query(
                "INSERT INTO sink_cursor (sink, instance, last_id) VALUES (?, ?, ?) \
                 ON CONFLICT (sink, instance) DO UPDATE SET last_id = excluded.last_id \
                 WHERE excluded.last_id > sink_cursor.last_id",
            )
            .bind(sink)
            .bind(instance)
            .bind(last_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
