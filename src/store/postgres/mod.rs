//! PostgreSQL storage, for several instances sharing one database: the
//! schema migrated at open (under sqlx's migration lock, so instances
//! starting together take turns), batches written as one `unnest` insert
//! per transaction, and resources locked across instances with advisory
//! locks.

mod erase;
mod locks;
mod sinks;
mod text;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};

use super::rows::{self, DeletedRow, EntryRow, VerifiedRow, client_ip_key};
use super::{Filter, Page, StoreError, stats};
use crate::entry::{AuditEntry, Sealed};
pub use locks::SharedLock;
use text::Candidates;

/// The stored columns, in the order every statement here lists them.
macro_rules! row_columns {
    () => {
        "id, timestamp, instance, action, outcome, status, configuration, resource_type, resource_id, \
         actor, client_ip_key, path, changes, unapplied, hash, entry"
    };
}

/// Columns a stored row repeats from its entry, for `verify` to compare.
const ROW: &str = row_columns!();

/// A batch's rows, one array parameter per column.
macro_rules! insert_rows {
    ($($tail:literal)?) => {
        concat!(
            "INSERT INTO audit_log (",
            row_columns!(),
            ") SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), \
               unnest($5::text[]), unnest($6::int4[]), unnest($7::text[]), unnest($8::text[]), unnest($9::text[]), \
               unnest($10::text[]), unnest($11::bytea[]), unnest($12::text[]), unnest($13::text[]), \
               unnest($14::int4[]), unnest($15::text[]), unnest($16::text[])"
            $(, $tail)?
        )
    };
}
const INSERT_ROWS: &str = insert_rows!();
/// The same, skipping rows whose id is stored (a replay).
const INSERT_NEW_ROWS: &str = insert_rows!(" ON CONFLICT (id) DO NOTHING");

/// The advisory lock retention passes take turns on (resource locks are
/// hashed into the same space; a collision only makes one wait).
const RETENTION_LOCK: i64 = 0x6175_6469_7467_0001;

/// Connections for everything but resource locks.
const CONNECTIONS: u32 = 8;

/// How many entries matching a search's other filters a page reads when
/// no index narrows the search (`Store::list`): about 100 ms of ILIKE.
const SEARCH_WINDOW: i64 = 50_000;

/// The smallest batch written as two halves at once (`insert_batch`).
const SPLIT_FROM: usize = 200;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    locks: locks::Locks,
}

