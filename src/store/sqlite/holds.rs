//! Legal holds in SQLite (issue 15).

use super::SqliteStore;
use crate::model::hold::{Hold, NewHold};
use crate::store::StoreError;

const HOLD: &str = "id, actor, resource_type, resource_id, client_ip, since, until, reason, created_at, created_by, \
                    released_at, released_by";

impl SqliteStore {
    /// Stores a new hold, made by `by` at `at`.
    pub async fn insert_hold(&self, hold: &NewHold, by: &str, at: &str) -> Result<Hold, StoreError> {
        let [actor, kind, id, ip] = hold.columns();
        let sql = format!(
            "INSERT INTO legal_hold (actor, resource_type, resource_id, client_ip, since, until, reason, created_at, \
             created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {HOLD}"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(actor)
            .bind(kind)
            .bind(id)
            .bind(ip)
            .bind(&hold.since)
            .bind(&hold.until)
            .bind(&hold.reason)
            .bind(at)
            .bind(by)
            .fetch_one(self.pool())
            .await?)
    }

    /// The holds, oldest first; only those not released with `active`.
    pub async fn holds(&self, active: bool) -> Result<Vec<Hold>, StoreError> {
        let only = if active { " WHERE released_at IS NULL" } else { "" };
        let sql = format!("SELECT {HOLD} FROM legal_hold{only} ORDER BY id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?)
    }

    /// Releases hold `id` (by `by` at `at`); answers it as it was before
    /// and after, or `None` when there is no such hold. A hold released
    /// already stays as it was.
    pub async fn release_hold(&self, id: i64, by: &str, at: &str) -> Result<Option<(Hold, Hold)>, StoreError> {
        let mut tx = self.write_transaction().await?;
        let sql = format!("SELECT {HOLD} FROM legal_hold WHERE id = ?");
        let Some(before) =
            sqlx::query_as::<_, Hold>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *tx).await?
        else {
            return Ok(None);
        };
        let sql = format!(
            "UPDATE legal_hold SET released_at = COALESCE(released_at, ?), released_by = COALESCE(released_by, ?) \
             WHERE id = ? RETURNING {HOLD}"
        );
        let after = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(at).bind(by).bind(id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some((before, after)))
    }
}
