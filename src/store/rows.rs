//! What both backends store, in one neutral form, and what is worked out
//! from it the same way whichever database it came from: entries and
//! configurations decoded, chains checked, the heads a batch moves.

use futures_util::{Stream, TryStreamExt};

use super::{StoreError, ip_key};
use crate::entry::{AuditEntry, ChainCheck, Sealed, Verification};
use crate::model::configuration::{AuditConfiguration, Source};

/// A stored row as `verify` reads it: the entry's exact JSON text (what
/// the hash covers) and the columns beside it that filters use, which must
/// say what the entry says.
pub(super) trait VerifiedRow {
    fn id(&self) -> &str;
    fn entry(&self) -> &str;
    /// Whether the filter columns agree with the decoded entry.
    fn agrees(&self, e: &AuditEntry) -> bool;
}

/// A SQLite `audit_log` row as read back.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct StoredRow {
    pub id: String,
    pub timestamp: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub actor: String,
    pub client_ip_key: Vec<u8>,
    pub entry: String,
}

/// An entry's id and JSON text, what reads serve.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct EntryRow {
    pub id: String,
    pub entry: String,
}

impl EntryRow {
    pub fn decode(&self) -> Result<AuditEntry, StoreError> {
        decode(&self.id, &self.entry)
    }
}

fn decode(id: &str, json: &str) -> Result<AuditEntry, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt { id: id.to_string(), source })
}

/// What erasing one stored entry comes to.
pub(super) enum Erasing {
    /// Nothing: erased already, or of chain version 1.
    Left,
    /// The entry as it was, as erased, and the erased entry's stored text.
    Erase { before: Box<AuditEntry>, after: Box<AuditEntry>, json: String },
}

/// Decodes a stored entry and erases its personal content (docs/trail.md).
pub(super) fn erasing(id: &str, json: &str) -> Result<Erasing, StoreError> {
    let before = decode(id, json)?;
    if before.erased {
        return Ok(Erasing::Left);
    }
    let mut after = before.clone();
    if !after.erase() {
        return Ok(Erasing::Left);
    }
    let json = serde_json::to_string(&after).expect("an entry serialises");
    Ok(Erasing::Erase { before: Box::new(before), after: Box::new(after), json })
}

/// The key a row's `client_ip_key` holds for an entry.
pub(super) fn client_ip_key(e: &AuditEntry) -> [u8; 16] {
    e.client_ip.parse().map(ip_key).unwrap_or([0; 16])
}

/// Checks every chain over `rows` (all rows, in id order), from the
/// retention `checkpoints`, ending at the recorded `heads` (each as
/// instance, id, hash). A row that does not decode, or whose filter columns
/// say something else than its entry, is bad; a chain that does not end at
/// its head names the head's id (its tail was cut).
pub(super) async fn check_chains<R: VerifiedRow>(
    checkpoints: Vec<(String, String, String)>,
    heads: Vec<(String, String, String)>,
    rows: impl Stream<Item = Result<R, sqlx::Error>>,
) -> Result<Verification, StoreError> {
    let mut check = ChainCheck::from_checkpoints(checkpoints);
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.try_next().await? {
        match decode(row.id(), row.entry()) {
            Ok(entry) if row.agrees(&entry) => _ = check.push(&entry),
            _ => {
                check.skip();
                check.bad(row.id());
            }
        }
    }
    for (instance, last_id, last_hash) in heads {
        if check.head(&instance) != Some(last_hash.as_str()) {
            check.bad(&last_id);
        }
    }
    Ok(check.finish())
}

impl VerifiedRow for StoredRow {
    fn id(&self) -> &str {
        &self.id
    }

    fn entry(&self) -> &str {
        &self.entry
    }

    fn agrees(&self, e: &AuditEntry) -> bool {
        self.timestamp == e.timestamp
            && self.resource_type == e.resource_type
            && self.resource_id == e.resource_id
            && self.actor == e.actor
            && self.client_ip_key == client_ip_key(e)
    }
}

/// The newest entry of each instance in a batch: its new chain heads.
pub(super) fn batch_heads(entries: &[Sealed]) -> Vec<&AuditEntry> {
    let mut heads: Vec<&AuditEntry> = Vec::new();
    for Sealed { entry, .. } in entries.iter().rev() {
        if !heads.iter().any(|h| h.instance == entry.instance) {
            heads.push(entry);
        }
    }
    heads
}

/// An entry retention deletes, as far as its chain's checkpoint and the
/// kept statistics need.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct DeletedRow {
    pub id: String,
    pub instance: String,
    pub hash: String,
    pub timestamp: String,
    pub action: String,
    pub resource_type: String,
    pub actor: String,
    pub outcome: String,
}