impl PgStore {
    /// Connects to `postgres://…` and migrates the schema. A commit is as
    /// durable as the server's `synchronous_commit` makes it; with
    /// `power_safe` (`durability = "sync"`) this store's sessions set it
    /// `on` whatever the server's default, so a commit is flushed to disk
    /// before it is answered.
    pub async fn open(url: &str, power_safe: bool) -> Result<PgStore, StoreError> {
        let mut options = PgConnectOptions::from_str(url)?.application_name("auditgate");
        if power_safe {
            options = options.options([("synchronous_commit", "on")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool, locks: locks::Locks::new(options) })
    }

    /// Writes sealed entries, and the newest of each instance as its chain
    /// head, the rows as one `unnest` insert (one parameter per column,
    /// whatever the batch size). An entry already stored (same id) is
    /// skipped, so a replayed spool stores each once: the batch is first
    /// written as a plain insert (a fresh batch never holds a stored id, and
    /// `ON CONFLICT` costs every row a speculative insertion), and written
    /// again, whole, skipping stored ids only if that one met a stored id.
    ///
    /// A batch of `SPLIT_FROM` entries or more is written as two halves at
    /// once, each in its own transaction on its own connection (one server
    /// backend's time per row is what limits an instance); the second half
    /// commits only after the first has, so what is stored is always the
    /// start of the batch: a failure or a crash in between leaves a shorter
    /// chain, never one with a gap.
    pub async fn insert_batch(&self, entries: &[Sealed]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows: Vec<Columns<'_>> = entries.iter().map(Columns::of).collect();
        let written = if entries.len() >= SPLIT_FROM {
            self.write_halves(entries, &rows).await
        } else {
            self.write_batch(entries, &rows, INSERT_ROWS).await
        };
        match written {
            Err(e) if met_stored_id(&e) => Ok(self.write_batch(entries, &rows, INSERT_NEW_ROWS).await?),
            written => Ok(written?),
        }
    }

    /// One try of `insert_batch` in one transaction, with `insert`
    /// (`INSERT_ROWS` or `INSERT_NEW_ROWS`).
    async fn write_batch(
        &self,
        entries: &[Sealed],
        rows: &[Columns<'_>],
        insert: &'static str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // A replay may hold stored entries: those are not counted again.
        let stored: Vec<String> = if insert == INSERT_NEW_ROWS {
            let (first, last) = rows::id_range(entries);
            sqlx::query_scalar("SELECT id FROM audit_log WHERE id >= $1 AND id <= $2")
                .bind(first)
                .bind(last)
                .fetch_all(&mut *tx)
                .await?
        } else {
            Vec::new()
        };
        insert_rows(&mut tx, rows, insert).await?;
        add_stats(&mut tx, counted(rows::new_ones(entries, &stored)), 1).await?;
        move_heads(&mut tx, entries).await?;
        tx.commit().await
    }

    /// One try of `insert_batch` as two halves inserted at once, committed
    /// in order.
    async fn write_halves(&self, entries: &[Sealed], rows: &[Columns<'_>]) -> Result<(), sqlx::Error> {
        let half = entries.len() / 2;
        let (mut first, mut second) = (self.pool.begin().await?, self.pool.begin().await?);
        let (a, b) = tokio::join!(
            insert_rows(&mut first, &rows[..half], INSERT_ROWS),
            insert_rows(&mut second, &rows[half..], INSERT_ROWS)
        );
        // Either failing rolls both back (dropped transactions roll back).
        a?;
        b?;
        // The halves' counts share rows: moved one transaction after the
        // other (moved at once, the second would wait for the first's
        // commit while the first waits for it).
        add_stats(&mut first, counted(entries[..half].iter().map(|s| &s.entry)), 1).await?;
        move_heads(&mut first, &entries[..half]).await?;
        first.commit().await?;
        add_stats(&mut second, counted(entries[half..].iter().map(|s| &s.entry)), 1).await?;
        move_heads(&mut second, &entries[half..]).await?;
        second.commit().await
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
        let ceiling = self.ceiling(filter).await?;
        // A page back from the newest reads the search's candidates (the
        // stream's reads onward from a recent cursor walk its few entries),
        // unless the newest entries fill it first.
        let mut candidates = None;
        if let (Some(search), Page::Older(_)) = (&filter.q, page)
            && text::narrows(search)
        {
            let rows = self.newest_matching(filter, &ceiling, search, page, limit).await?;
            if rows.len() > limit as usize {
                return Ok(super::page_of(decoded(&rows)?, limit, None));
            }
            candidates = text::candidates(&self.pool, search, &like(search), text::MAX_CANDIDATES).await?;
        }
        // A search no index narrows reads a window a page.
        let floor = match (&filter.q, page, &candidates) {
            (Some(_), Page::Older(_), None) => self.window_floor(filter, &ceiling, cursor).await?,
            _ => None,
        };
        let mut q = QueryBuilder::<Postgres>::new("");
        push_select(&mut q, "id, entry", filter, &ceiling);
        if let Some(c) = candidates {
            push_candidates(&mut q, c);
        }
        if let Some(c) = cursor {
            q.push(compare).push_bind(text(c).into_owned());
        }
        if let Some(f) = &floor {
            q.push(" AND id >= ").push_bind(f.clone());
        }
        q.push(order).push(" LIMIT ").push_bind(i64::from(limit) + 1);
        let rows: Vec<EntryRow> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok(super::page_of(decoded(&rows)?, limit, floor))
    }

    /// How `filter`'s `until` bounds the ids it reads (`push_source`):
    /// whether any entry answered in its range was sealed late is asked
    /// first, so the usual query is one walk up to the ceiling.
    async fn ceiling(&self, filter: &Filter) -> Result<Ceiling, StoreError> {
        let Some((until, ceiling)) = filter.until.as_ref().and_then(|u| Some((u, super::filter::id_ceiling(u)?)))
        else {
            return Ok(Ceiling::Open);
        };
        let late: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM audit_late WHERE timestamp <= $1 AND timestamp >= $2 AND id > $3)",
        )
        .bind(text(until))
        .bind(filter.since.as_deref().map_or(Cow::Borrowed(""), text))
        .bind(&ceiling)
        .fetch_one(&self.pool)
        .await?;
        Ok(if late { Ceiling::WithLate(ceiling) } else { Ceiling::Below(ceiling) })
    }

    /// The lowest id of the `SEARCH_WINDOW` newest entries older than
    /// `cursor` that match `filter` but for its search text; `None` when
    /// fewer match.
    async fn window_floor(
        &self,
        filter: &Filter,
        ceiling: &Ceiling,
        cursor: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("");
        push_select(&mut q, "id", &Filter { q: None, ..filter.clone() }, ceiling);
        if let Some(c) = cursor {
            q.push(" AND id < ").push_bind(text(c).into_owned());
        }
        q.push(" ORDER BY id DESC LIMIT 1 OFFSET ").push_bind(SEARCH_WINDOW - 1);
        Ok(q.build_query_scalar().fetch_optional(&self.pool).await?)
    }

    /// The entries matching `filter` among the `text::PROBE` newest that
    /// match it but for its search text: a common text fills a page there
    /// sooner than the index names its candidates (its trigrams' lists are
    /// a large part of the index).
    async fn newest_matching(
        &self,
        filter: &Filter,
        ceiling: &Ceiling,
        search: &str,
        page: Page<'_>,
        limit: u32,
    ) -> Result<Vec<EntryRow>, StoreError> {
        let (cursor, compare, order) = page.parts();
        let mut q = QueryBuilder::<Postgres>::new("SELECT id, entry FROM (");
        push_select(&mut q, "id, entry, path, changes", &Filter { q: None, ..filter.clone() }, ceiling);
        if let Some(c) = cursor {
            q.push(compare).push_bind(text(c).into_owned());
        }
        q.push(order).push(" LIMIT ").push_bind(text::PROBE).push(") AS newest WHERE TRUE");
        push_search(&mut q, search);
        q.push(order).push(" LIMIT ").push_bind(i64::from(limit) + 1);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    /// Every stored row as `verify` checks it, in id order.
    pub(super) fn stored_rows<'c>(
        &self,
        tx: &'c mut sqlx::Transaction<'static, Postgres>,
    ) -> impl futures_util::Stream<Item = Result<PgStoredRow, sqlx::Error>> + 'c {
        sqlx::query_as::<_, PgStoredRow>(AssertSqlSafe(format!("SELECT {ROW} FROM audit_log ORDER BY id")))
            .fetch(&mut **tx)
    }

