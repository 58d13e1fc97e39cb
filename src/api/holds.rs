//! `/api/v1/holds` (issue 15): legal holds listed, made and released;
//! making and releasing need an admin token (when tokens exist) and are
//! recorded in the trail.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::configurations::{empty_body, parse_body};
use super::{ApiError, ApiState, Caller};
use crate::erasure::Selector;
use crate::hold::{NewHold, RESOURCE_TYPE};

/// A hold body's keys.
const KEYS: [&str; 6] = ["actor", "resource", "client_ip", "since", "until", "reason"];

/// `GET /api/v1/holds`: every hold, released ones too, oldest first.
pub(super) async fn list(State(s): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"items": s.store.holds(false).await?})))
}

/// `POST /api/v1/holds`: one selector (`actor`, `resource` or `client_ip`),
/// an optional `since`/`until`, and a `reason`; 201 with the hold.
pub(super) async fn create(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.must_be_admin()?;
    let trail = s.trail()?;
    let hold = parse(&parse_body(&body)?)?;
    let now = crate::entry::format_time(chrono::Utc::now());
    let stored = s.store.insert_hold(&hold, &caller.name, &now).await?;
    let change = caller.change("create", "POST", uri.path(), 201, &s.instance);
    let entry = change.entry_of(RESOURCE_TYPE, Some(stored.id.to_string()), None, Some(stored.to_json()));
    if trail.record(entry, None).await.is_err() {
        tracing::error!(hold = stored.id, "legal hold made but not recorded in the trail");
    }
    let location = format!("{}/{}", uri.path().trim_end_matches('/'), stored.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(stored)).into_response())
}

/// `DELETE /api/v1/holds/{id}`: releases the hold; answers it released.
pub(super) async fn release(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<crate::hold::Hold>, ApiError> {
    caller.must_be_admin()?;
    empty_body(&body)?;
    let trail = s.trail()?;
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let now = crate::entry::format_time(chrono::Utc::now());
    let (before, after) = s.store.release_hold(id, &caller.name, &now).await?.ok_or(ApiError::NotFound)?;
    if before.released_at.is_none() {
        let change = caller.change("delete", "DELETE", uri.path(), 200, &s.instance);
        let entry = change.entry_of(RESOURCE_TYPE, Some(id.to_string()), Some(before.to_json()), Some(after.to_json()));
        if trail.record(entry, None).await.is_err() {
            tracing::error!(hold = id, "legal hold released but not recorded in the trail");
        }
    }
    Ok(Json(after))
}

/// A hold body (`KEYS`).
fn parse(body: &Value) -> Result<NewHold, ApiError> {
    let bad = |field: &'static str, reason: String| ApiError::BadField { field, reason };
    let values = super::erasures::string_fields(body, KEYS)?;
    let [actor, resource, client_ip, since, until, reason] = values;
    let selector = Selector::parse(actor, resource, client_ip).map_err(|e| bad(e.field, e.reason))?;
    NewHold::new(selector, since, until, reason.unwrap_or_default()).map_err(|e| bad(e.field, e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_needs_one_selector_and_a_reason() {
        let hold = parse(&json!({"actor": "alice", "reason": "case 42", "since": "2026-01-01T00:00:00Z"})).unwrap();
        assert_eq!(hold.selector, Selector::Actor("alice".into()));
        assert_eq!(
            (hold.since.as_deref(), hold.until, hold.reason.as_str()),
            (Some("2026-01-01T00:00:00Z"), None, "case 42")
        );
        for (body, field) in [
            (json!({"actor": "a"}), "reason"),
            (json!({"actor": "a", "reason": "  "}), "reason"),
            (json!({"reason": "r"}), "selector"),
            (json!({"actor": "a", "reason": "r", "since": "yesterday"}), "since"),
            (json!({"actor": "a", "reason": "r", "until": 5}), "until"),
            (json!({"actor": "a", "reason": "r", "scope": "all"}), "body"),
        ] {
            match parse(&body) {
                Err(ApiError::BadField { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