impl DeletedRow {
    /// What it counted in the statistics: its timestamp and `values_of`.
    pub(super) fn counted(&self) -> (&str, [&str; 4]) {
        let values = [self.action.as_str(), self.resource_type.as_str(), self.actor.as_str(), self.outcome.as_str()];
        (self.timestamp.as_str(), values)
    }
}

/// The newest of each instance among deleted rows in id order: the
/// checkpoints they move to, as (instance, id, hash).
pub(super) fn newest_deleted(rows: &[DeletedRow]) -> Vec<(&str, &str, &str)> {
    let mut newest: Vec<(&str, &str, &str)> = Vec::new();
    for DeletedRow { id, instance, hash, .. } in rows {
        match newest.iter_mut().find(|(i, _, _)| *i == instance) {
            Some(slot) => *slot = (instance, id, hash),
            None => newest.push((instance, id, hash)),
        }
    }
    newest
}

/// The smallest and largest id of a (non-empty) batch: a replay's stored
/// entries are found by one range seek between them.
pub(super) fn id_range(entries: &[Sealed]) -> (&str, &str) {
    entries.iter().fold((entries[0].entry.id.as_str(), entries[0].entry.id.as_str()), |(lo, hi), s| {
        (lo.min(s.entry.id.as_str()), hi.max(s.entry.id.as_str()))
    })
}

/// The entries of a batch that are not among `stored` (ids stored before).
pub(super) fn new_ones<'a>(entries: &'a [Sealed], stored: &[String]) -> impl Iterator<Item = &'a AuditEntry> {
    let stored: std::collections::HashSet<&str> = stored.iter().map(String::as_str).collect();
    entries.iter().map(|s| &s.entry).filter(move |e| stored.is_empty() || !stored.contains(e.id.as_str()))
}

/// One group of the statistics: a value (none for a missing one) and how
/// many entries have it.
pub(super) type Count = (Option<String>, i64);

/// The statistics answer from each group's (value, count) rows, most
/// frequent first: `{"by_action": {…}, …, "total": n}`, the total being
/// the sum over outcomes (every entry has exactly one).
pub(super) fn stats_answer(groups: Vec<(&str, Vec<Count>)>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut total = 0i64;
    for (key, rows) in groups {
        if key == "by_outcome" {
            total = rows.iter().map(|(_, n)| n).sum();
        }
        let counts: serde_json::Map<_, _> = rows.into_iter().map(|(k, n)| (k.unwrap_or_default(), n.into())).collect();
        out.insert(key.into(), counts.into());
    }
    out.insert("total".into(), total.into());
    out.into()
}

/// An `audit_configuration` row. The columns are authoritative for id,
/// name, source and times; `body` holds the rest.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ConfigurationRow {
    pub id: i64,
    pub name: String,
    pub source: String,
    pub body: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The columns a configuration row is read with.
pub(super) const CONFIGURATION_COLUMNS: &str = "id, name, source, body, created_at, updated_at";

impl ConfigurationRow {
    pub fn decode(self) -> Result<AuditConfiguration, StoreError> {
        let id = self.id;
        let mut config: AuditConfiguration = serde_json::from_str(&self.body)
            .map_err(|source| StoreError::Corrupt { id: format!("configuration {id}"), source })?;
        config.id = id;
        config.name = self.name;
        config.source = if self.source == "file" { Source::File } else { Source::Api };
        config.created_at = self.created_at;
        config.updated_at = self.updated_at;
        Ok(config)
    }
}

/// The `source` column's text.
pub(super) fn source_name(source: Source) -> &'static str {
    match source {
        Source::Api => "api",
        Source::File => "file",
    }
}

/// The time a configuration write stamps.
pub(super) fn now() -> String {
    crate::entry::format_time(chrono::Utc::now())
}

/// Equal but for id and times (a seed that changes nothing is not written).
pub(super) fn same_settings(a: &AuditConfiguration, b: &AuditConfiguration) -> bool {
    let strip = |c: &AuditConfiguration| AuditConfiguration {
        id: 0,
        created_at: String::new(),
        updated_at: String::new(),
        ..c.clone()
    };
    strip(a) == strip(b)
}

/// A unique-name violation is the caller's duplicate name.
pub(super) fn duplicate(e: sqlx::Error, name: &str) -> StoreError {
    match e.as_database_error() {
        Some(d) if d.is_unique_violation() => StoreError::DuplicateName(name.to_string()),
        _ => StoreError::Sql(e),
    }
}
