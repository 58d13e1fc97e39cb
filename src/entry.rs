//! `AuditEntry`, the one serialised domain type (SPEC 7), and the
//! per-instance hash chain that makes editing or deleting entries evident.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diff::Change;
use crate::identity::ActorSource;
use crate::resource::Parent;
use crate::unapplied::Unapplied;

/// The one form of stored times (`timestamp`, configuration times, time
/// filters): RFC 3339 in UTC with microseconds, so text order is time order.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `prev_hash` of an instance's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How the request ended: `success` (2xx/3xx), `failure` (4xx/5xx),
/// `error` (the upstream was unreachable or timed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Error,
}

impl Outcome {
    pub fn from_status(status: u16) -> Outcome {
        if status < 400 { Outcome::Success } else { Outcome::Failure }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Error => "error",
        }
    }
}

/// One recorded request. Field names are exact (SPEC 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// ULID, sortable by time; assigned when the entry is sealed.
    pub id: String,
    /// When the upstream answered, RFC 3339 UTC with microseconds.
    pub timestamp: String,
    pub request_id: String,
    pub action: String,
    pub outcome: Outcome,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub duration_ms: f64,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub parents: Vec<Parent>,
    pub actor: String,
    pub actor_source: ActorSource,
    pub actor_verified: bool,
    pub client_ip: String,
    pub peer_ip: String,
    pub forwarded_for: Vec<String>,
    pub user_agent: Option<String>,
    pub configuration: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub changes: Vec<Change>,
    /// Requested versus applied (SPEC 7): `Some(Some(list))` (empty when the
    /// app did what was asked), `Some(None)` (`null`: nothing to compare), or
    /// `None` for an entry written before the field existed, which keeps it
    /// out of its JSON and so out of its hash.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub unapplied: Option<Option<Vec<Unapplied>>>,
    pub request_body: Option<Value>,
    pub snapshot_error: Option<String>,
    pub instance: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A field that is present, possibly `null`: `Some(None)`, not `None`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl AuditEntry {
    /// SHA-256 (hex) over `prev_hash` and the canonical JSON of the entry
    /// without `hash`: object keys sorted at every depth, no spaces.
    pub fn compute_hash(&self) -> String {
        let mut canonical = Vec::with_capacity(2048);
        self.write_canonical(&mut canonical);
        hash_of(&self.prev_hash, &canonical)
    }

    /// The canonical JSON of the entry without `hash`, written directly: the
    /// view below declares its fields in sorted order, and serde_json's maps
    /// are sorted by key (the `preserve_order` feature is not enabled; a test
    /// checks this against the generic `write_canonical`).
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        let view = CanonicalEntry {
            action: &self.action,
            actor: &self.actor,
            actor_source: self.actor_source,
            actor_verified: self.actor_verified,
            after: &self.after,
            before: &self.before,
            changes: self.changes.iter().map(|c| CanonicalChange { new: &c.new, old: &c.old, path: &c.path }).collect(),
            client_ip: &self.client_ip,
            configuration: &self.configuration,
            duration_ms: self.duration_ms,
            forwarded_for: &self.forwarded_for,
            id: &self.id,
            instance: &self.instance,
            method: &self.method,
            outcome: self.outcome,
            parents: self.parents.iter().map(|p| CanonicalParent { id: &p.id, kind: &p.kind }).collect(),
            path: &self.path,
            peer_ip: &self.peer_ip,
            prev_hash: &self.prev_hash,
            query: &self.query,
            request_body: &self.request_body,
            request_id: &self.request_id,
            resource_id: &self.resource_id,
            resource_type: &self.resource_type,
            snapshot_error: &self.snapshot_error,
            status: self.status,
            timestamp: &self.timestamp,
            unapplied: self.unapplied.as_ref().map(|list| {
                list.as_ref().map(|l| {
                    l.iter()
                        .map(|u| CanonicalUnapplied { applied: &u.applied, path: &u.path, requested: &u.requested })
                        .collect()
                })
            }),
            user_agent: &self.user_agent,
        };
        serde_json::to_writer(out, &view).expect("writing to a Vec");
    }
}

