//! What a backend's SQL differs in, stated once: the store code written
//! for both backends (`holds`, `sinks`, …) runs the same statements
//! (`$1`-style binds, which both take) through this layer, inside `each!`.

use std::borrow::Cow;

use super::StoreError;

/// The thin layer a backend provides to the code shared by every backend
/// (besides `pool()`, its connections). A backend that misses one of these
/// does not compile.
pub(super) trait Dialect {
    /// A transaction that may write, taking its turn with the other writers.
    type WriteTx;

    /// A transaction that only reads, one snapshot throughout.
    type ReadTx;

    /// Begins a transaction that only reads (PostgreSQL: repeatable read,
    /// so that every statement sees the same snapshot; SQLite's deferred
    /// transaction does in WAL mode).
    async fn begin_read(&self) -> Result<Self::ReadTx, StoreError>;

    /// Begins a transaction that writes (SQLite: `BEGIN IMMEDIATE`, after
    /// the store's other writers; PostgreSQL: a plain one, rows locked as
    /// they are read with [`Dialect::for_update`]).
    async fn begin_write(&self) -> Result<Self::WriteTx, StoreError>;

    /// Ends a `SELECT` whose rows the transaction changes next: locked
    /// until it ends (SQLite's write transaction already holds the file).
    fn for_update(&self) -> &'static str;

    /// `column` where its own index must not be used (SQLite: `+column`;
    /// PostgreSQL's planner needs no such hint).
    fn unindexed(&self, column: &str) -> String;

    /// Text as the database keeps it (PostgreSQL text cannot hold NUL:
    /// U+FFFD instead, as everywhere).
    fn text<'a>(&self, s: &'a str) -> Cow<'a, str>;

    /// `text` of an optional value, owned for binding.
    fn text_opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.text(s).into_owned())
    }
}