    /// Takes one batch of retention out of the trail in `tx`: up to `batch`
    /// entries sealed before `before`, oldest first, with what they counted
    /// in the statistics, the search index and the late list. Instances
    /// running retention at once take turns per transaction (a transaction
    /// advisory lock), so no checkpoint moves past a row another left.
    /// Answers them in id order.
    pub(super) async fn delete_batch(
        &self,
        tx: &mut sqlx::Transaction<'static, Postgres>,
        before: &str,
        batch: u32,
    ) -> Result<Vec<DeletedRow>, StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(RETENTION_LOCK).execute(&mut **tx).await?;
        let mut rows: Vec<DeletedRow> = sqlx::query_as(
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE id < $1 ORDER BY id LIMIT $2) \
             RETURNING id, instance, hash, timestamp, action, resource_type, actor, outcome",
        )
        .bind(before)
        .bind(i64::from(batch))
        .fetch_all(&mut **tx)
        .await?;
        // What the deleted entries counted leaves the kept statistics.
        let gone = rows.iter().map(|r| {
            let (timestamp, values) = r.counted();
            (timestamp, values, r.instance.as_str())
        });
        add_stats(tx, gone, -1).await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        text::forget(tx, &ids).await?;
        sqlx::query("DELETE FROM audit_late WHERE id = ANY($1)").bind(&ids).execute(&mut **tx).await?;
        // RETURNING follows no order; checkpoints need id order.
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(rows)
    }

    /// Adds up to `limit` committed entries to the `q` search's index
    /// (`text::index`): how many, 0 when nothing is left or another
    /// instance's step is running.
    pub async fn index_text(&self, limit: u32) -> Result<usize, StoreError> {
        text::index(&self.pool, limit).await
    }

    /// Counts by action, resource type, actor and outcome within the
    /// filter's `since`/`until` (`stats::answer`).
    pub async fn stats(&self, filter: &Filter) -> Result<serde_json::Value, StoreError> {
        stats::answer(self, filter).await
    }

    /// Holds `(kind, id)` against every instance sharing this database
    /// until the answer is dropped (a session advisory lock on a connection
    /// of its own).
    pub async fn lock_resource(&self, kind: &str, id: &str) -> Result<SharedLock, StoreError> {
        self.locks.lock(kind, id).await
    }

    /// Holds `name` as a running instance's for as long as the answer
    /// lives; `None` when another running instance already holds it.
    pub async fn claim_instance(&self, name: &str) -> Result<Option<SharedLock>, StoreError> {
        self.locks.claim_instance(name).await
    }

    pub async fn claim_sink(&self, name: &str) -> Result<Option<SharedLock>, StoreError> {
        self.locks.claim_sink(name).await
    }

    /// True when the database answers (`/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes the pools (shutdown).
    pub async fn close(&self) {
        self.locks.close().await;
        self.pool.close().await;
    }

    /// The pool, for tests that tamper with rows.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl super::dialect::Dialect for PgStore {
    type WriteTx = sqlx::Transaction<'static, Postgres>;
    type ReadTx = sqlx::Transaction<'static, Postgres>;

    async fn begin_read(&self) -> Result<Self::ReadTx, StoreError> {
        Ok(self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?)
    }

    async fn begin_write(&self) -> Result<Self::WriteTx, StoreError> {
        Ok(self.pool.begin().await?)
    }

    fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }

    fn unindexed(&self, column: &str) -> String {
        column.to_string()
    }

    fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        text(s)
    }
}

