//! `/api/v1/audit-logs` (list, one, export), a resource's history and its
//! state as of a time.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::body::ChannelBody;
use super::{ApiError, ApiState};
use crate::entry::AuditEntry;
use crate::pseudonym::{MIN_KEY_BYTES, Pseudonymizer};
use crate::store::Filter;

pub(super) const DEFAULT_LIMIT: u32 = 50;
pub(super) const MAX_LIMIT: u32 = 1000;
const EXPORT_PAGE: u32 = 500;

/// Filters, page size and cursor read from a query string.
#[derive(Default)]
struct Listing {
    filter: Filter,
    limit: u32,
    cursor: Option<String>,
    format: Option<String>,
    /// Export only: actors and addresses replaced by keyed hashes.
    pseudonymize: Option<bool>,
}

impl Listing {
    /// Takes `limit` or `cursor`.
    fn page_parameter(&mut self, key: &str, v: &str) -> Result<(), ApiError> {
        if key == "limit" {
            self.limit = v.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| ApiError::BadField {
                field: "limit",
                reason: format!("`{v}` is not a number from 1 to {MAX_LIMIT}"),
            })?;
        } else {
            let id = ulid::Ulid::from_string(v).map_err(|_| ApiError::BadField {
                field: "cursor",
                reason: "not a cursor from a previous page".into(),
            })?;
            self.cursor = Some(id.to_string());
        }
        Ok(())
    }
}

fn parse(pairs: Vec<(String, String)>) -> Result<Listing, ApiError> {
    let mut l = Listing { limit: DEFAULT_LIMIT, ..Listing::default() };
    for (k, v) in pairs {
        match k.as_str() {
            "limit" | "cursor" => l.page_parameter(&k, &v)?,
            "format" => l.format = Some(v),
            "pseudonymize" => {
                l.pseudonymize = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        let reason = format!("`{v}` is not true or false");
                        return Err(ApiError::BadField { field: "pseudonymize", reason });
                    }
                });
            }
            _ => l.filter.set(&k, &v)?,
        }
    }
    Ok(l)
}

