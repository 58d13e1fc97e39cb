//! `POST /api/v1/erasures` (docs/personal-data.md): an admin erases the
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

/// The body's string keys: one selector, and an optional reason (and the
/// boolean `force`).
const KEYS: [&str; 4] = ["actor", "resource", "client_ip", "reason"];

/// `POST /api/v1/erasures`: `{"actor": NAME}`, `{"resource": "TYPE/ID"}` or
/// `{"client_ip": ADDR|CIDR}`, with an optional `"reason"` (and `"force":
/// true` for a range wider than a /16 or /48); answers what was erased.
pub(super) async fn create(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<erasure::Report>, ApiError> {
    caller.must_be_admin()?;
    let trail = s.trail()?;
    let body = parse_body(&body)?;
    let Erasure { selector, reason, force } = parse(&body)?;
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
    if trail.record(erasure::entry(&change, &selector, &plan, reason.as_deref(), force), None).await.is_err()
        || !trail.settled(SETTLE).await
    {
        return Err(not_yet("the erasure's own entry"));
    }
    let report = erasure::carry_out(&s.store, &plan).await?;
    Ok(Json(report))
}

/// An erasure asked for.
#[derive(Debug, PartialEq, Eq)]
struct Erasure {
    selector: Selector,
    reason: Option<String>,
    force: bool,
}

/// The selector, reason and `force` of a body.
fn parse(body: &Value) -> Result<Erasure, ApiError> {
    let bad = |field: &'static str, reason: String| ApiError::BadField { field, reason };
    let mut strings = body.clone();
    let force = match strings.as_object_mut().and_then(|o| o.remove("force")) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(force)) => force,
        Some(_) => return Err(bad("force", "expected true or false".into())),
    };
    let [actor, resource, client_ip, reason] = string_fields(&strings, KEYS)?;
    let selector = Selector::parse(actor, resource, client_ip).map_err(|e| bad(e.field, e.reason))?;
    selector.check_width(force).map_err(|e| bad(e.field, e.reason))?;
    Ok(Erasure { selector, reason: reason.map(str::to_string), force })
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
        let erasure = parse(&json!({"actor": "alice", "reason": "GDPR-17"})).unwrap();
        let alice = Selector::Actor("alice".into());
        assert_eq!(erasure, Erasure { selector: alice, reason: Some("GDPR-17".into()), force: false });
        let erasure = parse(&json!({"resource": "user/1", "reason": null, "force": null})).unwrap();
        let user = Selector::Resource { kind: "user".into(), id: "1".into() };
        assert_eq!(erasure, Erasure { selector: user, reason: None, force: false });
        let erasure = parse(&json!({"client_ip": "10.0.0.0/8", "force": true})).unwrap();
        assert_eq!((erasure.selector, erasure.force), (Selector::ClientIp("10.0.0.0/8".into()), true));
        for (body, field) in [
            (json!([]), "body"),
            (json!({"actor": "a", "who": "b"}), "body"),
            (json!({"actor": 7}), "actor"),
            (json!({"actor": "a", "resource": null}), "resource"),
            (json!({"reason": 7, "actor": "a"}), "reason"),
            (json!({}), "selector"),
            (json!({"actor": "a", "client_ip": "10.0.0.1"}), "selector"),
            (json!({"client_ip": "10.0.0.300"}), "client_ip"),
            (json!({"client_ip": "10.0.0.0/8"}), "force"),
            (json!({"client_ip": "10.0.0.0/8", "force": false}), "force"),
            (json!({"client_ip": "10.0.0.0/8", "force": "yes"}), "force"),
            (json!({"resource": "audit_configuration/1"}), "resource"),
        ] {
            match parse(&body) {
                Err(ApiError::BadField { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
