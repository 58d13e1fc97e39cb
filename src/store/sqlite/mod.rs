//! SQLite storage: one file in WAL mode, the schema migrated at open, batches
//! written as multi-row INSERTs inside one transaction.

mod erase;
mod plan;
mod sinks;
mod text;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite};

use super::rows::{self, DeletedRow, EntryRow, StoredRow, client_ip_key};
use super::{Filter, Page, StoreError, stats};
use crate::entry::{AuditEntry, Sealed};

/// How many entries matching a search's other filters a page reads when
/// no index narrows the search (`Store::list`): about 130 ms of LIKE.
const SEARCH_WINDOW: i64 = 20_000;

/// How long a statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The most rows one INSERT writes (7 columns a row is far under SQLite's
/// 32,766 bound parameters): a batch of the default 500 is one statement.
const ROWS_PER_STATEMENT: usize = 512;

/// `items` in runs of at most `ROWS_PER_STATEMENT`, each with the number of
/// rows its statement has: the run's length rounded up to a power of two,
/// the rest NULL rows the statement leaves out (`push_padded`). A prepared
/// statement is kept in the connection's statement cache for each number
/// of rows met: one statement a batch of any size left one for every
/// size (27 MB of them after a few seconds of audited load,
/// BENCHMARKS.md); this way there are ten. Splitting a batch into runs of
/// powers of two instead cost the writer 7% (six statements for 500 rows);
/// the padding costs it about 2%.
fn runs<T>(items: &[T]) -> impl Iterator<Item = (&[T], usize)> {
    items.chunks(ROWS_PER_STATEMENT).map(|run| (run, run.len().next_power_of_two()))
}

/// Appends ` SELECT * FROM (VALUES …) WHERE column1 IS NOT NULL`: `run`'s
/// rows as `bind` binds them, then NULL rows of `columns` up to `rows`.
fn push_padded<T>(
    q: &mut QueryBuilder<Sqlite>,
    (run, rows): (&[T], usize),
    columns: usize,
    mut bind: impl FnMut(&mut sqlx::query_builder::Separated<'_, Sqlite, &'static str>, &T),
) {
    q.push(" SELECT * FROM (");
    let padding = std::iter::repeat_n(None, rows - run.len());
    q.push_values(run.iter().map(Some).chain(padding), |mut b, row| match row {
        Some(row) => bind(&mut b, row),
        None => {
            for _ in 0..columns {
                b.push_bind(None::<String>);
            }
        }
    });
    q.push(") WHERE column1 IS NOT NULL");
}

/// Columns a stored row repeats from its entry, for `verify` to compare.
const ROW: &str = "id, timestamp, resource_type, resource_id, actor, client_ip_key, entry";

/// The memory a SQLite store may use, set in its URL
/// (`sqlite://auditgate.db?cache_mib=16&mmap_mib=64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    /// Each connection's page cache (`cache_size`), in MiB: the pool has
    /// `CONNECTIONS`, and each holds at most this much of the pages it read
    /// or wrote, in the process's own memory.
    cache_mib: u64,
    /// The database file mapped for reading (`mmap_size`), in MiB: pages
    /// read through the map count in the process's resident memory, but
    /// they are the kernel's page cache, shared and reclaimable.
    mmap_mib: u64,
}

impl Memory {
    const DEFAULT: Memory = Memory { cache_mib: 64, mmap_mib: 256 };

    /// The URL without auditgate's own parameters, and the memory they set.
    fn of(url: &str) -> Result<(String, Memory), StoreError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut memory, mut rest) = (Memory::DEFAULT, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let field = match key {
                "cache_mib" => &mut memory.cache_mib,
                "mmap_mib" => &mut memory.mmap_mib,
                _ => {
                    rest.push(pair);
                    continue;
                }
            };
            *field = value.parse().ok().filter(|mib| *mib < 1 << 20).ok_or_else(|| StoreError::BadUrl {
                url: url.to_string(),
                reason: format!("`{key}` must be a whole number of MiB under 1048576, not `{value}`"),
            })?;
        }
        let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
        Ok((url, memory))
    }
}

