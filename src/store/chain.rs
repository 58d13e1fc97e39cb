//! Reading the chains, for every backend: an instance's head, one entry,
//! and where retention left a chain's start.

use super::dialect::Dialect;
use super::rows::{self, EntryRow};
use super::{Store, StoreError, filter};
use crate::entry::{AuditEntry, Verification};

impl Store {
    /// The hash of an instance's newest entry, to continue its chain.
    pub async fn last_hash(&self, instance: &str) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT last_hash FROM chain_head WHERE instance = $1";
        each!(self, s => Ok(sqlx::query_scalar(SQL).bind(s.text(instance)).fetch_optional(s.pool()).await?))
    }

    /// One entry by id.
    pub async fn get(&self, id: &str) -> Result<Option<AuditEntry>, StoreError> {
        const SQL: &str = "SELECT id, entry FROM audit_log WHERE id = $1";
        let row: Option<EntryRow> =
            each!(self, s => sqlx::query_as(SQL).bind(s.text(id)).fetch_optional(s.pool()).await?);
        row.map(|r| r.decode()).transpose()
    }

    /// A resource's last entry whose `timestamp` is at or before `at`
    /// (an RFC 3339 time in the entries' format): the state it left.
    ///
    /// Read from the resource's newest entries down, not all of them: the
    /// first entry answered by `at` walking its ids down from an hour past
    /// `at` gives a timestamp the answer cannot be older than, and an entry
    /// answered at or after that has an id from an hour before it or later
    /// (`filter::id_floor`). Without such an entry, every one is read. The
    /// resource's index serves both reads (the time index is kept out).
    pub async fn state_at(&self, kind: &str, id: &str, at: &str) -> Result<Option<AuditEntry>, StoreError> {
        each!(self, s => {
            let timestamp = s.unindexed("timestamp");
            let reached: Option<String> = match filter::id_ceiling(at) {
                Some(ceiling) => {
                    let sql = format!(
                        "SELECT timestamp FROM audit_log WHERE resource_type = $1 AND resource_id = $2 \
                         AND id <= $3 AND {timestamp} <= $4 ORDER BY id DESC LIMIT 1"
                    );
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .bind(s.text(kind))
                        .bind(s.text(id))
                        .bind(ceiling)
                        .bind(at)
                        .fetch_optional(s.pool())
                        .await?
                }
                None => None,
            };
            let floor = reached.as_deref().and_then(filter::id_floor).unwrap_or_default();
            // The last by `timestamp`: the order its changes were applied
            // in, across instances too.
            let sql = format!(
                "SELECT id, entry FROM audit_log WHERE resource_type = $1 AND resource_id = $2 \
                 AND id >= $3 AND {timestamp} <= $4 ORDER BY timestamp DESC, id DESC LIMIT 1"
            );
            let row: Option<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(s.text(kind))
                .bind(s.text(id))
                .bind(floor)
                .bind(at)
                .fetch_optional(s.pool())
                .await?;
            row.map(|r| r.decode()).transpose()
        })
    }

    /// Checks every instance's chain from its first entry (or the
    /// checkpoint retention left), in one pass in id order: each entry must
    /// link and hash, the columns the filters use must agree with the entry
    /// the hash covers, and each chain must end at its recorded head (a
    /// deleted tail names the missing head's id).
    ///
    /// Rows and heads are read in one read transaction, one snapshot of the
    /// database: read apart, a batch committed in between (by any
    /// instance) moves a head past the rows read, and an intact trail being
    /// written to looks cut.
    pub async fn verify(&self) -> Result<Verification, StoreError> {
        const CHECKPOINTS: &str = "SELECT instance, last_id, last_hash FROM chain_checkpoint";
        const HEADS: &str = "SELECT instance, last_id, last_hash FROM chain_head";
        each!(self, s => {
            let mut tx = s.begin_read().await?;
            let checkpoints = sqlx::query_as(CHECKPOINTS).fetch_all(&mut *tx).await?;
            let heads = sqlx::query_as(HEADS).fetch_all(&mut *tx).await?;
            let verification = rows::check_chains(checkpoints, heads, s.stored_rows(&mut tx)).await?;
            tx.rollback().await?;
            Ok(verification)
        })
    }

    /// The id of `instance`'s newest entry deleted by retention.
    pub async fn checkpoint(&self, instance: &str) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT last_id FROM chain_checkpoint WHERE instance = $1";
        each!(self, s => Ok(sqlx::query_scalar(SQL).bind(s.text(instance)).fetch_optional(s.pool()).await?))
    }
}
