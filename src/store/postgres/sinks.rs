//! Forwarding's state in the store (docs/sinks.md): each sink's cursor, an id per
//! instance, and the chains' heads it reads up to.

use super::PgStore;
use crate::store::{StoreError, StoredEntry};

impl PgStore {
    /// Each instance's newest committed id (`chain_head`).
    pub async fn heads(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT instance, last_id FROM chain_head ORDER BY instance").fetch_all(self.pool()).await?)
    }

    /// The entries with ids after `after`, oldest first: `instance`'s, or
    /// every instance's when `None`.
    pub async fn entries_after(
        &self,
        instance: Option<&str>,
        after: &str,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, entry FROM audit_log WHERE id > $2 AND ($1::text IS NULL OR instance = $1) \
             ORDER BY id LIMIT $3",
        )
        .bind(instance)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }
}