/// Connections in the pool: the writer, the query port's readers, the
/// checkpoints.
const CONNECTIONS: u32 = 4;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Held by each write transaction, and by a RESTART checkpoint (see
    /// `WriteTx`).
    gate: Gate,
}

/// The store's write gate.
type Gate = std::sync::Arc<tokio::sync::Mutex<()>>;

/// A write transaction holding the store's write gate until it ends. The
/// RESTART checkpoint takes the gate too: it then waits for the write in
/// progress to end, not for SQLite's lock within its short wait, and no
/// new write begins while it runs. (Waiting for the lock with its 100 ms,
/// it lost to back-to-back batches every time, and the WAL grew without
/// bound: 7.7 GB while a 10M trail was being filled.)
pub(super) struct WriteTx {
    tx: sqlx::Transaction<'static, Sqlite>,
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `sqlite://PATH` and migrates the schema.
    /// A commit survives the process crashing; see `open_durable`.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_durable(url, false).await
    }

    /// `open`, and with `power_safe` every commit is also fsync'ed
    /// (`synchronous = FULL`), so it survives power loss too: what
    /// `durability = "sync"` promises. Without it (`NORMAL`, WAL), a commit
    /// survives the process but the last ones may not survive the machine.
    pub async fn open_durable(url: &str, power_safe: bool) -> Result<SqliteStore, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        let (url, memory) = Memory::of(url)?;
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if power_safe { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .busy_timeout(BUSY_TIMEOUT)
            // Pages are read through the map and cached, not copied per read().
            .pragma("mmap_size", (memory.mmap_mib << 20).to_string())
            .pragma("cache_size", format!("-{}", memory.cache_mib << 10))
            // ~1.3 KiB rows: larger pages mean fewer splits and overflow pages.
            .pragma("page_size", PAGE_SIZE.to_string())
            // Checkpoints run from a background connection (below), not
            // inside the writer's commits.
            .pragma("wal_autocheckpoint", "0")
            // What is deleted or rewritten (retention, erasure) is
            // overwritten with zeros, not left in free space.
            .pragma("secure_delete", "on");
        let pool = SqlitePoolOptions::new().max_connections(CONNECTIONS).connect_with(options).await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let gate = Gate::default();
        tokio::spawn(checkpoints(pool.clone(), gate.clone()));
        Ok(SqliteStore { pool, gate })
    }

    /// Writes sealed entries, and the newest as its instance's chain head,
    /// in one transaction. An entry already stored (same id) is skipped, so
    /// a spool replayed twice (a crash between commit and emptying it)
    /// stores each entry once.
    pub async fn insert_batch(&self, entries: &[Sealed]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // The write lock first: this transaction reads before it writes
        // (`write_transaction`). Begun deferred, it also deadlocked a RESTART
        // checkpoint (which holds the write lock while it waits for readers
        // to leave the WAL) until one gave up: sustained writes failed.
        let mut tx = self.write_transaction().await?;
        // A replayed spool may hold entries a crash stored already: they are
        // skipped, and not counted in the statistics again. Found by one
        // seek (a new batch's ids are past every stored one).
        let (first, last) = rows::id_range(entries);
        let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM audit_log WHERE id >= ? AND id <= ?")
            .bind(first)
            .bind(last)
            .fetch_all(&mut *tx)
            .await?;
        for run in runs(entries) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO audit_log (id, timestamp, resource_type, resource_id, actor, client_ip_key, entry)",
            );
            push_padded(&mut q, run, 7, |b, Sealed { entry: e, json }: &Sealed| {
                b.push_bind(e.id.clone())
                    .push_bind(e.timestamp.clone())
                    .push_bind(e.resource_type.clone())
                    .push_bind(e.resource_id.clone())
                    .push_bind(e.actor.clone())
                    .push_bind(client_ip_key(e).to_vec())
                    .push_bind(json.clone());
            });
            q.push(" ON CONFLICT (id) DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        let new = rows::new_ones(entries, &stored).map(|e| (e.timestamp.as_str(), stats::values_of(e)));
        add_stats(&mut tx, stats::tally(new), 1).await?;
        for head in rows::batch_heads(entries) {
            // A head never moves back (a spool replayed after newer entries).
            sqlx::query(
                "INSERT INTO chain_head (instance, last_id, last_hash) VALUES (?, ?, ?) \
                 ON CONFLICT (instance) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash \
                 WHERE excluded.last_id > chain_head.last_id",
            )
            .bind(&head.instance)
            .bind(&head.id)
            .bind(&head.hash)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Entries matching `filter`, one page from the cursor in `page`'s
    /// direction; at most `limit`, plus whether more follow.
    pub(super) async fn list(
        &self,
        filter: &Filter,
        page: Page<'_>,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        let (cursor, compare, order) = page.parts();
        let walk = plan::Walk::probe(&self.pool, filter).await?;
        // A search no index narrows reads a window a page.
        let floor = match (&filter.q, page) {
            (Some(_), Page::Older(_)) if !walk.narrowed() => self.window_floor(filter, &walk, cursor).await?,
            _ => None,
        };
        // The page's rows are chosen first and read after: a range read
        // through an index and sorted then sorts row numbers, not entries.
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, entry FROM audit_log WHERE seq IN (SELECT seq FROM audit_log WHERE 1 = 1",
        );
        plan::push_filter(&mut q, filter, walk);
        if let Some(c) = cursor {
            q.push(compare).push_bind(c.to_string());
        }
        if let Some(f) = &floor {
            q.push(" AND id >= ").push_bind(f.clone());
        }
        q.push(order).push(" LIMIT ").push_bind(i64::from(limit) + 1).push(")").push(order);
        let rows: Vec<EntryRow> = q.build_query_as().fetch_all(&self.pool).await?;
        let entries = rows.iter().map(EntryRow::decode).collect::<Result<_, _>>()?;
        Ok(super::page_of(entries, limit, floor))
    }

    /// The lowest id of the `SEARCH_WINDOW` newest entries older than
    /// `cursor` that match `filter` but for its search text; `None` when
    /// fewer match.
    async fn window_floor(
        &self,
        filter: &Filter,
        walk: &plan::Walk,
        cursor: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id FROM audit_log WHERE 1 = 1");
        plan::push_filter(&mut q, &Filter { q: None, ..filter.clone() }, walk.clone());
        if let Some(c) = cursor {
            q.push(" AND id < ").push_bind(c.to_string());
        }
        q.push(" ORDER BY id DESC LIMIT 1 OFFSET ").push_bind(SEARCH_WINDOW - 1);
        Ok(q.build_query_scalar().fetch_optional(&self.pool).await?)
    }

    /// Every stored row as `verify` checks it, in id order.
    pub(super) fn stored_rows<'c>(
        &self,
        tx: &'c mut sqlx::Transaction<'static, Sqlite>,
    ) -> impl futures_util::Stream<Item = Result<StoredRow, sqlx::Error>> + 'c {
        sqlx::query_as::<_, StoredRow>(AssertSqlSafe(format!("SELECT {ROW} FROM audit_log ORDER BY id")))
            .fetch(&mut **tx)
    }

    /// Takes one batch of retention out of the trail in `tx`: up to `batch`
    /// entries sealed before `before`, oldest first, with what they counted
    /// in the statistics and the search index. Answers them in id order.
    pub(super) async fn delete_batch(
        &self,
        tx: &mut WriteTx,
        before: &str,
        batch: u32,
    ) -> Result<Vec<DeletedRow>, StoreError> {
        let rows: Vec<DeletedRow> = sqlx::query_as(
            "SELECT id, json_extract(entry, '$.instance') AS instance, json_extract(entry, '$.hash') AS hash, \
             timestamp, json_extract(entry, '$.action') AS action, resource_type, actor, \
             json_extract(entry, '$.outcome') AS outcome \
             FROM audit_log WHERE id < ? ORDER BY id LIMIT ?",
        )
        .bind(before)
        .bind(batch)
        .fetch_all(&mut **tx)
        .await?;
        let Some(DeletedRow { id: last, .. }) = rows.last() else { return Ok(rows) };
        // What the deleted entries counted leaves the kept statistics.
        add_stats(tx, stats::tally(rows.iter().map(DeletedRow::counted)), -1).await?;
        text::forget(tx, last).await?;
        sqlx::query("DELETE FROM audit_log WHERE id <= ?").bind(last).execute(&mut **tx).await?;
        Ok(rows)
    }

    /// Adds up to `limit` committed entries to the `q` search's index;
    /// answers how many (0: it is complete).
    pub async fn index_text(&self, limit: u32) -> Result<usize, StoreError> {
        text::index(self, limit).await
    }

    /// A transaction that takes the write lock at its start (`BEGIN
    /// IMMEDIATE`), for one that reads before it writes: begun deferred,
    /// its upgrade fails at once with "database is locked" when another
    /// connection (the recorder, another instance) wrote in between, which
    /// the busy timeout cannot wait out.
    pub(super) async fn write_transaction(&self) -> Result<WriteTx, StoreError> {
        let gate = self.gate.clone().lock_owned().await;
        Ok(WriteTx { tx: self.pool.begin_with("BEGIN IMMEDIATE").await?, _gate: gate })
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

impl super::dialect::Dialect for SqliteStore {
    type WriteTx = WriteTx;
    type ReadTx = sqlx::Transaction<'static, Sqlite>;

    async fn begin_read(&self) -> Result<Self::ReadTx, StoreError> {
        Ok(self.pool.begin().await?)
    }

    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        self.write_transaction().await
    }

    fn for_update(&self) -> &'static str {
        ""
    }

    fn unindexed(&self, column: &str) -> String {
        format!("+{column}")
    }

    fn text<'a>(&self, s: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(s)
    }
}

