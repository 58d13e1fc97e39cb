//! Reading the chains, for every backend: an instance's head, one entry,
//! and where retention left a chain's start.

use super::dialect::Dialect;
use super::rows::EntryRow;
use super::{Store, StoreError};
use crate::entry::AuditEntry;

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

    /// The id of `instance`'s newest entry deleted by retention.
    pub async fn checkpoint(&self, instance: &str) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT last_id FROM chain_checkpoint WHERE instance = $1";
        each!(self, s => Ok(sqlx::query_scalar(SQL).bind(s.text(instance)).fetch_optional(s.pool()).await?))
    }
}