/// `AuditEntry` without `hash`, fields in sorted order.
#[derive(Serialize)]
struct CanonicalEntry<'a> {
    action: &'a str,
    actor: &'a str,
    actor_source: ActorSource,
    actor_verified: bool,
    after: &'a Option<Value>,
    before: &'a Option<Value>,
    changes: Vec<CanonicalChange<'a>>,
    client_ip: &'a str,
    configuration: &'a Option<String>,
    duration_ms: f64,
    forwarded_for: &'a [String],
    id: &'a str,
    instance: &'a str,
    method: &'a str,
    outcome: Outcome,
    parents: Vec<CanonicalParent<'a>>,
    path: &'a str,
    peer_ip: &'a str,
    prev_hash: &'a str,
    query: &'a str,
    request_body: &'a Option<Value>,
    request_id: &'a str,
    resource_id: &'a Option<String>,
    resource_type: &'a str,
    snapshot_error: &'a Option<String>,
    status: u16,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unapplied: Option<Option<Vec<CanonicalUnapplied<'a>>>>,
    user_agent: &'a Option<String>,
}

#[derive(Serialize)]
struct CanonicalChange<'a> {
    new: &'a Value,
    old: &'a Value,
    path: &'a str,
}

#[derive(Serialize)]
struct CanonicalUnapplied<'a> {
    applied: &'a Value,
    path: &'a str,
    requested: &'a Value,
}

#[derive(Serialize)]
struct CanonicalParent<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

/// JSON with object keys sorted at every depth and no insignificant space,
/// so the hash does not depend on how a map orders its keys.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("writing to a Vec");
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec"),
    }
}

fn hash_of(prev_hash: &str, canonical: &[u8]) -> String {
    let mut sha = Sha256::new();
    sha.update(prev_hash.as_bytes());
    sha.update(canonical);
    hex(&sha.finalize())
}

/// Lower-case hex, two digits a byte (a table, not the formatter: this runs
/// for every entry).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The sealing end of one instance's chain: assigns ids in increasing order
/// and links each entry to the previous one.
pub struct Chain {
    prev: String,
    ids: ulid::Generator,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("prev", &self.prev).finish_non_exhaustive()
    }
}

impl Chain {
    /// Continues a chain whose last hash is `last` (or starts one).
    pub fn resume(last: Option<String>) -> Chain {
        Chain { prev: last.unwrap_or_else(|| GENESIS.to_string()), ids: ulid::Generator::new() }
    }

    /// Gives the entry its id, `prev_hash` and `hash`, and returns it with
    /// the JSON text the store keeps: the canonical form the hash covers,
    /// with `hash` appended, so each entry is serialised once.
    pub fn seal(&mut self, entry: AuditEntry) -> Sealed {
        let id = self.ids.generate().unwrap_or_else(|_| ulid::Ulid::new());
        self.seal_as(entry, id)
    }

    /// `seal` with the id's time taken from `at` instead of the clock, for
    /// loading a history (the scale benchmark); ids still only grow.
    pub fn seal_at(&mut self, entry: AuditEntry, at: std::time::SystemTime) -> Sealed {
        let id = self.ids.generate_from_datetime(at).unwrap_or_else(|_| ulid::Ulid::from_datetime(at));
        self.seal_as(entry, id)
    }

    fn seal_as(&mut self, mut entry: AuditEntry, id: ulid::Ulid) -> Sealed {
        entry.id = id.to_string();
        entry.prev_hash = std::mem::take(&mut self.prev);
        let mut json = Vec::with_capacity(2048);
        entry.write_canonical(&mut json);
        entry.hash = hash_of(&entry.prev_hash, &json);
        self.prev.clone_from(&entry.hash);
        json.pop(); // the closing brace
        json.extend_from_slice(b",\"hash\":\"");
        json.extend_from_slice(entry.hash.as_bytes());
        json.extend_from_slice(b"\"}");
        let json = String::from_utf8(json).expect("serde_json writes UTF-8");
        Sealed { entry, json: json.into() }
    }
}

/// A sealed entry and its stored JSON text (which deserialises to `entry`;
/// shared, so binding it to an INSERT copies nothing).
#[derive(Debug, Clone)]
pub struct Sealed {
    pub entry: AuditEntry,
    pub json: std::sync::Arc<str>,
}

