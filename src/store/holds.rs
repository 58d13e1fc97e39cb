//! Legal holds, for every backend: stored, listed, released and erased
//! with the same statements.

use super::dialect::Dialect;
use super::{Store, StoreError};
use crate::model::hold::{Hold, NewHold};

const HOLD: &str = "id, actor, resource_type, resource_id, client_ip, since, until, reason, created_at, created_by, \
                    released_at, released_by";

impl Store {
    /// Stores a new legal hold, made by `by` at `at` (RFC 3339).
    pub async fn insert_hold(&self, hold: &NewHold, by: &str, at: &str) -> Result<Hold, StoreError> {
        let [actor, kind, id, ip] = hold.columns();
        let sql = format!(
            "INSERT INTO legal_hold (actor, resource_type, resource_id, client_ip, since, until, reason, created_at, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {HOLD}"
        );
        each!(self, s => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(s.text_opt(actor))
            .bind(s.text_opt(kind))
            .bind(s.text_opt(id))
            .bind(s.text_opt(ip))
            .bind(&hold.since)
            .bind(&hold.until)
            .bind(s.text(&hold.reason))
            .bind(at)
            .bind(s.text(by))
            .fetch_one(s.pool())
            .await?))
    }

    /// The legal holds, oldest first; with `active`, those not released.
    pub async fn holds(&self, active: bool) -> Result<Vec<Hold>, StoreError> {
        let only = if active { " WHERE released_at IS NULL" } else { "" };
        let sql = format!("SELECT {HOLD} FROM legal_hold{only} ORDER BY id");
        each!(self, s => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(s.pool()).await?))
    }

    /// Releases a legal hold (by `by` at `at`); answers it before and
    /// after (a hold released already stays as it was), or `None` when
    /// there is none.
    pub async fn release_hold(&self, id: i64, by: &str, at: &str) -> Result<Option<(Hold, Hold)>, StoreError> {
        each!(self, s => {
            let mut tx = s.begin_write().await?;
            let sql = format!("SELECT {HOLD} FROM legal_hold WHERE id = $1{}", s.for_update());
            let Some(before) =
                sqlx::query_as::<_, Hold>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *tx).await?
            else {
                return Ok(None);
            };
            let sql = format!(
                "UPDATE legal_hold SET released_at = COALESCE(released_at, $1), \
                 released_by = COALESCE(released_by, $2) WHERE id = $3 RETURNING {HOLD}"
            );
            let after =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(at).bind(s.text(by)).bind(id).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some((before, after)))
        })
    }

    /// Erases a released hold's reason and the name or address its
    /// selector holds (a resource selector stays: entries keep their
    /// resource), as an erasure that names it does; an active hold stays
    /// whole.
    pub async fn erase_hold(&self, id: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE legal_hold SET reason = '[erased]', \
             actor = CASE WHEN actor IS NULL THEN NULL ELSE '[erased]' END, \
             client_ip = CASE WHEN client_ip IS NULL THEN NULL ELSE '[erased]' END \
             WHERE id = $1 AND released_at IS NOT NULL";
        each!(self, s => sqlx::query(SQL).bind(id).execute(s.pool()).await.map(drop)?);
        Ok(())
    }
}
