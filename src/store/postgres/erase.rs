//! Erasure in PostgreSQL (docs/personal-data.md): entries rewritten without
//! their personal content, with the columns, statistics and search text
//! that held it, rows locked so that erasures and retention meeting on the
//! same entries take turns.

use super::{PgStore, add_stats, changes_text, counted, text};
use crate::store::{StoreError, rows};

impl PgStore {
    /// Erases the entries `ids` names, in one transaction (docs/trail.md); answers
    /// how many it erased (those erased already, or of chain version 1, stay).
    pub async fn erase_entries(&self, ids: &[String]) -> Result<u64, StoreError> {
        let mut erased_now = 0;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let found: Vec<rows::EntryRow> =
            sqlx::query_as("SELECT id, entry FROM audit_log WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(ids)
                .fetch_all(&mut *tx)
                .await?;
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for row in found {
            let (entry, erased, json) = match rows::erasing(&row.id, &row.entry)? {
                rows::Erasing::Left => continue,
                rows::Erasing::Erase { before, after, json } => (*before, *after, json),
            };
            sqlx::query(
                "UPDATE audit_log SET actor = '', client_ip_key = $2, changes = $3, unapplied = 0, entry = $4 \
                 WHERE id = $1",
            )
            .bind(&row.id)
            .bind(rows::client_ip_key(&erased).to_vec())
            .bind(changes_text(&erased))
            .bind(json)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE audit_text SET text = $2 WHERE id = $1")
                .bind(&row.id)
                .bind(format!("{}\n{}", text(&erased.path), changes_text(&erased)))
                .execute(&mut *tx)
                .await?;
            erased_now += 1;
            before.push(entry);
            after.push(erased);
        }
        // The kept statistics count erased entries under an empty actor.
        add_stats(&mut tx, counted(before.iter()), -1).await?;
        add_stats(&mut tx, counted(after.iter()), 1).await?;
        tx.commit().await?;
        Ok(erased_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::AuditEntry;

    #[test]
    fn an_erased_entrys_columns_hold_nothing_personal() {
        let mut e: AuditEntry = crate::entry::Chain::resume(None).seal(crate::entry::tests::sample(1)).entry;
        e.erase();
        assert_eq!(rows::client_ip_key(&e), [0; 16]);
        assert_eq!(changes_text(&e), "[]");
    }
}
