//! Retention, for every backend: batches of the oldest entries deleted,
//! each moving the chains' checkpoints in the same transaction (what a
//! batch takes out is each backend's `delete_batch`).

use super::dialect::Dialect;
use super::rows::{self, DeletedRow};
use super::{Store, StoreError};

impl Store {
    /// Deletes, oldest first, every entry sealed before `before` (an id:
    /// ids are ULIDs, so this is a time), in transactions of `batch` rows,
    /// each moving the instances' checkpoints to the newest entry it
    /// deleted, so that writers wait for one short transaction at most and
    /// what stays verifies from the checkpoint. Answers how many were
    /// deleted and the newest deleted id.
    pub async fn delete_before(&self, before: &str, batch: u32) -> Result<(u64, Option<String>), StoreError> {
        const CHECKPOINT: &str = "INSERT INTO chain_checkpoint (instance, last_id, last_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash \
             WHERE excluded.last_id > chain_checkpoint.last_id";
        each!(self, s => {
            let (mut deleted, mut through) = (0u64, None);
            loop {
                let mut tx = s.begin_write().await?;
                let rows = s.delete_batch(&mut tx, before, batch).await?;
                let Some(DeletedRow { id: last, .. }) = rows.last() else { break };
                for (instance, id, hash) in rows::newest_deleted(&rows) {
                    sqlx::query(CHECKPOINT).bind(instance).bind(id).bind(hash).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                deleted += rows.len() as u64;
                through = Some(last.clone());
                tokio::task::yield_now().await;
            }
            Ok((deleted, through))
        })
    }
}
