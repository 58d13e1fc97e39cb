//! The store: the only module with SQL. One interface, [`Store`], over two
//! backends chosen by the database URL's scheme: SQLite (one file, WAL;
//! one instance) and PostgreSQL (several instances sharing the trail).
//!
//! What is the same for every backend is written once, here and in
//! `chain`, `configurations`, `holds`, `retention` and `sinks`, over the
//! thin `Dialect` each backend implements; what an engine does its own way
//! (the batch insert, the list planner, the search index, an erasure's or
//! a retention's batch, how `verify`'s rows are read, PostgreSQL's locks)
//! each backend provides, and `each!` dispatches to it: a backend that
//! lacks one does not compile.

mod dialect;
mod postgres;
mod rows;
mod sqlite;
mod stats;

use crate::model::filter;
pub use crate::model::filter::{FIELDS as FILTERS, Filter, FilterError, MAX_VALUE_CHARS as MAX_FILTER_CHARS, ip_key};
pub use postgres::{PgStore, SharedLock};
pub use sqlite::SqliteStore;

use crate::entry::{AuditEntry, Head, Sealed};
use crate::model::configuration::AuditConfiguration;

/// The trail and the audit configurations, in whichever database the URL
/// names. Every command that opens a store opens it here.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// An entry as stored: its id and its sealed JSON text (forwarding sends
/// it on as it is).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEntry {
    pub id: String,
    pub entry: String,
}

/// Whether this instance forwards a sink ([`Store::claim_sink`]).
#[derive(Debug)]
pub enum SinkClaim {
    /// It does, for as long as the lock (on a shared store) is held.
    Held(Option<SharedLock>),
    /// Another instance sharing the store does.
    Elsewhere,
}