/// WAL size above which the checkpointer makes the WAL start over (below
/// it checkpoints never block the writer).
const WAL_LIMIT_BYTES: i64 = 256 << 20;
/// Frames a RESTART checkpoint may still have to copy while it holds the
/// writer: PASSIVE passes catch up to this first.
const RESTART_BACKLOG_FRAMES: i64 = 1024;
const PAGE_SIZE: i64 = 16 << 10;
/// How long a RESTART checkpoint, holding the write gate, may wait for
/// readers to leave the WAL (and for SQLite's lock, should another process
/// hold it). With the connections' 5 s, a long read (a verify, an export)
/// held the writer 5 s a try, every try.
const RESTART_WAIT: Duration = Duration::from_millis(100);
/// How often, and how far apart, a PASSIVE pass is tried while another
/// connection's checkpoint keeps it from running.
const PASSIVE_TRIES: usize = 20;
const PASSIVE_RETRY: Duration = Duration::from_millis(5);
/// After a RESTART that readers kept from finishing, the next waits this
/// long, so a long read costs the writer `RESTART_WAIT` this often at most.
const RESTART_BACKOFF: Duration = Duration::from_secs(5);

/// Copies the WAL back into the database file every 250 ms. PASSIVE
/// checkpoints never block the writer, but under sustained writes they never
/// quite catch up, and the WAL only starts over once one has; so when the
/// WAL outgrows `WAL_LIMIT_BYTES`, PASSIVE passes catch up to a small
/// backlog and one RESTART checkpoint briefly holds the writer while it
/// copies the rest, letting the next commit wrap the WAL. Ends when the
/// pool is closed. A failure is logged when checkpoints start failing and
/// again when they work again, not every 250 ms (a read-only or full disk
/// fails every pass).
async fn checkpoints(pool: SqlitePool, gate: Gate) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut restart_from = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        let may_restart = tokio::time::Instant::now() >= restart_from;
        match checkpoint(&pool, &gate, WAL_LIMIT_BYTES, may_restart).await {
            Ok(restarted) => {
                if !restarted {
                    restart_from = tokio::time::Instant::now() + RESTART_BACKOFF;
                }
                if failing {
                    failing = false;
                    tracing::info!("WAL checkpoints work again");
                }
            }
            Err(_) if pool.is_closed() => return,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying every 250 ms, logged again once it works");
            }
            Err(_) => {}
        }
    }
}