/// How an `until` bounds the ids a query reads (`PgStore::ceiling`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ceiling {
    /// No `until`.
    Open,
    /// Ids up to this one: entries answered by `until` were sealed within
    /// an hour after it (`id_ceiling`), and none in the range later.
    Below(String),
    /// Those, and the entries in the range `audit_late` names.
    WithLate(String),
}

/// Appends `SELECT columns FROM … WHERE TRUE` and `filter`'s terms: the
/// rows a page or a count of `filter` reads.
fn push_select(q: &mut QueryBuilder<Postgres>, columns: &str, filter: &Filter, ceiling: &Ceiling) {
    q.push(format!("SELECT {columns} FROM "));
    push_source(q, filter, ceiling);
    q.push(" WHERE TRUE");
    if let Ceiling::Below(c) = ceiling {
        q.push(" AND id <= ").push_bind(c.clone());
    }
    push_filter(q, filter);
}

/// The rows `filter` can match, as `audit_log`: with entries sealed late
/// in its time range, the ids up to the ceiling and those late ones (a
/// UNION ALL; the filters go into both).
fn push_source(q: &mut QueryBuilder<Postgres>, f: &Filter, ceiling: &Ceiling) {
    let (Ceiling::WithLate(c), Some(until)) = (ceiling, &f.until) else {
        q.push("audit_log");
        return;
    };
    q.push("(SELECT * FROM audit_log WHERE id <= ").push_bind(c.clone());
    q.push(" UNION ALL SELECT * FROM audit_log WHERE id > ").push_bind(c.clone());
    q.push(" AND id IN (SELECT id FROM audit_late WHERE timestamp <= ").push_bind(text(until).into_owned());
    if let Some(s) = &f.since {
        q.push(" AND timestamp >= ").push_bind(text(s).into_owned());
    }
    q.push(")) AS audit_log");
}