/// The result of checking chains (`GET /api/v1/verify`, `auditgate
/// verify`): `heads` is each instance's newest entry, to keep elsewhere and
/// check later (`auditgate verify --heads FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub checked: u64,
    pub first_bad: Option<String>,
    pub heads: Vec<Head>,
}

/// The newest entry of one instance's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub instance: String,
    pub id: String,
    pub hash: String,
}

/// Checks chains entry by entry, in id order across instances (each
/// instance's chain is in id order): every entry must link to the previous
/// entry of its instance and hash to its `hash`.
#[derive(Debug, Default)]
pub struct ChainCheck {
    /// Per instance: the id and hash of the newest entry seen.
    heads: std::collections::HashMap<String, (String, String)>,
    checked: u64,
    first_bad: Option<String>,
}

impl ChainCheck {
    /// A check of chains whose start was deleted by retention: each goes on
    /// from its checkpoint, the (instance, id, hash) of its newest deleted
    /// entry.
    pub fn from_checkpoints(checkpoints: impl IntoIterator<Item = (String, String, String)>) -> ChainCheck {
        let heads = checkpoints.into_iter().map(|(instance, id, hash)| (instance, (id, hash))).collect();
        ChainCheck { heads, ..ChainCheck::default() }
    }

    /// Checks the next entry; false when it does not link or hash.
    pub fn push(&mut self, e: &AuditEntry) -> bool {
        self.checked += 1;
        let prev = self.heads.get(&e.instance).map_or(GENESIS, |(_, hash)| hash.as_str());
        let good = e.prev_hash == prev && e.compute_hash() == e.hash;
        if !good {
            self.bad(&e.id);
        }
        self.heads.insert(e.instance.clone(), (e.id.clone(), e.hash.clone()));
        good
    }

    /// Records an entry that could not be checked (unreadable, or its
    /// columns disagree with it).
    pub fn bad(&mut self, id: &str) {
        if self.first_bad.is_none() {
            self.first_bad = Some(id.to_string());
        }
    }

    /// Counts an entry `bad` already named.
    pub fn skip(&mut self) {
        self.checked += 1;
    }

    /// The newest hash seen for `instance`.
    pub fn head(&self, instance: &str) -> Option<&str> {
        self.heads.get(instance).map(|(_, hash)| hash.as_str())
    }

