//! SQLite storage: one file in WAL mode, the schema migrated at open, batches
//! written as multi-row INSERTs inside one transaction.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{Filter, StoreError, ip_key};
use crate::entry::{AuditEntry, GENESIS, Verification, verify_chain};

/// Columns written per row; SQLite allows 32,766 bound parameters.
const COLUMNS: usize = 15;
const ROWS_PER_STATEMENT: usize = 32_766 / COLUMNS;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `sqlite://PATH` and migrates the schema.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            // Pages are read through the map and cached, not copied per read().
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-65536")
            // ~1.3 KiB rows: larger pages mean fewer splits and overflow pages.
            .pragma("page_size", "16384")
            // Checkpoints run from a background connection (below), not
            // inside the writer's commits.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        tokio::spawn(checkpoints(pool.clone()));
        Ok(SqliteStore { pool })
    }

    /// Writes sealed entries in one transaction.
    pub async fn insert_batch(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<(&AuditEntry, String, Vec<u8>)> = chunk
                .iter()
                .map(|e| {
                    let json = serde_json::to_string(e).expect("an entry serialises");
                    let key = e.client_ip.parse().map(ip_key).unwrap_or([0; 16]).to_vec();
                    (e, json, key)
                })
                .collect();
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO audit_log (id, instance, timestamp, action, outcome, method, path, status, \
                 resource_type, resource_id, actor, client_ip, client_ip_key, configuration, entry) ",
            );
            q.push_values(rows, |mut b, (e, json, key)| {
                b.push_bind(e.id.clone())
                    .push_bind(e.instance.clone())
                    .push_bind(e.timestamp.clone())
                    .push_bind(e.action.clone())
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.method.clone())
                    .push_bind(e.path.clone())
                    .push_bind(i64::from(e.status))
                    .push_bind(e.resource_type.clone())
                    .push_bind(e.resource_id.clone())
                    .push_bind(e.actor.clone())
                    .push_bind(e.client_ip.clone())
                    .push_bind(key)
                    .push_bind(e.configuration.clone())
                    .push_bind(json);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The hash of an instance's newest entry, to continue its chain.
    pub async fn last_hash(&self, instance: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT id, entry FROM audit_log WHERE instance = ? ORDER BY id DESC LIMIT 1")
            .bind(instance)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(&r).map(|e| e.hash)).transpose()
    }

    /// One entry by id.
    pub async fn get(&self, id: &str) -> Result<Option<AuditEntry>, StoreError> {
        let row =
            sqlx::query("SELECT id, entry FROM audit_log WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        row.map(|r| decode(&r)).transpose()
    }

    /// Entries matching `filter`, newest first, older than `cursor`; at most
    /// `limit`, plus whether more follow.
    pub async fn list(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, entry FROM audit_log WHERE 1 = 1");
        push_filter(&mut q, filter);
        if let Some(c) = cursor {
            q.push(" AND id < ").push_bind(c.to_string());
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit) + 1);
        let rows = q.build().fetch_all(&self.pool).await?;
        let more = rows.len() > limit as usize;
        let entries = rows.iter().take(limit as usize).map(decode).collect::<Result<_, _>>()?;
        Ok((entries, more))
    }

    /// A resource's entries, oldest first.
    pub async fn history(&self, kind: &str, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT id, entry FROM audit_log WHERE resource_type = ? AND resource_id = ? ORDER BY id ASC")
                .bind(kind)
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(decode).collect()
    }

    /// Checks every instance's chain from its first entry.
    pub async fn verify(&self) -> Result<Verification, StoreError> {
        let rows = sqlx::query("SELECT id, entry FROM audit_log ORDER BY instance, id").fetch_all(&self.pool).await?;
        let mut checked = 0;
        let mut first_bad = None;
        let mut current: Vec<AuditEntry> = Vec::new();
        let flush = |chain: &mut Vec<AuditEntry>, checked: &mut u64, first_bad: &mut Option<String>| {
            let (n, bad) = verify_chain(GENESIS, chain.iter());
            *checked += n;
            if first_bad.is_none() {
                *first_bad = bad;
            }
            chain.clear();
        };
        for row in &rows {
            let entry = match decode(row) {
                Ok(e) => e,
                Err(_) => {
                    let id: String = row.try_get("id")?;
                    checked += 1;
                    first_bad.get_or_insert(id);
                    continue;
                }
            };
            if current.last().is_some_and(|prev| prev.instance != entry.instance) {
                flush(&mut current, &mut checked, &mut first_bad);
            }
            current.push(entry);
        }
        flush(&mut current, &mut checked, &mut first_bad);
        Ok(Verification { ok: first_bad.is_none(), checked, first_bad })
    }

    /// True when the database answers (`/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pool (shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for tests that tamper with rows.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Copies the WAL back into the database file every 250 ms without blocking
