//! How far each sink has delivered, for every backend (the entries a sink
//! reads next are each backend's own: `entries_after`).

use super::{Store, StoreError};

impl Store {
    /// How far sink `sink` has delivered each instance's chain (instance,
    /// newest id delivered); empty for a sink that never delivered.
    pub async fn sink_cursor(&self, sink: &str) -> Result<Vec<(String, String)>, StoreError> {
        const SQL: &str = "SELECT instance, last_id FROM sink_cursor WHERE sink = $1 ORDER BY instance";
        each!(self, s => Ok(sqlx::query_as(SQL).bind(sink).fetch_all(s.pool()).await?))
    }

    /// Records a sink's delivery up to these ids (instance, id), in one
    /// transaction; a cursor never moves back.
    pub async fn save_sink_cursor(&self, sink: &str, cursor: &[(String, String)]) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sink_cursor (sink, instance, last_id) VALUES ($1, $2, $3) \
             ON CONFLICT (sink, instance) DO UPDATE SET last_id = excluded.last_id \
             WHERE excluded.last_id > sink_cursor.last_id";
        each!(self, s => {
            let mut tx = s.pool().begin().await?;
            for (instance, last_id) in cursor {
                sqlx::query(SQL).bind(sink).bind(instance).bind(last_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
