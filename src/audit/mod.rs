//! The audited-mutation pipeline (docs/trail.md): lock the resource, GET before,
//! forward, read what the answer says (`answer`), GET after, diff, redact,
//! and hand the entry to the recorder. Snapshot failures are written into
//! the entry, never into the response.

mod answer;
pub mod requested;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http::header::USER_AGENT;
use serde_json::Value;
use tokio::sync::oneshot;

pub use answer::{Answer, Located, id_in_body, location_path};

use crate::config::SnapshotConfig;
use crate::diff::{Redactor, diff, without_ignored};
use crate::entry::{AuditEntry, Outcome};
use crate::identity::{Actor, ClientAddr, ip_text};
use crate::policy::Capture;
use crate::recorder::{Durability, Recorder, Slot, Unrecordable};
use crate::resource::{Action, Classification, Classified, Classifier, Rule};
use crate::snapshot::{ResourceGuard, ResourceLocks, Snapshotter};

/// What runs when the answer has ended: given the copy, or `None` when the
/// answer was larger than the bound. Not run when the answer breaks off
/// (the hook is dropped instead).
pub type EndHook = Box<dyn FnOnce(Option<bytes::Bytes>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Shared audit machinery, built once.
#[derive(Debug)]
pub struct Auditor {
    snapshots: Snapshotter,
    locks: ResourceLocks,
    recorder: Recorder,
    redactor: Redactor,
    ignore_fields: Vec<String>,
    /// The resource rules, for the id a create's `Location` names.
    classifier: Arc<Classifier>,
    /// `[snapshot] volatile_fields`: left out of a form's state.
    volatile: Vec<String>,
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

/// What the audit decision asked for (docs/rules.md), and the request body.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub capture: Capture,
    /// The include configuration that decided, named in the entry.
    pub configuration: Option<Arc<str>>,
    /// The request body as forwarded, when it was read (every capture but
    /// `metadata`): compared with the after-state (`unapplied`), and kept
    /// in the entry for `capture = "full"`.
    pub body: Option<Bytes>,
    /// The request's `Content-Type`: how the body is read.
    pub content_type: Option<String>,
}

/// When and how the upstream answered an audited request.
#[derive(Debug)]
pub struct Answered {
    pub status: u16,
    pub headers: HeaderMap,
    /// The entry's `timestamp`.
    at: chrono::DateTime<chrono::Utc>,
    /// From the request's arrival to the answer's head.
    took: Duration,
}

impl Answered {
    /// The answer to `pending` arriving now.
    pub fn now(pending: &Pending, status: u16, headers: HeaderMap) -> Answered {
        Answered { status, headers, at: chrono::Utc::now(), took: pending.request.started.elapsed() }
    }
}

/// An audited request in progress: its facts, classification, the
/// before-state, and the resource's turn while it lasts.
#[derive(Debug)]
pub struct Pending {
    request: RequestFacts,
    classified: Classified,
    recording: Recording,
    /// Per-rule settings: `id_field`, `ignore_fields`, how pages are read.
    rule_id_field: Option<String>,
    rule_page: Option<Arc<crate::snapshot::PageRule>>,
    /// The page a create's `Location` named: its form is the state.
    page_path: Option<String>,
    rule_ignore_fields: Vec<String>,
    before: Option<Value>,
    snapshot_error: Option<String>,
    /// How the snapshots were read (the after-state's, else the before-state's).
    snapshot_format: Option<crate::entry::SnapshotFormat>,
    guard: Option<ResourceGuard>,
    /// Its place among `recorder.max_pending`, until its entry is queued.
    slot: Option<Slot>,
    /// The id came from the answer (a create), not from the request.
    id_answered: bool,
}

impl Auditor {
    pub fn new(
        snapshots: Snapshotter,
        recorder: Recorder,
        locks: ResourceLocks,
        config: &SnapshotConfig,
        classifier: Arc<Classifier>,
        instance: String,
    ) -> Auditor {
        Auditor {
            classifier,
            snapshots,
            locks,
            recorder,
            redactor: Redactor::new(&config.redact),
            ignore_fields: config.ignore_fields.clone(),
            volatile: config.volatile_fields.clone(),
            skip_unchanged: config.skip_unchanged,
            instance,
        }
    }

    /// The resource's turn for a mutation of a known resource: held by a
    /// recorded one from before its before-state to after its after-state,
    /// and by one not recorded while the upstream handles it.
    pub async fn turn(&self, c: &Classified) -> Option<ResourceGuard> {
        let id = c.resource.id.as_deref().filter(|_| c.action.is_mutation())?;
        Some(self.locks.lock(&c.resource.kind, id).await)
    }

    /// Starts auditing: takes a slot among `max_pending` (refused for a
    /// mutation under `fail_mode = "closed"` when the trail cannot take it),
    /// the resource's turn and its before-state (no before-state for
    /// `capture = "metadata"`, reads and logins).
    pub async fn begin(
        &self,
        classified: Classified,
        rule: Option<&Rule>,
        request: RequestFacts,
        recording: Recording,
    ) -> Result<Pending, Unrecordable> {
        let slot = self.recorder.slot(classified.action.is_mutation()).await?;
        let mut pending = Pending {
            slot: Some(slot),
            request,
            recording,
            rule_id_field: rule.and_then(|r| r.id_field.clone()),
            rule_page: rule.map(|r| r.page.clone()),
            page_path: None,
            rule_ignore_fields: rule.map(|r| r.ignore_fields.clone()).unwrap_or_default(),
            before: None,
            snapshot_error: None,
            snapshot_format: None,
            guard: None,
            classified,
            id_answered: false,
        };
        pending.guard = self.turn(&pending.classified).await;
        let needs_before = pending.takes_snapshots() && pending.classified.action != Action::Create;
        if let (true, Some(_), Some(url)) = (needs_before, &pending.guard, pending.snapshot_url(None)) {
            match self.snapshots.fetch(&url, &pending.request.carried, &self.reading(&pending)).await {
                Ok(snapshot) => {
                    pending.before = Some(snapshot.state);
                    pending.snapshot_format = Some(snapshot.format);
                }
                Err(e) => pending.snapshot_error = Some(e.to_string()),
            }
        }
        Ok(pending)
    }

    /// The tee's end hook for `p`'s answer, and where its result arrives:
    /// the id the copy names and, when snapshots follow, the new
    /// resource's turn, taken before the client sees the answer end. The
    /// receiver errs when the answer broke off or the client left.
    pub fn answer_hook(self: &Arc<Self>, p: &Pending, headers: &HeaderMap) -> (EndHook, oneshot::Receiver<Answer>) {
        let (tx, rx) = oneshot::channel();
        let auditor = self.clone();
        let headers = headers.clone();
        let kind = p.classified.resource.kind.clone();
        let path = p.request.path.clone();
        let id_field = p.id_field().to_string();
        let locks = p.takes_snapshots();
        let hook: EndHook = Box::new(move |copy| {
            Box::pin(async move {
                let max = auditor.snapshots.max_bytes();
                let locate = || auditor.locate(&kind, &path, &headers);
                let mut answer = Answer::from_copy(&headers, copy.as_deref(), &id_field, max, locate);
                if let (Some(id), true) = (&answer.id, locks) {
                    answer.guard = Some(auditor.locks.lock(&kind, id).await);
                }
                // With `durability = "sync"` the answer ends only once its
                // entry, after-state included, is durable.
                let durable = auditor.waits_for_entries().then(|| {
                    let (tx, rx) = oneshot::channel();
                    answer.durable = Some(tx);
                    rx
                });
                let _ = tx.send(answer);
                if let Some(durable) = durable {
                    let _ = durable.await;
                }
            })
        });
        (hook, rx)
    }

    /// Completes the entry once the upstream answered: learns the id from
    /// `answer` (read by the tee; `None` when it was not read or broke
    /// off: `Location` then names it), takes the after-state and records.
    pub async fn finish(&self, mut p: Pending, answered: Answered, mut answer: Option<Answer>) {
        let durable = answer.as_mut().and_then(|a| a.durable.take());
        let status = answered.status;
        if p.learns_id() && success(status) {
            let answer = answer.unwrap_or_else(|| {
                Answer::from_location(self.locate(&p.classified.resource.kind, &p.request.path, &answered.headers))
            });
            p.classified.resource.id = answer.id;
            if let Some(located) = answer.located {
                // The page the app sent the client to is the new resource's
                // state, read as the rule that names it says.
                p.classified.snapshot = located.snapshot.or(p.classified.snapshot);
                p.rule_page = located.page.or(p.rule_page);
                p.page_path = Some(located.path);
            }
            p.id_answered = true;
            p.guard = answer.guard;
            match (&p.classified.resource.id, p.guard.is_none() && p.takes_snapshots()) {
                (Some(id), true) => p.guard = Some(self.locks.lock(&p.classified.resource.kind, id).await),
                (Some(_), false) => {}
                (None, _) => {
                    let why = answer.note.map(|n| format!(" ({n})")).unwrap_or_default();
                    p.snapshot_error = Some(format!("id not found in Location or the response body{why}"));
                }
            }
            if p.classified.action != Action::Create && p.classified.resource.id.is_some() && p.takes_snapshots() {
                p.snapshot_error = Some("no before-state: the id was known only from the answer".into());
            }
        }
        let wants_after = success(status) && p.takes_snapshots() && !matches!(p.classified.action, Action::Delete);
        let mut after = None;
        if wants_after && let Some(url) = p.snapshot_url(p.classified.resource.id.as_deref()) {
            match self.snapshots.fetch(&url, &p.request.carried, &self.reading(&p)).await {
                Ok(snapshot) => {
                    after = Some(snapshot.state);
                    p.snapshot_format = Some(snapshot.format);
                }
                Err(e) => p.snapshot_error = Some(e.to_string()),
            }
        }
        drop(p.guard.take());
        let outcome = match p.classified.action {
            // docs/rules.md: a login succeeded only with a 2xx.
            Action::Login if !(200..300).contains(&status) => Outcome::Failure,
            _ => Outcome::from_status(status),
        };
        self.record(p, outcome, &answered, after).await;
        if let Some(durable) = durable {
            let _ = durable.send(());
        }
    }

    /// The resource of kind `kind` an answer's `Location` names ([`located`]).
    fn locate(&self, kind: &str, path: &str, headers: &HeaderMap) -> Option<Located> {
        located(&self.classifier, kind, path, &location_path(headers, path)?)
    }

    /// How `p`'s snapshots are read: its rule's page settings, the
    /// volatile fields, the form that posts to its path.
    fn reading<'a>(&'a self, p: &'a Pending) -> crate::snapshot::Reading<'a> {
        let action = p.page_path.as_deref().unwrap_or(&p.request.path);
        crate::snapshot::Reading { rule: p.rule_page.as_deref(), volatile: &self.volatile, action }
    }

    /// The client's headers a snapshot GET carries (`snapshot.forward_headers`
    /// and `Host`).
    pub fn carried(&self, client: &HeaderMap) -> HeaderMap {
        self.snapshots.carried(client)
    }

    /// The most of an answer the tee copies for the entry (`snapshot.max_bytes`).
    pub fn copy_limit(&self) -> usize {
        self.snapshots.max_bytes()
    }

    /// The session's user as the app names it (`whoami`), asked with the
    /// client's credentials the way a snapshot is.
    pub async fn who_am_i(&self, whoami: &crate::whoami::Whoami, client: &HeaderMap) -> Option<String> {
        whoami.lookup(&self.snapshots, &self.snapshots.carried(client)).await
    }

    /// Whether answers wait for their entries (`durability = "sync"`).
    pub fn waits_for_entries(&self) -> bool {
        self.recorder.durability() == Durability::Sync
    }

    /// Records a request the upstream never answered (502/504).
    pub async fn fail(&self, p: Pending, status: u16) {
        let answered = Answered::now(&p, status, HeaderMap::new());
        self.record(p, Outcome::Error, &answered, None).await;
    }

    async fn record(&self, mut p: Pending, outcome: Outcome, answered: &Answered, after: Option<Value>) {
        let slot = p.slot.take();
        let status = answered.status;
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
        let content_type = p.recording.content_type.as_deref();
        let asked = p.recording.body.as_deref().filter(|_| p.compares_request() && after.is_some());
        let asked = asked.and_then(|b| requested::Requested::read(b, content_type, &self.volatile));
        let unapplied = match (asked, &after) {
            (Some(asked), Some(after)) => asked.unapplied(after).map(|mut list| {
                for u in &mut list {
                    self.redactor.redact_at(&u.path, [&mut u.requested, &mut u.applied]);
                }
                list
            }),
            _ => None,
        };
        let request_body = p.recording.body.as_deref().filter(|_| p.recording.capture == Capture::Full).map(|b| {
            let mut v = requested::kept(b, content_type, &self.volatile, self.snapshots.max_bytes());
            self.redactor.redact(&mut v);
            v
        });
        let state = after.as_ref().or(p.before.as_ref());
        let named = p.classified.resource.id.take();
        let (resource_id, path_resource_id) = match p.id_answered {
            true => (named, None),
            false => filed_under(named, state, p.id_field()),
        };
        let c = p.classified;
        let entry = AuditEntry {
            id: String::new(),
            timestamp: crate::entry::format_time(answered.at),
            request_id: p.request.request_id,
            action: c.action.as_str().to_string(),
            outcome,
            method: p.request.method,
            path: p.request.path,
            query: p.request.query,
            status,
            duration_ms: (answered.took.as_secs_f64() * 1e6).round() / 1e3,
            resource_type: c.resource.kind,
            resource_id,
            path_resource_id,
            parents: c.resource.parents,
            actor: p.request.actor.name,
            actor_source: p.request.actor.source,
            actor_verified: p.request.actor.verified,
            client_ip: ip_text(p.request.addr.client),
            peer_ip: ip_text(p.request.addr.peer),
            forwarded_for: p.request.addr.forwarded_for,
            user_agent: p.request.user_agent,
            configuration: p.recording.configuration.as_deref().map(str::to_string),
            before: p.before.map(redact),
            after: after.map(redact),
            changes,
            unapplied: Some(unapplied),
            request_body,
            snapshot_error: p.snapshot_error,
            snapshot_format: p.snapshot_format,
            instance: self.instance.clone(),
            chain_version: None,
            content_digest: None,
            erased: false,
            erasure: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        if let Ok(receipt) = self.recorder.record(entry, slot).await {
            receipt.durable().await;
        }
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
        Some(template.replace("{id}", &crate::resource::encode_segment(id)))
    }

    /// Whether the entry needs the answer's body: a successful answer
    /// naming the resource's id (`learns_id`).
    pub fn reads_answer(&self, status: u16) -> bool {
        self.learns_id() && success(status)
    }

    /// True when the resource's id is known only from the answer: a
    /// create, or a rule whose `id_field` names it.
    pub fn learns_id(&self) -> bool {
        self.classified.resource.id.is_none()
            && self.classified.action.is_mutation()
            && (self.classified.action == Action::Create || self.rule_id_field.is_some())
    }

    /// The JSON pointer of the id in the answer (`id_field`, default `/id`).
    fn id_field(&self) -> &str {
        self.rule_id_field.as_deref().unwrap_or("/id")
    }

    /// Requested versus applied is kept for updates and creates.
    fn compares_request(&self) -> bool {
        matches!(self.classified.action, Action::Update | Action::Create)
    }

    /// Snapshots (and the resource's lock) are for mutations recorded with
    /// `capture` `diff` or `full`.
    fn takes_snapshots(&self) -> bool {
        self.recording.capture != Capture::Metadata && self.classified.action.is_mutation()
    }
}

/// Where the entry is filed (docs/trail.md, `path_resource_id`): under the id the
/// resource's own state names at `id_field` (after, else before), when it
/// names one other than the path's (`/items/007/` or `/items/1.json` of an
/// app that answers `"id": 1`), with the path's id kept beside it; else
/// under the path's id. A state without a string or number there changes
/// nothing.
fn filed_under(id: Option<String>, state: Option<&Value>, id_field: &str) -> (Option<String>, Option<String>) {
    let Some(id) = id else { return (None, None) };
    let own = match state.and_then(|v| v.pointer(id_field)) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return (Some(id), None),
    };
    if own == id { (Some(id), None) } else { (Some(own), Some(id)) }
}

/// The resource of kind `kind` the path `target` names (an answer's
/// `Location` to a request to `path`), read through the resource rules as a
/// GET: its id, the GET of its state and how its pages are read. A path
/// that the rules give another kind, or no id, names none, unless it is one
/// segment below the request's own path (`POST /users/` answered
/// `/users/5`): that segment is the id, the state read as the request's
/// rule says.
fn located(classifier: &Classifier, kind: &str, path: &str, target: &str) -> Option<Located> {
    let found = match classifier.classify(&http::Method::GET, target, None, &HeaderMap::new()) {
        Classification::Resource(found) if found.resource.kind == kind => Some(found),
        _ => None,
    };
    if let Some(found) = found
        && let Some(id) = found.resource.id
    {
        let snapshot = found.snapshot.filter(|s| !s.contains("{id}"));
        let page = found.rule.map(|i| classifier.rules()[i].page.clone());
        return Some(Located { id, path: target.to_string(), snapshot, page });
    }
    let below = target.strip_prefix(path.trim_end_matches('/'))?.strip_prefix('/')?;
    let segment = below.strip_suffix('/').unwrap_or(below);
    (!segment.is_empty() && !segment.contains('/')).then(|| Located {
        id: crate::resource::percent_decode(segment),
        path: target.to_string(),
        snapshot: None,
        page: None,
    })
}

/// A 2xx or 3xx answer: the change was made.
fn success(status: u16) -> bool {
    (200..400).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_names_a_resource_through_the_rules() {
        let rules = r#"
[[resource]]
pattern = "/customers/new/"
type = "customer"
action = "create"

[[resource]]
pattern = "/customers/{id}/edit/"
type = "customer"
snapshot_format = "form"

[[resource]]
pattern = "/accounts/{id}/"
type = "account"
snapshot = "/accounts/{id}/?full=1"
"#;
        let classifier = Classifier::new(crate::resource::RulesFile::parse("r.toml".as_ref(), rules).unwrap());
        let at = |kind: &str, path: &str, target: &str| {
            located(&classifier, kind, path, target).map(|l| (l.id, l.path, l.snapshot, l.page.map(|p| p.asked)))
        };
        let form = Some(crate::snapshot::Asked::Is(crate::entry::SnapshotFormat::Form));
        let edit = |id: &str| Some(format!("/customers/{id}/edit/"));
        assert_eq!(
            at("customer", "/customers/new/", "/customers/3/edit/"),
            Some(("3".into(), "/customers/3/edit/".into(), edit("3"), form))
        );
        assert_eq!(
            at("account", "/accounts/", "/accounts/a%20b/"),
            Some((
                "a b".into(),
                "/accounts/a%20b/".into(),
                Some("/accounts/a%20b/?full=1".into()),
                Some(Default::default())
            ))
        );
        assert_eq!(at("customer", "/customers/new/", "/customers/"), None, "a redirect to the list names no id");
        assert_eq!(at("customer", "/customers/new/", "/accounts/3/"), None, "another type's id is not this one's");
        // By the heuristic: a comment's create sent to its post names no comment.
        assert_eq!(at("comment", "/posts/4/comments/", "/posts/4/"), None);
        assert_eq!(at("user", "/api/users/", "/api/users/5").map(|l| l.0), Some("5".into()));
        // One segment below the request's path is the id, whatever the rules call it.
        let below = at("member", "/api/users/", "/api/users/7/");
        assert_eq!(below, Some(("7".into(), "/api/users/7/".into(), None, None)));
        assert_eq!(at("member", "/api/users", "/api/users/x%2Fy").map(|l| l.0), Some("x/y".into()));
        assert_eq!(at("member", "/api/users/", "/api/users/7/edit/"), None);
        assert_eq!(at("member", "/api/users/", "/api/users/"), None);
        assert_eq!(at("member", "/api/users/", "/api/usersx/7"), None);
    }

    #[test]
    fn an_entry_files_under_the_id_the_resources_own_state_names() {
        let state = serde_json::json!({"id": 7, "code": "007", "name": "x", "empty": "", "list": [7]});
        let filed = |path_id: &str, field: &str| {
            let (id, path) = filed_under(Some(path_id.into()), Some(&state), field);
            (id.unwrap(), path)
        };
        let under = |id: &str, path: Option<&str>| (id.to_string(), path.map(str::to_string));
        assert_eq!(filed("007", "/id"), under("7", Some("007")));
        assert_eq!(filed("7.json", "/id"), under("7", Some("7.json")));
        assert_eq!(filed("7", "/id"), under("7", None));
        assert_eq!(filed("007", "/code"), under("007", None), "a string id as it stands");
        assert_eq!(filed("8", "/id"), under("7", Some("8")));
        assert_eq!(filed("abc", "/name"), under("x", Some("abc")));
        for nothing in ["/missing", "/empty", "/list"] {
            assert_eq!(filed("007", nothing), under("007", None), "{nothing}");
        }
        assert_eq!(filed_under(None, Some(&state), "/id"), (None, None));
        assert_eq!(filed_under(Some("007".into()), None, "/id"), (Some("007".into()), None));
    }
}
