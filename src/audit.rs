//! The audited-mutation pipeline (SPEC 4, 7): lock the resource, GET before,
//! forward, GET after, diff, redact, and hand the entry to the recorder.
//! Snapshot failures are written into the entry, never into the response.

use std::time::Instant;

use http::HeaderMap;
use http::header::{LOCATION, USER_AGENT};
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;

use crate::config::SnapshotConfig;
use crate::diff::{Redactor, diff, without_ignored};
use crate::entry::{AuditEntry, Outcome};
use crate::identity::{Actor, ClientAddr};
use crate::policy::Capture;
use crate::recorder::Recorder;
use crate::resource::{Action, Classified, Rule};
use crate::snapshot::{ResourceLocks, Snapshotter};

/// Shared audit machinery, built once.
#[derive(Debug)]
pub struct Auditor {
    pub snapshots: Snapshotter,
    locks: ResourceLocks,
    recorder: Recorder,
    redactor: Redactor,
    ignore_fields: Vec<String>,
    skip_unchanged: bool,
    instance: String,
}

/// What the proxy knows of an audited request before it is forwarded.
#[derive(Debug)]
pub struct RequestFacts {
    pub actor: Actor,
    pub addr: ClientAddr,
    pub method: String,
    pub path: String,
    pub query: String,
    pub request_id: String,
    pub user_agent: Option<String>,
    /// The client headers snapshots carry (`Snapshotter::carried`).
    pub carried: HeaderMap,
    pub started: Instant,
}

impl RequestFacts {
    /// Facts read from the request head.
    pub fn new(
        parts: &http::request::Parts,
        actor: Actor,
        addr: ClientAddr,
        request_id: String,
        carried: HeaderMap,
        started: Instant,
    ) -> RequestFacts {
        RequestFacts {
            actor,
            addr,
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            request_id,
            user_agent: parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string),
            carried,
            started,
        }
    }
}

/// What the audit decision asked for (SPEC 5).
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub capture: Capture,
    /// The include configuration that decided, named in the entry.
    pub configuration: Option<std::sync::Arc<str>>,
    /// The request body, for `capture = "full"`.
    pub request_body: Option<bytes::Bytes>,
}