/// One pass: PASSIVE, and when the WAL is over `limit` bytes and
/// `may_restart`, the catch-up and a RESTART under the write gate waiting
/// at most `RESTART_WAIT` (for readers; for the lock only when someone
/// else holds it: another process). Answers false when a RESTART could not
/// finish (a reader still in the WAL).
async fn checkpoint(pool: &SqlitePool, gate: &Gate, limit: i64, may_restart: bool) -> Result<bool, sqlx::Error> {
    // (busy, frames in the WAL, frames copied back)
    let passive = || sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool);
    // While another connection checkpoints (another instance on the file),
    // a pass cannot run and says -1 frames: not a small WAL, so it is tried
    // again.
    let mut tries = 1;
    let frames = loop {
        let (_, frames, _) = passive().await?;
        if frames >= 0 || tries == PASSIVE_TRIES {
            break frames;
        }
        tries += 1;
        tokio::time::sleep(PASSIVE_RETRY).await;
    };
    // Under the bound, not to restart, or still held off (-1 frames are
    // under any bound: the next tick tries again): no RESTART is tried.
    if frames * PAGE_SIZE <= limit || !may_restart {
        return Ok(true);
    }
    for _ in 0..16 {
        let (_, frames, copied) = passive().await?;
        if frames - copied <= RESTART_BACKLOG_FRAMES {
            break;
        }
    }
    let mut conn = pool.acquire().await?;
    let _gate = gate.lock().await;
    let wait = |d: Duration| format!("PRAGMA busy_timeout = {}", d.as_millis());
    sqlx::query(sqlx::AssertSqlSafe(wait(RESTART_WAIT))).execute(&mut *conn).await?;
    let restarted = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut *conn).await;
    if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(wait(BUSY_TIMEOUT))).execute(&mut *conn).await {
        // Its short wait must not go back to the pool with it.
        conn.close_on_drop();
        return Err(e);
    }
    Ok(restarted?.0 == 0)
}