/// the writer (PASSIVE), so the WAL stays small and commits stay cheap.
/// Ends when the pool is closed.
async fn checkpoints(pool: SqlitePool) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<AuditEntry, StoreError> {
    let id: String = row.try_get("id")?;
    let json: String = row.try_get("entry")?;
    serde_json::from_str(&json).map_err(|source| StoreError::Corrupt { id, source })
}

fn push_filter(q: &mut QueryBuilder<Sqlite>, f: &Filter) {
    let eq = |q: &mut QueryBuilder<Sqlite>, column: &str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    };
    eq(q, "action", &f.action);
    eq(q, "resource_type", &f.resource_type);
    eq(q, "resource_id", &f.resource_id);
    eq(q, "actor", &f.actor);
    eq(q, "outcome", &f.outcome);
    eq(q, "configuration", &f.configuration);
    eq(q, "instance", &f.instance);
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(i64::from(s));
    }
    if let Some((lo, hi)) = f.client_ip {
        q.push(" AND client_ip_key BETWEEN ").push_bind(lo.to_vec()).push(" AND ").push_bind(hi.to_vec());
    }
    if let Some(s) = &f.since {
        q.push(" AND timestamp >= ").push_bind(s.clone());
    }
    if let Some(u) = &f.until {
        q.push(" AND timestamp <= ").push_bind(u.clone());
    }
    if let Some(text) = &f.q {
        let like = format!("%{}%", text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        q.push(" AND (path LIKE ")
            .push_bind(like.clone())
            .push(" ESCAPE '\\' OR json_extract(entry, '$.changes') LIKE ");
        q.push_bind(like).push(" ESCAPE '\\')");
    }
}

impl SqliteStore {
    /// Counts by action, resource type, actor and outcome within the
    /// filter's `since`/`until`.
    pub async fn stats(&self, filter: &Filter) -> Result<serde_json::Value, StoreError> {
        let mut out = serde_json::Map::new();
        let mut total = 0i64;
        for (key, column) in [
            ("by_action", "action"),
            ("by_resource_type", "resource_type"),
            ("by_actor", "actor"),
            ("by_outcome", "outcome"),
        ] {
            let mut q =
                QueryBuilder::<Sqlite>::new(format!("SELECT {column} AS k, COUNT(*) AS n FROM audit_log WHERE 1 = 1"));
            push_filter(&mut q, filter);
            q.push(format!(" GROUP BY {column} ORDER BY n DESC, k LIMIT 1000"));
            let rows = q.build().fetch_all(&self.pool).await?;
            let mut counts = serde_json::Map::new();
            let mut sum = 0i64;
            for row in rows {
                let k: String = row.try_get("k")?;
                let n: i64 = row.try_get("n")?;
                sum += n;
                counts.insert(k, n.into());
            }
            if column == "outcome" {
                total = sum;
            }
            out.insert(key.into(), counts.into());
        }
        out.insert("total".into(), total.into());
        Ok(out.into())
    }
}