/// Runs the same call on whichever backend `$store` is, the backend bound
/// to `$s`: the one place `Store` dispatches, and where code written once
/// for both backends runs (`$1`-style binds, which both take).
macro_rules! each {
    ($store:expr, $s:ident => $call:expr) => {
        match $store {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

// Written once for every backend (they use `each!` above).
mod chain;
mod configurations;
mod holds;
mod retention;
mod sinks;

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the store at
    /// `url`: `sqlite://PATH`, `sqlite::memory:` or `postgres://…`
    /// (`postgresql://` too). `power_safe` makes every commit reach the
    /// disk before it returns (SQLite `synchronous = FULL`, PostgreSQL
    /// `synchronous_commit = on` whatever the server's default).
    pub async fn open(url: &str, power_safe: bool) -> Result<Store, StoreError> {
        match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Ok(Store::Sqlite(SqliteStore::open_durable(url, power_safe).await?)),
            Some("postgres" | "postgresql") => Ok(Store::Postgres(PgStore::open(url, power_safe).await?)),
            _ => Err(StoreError::UnsupportedUrl(url.to_string())),
        }
    }

    /// The configurations stored at `url`, read once and closed again
    /// (`explain --database`).
    pub async fn read_configurations(url: &str) -> Result<Vec<AuditConfiguration>, StoreError> {
        let store = Store::open(url, false).await?;
        let read = store.configurations().await;
        store.close().await;
        Ok(read?.1)
    }

    /// Writes sealed entries and moves their chains' heads, in one
    /// transaction; an entry already stored is skipped.
    pub async fn insert_batch(&self, entries: &[Sealed]) -> Result<(), StoreError> {
        each!(self, s => s.insert_batch(entries).await)
    }

    /// Entries matching `filter`, newest first, older than `cursor`; at most
    /// `limit`, and the cursor of the next page while more may follow.
    ///
    /// A search its index cannot narrow (`q` of one or two characters, or
    /// in too many entries to name) reads at most a window of entries a
    /// page (each store's `SEARCH_WINDOW` of those matching the other
    /// filters): a page
    /// can then hold fewer than `limit` entries, or none, and still name a
    /// next cursor, the end of its window; following the cursors finds
    /// every match exactly once.
    pub async fn list(
        &self,
        filter: &Filter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        each!(self, s => s.list(filter, Page::Older(cursor), limit).await)
    }

    /// Entries matching `filter` stored after `after` (an id), oldest
    /// first; at most `limit`, plus whether more follow. An instance's ids
    /// grow in the order its entries are committed, so reading on from the
    /// last id seen misses none of that instance's entries.
    pub async fn newer(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let (entries, next) = each!(self, s => s.list(filter, Page::Newer(after), limit).await)?;
        Ok((entries, next.is_some()))
    }

    /// The end of the next window of `n` stored ids after `after` (all ids
    /// from the start without it), matching any filter or none: the `n`-th
    /// id, `(id, true)`, or with fewer, the newest, `(id, false)`; `None`
    /// when nothing is stored past `after`. Read through the id index alone.
    pub async fn id_window(&self, after: Option<&str>, n: u32) -> Result<Option<(String, bool)>, StoreError> {
        const NTH: &str = "SELECT id FROM audit_log WHERE id > $1 ORDER BY id LIMIT 1 OFFSET $2";
        const NEWEST: &str = "SELECT max(id) FROM audit_log WHERE id > $1";
        let after = after.unwrap_or("");
        let offset = i64::from(n.max(1) - 1);
        let nth: Option<String> =
            each!(self, s => sqlx::query_scalar(NTH).bind(after).bind(offset).fetch_optional(s.pool()).await?);
        let newest: Option<String> = match nth {
            Some(_) => None,
            None => each!(self, s => sqlx::query_scalar(NEWEST).bind(after).fetch_one(s.pool()).await?),
        };
        Ok(nth.map(|id| (id, true)).or(newest.map(|id| (id, false))))
    }

    /// A resource's entries after `after` (an id; from its first without),
    /// oldest first: at most `limit`, and whether more follow.
    pub async fn history(
        &self,
        kind: &str,
        id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let filter = Filter { resource_type: Some(kind.into()), resource_id: Some(id.into()), ..Filter::default() };
        self.newer(&filter, after, limit).await
    }

    /// Counts by action, resource type, actor and outcome.
    pub async fn stats(&self, filter: &Filter) -> Result<serde_json::Value, StoreError> {
        each!(self, s => s.stats(filter).await)
    }

    /// Heads kept elsewhere earlier (`auditgate verify --heads`), checked
    /// against the stored chains: each must still be there, in its
    /// instance, with the same hash, unless retention deleted it. A chain
    /// that no longer reaches a kept head was cut or rewritten, even if
    /// `chain_head` was rewritten too. Answers one line per head that
    /// fails, naming its instance.
    pub async fn missing_heads(&self, kept: &[Head]) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        for head in kept {
            let problem = match self.get(&head.id).await {
                Err(StoreError::Corrupt { .. }) => Some("is no longer readable"),
                Err(e) => return Err(e),
                Ok(None) if self.retired(head).await? => None,
                Ok(None) => Some("is no longer in the trail (the chain was cut)"),
                Ok(Some(e)) if e.instance != head.instance || e.hash != head.hash => {
                    Some("has another hash now (the chain was rewritten)")
                }
                Ok(Some(_)) => None,
            };
            if let Some(why) = problem {
                problems.push(format!("instance {}: kept head {} {why}", head.instance, head.id));
            }
        }
        Ok(problems)
    }

    /// Whether retention deleted `head` (it is at or before its instance's
    /// checkpoint).
    async fn retired(&self, head: &Head) -> Result<bool, StoreError> {
        let checkpoint = self.checkpoint(&head.instance).await?;
        Ok(checkpoint.is_some_and(|last| head.id <= last))
    }

    /// Erases the personal content of the entries `ids` names (docs/trail.md), in
    /// one transaction: each keeps its digest, so its chain still verifies;
    /// the columns, statistics and search index that held that content
    /// lose it too. Entries already erased, or of chain version 1, are left
    /// alone; answers how many were erased.
    pub async fn erase_entries(&self, ids: &[String]) -> Result<u64, StoreError> {
        each!(self, s => s.erase_entries(ids).await)
    }

    /// After an erasure: leaves no earlier copy of a rewritten page in the
    /// store's files where the store can (SQLite's WAL is emptied); answers
    /// false when it could not yet (readers kept it).
    pub async fn scrub(&self) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.scrub().await,
            Store::Postgres(_) => Ok(true),
        }
    }

    /// Adds up to `limit` committed entries to the `q` search's index, for
    /// the recorder to call when it has nothing to write; answers how many
    /// (0: nothing left, or another instance is indexing).
    pub async fn index_text(&self, limit: u32) -> Result<usize, StoreError> {
        each!(self, s => s.index_text(limit).await)
    }

    /// Holds a resource against other instances sharing the database until
    /// the answer drops; `None` where no other instance can share it
    /// (SQLite).
    pub async fn lock_resource(&self, kind: &str, id: &str) -> Result<Option<SharedLock>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(s) => Ok(Some(s.lock_resource(kind, id).await?)),
        }
    }

    /// Holds the instance name for as long as the answer lives, so that a
    /// second instance started under the same name against the same
    /// database is refused (its entries would interleave with the first's
    /// under one chain name, and `verify` would fail both). SQLite (one
    /// instance a file) claims nothing.
    pub async fn claim_instance(&self, name: &str) -> Result<Option<SharedLock>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(s) => match s.claim_instance(name).await? {
                Some(claim) => Ok(Some(claim)),
                None => Err(StoreError::InstanceTaken(name.to_string())),
            },
        }
    }

    /// Holds the forwarding to sink `name` for as long as the answer lives,
    /// so that one instance of those sharing the store forwards it.
    /// `Elsewhere` while another holds it. SQLite (one instance a file)
    /// claims nothing.
    pub async fn claim_sink(&self, name: &str) -> Result<SinkClaim, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(SinkClaim::Held(None)),
            Store::Postgres(s) => {
                Ok(s.claim_sink(name).await?.map_or(SinkClaim::Elsewhere, |l| SinkClaim::Held(Some(l))))
            }
        }
    }

    /// Each instance's newest committed id, by instance name.
    pub async fn heads(&self) -> Result<Vec<(String, String)>, StoreError> {
        each!(self, s => s.heads().await)
    }

    /// The entries after `after` (all of them without), oldest first, at
    /// most `limit`, as stored: `instance`'s, or every instance's.
    pub async fn entries_after(
        &self,
        instance: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        each!(self, s => s.entries_after(instance, after.unwrap_or(""), limit).await)
    }

    /// True when the database answers (`/readyz`).
    pub async fn ping(&self) -> bool {
        each!(self, s => s.ping().await)
    }

    /// Whether several instances may write to it (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        each!(self, s => s.pool().is_closed())
    }

    /// Closes the connections (shutdown).
    pub async fn close(&self) {
        each!(self, s => s.close().await)
    }
}