/// The SQL for a statistics dimension of an `audit_log` row (action and
/// outcome live only in the entry's JSON here).
fn stat_column(column: &str) -> String {
    match column {
        "action" | "outcome" => format!("json_extract(entry, '$.{column}')"),
        _ => column.to_string(),
    }
}

/// Moves the kept statistics by `sign` × each count, in the caller's
/// transaction; moving down (retention), deletes the rows left at zero, by
/// key (the tables hold about a million rows at 90 days).
async fn add_stats(
    tx: &mut sqlx::SqliteConnection,
    counts: std::collections::HashMap<(&'static str, &str, i64), i64>,
    sign: i64,
) -> Result<(), StoreError> {
    let mut daily: std::collections::HashMap<_, i64> = std::collections::HashMap::new();
    for ((column, value, hour), n) in &counts {
        *daily.entry((*column, *value, hour.div_euclid(24))).or_insert(0) += n;
    }
    for (table, unit, counts) in [("audit_stats", "hour", counts), ("audit_stats_daily", "day", daily)] {
        let counts: Vec<_> = counts.into_iter().collect();
        for run in runs(&counts) {
            let chunk = run.0;
            let mut q = QueryBuilder::<Sqlite>::new(format!("INSERT INTO {table} (dimension, {unit}, value, n)"));
            push_padded(&mut q, run, 4, |b, ((column, value, at), n)| {
                b.push_bind(*column).push_bind(*at).push_bind(*value).push_bind(sign * n);
            });
            q.push(format!(" ON CONFLICT (dimension, {unit}, value) DO UPDATE SET n = n + excluded.n"));
            q.build().execute(&mut *tx).await?;
            if sign < 0 {
                let mut q = QueryBuilder::<Sqlite>::new(format!(
                    "DELETE FROM {table} WHERE n <= 0 AND (dimension, {unit}, value) IN (VALUES "
                ));
                let mut keys = q.separated(", ");
                for ((column, value, at), _) in chunk {
                    keys.push("(").push_bind_unseparated(*column).push_unseparated(", ");
                    keys.push_bind_unseparated(*at).push_unseparated(", ").push_bind_unseparated(*value);
                    keys.push_unseparated(")");
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
            }
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Counts by action, resource type, actor and outcome within the
    /// filter's `since`/`until` (`stats::answer`).
    pub async fn stats(&self, filter: &Filter) -> Result<serde_json::Value, StoreError> {
        stats::answer(self, filter).await
    }
}

impl stats::Counts for SqliteStore {
    async fn kept(
        &self,
        table: &str,
        unit: &str,
        dimension: &str,
        (from, to): stats::Span,
    ) -> Result<Vec<rows::Count>, StoreError> {
        let counts = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT value, SUM(n) FROM {table} WHERE dimension = ? AND {unit} >= ? AND {unit} < ? GROUP BY value"
        )))
        .bind(dimension)
        .bind(from.unwrap_or(i64::MIN))
        .bind(to.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(counts)
    }

    async fn counted(&self, filter: &Filter) -> Result<Vec<(&'static str, Vec<rows::Count>)>, StoreError> {
        let mut groups = Vec::new();
        for (group, column) in stats::DIMENSIONS {
            let column = stat_column(column);
            let mut q =
                QueryBuilder::<Sqlite>::new(format!("SELECT {column} AS k, COUNT(*) AS n FROM audit_log WHERE 1 = 1"));
            plan::push_filter(&mut q, filter, plan::Walk::counting());
            q.push(" GROUP BY k");
            groups.push((group, q.build_query_as().fetch_all(&self.pool).await?));
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_sets_the_memory_and_keeps_sqlites_own_parameters() {
        let of = |url: &str| Memory::of(url).map(|(url, m)| (url, m.cache_mib, m.mmap_mib));
        assert_eq!(of("sqlite://a.db").unwrap(), ("sqlite://a.db".into(), 64, 256));
        assert_eq!(of("sqlite://a.db?cache_mib=8").unwrap(), ("sqlite://a.db".into(), 8, 256));
        assert_eq!(
            of("sqlite://a.db?mode=rwc&mmap_mib=0&cache_mib=2").unwrap(),
            ("sqlite://a.db?mode=rwc".into(), 2, 0)
        );
        let err = of("sqlite://a.db?cache_mib=lots").unwrap_err().to_string();
        assert!(err.contains("`cache_mib` must be a whole number of MiB") && err.contains("`lots`"), "{err}");
        assert!(of("sqlite://a.db?mmap_mib=1048576").is_err());
        assert!(of("sqlite://a.db?mmap_mib=1048575").is_ok());
    }

    /// What the URL sets is what each connection runs with.
    #[tokio::test]
    async fn every_connection_has_the_memory_the_url_sets() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?cache_mib=3&mmap_mib=5", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut conn = store.pool.acquire().await.unwrap();
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size").fetch_one(&mut *conn).await.unwrap();
            let mmap: i64 = sqlx::query_scalar("PRAGMA mmap_size").fetch_one(&mut *conn).await.unwrap();
            assert_eq!((cache, mmap), (-3 * 1024, 5 << 20));
            held.push(conn);
        }
    }

    /// The search index merges sixteen segments at a time (migration
    /// 0008): its steps cost a sixth less than with FTS5's four.
    #[tokio::test]
    async fn the_search_index_merges_sixteen_segments_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let automerge: i64 = sqlx::query_scalar("SELECT v FROM audit_text_config WHERE k = 'automerge'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(automerge, 16);
    }

    /// And never a whole level at once (migration 0011): `crisismerge` is
    /// above `automerge`, so levels are merged incrementally, step by step.
    #[tokio::test]
    async fn the_search_index_never_merges_a_whole_level_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let config: Vec<(String, i64)> =
            sqlx::query_as("SELECT k, v FROM audit_text_config WHERE k IN ('automerge', 'crisismerge') ORDER BY k")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert_eq!(config, [("automerge".to_string(), 16), ("crisismerge".to_string(), 64)]);
    }

    #[test]
    fn a_run_is_padded_with_null_rows_up_to_its_statements_rows() {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO t (a, b)");
        push_padded(&mut q, (&["x", "y", "z"][..], 8), 2, |b, v| {
            b.push_bind(v.to_string()).push_bind(1);
        });
        let tuples = ["(?, ?)"; 8].join(", ");
        assert_eq!(
            q.sql().as_str(),
            format!("INSERT INTO t (a, b) SELECT * FROM (VALUES {tuples}) WHERE column1 IS NOT NULL")
        );
    }

    /// Under back-to-back write transactions (a backlog written as fast as
    /// the store takes it) a RESTART checkpoint still finishes: it waits
    /// for the write in progress through the gate, and the next waits for
    /// it. Waiting for SQLite's lock instead, within its 100 ms, it lost to
    /// writes of 150 ms every time, and the WAL grew without bound.
    #[tokio::test]
    async fn a_restart_checkpoint_finishes_between_back_to_back_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let writing = tokio::spawn({
            let store = store.clone();
            async move {
                for n in 0..12 {
                    let mut tx = store.write_transaction().await.unwrap();
                    sqlx::query(
                        "INSERT INTO audit_text_upto (singleton, upto) VALUES (1, ?) \
                                 ON CONFLICT (singleton) DO UPDATE SET upto = excluded.upto",
                    )
                    .bind(n)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    tx.commit().await.unwrap();
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..3 {
            assert!(checkpoint(&store.pool, &store.gate, 0, true).await.unwrap(), "the RESTART finished");
        }
        writing.await.unwrap();
    }

    /// Seals `n` sample entries into `chain` and writes them as one batch.
    async fn write_samples(store: &SqliteStore, chain: &mut crate::entry::Chain, n: usize) {
        let batch: Vec<_> = (0..n).map(|_| chain.seal(crate::entry::tests::sample(1))).collect();
        store.insert_batch(&batch).await.unwrap();
    }

    /// A store in `dir` (and its URL) holding 40 entries, its chain, and a
    /// reader in a transaction that saw the first 20: the WAL's newer frames
    /// are past its snapshot.
    async fn with_a_reader_behind(
        dir: &std::path::Path,
    ) -> (SqliteStore, String, crate::entry::Chain, sqlx::pool::PoolConnection<Sqlite>) {
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut chain = crate::entry::Chain::resume(None);
        write_samples(&store, &mut chain, 20).await;
        let mut reader = store.pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *reader).await.unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(&mut *reader).await.unwrap();
        assert_eq!(seen, 20);
        write_samples(&store, &mut chain, 20).await;
        (store, url, chain, reader)
    }

    /// A RESTART checkpoint that a reader keeps from finishing gives the
    /// writer's lock back within `RESTART_WAIT`, not the connections' 5 s
    /// (a long verify or export held the writer each try), and says so;
    /// once the reader leaves, it finishes.
    #[tokio::test]
    async fn a_restart_checkpoint_a_reader_holds_up_gives_the_writer_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, url, _, mut reader) = with_a_reader_behind(dir.path()).await;
        let checkpointing = tokio::spawn({
            let (pool, gate) = (store.pool.clone(), store.gate.clone());
            async move { checkpoint(&pool, &gate, 0, true).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A writer of its own, which waits 2 s for the lock at most.
        let options = SqliteConnectOptions::from_str(&url).unwrap().busy_timeout(Duration::from_secs(2));
        let mut writer = sqlx::ConnectOptions::connect(&options).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await.expect("the writer's lock, while the reader stays");
        sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();
        assert!(!checkpointing.await.unwrap(), "the reader kept the RESTART from finishing");
        // Not asked to restart, or the WAL under the bound (frames of 16 KiB,
        // a few hundred here): no RESTART is tried.
        assert!(checkpoint(&store.pool, &store.gate, 0, false).await.unwrap());
        assert!(checkpoint(&store.pool, &store.gate, 64 << 20, true).await.unwrap());
        assert!(!checkpoint(&store.pool, &store.gate, 20_000, true).await.unwrap(), "two frames are over 20,000 bytes");
        sqlx::query("COMMIT").execute(&mut *reader).await.unwrap();
        drop(reader);
        assert!(checkpoint(&store.pool, &store.gate, 0, true).await.unwrap(), "no reader left: it finishes");
        // Its connection waits for locks as long as the others again.
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut conn = store.pool.acquire().await.unwrap();
            let wait: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await.unwrap();
            assert_eq!(wait, 5000);
            held.push(conn);
        }
    }

    /// A batch is one transaction: stopped at any statement, nothing of it
    /// stays (its entries before the one refused, its statistics, its chain
    /// head), and the connection it used goes back to the pool with no
    /// transaction open; the next batch is written whole.
    #[tokio::test]
    async fn a_batch_stopped_at_a_statement_leaves_nothing() {
        use crate::entry::Chain;
        use crate::entry::tests::sample;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let mut chain = Chain::resume(None);
        let first: Vec<_> = (0..3).map(|_| chain.seal(sample(1))).collect();
        store.insert_batch(&first).await.unwrap();
        let counts = || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM audit_log) + (SELECT SUM(n) FROM audit_stats) \
                 + (SELECT SUM(n) FROM audit_stats_daily)",
            )
            .fetch_one(&store.pool)
            .await
            .unwrap();
            let head: String =
                sqlx::query_scalar("SELECT last_id FROM chain_head").fetch_one(&store.pool).await.unwrap();
            (n, head)
        };
        let before = counts().await;
        assert_eq!(before, (3 + 2 * 4 * 3, first[2].entry.id.clone()));
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.actor = 'mallory' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let mut refused = sample(2);
        refused.actor = "mallory".into();
        let second: Vec<_> = [sample(2), refused, sample(2)].into_iter().map(|e| chain.seal(e)).collect();
        for _ in 0..CONNECTIONS + 1 {
            let e = store.insert_batch(&second).await.unwrap_err();
            assert!(e.to_string().contains("refused"), "{e}");
            assert_eq!(counts().await, before);
        }
        sqlx::query("DROP TRIGGER refuse").execute(&store.pool).await.unwrap();
        // Every connection of the pool can begin a write: none was left in
        // the stopped transaction.
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut conn = store.pool.acquire().await.unwrap();
            sqlx::query("BEGIN IMMEDIATE; ROLLBACK").execute(&mut *conn).await.unwrap();
            held.push(conn);
        }
        drop(held);
        store.insert_batch(&second).await.unwrap();
        assert_eq!(counts().await, (6 + 2 * 4 * 6, second[2].entry.id.clone()));
    }

    /// A PASSIVE pass held off by another connection's checkpoint (it says
    /// -1 frames) is tried again, not read as a WAL under the bound: with a
    /// reader in the WAL, the pass then tries the RESTART and finds it held
    /// up. (A RESTART read -1 as nothing to do: `a_restart_checkpoint_a_
    /// reader_holds_up_gives_the_writer_back` failed when the store's own
    /// checkpointer passed at the same moment.)
    #[tokio::test]
    async fn a_pass_another_checkpoint_holds_off_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let (store, url, mut chain, _reader) = with_a_reader_behind(dir.path()).await;
        // Another connection's RESTART, which the reader holds up too, keeps
        // the checkpoint lock while it waits (60 ms).
        let options = SqliteConnectOptions::from_str(&url).unwrap().busy_timeout(Duration::from_millis(60));
        let mut other = sqlx::ConnectOptions::connect(&options).await.unwrap();
        for _ in 0..3 {
            write_samples(&store, &mut chain, 5).await;
            let restart = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut other);
            let ours = async {
                // Most often while theirs holds the lock (not always: the test
                // cannot know), so a pass of ours is held off.
                tokio::time::sleep(Duration::from_millis(10)).await;
                checkpoint(&store.pool, &store.gate, 0, true).await.unwrap()
            };
            let (theirs, ours) = tokio::join!(restart, ours);
            assert_eq!(theirs.unwrap().0, 1, "the reader holds their RESTART up");
            assert!(!ours, "tried again, it tries the RESTART, which the reader holds up");
        }
    }

    #[test]
    fn statements_have_a_power_of_two_rows() {
        let sizes = |n: usize| runs(&vec![0u8; n]).map(|(run, rows)| (run.len(), rows)).collect::<Vec<_>>();
        assert!(sizes(0).is_empty());
        assert_eq!(sizes(1), [(1, 1)]);
        assert_eq!(sizes(5), [(5, 8)]);
        assert_eq!(sizes(500), [(500, 512)]);
        assert_eq!(sizes(512), [(512, 512)]);
        assert_eq!(sizes(1100), [(512, 512), (512, 512), (76, 128)]);
    }
}
