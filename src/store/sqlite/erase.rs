//! Erasure in SQLite (docs/personal-data.md): entries rewritten in place
//! without their personal content, with the columns, statistics and search
//! index that held it; and the WAL emptied afterwards, so no earlier copy
//! of a page stays in it.

use std::time::Duration;

use super::{RESTART_WAIT, SqliteStore, add_stats, text};
use crate::entry::AuditEntry;
use crate::store::{StoreError, rows, stats};

/// How often emptying the WAL is tried while readers keep it from finishing.
const SCRUB_TRIES: usize = 50;

impl SqliteStore {
    /// Erases the entries `ids` names, in one transaction (docs/trail.md); answers
    /// how many it erased (those erased already, or of chain version 1, stay).
    pub async fn erase_entries(&self, ids: &[String]) -> Result<u64, StoreError> {
        let mut erased_now = 0;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_transaction().await?;
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT seq, id, entry FROM audit_log WHERE id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id);
        }
        q.push(")");
        let found: Vec<(i64, String, String)> = q.build_query_as().fetch_all(&mut *tx).await?;
        let indexed: i64 = sqlx::query_scalar("SELECT upto FROM audit_text_upto").fetch_one(&mut *tx).await?;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for (seq, id, json) in found {
            let (entry, erased, json) = match rows::erasing(&id, &json)? {
                rows::Erasing::Left => continue,
                rows::Erasing::Erase { before, after, json } => (*before, *after, json),
            };
            sqlx::query("UPDATE audit_log SET actor = '', client_ip_key = zeroblob(16), entry = ? WHERE seq = ?")
                .bind(json)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            if seq <= indexed {
                text::reindex(&mut tx, seq, &erased.path).await?;
            }
            erased_now += 1;
            before.push(entry);
            after.push(erased);
        }
        // The kept statistics count erased entries under an empty actor.
        add_stats(&mut tx, counted(&before), -1).await?;
        add_stats(&mut tx, counted(&after), 1).await?;
        tx.commit().await?;
        Ok(erased_now)
    }

    /// Empties the WAL (a TRUNCATE checkpoint), so the pages an erasure
    /// rewrote leave no earlier copy in it; answers whether it could (a
    /// long read keeps it from finishing: tried again for about five
    /// seconds, each try holding the writer at most `RESTART_WAIT`).
    pub async fn scrub(&self) -> Result<bool, StoreError> {
        for _ in 0..SCRUB_TRIES {
            let mut conn = self.pool.acquire().await?;
            let truncated = {
                let _gate = self.gate.lock().await;
                let wait = |d: Duration| format!("PRAGMA busy_timeout = {}", d.as_millis());
                sqlx::query(sqlx::AssertSqlSafe(wait(RESTART_WAIT))).execute(&mut *conn).await?;
                let done =
                    sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *conn).await;
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(wait(super::BUSY_TIMEOUT))).execute(&mut *conn).await {
                    conn.close_on_drop();
                    return Err(e.into());
                }
                done?.0 == 0
            };
            if truncated {
                return Ok(true);
            }
            drop(conn);
            tokio::time::sleep(RESTART_WAIT).await;
        }
        Ok(false)
    }
}

/// What `entries` count in the kept statistics.
fn counted(entries: &[AuditEntry]) -> std::collections::HashMap<(&'static str, &str, i64), i64> {
    stats::tally(entries.iter().map(|e| (e.timestamp.as_str(), stats::values_of(e))))
}
