//! `POST /api/v1/erasures` (SPEC 7, "Erasure"): an admin erases the
//! personal content of the entries an actor, a resource or a client
//! address names; the erasure is recorded in the trail.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::Uri;
use bytes::Bytes;
use serde_json::Value;

use super::configurations::parse_body;
use super::{ApiError, ApiState, Caller};
use crate::erasure::{self, SELECTORS, Selector};

/// How long an erasure waits for the entries queued before it to reach the
/// store (so none of them escapes it).
const SETTLE: Duration = Duration::from_secs(5);

/// The body's keys: one selector, and an optional reason.
const KEYS: [&str; 4] = ["actor", "resource", "client_ip", "reason"];

/// `POST /api/v1/erasures`: `{"actor": NAME}`, `{"resource": "TYPE/ID"}` or
/// `{"client_ip": ADDR|CIDR}`, with an optional `"reason"`; answers what
/// was erased.
pub(super) async fn create(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<erasure::Report>, ApiError> {
    caller.must_be_admin()?;
    let trail = s.trail()?;
    let body = parse_body(&body)?;
    let (selector, reason) = parse(&body)?;
    // Entries queued before the erasure (answered before it) are erased too.
    let not_yet = |what: &str| {
        ApiError::NotYet(format!(
            "{what} has not reached the store yet (it refuses entries, or the spool is replaying); try again once \
             auditgate_spool_waiting is 0"
        ))
    };
    if !trail.settled(SETTLE).await {
        return Err(not_yet("an entry recorded before this erasure"));
    }
    let plan = erasure::plan(&s.store, &selector).await?;
    // Its entry first, in the store before anything is erased: `verify`
    // holds the erased entries to the erasures recorded.
    let change = caller.change(erasure::ACTION, "POST", uri.path(), 200, &s.instance);
    if trail.record(erasure::entry(&change, &selector, &plan, reason.as_deref()), None).await.is_err()
        || !trail.settled(SETTLE).await
    {
        return Err(not_yet("the erasure's own entry"));
    }
    let report = erasure::carry_out(&s.store, &plan).await?;
    Ok(Json(report))
}

/// The selector and reason of a body.
fn parse(body: &Value) -> Result<(Selector, Option<String>), ApiError> {
    let bad = |field: &'static str, reason: String| ApiError::BadField { field, reason };
    let values = string_fields(body, KEYS)?;
    let [actor, resource, client_ip, reason] = values;
    let selector = Selector::parse(actor, resource, client_ip).map_err(|e| bad(e.field, e.reason))?;
    Ok((selector, reason.map(str::to_string)))
}

/// The string values of a JSON object body with only these `keys`: a
/// key not among them, or a value not a string, names its field. Absent is
/// `None`; `null` too, but for a selector (always a string).
pub(super) fn string_fields<'a, const N: usize>(
    body: &'a Value,
    keys: [&'static str; N],
) -> Result<[Option<&'a str>; N], ApiError> {
    let bad = |field: &'static str, reason: String| ApiError::BadField { field, reason };
    let object = body.as_object().ok_or_else(|| bad("body", "expected a JSON object".into()))?;
    if let Some(key) = object.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(bad("body", format!("unknown field `{key}`; expected one of {}", keys.join(", "))));
    }
    let mut values = [None; N];
    for (slot, key) in values.iter_mut().zip(keys) {
        *slot = match object.get(key) {
            None => None,
            Some(Value::Null) if !SELECTORS.contains(&key) => None,
            Some(Value::String(v)) => Some(v.as_str()),
            Some(_) => return Err(bad(key, "expected a string".into())),
        };
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_names_one_selector_and_its_bad_field() {
        let (selector, reason) = parse(&json!({"actor": "alice", "reason": "GDPR-17"})).unwrap();
        assert_eq!((selector, reason.as_deref()), (Selector::Actor("alice".into()), Some("GDPR-17")));
        let (selector, reason) = parse(&json!({"resource": "user/1", "reason": null})).unwrap();
        assert_eq!((selector, reason), (Selector::Resource { kind: "user".into(), id: "1".into() }, None));
        for (body, field) in [
            (json!([]), "body"),
            (json!({"actor": "a", "who": "b"}), "body"),
            (json!({"actor": 7}), "actor"),
            (json!({"actor": "a", "resource": null}), "resource"),
            (json!({"reason": 7, "actor": "a"}), "reason"),
            (json!({}), "selector"),
            (json!({"actor": "a", "client_ip": "10.0.0.1"}), "selector"),
            (json!({"client_ip": "10.0.0.300"}), "client_ip"),
        ] {
            match parse(&body) {
                Err(ApiError::BadField { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