/// Appends `filter` as ` AND …` terms.
fn push_filter(q: &mut QueryBuilder<Postgres>, f: &Filter) {
    // Every filter named: a new one does not compile until this backend
    // reads it (never a filter silently ignored).
    let Filter {
        action,
        resource_type,
        resource_id,
        actor,
        client_ip,
        outcome,
        status,
        since,
        until,
        q: search,
        configuration,
        instance,
        unapplied,
        ids_upto,
    } = f;
    let eq = |q: &mut QueryBuilder<Postgres>, column: &str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {column} = ")).push_bind(text(v).into_owned());
        }
    };
    eq(q, "resource_type", resource_type);
    eq(q, "resource_id", resource_id);
    eq(q, "actor", actor);
    eq(q, "action", action);
    eq(q, "outcome", outcome);
    eq(q, "configuration", configuration);
    eq(q, "instance", instance);
    match *unapplied {
        Some(true) => _ = q.push(" AND unapplied > 0"),
        Some(false) => _ = q.push(" AND unapplied = 0"),
        None => {}
    }
    if let Some(s) = *status {
        q.push(" AND status = ").push_bind(i32::from(s));
    }
    if let Some((lo, hi)) = *client_ip {
        q.push(" AND client_ip_key BETWEEN ").push_bind(lo.to_vec()).push(" AND ").push_bind(hi.to_vec());
    }
    // A time range is read in id order: entries answered since `since` have
    // ids from an hour before it on (`id_floor`), and those answered by
    // `until` ids up to an hour after it (the ceiling, `push_select`). The
    // timestamp only filters that range. Written as an expression no index
    // or statistic knows, it keeps the planner from estimating the two
    // ranges as independent: with the BRIN index on `timestamp` (dropped
    // since, migration 0006) it expected a few rows and read a whole day
    // through it (200 ms at 10M entries, where the walk reads 5,000 rows
    // in 4 ms).
    if let Some(s) = since {
        if let Some(floor) = super::filter::id_floor(s) {
            q.push(" AND id >= ").push_bind(floor);
        }
        q.push(" AND (timestamp || '') >= ").push_bind(text(s).into_owned());
    }
    if let Some(u) = until {
        q.push(" AND (timestamp || '') <= ").push_bind(text(u).into_owned());
    }
    if let Some(upto) = ids_upto {
        q.push(" AND id <= ").push_bind(text(upto).into_owned());
    }
    if let Some(search) = search {
        push_search(q, search);
    }
}

/// Appends the `q` search: `search` anywhere in the path or the changes.
fn push_search(q: &mut QueryBuilder<Postgres>, search: &str) {
    let like = like(search);
    q.push(" AND (path ILIKE ").push_bind(like.clone()).push(" ESCAPE '\\' OR changes ILIKE ");
    q.push_bind(like).push(" ESCAPE '\\')");
}

fn decoded(rows: &[EntryRow]) -> Result<Vec<AuditEntry>, StoreError> {
    rows.iter().map(EntryRow::decode).collect()
}

/// The ILIKE pattern (escape `\`) of a `q` search (`filter::like`), as
/// a text column holds it. ILIKE, as SQLite's LIKE ignores case too.
fn like(search: &str) -> String {
    text(&super::filter::like(search)).into_owned()
}

/// Narrows a search to the index's candidates and the entries not indexed
/// when it began (`text::Candidates`); the ILIKE of `push_filter` still
/// checks each.
fn push_candidates(q: &mut QueryBuilder<Postgres>, c: Candidates) {
    q.push(" AND (id = ANY(").push_bind(c.ids).push(")");
    if let Some(tail) = c.tail {
        q.push(" OR id > ").push_bind(tail.from);
        q.push(" AND id > COALESCE((SELECT w.upto FROM unnest(").push_bind(tail.instances);
        q.push("::text[], ").push_bind(tail.uptos);
        q.push("::text[]) AS w(instance, upto) WHERE w.instance = audit_log.instance), '') COLLATE \"C\"");
    }
    q.push(")");
}

/// Text as a PostgreSQL text column holds it: NUL, which it cannot hold,
/// becomes U+FFFD (what a lossy decoder writes).
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') { Cow::Owned(s.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(s) }
}

/// What a row holds beside its entry, worked out from the entry once.
struct Columns<'a> {
    e: &'a AuditEntry,
    json: &'a str,
    changes: String,
    unapplied: i32,
}

impl<'a> Columns<'a> {
    fn of(Sealed { entry, json }: &'a Sealed) -> Columns<'a> {
        Columns { e: entry, json, changes: changes_text(entry), unapplied: unapplied(entry) }
    }
}

/// Inserts `rows` with `insert` (`INSERT_ROWS` or `INSERT_NEW_ROWS`).
impl stats::Counts for PgStore {
    async fn kept(
        &self,
        table: &str,
        unit: &str,
        dimension: &str,
        (from, to): stats::Span,
    ) -> Result<Vec<rows::Count>, StoreError> {
        let counts = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT value, SUM(n)::bigint FROM {table} WHERE dimension = $1 AND {unit} >= $2 AND {unit} < $3 \
             GROUP BY value"
        )))
        .bind(dimension)
        .bind(from.unwrap_or(i64::MIN))
        .bind(to.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(counts)
    }

    async fn counted(&self, filter: &Filter) -> Result<Vec<(&'static str, Vec<rows::Count>)>, StoreError> {
        // Every dimension in one pass over the rows: a grouping set each,
        // told apart by GROUPING() (the columns are never NULL).
        let columns = stats::DIMENSIONS.map(|(_, column)| column);
        let listed = columns.join(", ");
        let ceiling = self.ceiling(filter).await?;
        let mut q = QueryBuilder::<Postgres>::new("");
        let counts = format!("GROUPING({listed}) AS g, COALESCE({listed}) AS k, COUNT(*) AS n");
        push_select(&mut q, &counts, filter, &ceiling);
        q.push(format!(" GROUP BY GROUPING SETS (({}))", columns.join("), (")));
        let rows: Vec<(i32, Option<String>, i64)> = q.build_query_as().fetch_all(&self.pool).await?;
        let last = stats::DIMENSIONS.len() - 1;
        let groups = stats::DIMENSIONS.iter().enumerate().map(|(i, (group, _))| {
            // The grouping set of column i leaves every bit set but its own.
            let g = ((1 << stats::DIMENSIONS.len()) - 1) & !(1 << (last - i));
            (*group, rows.iter().filter(|r| r.0 == g).map(|(_, k, n)| (k.clone(), *n)).collect())
        });
        Ok(groups.collect())
    }
}