/// An audited request in progress: its facts, classification, the
/// before-state, and the resource's turn while it lasts.
#[derive(Debug)]
pub struct Pending {
    request: RequestFacts,
    classified: Classified,
    recording: Recording,
    /// Per-rule settings: `id_field`, `ignore_fields`.
    rule_id_field: Option<String>,
    rule_ignore_fields: Vec<String>,
    before: Option<Value>,
    snapshot_error: Option<String>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Auditor {
    pub fn new(snapshots: Snapshotter, recorder: Recorder, config: &SnapshotConfig, instance: String) -> Auditor {
        Auditor {
            snapshots,
            locks: ResourceLocks::default(),
            recorder,
            redactor: Redactor::new(&config.redact),
            ignore_fields: config.ignore_fields.clone(),
            skip_unchanged: config.skip_unchanged,
            instance,
        }
    }

    /// Starts auditing: takes the resource's turn and its before-state
    /// (nothing of the kind for `capture = "metadata"`, reads and logins).
    pub async fn begin(
        &self,
        classified: Classified,
        rule: Option<&Rule>,
        request: RequestFacts,
        recording: Recording,
    ) -> Pending {
        let mut pending = Pending {
            request,
            recording,
            rule_id_field: rule.and_then(|r| r.id_field.clone()),
            rule_ignore_fields: rule.map(|r| r.ignore_fields.clone()).unwrap_or_default(),
            before: None,
            snapshot_error: None,
            guard: None,
            classified,
        };
        if !pending.takes_snapshots() {
            return pending;
        }
        let needs_before = !matches!(pending.classified.action, Action::Create);
        if let (Some(id), Some(url)) = (pending.classified.resource.id.clone(), pending.snapshot_url(None)) {
            pending.guard = Some(self.locks.lock(&pending.classified.resource.kind, &id).await);
            if needs_before {
                match self.snapshots.fetch(&url, &pending.request.carried).await {
                    Ok(v) => pending.before = Some(v),
                    Err(e) => pending.snapshot_error = Some(e.to_string()),
                }
            }
        }
        pending
    }

    /// Completes the entry once the upstream answered `status`: learns a
    /// created id, takes the after-state and records. `body` is the buffered
    /// response body of a create, for its id.
    pub async fn finish(&self, mut p: Pending, status: u16, headers: &HeaderMap, body: Option<&[u8]>) {
        let answered = chrono::Utc::now();
        let success = (200..400).contains(&status);
        if p.classified.action == Action::Create && success && p.classified.resource.id.is_none() {
            p.classified.resource.id = created_id(headers, body, p.rule_id_field.as_deref().unwrap_or("/id"));
            if let Some(id) = &p.classified.resource.id
                && p.takes_snapshots()
            {
                p.guard = Some(self.locks.lock(&p.classified.resource.kind, id).await);
            }
        }
        let wants_after = success && p.takes_snapshots() && !matches!(p.classified.action, Action::Delete);
        let mut after = None;
        if wants_after {
            match p.snapshot_url(p.classified.resource.id.as_deref()) {
                Some(url) => match self.snapshots.fetch(&url, &p.request.carried).await {
                    Ok(v) => after = Some(v),
                    Err(e) => p.snapshot_error = Some(e.to_string()),
                },
                None if p.classified.action == Action::Create => {
                    p.snapshot_error = Some("created id not found in Location or the response body".into());
                }
                None => {}
            }
        }
        drop(p.guard.take());
        let outcome = match p.classified.action {
            // SPEC 6: a login succeeded only with a 2xx.
            Action::Login if !(200..300).contains(&status) => Outcome::Failure,
            _ => Outcome::from_status(status),
        };
        self.record(p, outcome, status, answered, after);
    }

    /// Records a request the upstream never answered (502/504).
    pub fn fail(&self, p: Pending, status: u16) {
        self.record(p, Outcome::Error, status, chrono::Utc::now(), None);
    }

    fn record(
        &self,
        p: Pending,
        outcome: Outcome,
        status: u16,
        answered: chrono::DateTime<chrono::Utc>,
        after: Option<Value>,
    ) {
        let mut changes = diff(p.before.as_ref(), after.as_ref());
        changes = without_ignored(changes, &self.ignore_fields);
        changes = without_ignored(changes, &p.rule_ignore_fields);
        if self.skip_unchanged
            && changes.is_empty()
            && p.classified.action == Action::Update
            && outcome == Outcome::Success
        {
            return;
        }
        self.redactor.redact_changes(&mut changes);
        let redact = |mut v: Value| {
            self.redactor.redact(&mut v);
            v
        };
        let request_body = p.recording.request_body.as_deref().map(|b| {
            let mut v = body_value(b, self.snapshots.max_bytes());
            self.redactor.redact(&mut v);
            v
        });
        let c = p.classified;
        let entry = AuditEntry {
            id: String::new(),
            timestamp: crate::entry::format_time(answered),
            request_id: p.request.request_id,
            action: c.action.as_str().to_string(),
            outcome,
            method: p.request.method,
            path: p.request.path,
            query: p.request.query,
            status,
            duration_ms: (p.request.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            resource_type: c.resource.kind,
            resource_id: c.resource.id,
            parents: c.resource.parents,
            actor: p.request.actor.name,
            actor_source: p.request.actor.source,
            actor_verified: p.request.actor.verified,
            client_ip: p.request.addr.client.to_string(),
            peer_ip: p.request.addr.peer.to_string(),
            forwarded_for: p.request.addr.forwarded_for,
            user_agent: p.request.user_agent,
            configuration: p.recording.configuration.as_deref().map(str::to_string),
            before: p.before.map(redact),
            after: after.map(redact),
            changes,
            request_body,
            snapshot_error: p.snapshot_error,
            instance: self.instance.clone(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let _ = self.recorder.record(entry);
    }
}

impl Pending {
    /// The snapshot URL with `{id}` filled in (`id` overrides a known id).
    fn snapshot_url(&self, id: Option<&str>) -> Option<String> {
        let template = self.classified.snapshot.as_deref()?;
        if !template.contains("{id}") {
            return Some(template.to_string());
        }
        let id = id.or(self.classified.resource.id.as_deref())?;
        Some(template.replace("{id}", &encode_segment(id)))
    }

    /// True when a create must buffer its response to find the new id
    /// (with snapshots only; otherwise `Location` names it).
    pub fn needs_created_id(&self) -> bool {
        self.classified.action == Action::Create && self.classified.resource.id.is_none() && self.takes_snapshots()
    }

    /// Snapshots (and the resource's lock) are for mutations recorded with
    /// `capture` `diff` or `full`.
    fn takes_snapshots(&self) -> bool {
        self.recording.capture != Capture::Metadata && self.classified.action.is_mutation()
    }
}

/// The new id of a create: the JSON body's `id_field`, else the last path
/// segment of `Location`.
fn created_id(headers: &HeaderMap, body: Option<&[u8]>, id_field: &str) -> Option<String> {
    let from_body =
        body.and_then(|b| serde_json::from_slice::<Value>(b).ok()).and_then(|v| match v.pointer(id_field)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    from_body.or_else(|| {
        let location = headers.get(LOCATION)?.to_str().ok()?;
        let path = location.split(['?', '#']).next()?;
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        (!last.is_empty()).then(|| crate::resource::percent_decode(last))
    })
}

/// A request body as the entry keeps it (`capture = "full"`): JSON as
/// JSON, a urlencoded form as an object of its fields, other UTF-8 text as a
/// string; anything else, or beyond `max` bytes, as a note of its size.
fn body_value(body: &[u8], max: usize) -> Value {
    if body.len() > max {
        return serde_json::json!({"omitted": "larger than snapshot.max_bytes", "bytes": body.len()});
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return serde_json::json!({"omitted": "not text", "bytes": body.len()});
    };
    let looks_like_form = !text.is_empty() && text.split('&').all(|pair| pair.contains('=') && !pair.contains(' '));
    if looks_like_form {
        return Value::Object(crate::resource::form_pairs(body).map(|(k, v)| (k, Value::String(v))).collect());
    }
    Value::String(text.to_string())
}

/// Escapes what a path segment cannot hold.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn created_id_from_body_then_location() {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_static("http://x/api/users/77/"));
        assert_eq!(created_id(&h, Some(br#"{"id": 5}"#), "/id").as_deref(), Some("5"));
        assert_eq!(created_id(&h, Some(br#"{"pk": "a"}"#), "/pk").as_deref(), Some("a"));
        assert_eq!(created_id(&h, Some(b"not json"), "/id").as_deref(), Some("77"));
        assert_eq!(created_id(&HeaderMap::new(), None, "/id"), None);
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn request_bodies_are_kept_as_json_form_fields_or_text() {
        assert_eq!(body_value(br#"{"a": [1]}"#, 100), serde_json::json!({"a": [1]}));
        assert_eq!(
            body_value(b"name=Ann+Lee&password=p%40ss", 100),
            serde_json::json!({"name": "Ann Lee", "password": "p@ss"})
        );
        assert_eq!(body_value(b"just words", 100), serde_json::json!("just words"));
        assert_eq!(body_value(&[0xff, 0xfe], 100)["omitted"], "not text");
        assert_eq!(body_value(&[b'x'; 50], 10)["bytes"], 50);
    }
}