    pub fn finish(self) -> Verification {
        let mut heads: Vec<Head> =
            self.heads.into_iter().map(|(instance, (id, hash))| Head { instance, id, hash }).collect();
        heads.sort_by(|a, b| a.instance.cmp(&b.instance));
        Verification { ok: self.first_bad.is_none(), checked: self.checked, first_bad: self.first_bad, heads }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample(n: u32) -> AuditEntry {
        AuditEntry {
            id: String::new(),
            timestamp: format!("2026-11-23T11:02:0{n}.123456Z"),
            request_id: format!("req-{n}"),
            action: "update".into(),
            outcome: Outcome::Success,
            method: "PATCH".into(),
            path: "/api/v1/users/123/".into(),
            query: String::new(),
            status: 200,
            duration_ms: 3.2,
            resource_type: "user".into(),
            resource_id: Some("123".into()),
            parents: vec![Parent { kind: "project".into(), id: "7".into() }],
            actor: "alice".into(),
            actor_source: ActorSource::Jwt,
            actor_verified: false,
            client_ip: "203.0.113.9".into(),
            peer_ip: "127.0.0.1".into(),
            forwarded_for: vec!["203.0.113.9".into()],
            user_agent: Some("curl/8.5.0".into()),
            configuration: None,
            before: Some(json!({"email": "a@x.io", "n": n})),
            after: Some(json!({"email": "b@x.io", "n": n})),
            changes: vec![Change { path: "/email".into(), old: json!("a@x.io"), new: json!("b@x.io") }],
            unapplied: Some(Some(vec![Unapplied {
                path: "/email".into(),
                requested: json!("B@x.io"),
                applied: json!("b@x.io"),
            }])),
            request_body: None,
            snapshot_error: None,
            instance: "gw-1".into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn verify_chain<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Verification {
        let mut check = ChainCheck::default();
        for e in entries {
            check.push(e);
        }
        check.finish()
    }

    fn sealed(n: u32) -> Vec<AuditEntry> {
        let mut chain = Chain::resume(None);
        (0..n).map(|i| chain.seal(sample(i)).entry).collect()
    }

    #[test]
    fn serialises_with_the_spec_names() {
        let v = serde_json::to_value(sealed(1).remove(0)).unwrap();
        for key in [
            "id",
            "timestamp",
            "request_id",
            "action",
            "outcome",
            "method",
            "path",
            "query",
            "status",
            "duration_ms",
            "resource_type",
            "resource_id",
            "parents",
            "actor",
            "actor_source",
            "actor_verified",
            "client_ip",
            "peer_ip",
            "forwarded_for",
            "user_agent",
            "configuration",
            "before",
            "after",
            "changes",
            "unapplied",
            "request_body",
            "snapshot_error",
            "instance",
            "prev_hash",
            "hash",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v["parents"], json!([{"type": "project", "id": "7"}]));
        assert_eq!(v["actor_source"], "jwt");
        assert_eq!(v["outcome"], "success");
    }

    #[test]
    fn a_sealed_chain_verifies_and_ids_increase() {
        let entries = sealed(50);
        assert_eq!(entries[0].prev_hash, GENESIS);
        assert!(entries.windows(2).all(|w| w[0].id < w[1].id && w[1].prev_hash == w[0].hash));
        let last = &entries[49];
        let head = Head { instance: last.instance.clone(), id: last.id.clone(), hash: last.hash.clone() };
        assert_eq!(verify_chain(&entries), Verification { ok: true, checked: 50, first_bad: None, heads: vec![head] });
        // A round trip through JSON text keeps the hash valid.
        let text = serde_json::to_string(&entries).unwrap();
        let back: Vec<AuditEntry> = serde_json::from_str(&text).unwrap();
        assert!(verify_chain(&back).ok);
    }

    #[test]
    fn the_stored_text_is_the_sealed_entry() {
        let mut chain = Chain::resume(None);
        for i in 0..3 {
            let mut e = sample(i);
            e.before = Some(json!({"z": 1, "a": {"q": "\u{e9}\"", "b": [1, 2]}}));
            let sealed = chain.seal(e);
            let back: AuditEntry = serde_json::from_str(&sealed.json).unwrap();
            assert_eq!(back, sealed.entry);
            assert_eq!(back.compute_hash(), back.hash);
        }
    }

    #[test]
    fn the_hash_is_sha256_of_prev_hash_then_the_canonical_entry() {
        // A known answer: the canonical text written out by hand, hashed
        // here without the sealing code.
        let e = AuditEntry { id: "01JD3Z6Q4M5N6P7Q8R9S0T1V2W".into(), prev_hash: GENESIS.into(), ..sample(1) };
        let canonical = concat!(
            r#"{"action":"update","actor":"alice","actor_source":"jwt","actor_verified":false,"#,
            r#""after":{"email":"b@x.io","n":1},"before":{"email":"a@x.io","n":1},"#,
            r#""changes":[{"new":"b@x.io","old":"a@x.io","path":"/email"}],"client_ip":"203.0.113.9","#,
            r#""configuration":null,"duration_ms":3.2,"forwarded_for":["203.0.113.9"],"#,
            r#""id":"01JD3Z6Q4M5N6P7Q8R9S0T1V2W","instance":"gw-1","method":"PATCH","outcome":"success","#,
            r#""parents":[{"id":"7","type":"project"}],"path":"/api/v1/users/123/","peer_ip":"127.0.0.1","#,
            r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","query":"","#,
            r#""request_body":null,"request_id":"req-1","resource_id":"123","resource_type":"user","#,
            r#""snapshot_error":null,"status":200,"timestamp":"2026-11-23T11:02:01.123456Z","#,
            r#""unapplied":[{"applied":"b@x.io","path":"/email","requested":"B@x.io"}],"#,
            r#""user_agent":"curl/8.5.0"}"#
        );
        let mut written = Vec::new();
        e.write_canonical(&mut written);
        assert_eq!(String::from_utf8(written).unwrap(), canonical);
        let mut sha = Sha256::new();
        sha.update(GENESIS.as_bytes());
        sha.update(canonical.as_bytes());
        let expected: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(e.compute_hash(), expected);
        let mut chain = Chain::resume(None);
        let sealed = chain.seal(sample(1));
        assert_eq!(sealed.entry.prev_hash, GENESIS);
        assert_eq!(sealed.entry.hash, sealed.entry.compute_hash());
    }

    #[test]
    fn unapplied_absent_null_or_listed_keeps_its_hash() {
        // Absent is how entries written before the field was added look.
        let mut chain = Chain::resume(None);
        for unapplied in [None, Some(None), Some(Some(vec![])), sample(0).unapplied] {
            let sealed = chain.seal(AuditEntry { unapplied: unapplied.clone(), ..sample(1) });
            assert_eq!(sealed.json.contains("\"unapplied\""), unapplied.is_some(), "{}", sealed.json);
            let back: AuditEntry = serde_json::from_str(&sealed.json).unwrap();
            assert_eq!(back.unapplied, unapplied);
            assert_eq!(back.compute_hash(), back.hash);
        }
    }

    #[test]
    fn tampering_names_the_first_bad_entry() {
        let entries = sealed(10);
        let mut edited = entries.clone();
        edited[4].after = Some(json!({"email": "evil@x.io"}));
        assert_eq!(verify_chain(&edited).first_bad, Some(entries[4].id.clone()));
        let mut deleted = entries.clone();
        deleted.remove(6);
        assert_eq!(verify_chain(&deleted).first_bad, Some(entries[7].id.clone()));
        let mut reordered = entries.clone();
        reordered.swap(2, 3);
        assert_eq!(verify_chain(&reordered).first_bad, Some(entries[3].id.clone()));
        let mut rehashed = entries.clone();
        rehashed[5].actor = "mallory".into();
        rehashed[5].hash = rehashed[5].compute_hash();
        assert_eq!(verify_chain(&rehashed).first_bad, Some(entries[6].id.clone()));
    }

    #[test]
    fn the_direct_canonical_form_equals_the_generic_one() {
        for mut e in [sample(1), sample(2)] {
            e.before = Some(json!({"zeta": 1, "alpha": {"y": [{"b": 1, "a": 2}], "x": null}, "Mid": "é\"\n"}));
            e.request_body = Some(json!({"b": 2.5, "a": -1}));
            e.parents.push(Parent { kind: "org".into(), id: "9".into() });
            let mut value = serde_json::to_value(&e).unwrap();
            value.as_object_mut().unwrap().remove("hash");
            let (mut generic, mut direct) = (Vec::new(), Vec::new());
            write_canonical(&value, &mut generic);
            e.write_canonical(&mut direct);
            assert_eq!(String::from_utf8(direct).unwrap(), String::from_utf8(generic).unwrap());
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let mut out = Vec::new();
        write_canonical(&json!({"b": [{"z": 1, "a": 2}], "a": "x"}), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":"x","b":[{"a":2,"z":1}]}"#);
    }

    #[test]
    fn outcome_from_status() {
        assert_eq!(Outcome::from_status(204), Outcome::Success);
        assert_eq!(Outcome::from_status(302), Outcome::Success);
        assert_eq!(Outcome::from_status(399), Outcome::Success);
        assert_eq!(Outcome::from_status(400), Outcome::Failure);
        assert_eq!(Outcome::from_status(404), Outcome::Failure);
        assert_eq!(Outcome::from_status(503), Outcome::Failure);
        for o in [Outcome::Success, Outcome::Failure, Outcome::Error] {
            assert_eq!(serde_json::json!(o), o.as_str());
        }
    }

    #[test]
    fn a_check_counts_skipped_entries_and_keeps_each_instances_head() {
        let entries = sealed(3);
        let mut check = ChainCheck::default();
        check.push(&entries[0]);
        check.bad(&entries[1].id);
        check.skip();
        assert_eq!(check.head("gw-1"), Some(entries[0].hash.as_str()));
        assert_eq!(check.head("gw-2"), None);
        let verdict = check.finish();
        assert_eq!((verdict.ok, verdict.checked, verdict.first_bad), (false, 2, Some(entries[1].id.clone())));
        assert!(format!("{:?}", Chain::resume(Some("abc".into()))).contains("abc"));
    }
}