/// What `add_stats` counts of each entry.
fn counted<'a>(
    entries: impl Iterator<Item = &'a AuditEntry>,
) -> impl Iterator<Item = (&'a str, [&'a str; 4], &'a str)> {
    entries.map(|e| (e.timestamp.as_str(), stats::values_of(e), e.instance.as_str()))
}

/// Moves the kept statistics by `sign` × what `entries` count, each
/// instance's own rows, in the caller's transaction. Rows are written in
/// key order, so two transactions moving the same rows (a writer and
/// retention) lock them in the same order.
async fn add_stats<'a>(
    conn: &mut sqlx::PgConnection,
    entries: impl Iterator<Item = (&'a str, [&'a str; 4], &'a str)>,
    sign: i64,
) -> Result<(), sqlx::Error> {
    let counts = stats::tally_by_instance(entries);
    for (table, unit, divisor) in [("audit_stats", "hour", 1), ("audit_stats_daily", "day", 24)] {
        let mut rows: std::collections::BTreeMap<(&str, i64, &str, &str), i64> = std::collections::BTreeMap::new();
        for ((column, value, hour, instance), n) in &counts {
            *rows.entry((column, hour.div_euclid(divisor), value, instance)).or_insert(0) += sign * n;
        }
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((column, at, value, instance), n) in rows {
            columns.0.push(column);
            columns.1.push(at);
            columns.2.push(text(value));
            columns.3.push(text(instance));
            columns.4.push(n);
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {table} (dimension, {unit}, value, instance, n) \
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[]) \
             ON CONFLICT (dimension, {unit}, value, instance) DO UPDATE SET n = {table}.n + excluded.n"
        )))
        .bind(&columns.0)
        .bind(&columns.1)
        .bind(&columns.2)
        .bind(&columns.3)
        .bind(&columns.4)
        .execute(&mut *conn)
        .await?;
        if sign < 0 {
            // Values no entry of that hour (day) has any more.
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} t USING unnest($1::text[], $2::int8[], $3::text[], $4::text[]) AS k (d, a, v, i) \
                 WHERE t.dimension = k.d AND t.{unit} = k.a AND t.value = k.v AND t.instance = k.i AND t.n <= 0"
            )))
            .bind(&columns.0)
            .bind(&columns.1)
            .bind(&columns.2)
            .bind(&columns.3)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn insert_rows(
    conn: &mut sqlx::PgConnection,
    rows: &[Columns<'_>],
    insert: &'static str,
) -> Result<(), sqlx::Error> {
    let column = |pick: &dyn for<'r> Fn(&'r Columns<'r>) -> Cow<'r, str>| rows.iter().map(pick).collect::<Vec<_>>();
    sqlx::query(insert)
        .bind(column(&|c| Cow::Borrowed(c.e.id.as_str())))
        .bind(column(&|c| text(&c.e.timestamp)))
        .bind(column(&|c| text(&c.e.instance)))
        .bind(column(&|c| text(&c.e.action)))
        .bind(column(&|c| Cow::Borrowed(c.e.outcome.as_str())))
        .bind(rows.iter().map(|c| i32::from(c.e.status)).collect::<Vec<_>>())
        .bind(rows.iter().map(|c| c.e.configuration.as_deref().map(text)).collect::<Vec<_>>())
        .bind(column(&|c| text(&c.e.resource_type)))
        .bind(rows.iter().map(|c| c.e.resource_id.as_deref().map(text)).collect::<Vec<_>>())
        .bind(column(&|c| text(&c.e.actor)))
        .bind(rows.iter().map(|c| client_ip_key(c.e).to_vec()).collect::<Vec<_>>())
        .bind(column(&|c| text(&c.e.path)))
        .bind(column(&|c| Cow::Borrowed(c.changes.as_str())))
        .bind(rows.iter().map(|c| c.unapplied).collect::<Vec<_>>())
        .bind(column(&|c| Cow::Borrowed(c.e.hash.as_str())))
        .bind(column(&|c| Cow::Borrowed(c.json)))
        .execute(&mut *conn)
        .await?;
    // Entries sealed over an hour after their answer: a walk bounded by
    // `until` reads these besides (`PgStore::ceiling`, `push_source`). A
    // replay adds none twice.
    let (ids, stamps): (Vec<&str>, Vec<Cow<'_, str>>) = rows
        .iter()
        .filter(|c| super::filter::sealed_late(&c.e.id, &c.e.timestamp))
        .map(|c| (c.e.id.as_str(), text(&c.e.timestamp)))
        .unzip();
    if !ids.is_empty() {
        sqlx::query(
            "INSERT INTO audit_late (id, timestamp) SELECT * FROM unnest($1::text[], $2::text[]) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(ids)
        .bind(stamps)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Moves each instance's chain head to its newest entry in `entries`; a
/// head never moves back (a spool replayed after newer entries).
async fn move_heads(conn: &mut sqlx::PgConnection, entries: &[Sealed]) -> Result<(), sqlx::Error> {
    for head in rows::batch_heads(entries) {
        sqlx::query(
            "INSERT INTO chain_head (instance, last_id, last_hash) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash \
             WHERE excluded.last_id > chain_head.last_id",
        )
        .bind(text(&head.instance))
        .bind(&head.id)
        .bind(&head.hash)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Whether a write failed on an id already stored (a replayed spool).
fn met_stored_id(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(e) if e.constraint() == Some("audit_log_pkey"))
}

/// The `changes` column: the entry's changes as JSON (escaped, so no NUL).
fn changes_text(e: &AuditEntry) -> String {
    serde_json::to_string(&e.changes).expect("changes serialise")
}

/// The `unapplied` column: how many configurations left the change out.
fn unapplied(e: &AuditEntry) -> i32 {
    e.unapplied.as_ref().and_then(Option::as_ref).map_or(0, |u| i32::try_from(u.len()).unwrap_or(i32::MAX))
}

/// A row as `verify` reads it: every column must say what its entry says.
#[derive(Debug, sqlx::FromRow)]
pub(in crate::store) struct PgStoredRow {
    id: String,
    timestamp: String,
    instance: String,
    action: String,
    outcome: String,
    status: i32,
    configuration: Option<String>,
    resource_type: String,
    resource_id: Option<String>,
    actor: String,
    client_ip_key: Vec<u8>,
    path: String,
    changes: String,
    unapplied: i32,
    hash: String,
    entry: String,
}

impl VerifiedRow for PgStoredRow {
    fn id(&self) -> &str {
        &self.id
    }

    fn entry(&self) -> &str {
        &self.entry
    }

    fn agrees(&self, e: &AuditEntry) -> bool {
        let same = |column: &str, value: &str| column == text(value);
        let same_opt = |column: &Option<String>, value: &Option<String>| match (column, value) {
            (Some(c), Some(v)) => same(c, v),
            (None, None) => true,
            _ => false,
        };
        same(&self.timestamp, &e.timestamp)
            && same(&self.instance, &e.instance)
            && same(&self.action, &e.action)
            && self.outcome == e.outcome.as_str()
            && self.status == i32::from(e.status)
            && same_opt(&self.configuration, &e.configuration)
            && same(&self.resource_type, &e.resource_type)
            && same_opt(&self.resource_id, &e.resource_id)
            && same(&self.actor, &e.actor)
            && self.client_ip_key == client_ip_key(e)
            && same(&self.path, &e.path)
            && self.changes == changes_text(e)
            && self.unapplied == unapplied(e)
            && self.hash == e.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_never_holds_nul() {
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(text("plain"), Cow::Borrowed("plain")));
    }
}