/// `GET /api/v1/audit-logs`: newest first, keyset-paged.
pub(super) async fn list(
    State(s): State<Arc<ApiState>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let l = parse(pairs)?;
    for (given, name) in [(l.format.is_some(), "format"), (l.pseudonymize.is_some(), "pseudonymize")] {
        if given {
            return Err(ApiError::BadField { field: "query", reason: format!("unknown filter `{name}`") });
        }
    }
    let (items, next) = s.store.list(&l.filter, l.cursor.as_deref(), l.limit).await?;
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

/// `GET /api/v1/audit-logs/{id}`.
pub(super) async fn one(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> Result<Json<AuditEntry>, ApiError> {
    s.store.get(&id).await?.map(Json).ok_or(ApiError::NotFound)
}

/// A history page's size when `limit` is not given (docs/query-api.md).
pub(super) const HISTORY_LIMIT: u32 = 1000;

/// `GET /api/v1/resources/{type}/{id}/history`: oldest first, keyset-paged
/// (`limit`, `cursor`); export is the way to take everything at once.
pub(super) async fn history(
    State(s): State<Arc<ApiState>>,
    Path((kind, id)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut page = Listing { limit: HISTORY_LIMIT, ..Listing::default() };
    for (k, v) in pairs {
        match k.as_str() {
            "limit" | "cursor" => page.page_parameter(&k, &v)?,
            _ => return Err(ApiError::BadField { field: "query", reason: format!("unknown parameter `{k}`") }),
        }
    }
    let (items, more) = s.store.history(&kind, &id, page.cursor.as_deref(), page.limit).await?;
    let next = items.last().filter(|_| more).map(|e| e.id.clone());
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

/// `GET /api/v1/resources/{type}/{id}/state?at=RFC3339` (`at` defaults to
/// now): the `after` of the resource's last entry at or before `at`, and
/// that entry; 404 when it had none by then.
pub(super) async fn state(
    State(s): State<Arc<ApiState>>,
    Path((kind, id)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut at = crate::entry::format_time(chrono::Utc::now());
    for (k, v) in pairs {
        if k != "at" {
            return Err(ApiError::BadField { field: "query", reason: format!("unknown parameter `{k}`") });
        }
        at = crate::entry::query_time(&v)
            .ok_or_else(|| ApiError::BadField { field: "at", reason: format!("`{v}` is not an RFC 3339 time") })?;
    }
    let entry = s.store.state_at(&kind, &id, &at).await?.ok_or(ApiError::NotFound)?;
    let mut answer = json!({
        "state": entry.after,
        "entry": entry.id,
        "timestamp": entry.timestamp,
        "action": entry.action,
    });
    if entry.erased {
        // Not a deletion: the state is no longer known.
        answer["erased"] = json!(true);
    }
    Ok(Json(answer))
}

/// The header that carries a pseudonymous export's key (never in the URL,
/// which access logs keep).
pub(super) const PSEUDONYM_KEY: &str = "x-auditgate-pseudonym-key";

/// `GET /api/v1/audit-logs/export?format=ndjson|csv`: every match, streamed;
/// with `pseudonymize=true` or a key, actors and client addresses replaced
/// by keyed hashes: under the key the `X-Auditgate-Pseudonym-Key` header
/// gives (the same in every export made with it), else under a fresh key
/// forgotten after this export.
pub(super) async fn export(
    State(s): State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let l = parse(pairs)?;
    // A key given asks for pseudonyms too, whatever `pseudonymize` says:
    // never less private than asked.
    let pseudonyms = match (headers.get(PSEUDONYM_KEY), l.pseudonymize.unwrap_or(false)) {
        (Some(key), _) if key.len() < MIN_KEY_BYTES => {
            let reason = format!("a pseudonym key has at least {MIN_KEY_BYTES} bytes");
            return Err(ApiError::BadField { field: PSEUDONYM_KEY, reason });
        }
        (Some(key), _) => Some(Pseudonymizer::with_key(key.as_bytes())),
        (None, true) => Some(Pseudonymizer::random().map_err(|e| {
            tracing::error!(error = %e, "no random key for a pseudonymous export");
            ApiError::NotYet("no random key could be made".into())
        })?),
        (None, false) => None,
    };
    let csv = match l.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => false,
        "csv" => true,
        other => return Err(ApiError::BadField { field: "format", reason: format!("`{other}` is not ndjson or csv") }),
    };
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if csv && tx.send(Ok(Bytes::from_static(CSV_HEADER.as_bytes()))).await.is_err() {
            return;
        }
        let mut cursor: Option<String> = None;
        loop {
            let (mut page, next) = match s.store.list(&l.filter, cursor.as_deref(), EXPORT_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "export stopped");
                    let _ = tx.send(Err(std::io::Error::other("store unavailable"))).await;
                    return;
                }
            };
            let mut chunk = Vec::with_capacity(page.len() * 1024);
            for e in &mut page {
                if let Some(p) = &pseudonyms {
                    p.apply(e);
                }
                if csv {
                    csv_row(e, &mut chunk);
                } else {
                    serde_json::to_writer(&mut chunk, e).expect("an entry serialises");
                    chunk.push(b'\n');
                }
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() || next.is_none() {
                return;
            }
            cursor = next;
        }
    });
    let content_type = if csv { "text/csv; charset=utf-8" } else { "application/x-ndjson" };
    let mut res = Body::new(ChannelBody(rx)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(res)
}

const CSV_HEADER: &str = "id,timestamp,action,outcome,method,path,query,status,resource_type,resource_id,actor,actor_source,client_ip,configuration,changes\r\n";

fn csv_row(e: &AuditEntry, out: &mut Vec<u8>) {
    let source =
        serde_json::to_value(e.actor_source).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let changes = serde_json::to_string(&e.changes).expect("changes serialise");
    let cells: [&str; 15] = [
        &e.id,
        &e.timestamp,
        &e.action,
        e.outcome.as_str(),
        &e.method,
        &e.path,
        &e.query,
        &e.status.to_string(),
        &e.resource_type,
        e.resource_id.as_deref().unwrap_or(""),
        &e.actor,
        &source,
        &e.client_ip,
        e.configuration.as_deref().unwrap_or(""),
        &changes,
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_cell(cell, out);
    }
    out.extend_from_slice(b"\r\n");
}

/// One CSV cell: a leading `=`, `+`, `-`, `@` (after any whitespace, which
/// spreadsheets skip), tab or CR is defused with `'` (formula injection),
/// then the cell is quoted when it needs to be.
fn csv_cell(cell: &str, out: &mut Vec<u8>) {
    let risky = cell.starts_with(['\t', '\r']) || cell.trim_start().starts_with(['=', '+', '-', '@']);
    let quote = risky || cell.contains([',', '"', '\n', '\r']);
    if quote {
        out.push(b'"');
    }
    if risky {
        out.push(b'\'');
    }
    for b in cell.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    if quote {
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_row_is_its_cells_in_header_order_between_commas() {
        let mut e = crate::entry::tests::sample(1);
        e.id = "01JD3AAAAAAAAAAAAAAAAAAAAA".into();
        let mut out = Vec::new();
        csv_row(&e, &mut out);
        let row = String::from_utf8(out).unwrap();
        assert!(row.starts_with(&format!("{},{},{},", e.id, e.timestamp, e.action)), "{row}");
        assert!(row.ends_with("\r\n") && !row.starts_with(','));
    }

    #[test]
    fn csv_cells_are_defused_and_quoted() {
        let cell = |s: &str| {
            let mut out = Vec::new();
            csv_cell(s, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("-2"), "\"'-2\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("\tx"), "\"'\tx\"");
        assert_eq!(cell(" =1+1"), "\"' =1+1\"");
        assert_eq!(cell("\u{3000}\n@x"), "\"'\u{3000}\n@x\"");
        assert_eq!(cell("a =1"), "a =1");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }
}