/// A page of at most `limit` of `entries` (read with `limit + 1`), and the
/// next page's cursor: the last entry's while more follow, else the end of
/// the window read (`floor`), if any.
fn page_of(mut entries: Vec<AuditEntry>, limit: u32, floor: Option<String>) -> (Vec<AuditEntry>, Option<String>) {
    if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        let next = entries.last().map(|e| e.id.clone());
        (entries, next)
    } else {
        (entries, floor)
    }
}

/// Which way a listing reads from its cursor.
#[derive(Debug, Clone, Copy)]
enum Page<'a> {
    /// Newest first, ids below the cursor.
    Older(Option<&'a str>),
    /// Oldest first, ids above the cursor.
    Newer(Option<&'a str>),
}

impl<'a> Page<'a> {
    /// The cursor, the comparison that precedes it and the order, as SQL
    /// that follows the filters.
    fn parts(self) -> (Option<&'a str>, &'static str, &'static str) {
        match self {
            Page::Older(c) => (c, " AND id < ", " ORDER BY id DESC"),
            Page::Newer(c) => (c, " AND id > ", " ORDER BY id ASC"),
        }
    }
}

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL `{0}` is not supported (sqlite://PATH or postgres://…)")]
    UnsupportedUrl(String),
    #[error("database URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("instance `{0}` is already running against this database; give each instance its own `instance` name")]
    InstanceTaken(String),
    #[error("a configuration named `{0}` already exists")]
    DuplicateName(String),
    #[error("stored entry {id} is not valid JSON: {source}")]
    Corrupt { id: String, source: serde_json::Error },
}

impl StoreError {
    /// Whether the query itself was refused (too complex, too big), not
    /// the store being unavailable.
    pub fn is_caused_by_query(&self) -> bool {
        let StoreError::Sql(sqlx::Error::Database(e)) = self else { return false };
        // PostgreSQL: data exceptions (22…, e.g. a NUL in a value) and
        // program limits (54…). SQLite says so in words.
        if let (Some(code), Some(_)) = (e.code(), e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()) {
            return code.starts_with("22") || code.starts_with("54");
        }
        let message = e.message();
        message.contains("too complex") || message.contains("too big") || message.contains("too many")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's own refusal of a query is told apart from the store
    /// being unavailable.
    #[tokio::test]
    async fn a_query_the_store_refuses_is_the_querys_fault() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let pattern = "%_".repeat(30_000);
        let refused = sqlx::query("SELECT 'a' LIKE ?").bind(&pattern).execute(&pool).await.unwrap_err();
        assert!(StoreError::Sql(refused).is_caused_by_query());
        let missing = sqlx::query("SELECT * FROM nowhere").execute(&pool).await.unwrap_err();
        assert!(!StoreError::Sql(missing).is_caused_by_query());
        pool.close().await;
        let closed = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
        assert!(!StoreError::Sql(closed).is_caused_by_query());
        assert!(!StoreError::UnsupportedUrl("x".into()).is_caused_by_query());
    }
}
