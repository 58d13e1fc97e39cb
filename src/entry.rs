//! `AuditEntry`, the one serialised domain type (docs/trail.md), and the
//! per-instance hash chain that makes editing or deleting entries evident.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diff::Change;
use crate::identity::ActorSource;
use crate::unapplied::Unapplied;

/// The one form of stored times (`timestamp`, configuration times, time
/// filters): RFC 3339 in UTC with microseconds, so text order is time order.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A moment a query names (`since`, `until`, `at`), written as stored
/// times are: RFC 3339 parsed, in UTC, and held within the years 0000 to
/// 9999, where text order is time order (`9999-12-31T23:59:59-23:59` is
/// past the year 9999 in UTC, and written as such would sort before 2026).
/// `None` when it is not RFC 3339.
pub fn query_time(text: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&chrono::Utc);
    let first = chrono::NaiveDate::from_ymd_opt(0, 1, 1)?.and_hms_opt(0, 0, 0)?.and_utc();
    let last = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)?.and_hms_micro_opt(23, 59, 59, 999_999)?.and_utc();
    Some(format_time(t.clamp(first, last)))
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

/// One recorded request. Field names are exact (docs/trail.md).
///
/// The personal fields (`PERSONAL`) are absent from an erased entry's JSON
/// and read back empty; `erased` says so.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    #[serde(default)]
    pub query: String,
    pub status: u16,
    pub duration_ms: f64,
    pub resource_type: String,
    pub resource_id: Option<String>,
    /// The id the request path named, when the resource's own state names
    /// another (`PATCH /users/1.json` of user 1): the entry is filed under
    /// the state's id.
    #[serde(default)]
    pub path_resource_id: Option<String>,
    pub parents: Vec<Parent>,
    #[serde(default)]
    pub actor: String,
    pub actor_source: ActorSource,
    pub actor_verified: bool,
    #[serde(default)]
    pub client_ip: String,
    #[serde(default)]
    pub peer_ip: String,
    #[serde(default)]
    pub forwarded_for: Vec<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    pub configuration: Option<String>,
    #[serde(default)]
    pub before: Option<Value>,
    #[serde(default)]
    pub after: Option<Value>,
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Requested versus applied (docs/trail.md): `Some(Some(list))` (empty when the
    /// app did what was asked), `Some(None)` (`null`: nothing to compare), or
    /// `None` for an entry written before the field existed, which keeps it
    /// out of its JSON and so out of its hash.
    #[serde(default, deserialize_with = "present")]
    pub unapplied: Option<Option<Vec<Unapplied>>>,
    #[serde(default)]
    pub request_body: Option<Value>,
    pub snapshot_error: Option<String>,
    /// How the snapshots were read; absent on an entry with no snapshot.
    #[serde(default)]
    pub snapshot_format: Option<SnapshotFormat>,
    pub instance: String,
    /// `Some(2)` from chain version 2 on (the hash covers `content_digest`
    /// instead of the personal fields); `None` for the entries before it.
    #[serde(default)]
    pub chain_version: Option<u8>,
    /// SHA-256 (hex) of the personal fields' canonical JSON (version 2).
    #[serde(default)]
    pub content_digest: Option<String>,
    /// The personal fields were erased (`auditgate erase`); the digest
    /// still stands for them.
    #[serde(default)]
    pub erased: bool,
    /// On an erasure's own entry: what it selected and how many entries
    /// it erases, sealed (the hash covers it), so that `verify` counts on
    /// nothing erasable.
    #[serde(default)]
    pub erasure: Option<ErasureSeal>,
    pub prev_hash: String,
    pub hash: String,
}

/// The fields that hold personal content (docs/personal-data.md): what the
/// content digest covers and what erasure removes.
pub const PERSONAL: [&str; 11] = [
    "actor",
    "after",
    "before",
    "changes",
    "client_ip",
    "forwarded_for",
    "peer_ip",
    "query",
    "request_body",
    "unapplied",
    "user_agent",
];

/// How a snapshot's answer was read into the entry's state (docs/trail.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotFormat {
    Json,
    /// An HTML page's form controls.
    Form,
    /// An HTML page's named elements (`fields`).
    Html,
    Xml,
}

/// What an erasure's own entry seals (docs/personal-data.md): the kind of its
/// selector (`actor`, `resource`, `client_ip`), the resource it named, the
/// prefix length of an address range, and its counts. Fields in sorted
/// order: this is its canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureSeal {
    /// Entries it erases (counted before it erases any).
    pub erased: u64,
    /// A range wider than the bound was asked for with `force`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
    /// Entries of chain version 1 it leaves.
    pub not_erasable: u64,
    /// An address selector's prefix length (32 or 128 for one address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
    /// A resource selector's `TYPE/ID` (the entries keep both anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub selector: String,
}

/// The chain version entries are sealed with now.
pub const CHAIN_VERSION: u8 = 2;

/// A field that is present, possibly `null`: `Some(None)`, not `None`.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl AuditEntry {
    /// SHA-256 (hex) over `prev_hash` and the canonical JSON the entry's
    /// chain version covers: from version 2 the entry without `hash`,
    /// `erased` and the personal fields (so with `content_digest`); before
    /// it, the entry without `hash`. Object keys sorted at every depth, no
    /// spaces.
    pub fn compute_hash(&self) -> String {
        let mut canonical = Vec::with_capacity(2048);
        match self.chain_version {
            None => self.write_canonical_v1(&mut canonical),
            Some(_) => self.write_sealed_part(&mut canonical),
        }
        hash_of(&self.prev_hash, &canonical)
    }

    /// SHA-256 (hex) of the canonical JSON of an object holding exactly
    /// the personal fields (`PERSONAL`): the content digest.
    pub fn personal_digest(&self) -> String {
        let mut canonical = Vec::with_capacity(2048);
        self.write_personal(&mut canonical);
        hex(&Sha256::digest(&canonical))
    }

    /// Whether the entry is as it was sealed: its hash holds and, where its
    /// personal content is still there, so does its digest; an entry marked
    /// erased holds no personal field at all. An erased entry of chain
    /// version 1 never is (its hash covered what was removed); an unknown
    /// version neither; nor an entry of version 1 with a version-2 field.
    pub fn is_intact(&self) -> bool {
        match self.chain_version {
            None => {
                !self.erased
                    && self.content_digest.is_none()
                    && self.erasure.is_none()
                    && self.compute_hash() == self.hash
            }
            Some(CHAIN_VERSION) => {
                self.compute_hash() == self.hash
                    && if self.erased {
                        self.holds_no_personal_field()
                    } else {
                        self.content_digest.as_deref() == Some(self.personal_digest().as_str())
                    }
            }
            Some(_) => false,
        }
    }

    /// Every personal field is empty, as erasure leaves it.
    fn holds_no_personal_field(&self) -> bool {
        self.actor.is_empty()
            && self.client_ip.is_empty()
            && self.peer_ip.is_empty()
            && self.forwarded_for.is_empty()
            && self.user_agent.is_none()
            && self.query.is_empty()
            && self.before.is_none()
            && self.after.is_none()
            && self.changes.is_empty()
            && self.unapplied.is_none()
            && self.request_body.is_none()
    }

    /// How many entries an erasure's intact entry says it erases: its
    /// sealed count, or on an erasure's entry from before the seal, the
    /// count in its `after` (which its digest covers: an intact entry with
    /// an `after` is not erased, so the digest was checked).
    fn erasure_count(&self) -> u64 {
        match &self.erasure {
            Some(seal) => seal.erased,
            None => self.after.as_ref().and_then(|a| a.get("erased")).and_then(Value::as_u64).unwrap_or(0),
        }
    }

    /// Removes the personal content (docs/personal-data.md), keeping the
    /// digest that stands for it; false (and nothing removed) for an entry
    /// of chain version 1, whose hash covers that content.
    pub fn erase(&mut self) -> bool {
        if self.chain_version.is_none() {
            return false;
        }
        self.actor.clear();
        self.client_ip.clear();
        self.peer_ip.clear();
        self.forwarded_for = Vec::new();
        self.user_agent = None;
        self.query.clear();
        self.before = None;
        self.after = None;
        self.changes = Vec::new();
        self.unapplied = None;
        self.request_body = None;
        self.erased = true;
        true
    }

    /// The canonical JSON of an entry of chain version 1: the entry as
    /// served (`Wire`: such an entry has no version-2 field, and
    /// `unapplied` only when it had one) without `hash`, keys sorted. Read
    /// through a `Value`: only old entries are checked this way, never
    /// sealed.
    pub fn write_canonical_v1(&self, out: &mut Vec<u8>) {
        let mut value = serde_json::to_value(self).expect("an entry serialises");
        value.as_object_mut().expect("an entry is an object").remove("hash");
        write_canonical(&value, out);
    }

    /// The canonical JSON the hash covers from chain version 2: every
    /// field but `hash`, `erased` and the personal ones.
    fn write_sealed_part(&self, out: &mut Vec<u8>) {
        let view = CanonicalSealed {
            action: &self.action,
            actor_source: self.actor_source,
            actor_verified: self.actor_verified,
            chain_version: self.chain_version,
            configuration: &self.configuration,
            content_digest: &self.content_digest,
            duration_ms: self.duration_ms,
            erasure: &self.erasure,
            id: &self.id,
            instance: &self.instance,
            method: &self.method,
            outcome: self.outcome,
            parents: self.canonical_parents(),
            path: &self.path,
            path_resource_id: &self.path_resource_id,
            prev_hash: &self.prev_hash,
            request_id: &self.request_id,
            resource_id: &self.resource_id,
            resource_type: &self.resource_type,
            snapshot_error: &self.snapshot_error,
            snapshot_format: self.snapshot_format,
            status: self.status,
            timestamp: &self.timestamp,
        };
        serde_json::to_writer(out, &view).expect("writing to a Vec");
    }

    /// The canonical JSON of the personal fields, the digest's input.
    fn write_personal(&self, out: &mut Vec<u8>) {
        let view = CanonicalPersonal {
            actor: &self.actor,
            after: &self.after,
            before: &self.before,
            changes: self.canonical_changes(),
            client_ip: &self.client_ip,
            forwarded_for: &self.forwarded_for,
            peer_ip: &self.peer_ip,
            query: &self.query,
            request_body: &self.request_body,
            unapplied: self.unapplied.as_ref().and_then(|list| list.as_ref().map(|l| canonical_unapplied(l))),
            user_agent: &self.user_agent,
        };
        serde_json::to_writer(out, &view).expect("writing to a Vec");
    }

    fn canonical_changes(&self) -> Vec<CanonicalChange<'_>> {
        self.changes.iter().map(|c| CanonicalChange { new: &c.new, old: &c.old, path: &c.path }).collect()
    }

    fn canonical_parents(&self) -> Vec<CanonicalParent<'_>> {
        self.parents.iter().map(|p| CanonicalParent { id: &p.id, kind: &p.kind }).collect()
    }
}

fn canonical_unapplied(list: &[Unapplied]) -> Vec<CanonicalUnapplied<'_>> {
    list.iter().map(|u| CanonicalUnapplied { applied: &u.applied, path: &u.path, requested: &u.requested }).collect()
}

/// An entry's JSON, fields in sorted order: an erased entry's without its
/// personal fields, an entry of chain version 1 without the fields it
/// did not have.
impl Serialize for AuditEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire {
            action: &self.action,
            actor: self.personal(&self.actor),
            actor_source: self.actor_source,
            actor_verified: self.actor_verified,
            after: self.personal(&self.after),
            before: self.personal(&self.before),
            chain_version: self.chain_version,
            changes: self.personal(&self.changes),
            client_ip: self.personal(&self.client_ip),
            configuration: &self.configuration,
            content_digest: &self.content_digest,
            duration_ms: self.duration_ms,
            erased: self.erased,
            erasure: &self.erasure,
            forwarded_for: self.personal(&self.forwarded_for),
            hash: &self.hash,
            id: &self.id,
            instance: &self.instance,
            method: &self.method,
            outcome: self.outcome,
            parents: &self.parents,
            path: &self.path,
            path_resource_id: &self.path_resource_id,
            peer_ip: self.personal(&self.peer_ip),
            prev_hash: &self.prev_hash,
            query: self.personal(&self.query),
            request_body: self.personal(&self.request_body),
            request_id: &self.request_id,
            resource_id: &self.resource_id,
            resource_type: &self.resource_type,
            snapshot_error: &self.snapshot_error,
            snapshot_format: self.snapshot_format,
            status: self.status,
            timestamp: &self.timestamp,
            unapplied: self.personal(&self.unapplied).and_then(Option::as_ref),
            user_agent: self.personal(&self.user_agent),
        }
        .serialize(serializer)
    }
}

impl AuditEntry {
    /// A personal field as served: none once erased.
    fn personal<'a, T>(&self, field: &'a T) -> Option<&'a T> {
        (!self.erased).then_some(field)
    }
}

/// `AuditEntry` as served and exported.
#[derive(Serialize)]
struct Wire<'a> {
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a String>,
    actor_source: ActorSource,
    actor_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<&'a Option<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<&'a Option<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain_version: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a Vec<Change>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<&'a String>,
    configuration: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_digest: &'a Option<String>,
    duration_ms: f64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    erased: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    erasure: &'a Option<ErasureSeal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forwarded_for: Option<&'a Vec<String>>,
    hash: &'a str,
    id: &'a str,
    instance: &'a str,
    method: &'a str,
    outcome: Outcome,
    parents: &'a [Parent],
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_resource_id: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_ip: Option<&'a String>,
    prev_hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body: Option<&'a Option<Value>>,
    request_id: &'a str,
    resource_id: &'a Option<String>,
    resource_type: &'a str,
    snapshot_error: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_format: Option<SnapshotFormat>,
    status: u16,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unapplied: Option<&'a Option<Vec<Unapplied>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a Option<String>>,
}

/// What the hash covers from chain version 2, fields in sorted order.
#[derive(Serialize)]
struct CanonicalSealed<'a> {
    action: &'a str,
    actor_source: ActorSource,
    actor_verified: bool,
    chain_version: Option<u8>,
    configuration: &'a Option<String>,
    content_digest: &'a Option<String>,
    duration_ms: f64,
    /// Absent but on an erasure's entry, so the entries before the field
    /// keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    erasure: &'a Option<ErasureSeal>,
    id: &'a str,
    instance: &'a str,
    method: &'a str,
    outcome: Outcome,
    parents: Vec<CanonicalParent<'a>>,
    path: &'a str,
    /// Absent unless the path named another id than the state (entries
    /// before the field keep their hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    path_resource_id: &'a Option<String>,
    prev_hash: &'a str,
    request_id: &'a str,
    resource_id: &'a Option<String>,
    resource_type: &'a str,
    snapshot_error: &'a Option<String>,
    /// Absent on an entry with no snapshot (and on those before the field).
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_format: Option<SnapshotFormat>,
    status: u16,
    timestamp: &'a str,
}

/// The personal fields (`PERSONAL`), in sorted order: what the content
/// digest covers.
#[derive(Serialize)]
struct CanonicalPersonal<'a> {
    actor: &'a str,
    after: &'a Option<Value>,
    before: &'a Option<Value>,
    changes: Vec<CanonicalChange<'a>>,
    client_ip: &'a str,
    forwarded_for: &'a [String],
    peer_ip: &'a str,
    query: &'a str,
    request_body: &'a Option<Value>,
    unapplied: Option<Vec<CanonicalUnapplied<'a>>>,
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
pub(crate) fn hex(bytes: &[u8]) -> String {
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

    /// Gives the entry its id, `prev_hash`, chain version, content digest
    /// and `hash`, and returns it with the JSON text the store keeps: the
    /// canonical form the hash covers, the personal fields (the digest's
    /// canonical form) and `hash`, so each part is serialised once.
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
        entry.chain_version = Some(CHAIN_VERSION);
        entry.erased = false;
        // Version 2 always has `unapplied`, `null` when not compared.
        entry.unapplied.get_or_insert(None);
        let mut personal = Vec::with_capacity(2048);
        entry.write_personal(&mut personal);
        entry.content_digest = Some(hex(&Sha256::digest(&personal)));
        let mut json = Vec::with_capacity(personal.len() + 1024);
        entry.write_sealed_part(&mut json);
        entry.hash = hash_of(&entry.prev_hash, &json);
        self.prev.clone_from(&entry.hash);
        // Stored: the sealed part, the personal fields, then the hash.
        json.pop(); // the closing brace
        json.push(b',');
        json.extend_from_slice(&personal[1..personal.len() - 1]);
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
    /// Entries checked whose personal content was erased (their digests
    /// stand for it).
    pub erased: u64,
    /// Erased entries no erasure's entry accounts for (each erasure records
    /// how many it erases, before it does): erased behind the trail's back.
    #[serde(skip_serializing_if = "is_zero")]
    pub erased_unrecorded: u64,
    pub first_bad: Option<String>,
    pub heads: Vec<Head>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    erased: u64,
    /// What the intact erasures' entries say they erase, summed.
    erasures_recorded: u64,
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
        let record = erasure_record::is_record(e);
        // An erasure's own entry is never erased: its count must stand.
        let good = e.prev_hash == prev && e.is_intact() && !(record && e.erased);
        self.erased += u64::from(e.erased);
        if good && record {
            self.erasures_recorded += e.erasure_count();
        }
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
        let erased_unrecorded = self.erased.saturating_sub(self.erasures_recorded);
        Verification {
            ok: self.first_bad.is_none() && erased_unrecorded == 0,
            checked: self.checked,
            erased: self.erased,
            erased_unrecorded,
            first_bad: self.first_bad,
            heads,
        }
    }
}

/// An enclosing resource, outermost first (`project 7` in `/projects/7/tasks/9`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// How an erasure's own entry is known (the erasure module writes it).
pub mod erasure_record {
    /// An erasure's own entry: its `action`, `resource_type` and `path` (the
    /// query port's, also for the command line).
    pub const ACTION: &str = "erase";
    pub const RESOURCE_TYPE: &str = "erasure";
    pub const PATH: &str = "/api/v1/erasures";

    /// Whether `e` is an erasure's own entry, and so how many entries it
    /// erases counts toward those `verify` allows to be erased.
    pub fn is_record(e: &super::AuditEntry) -> bool {
        e.action == ACTION && e.resource_type == RESOURCE_TYPE && e.path == PATH
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
            path_resource_id: None,
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
            snapshot_format: None,
            instance: "gw-1".into(),
            chain_version: None,
            content_digest: None,
            erased: false,
            erasure: None,
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
        assert_eq!(
            verify_chain(&entries),
            Verification { ok: true, checked: 50, erased: 0, erased_unrecorded: 0, first_bad: None, heads: vec![head] }
        );
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
            assert!(back.is_intact());
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
        e.write_canonical_v1(&mut written);
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
        // Absent is how entries written before the field was added look
        // (chain version 1); from version 2 it is always there.
        let mut chain = Chain::resume(None);
        for unapplied in [None, Some(None), Some(Some(vec![])), sample(0).unapplied] {
            let sealed = chain.seal(AuditEntry { unapplied: unapplied.clone(), ..sample(1) });
            assert!(sealed.json.contains("\"unapplied\""), "{}", sealed.json);
            let back: AuditEntry = serde_json::from_str(&sealed.json).unwrap();
            assert_eq!(back.unapplied, unapplied.or(Some(None)));
            assert!(back.is_intact());
        }
        let mut old = AuditEntry { unapplied: None, prev_hash: GENESIS.into(), ..sample(1) };
        old.hash = old.compute_hash();
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("\"unapplied\"") && !text.contains("chain_version"), "{text}");
        let back: AuditEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, old);
        assert!(back.is_intact());
    }

    #[test]
    fn version_2_hashes_the_digest_of_the_personal_fields_instead_of_them() {
        // Known answers: both canonical texts written out by hand.
        let mut chain = Chain::resume(None);
        let sealed = chain.seal(sample(1)).entry;
        let personal = concat!(
            r#"{"actor":"alice","after":{"email":"b@x.io","n":1},"before":{"email":"a@x.io","n":1},"#,
            r#""changes":[{"new":"b@x.io","old":"a@x.io","path":"/email"}],"client_ip":"203.0.113.9","#,
            r#""forwarded_for":["203.0.113.9"],"peer_ip":"127.0.0.1","query":"","request_body":null,"#,
            r#""unapplied":[{"applied":"b@x.io","path":"/email","requested":"B@x.io"}],"user_agent":"curl/8.5.0"}"#
        );
        let digest = hex(&Sha256::digest(personal.as_bytes()));
        assert_eq!(sealed.content_digest.as_deref(), Some(digest.as_str()));
        assert_eq!(sealed.chain_version, Some(2));
        let rest = format!(
            concat!(
                r#"{{"action":"update","actor_source":"jwt","actor_verified":false,"chain_version":2,"#,
                r#""configuration":null,"content_digest":"{}","duration_ms":3.2,"id":"{}","instance":"gw-1","#,
                r#""method":"PATCH","outcome":"success","parents":[{{"id":"7","type":"project"}}],"#,
                r#""path":"/api/v1/users/123/","prev_hash":"{}","request_id":"req-1","resource_id":"123","#,
                r#""resource_type":"user","snapshot_error":null,"status":200,"#,
                r#""timestamp":"2026-11-23T11:02:01.123456Z"}}"#
            ),
            digest, sealed.id, GENESIS
        );
        assert_eq!(sealed.hash, hash_of(GENESIS, rest.as_bytes()));
        assert_eq!(PERSONAL.len(), serde_json::from_str::<Value>(personal).unwrap().as_object().unwrap().len());
    }

    #[test]
    fn an_erased_entry_keeps_its_hash_and_shows_no_personal_field() {
        let mut chain = Chain::resume(None);
        let sealed = chain.seal(sample(1));
        let mut erased = sealed.entry.clone();
        assert!(erased.erase());
        assert!(erased.is_intact());
        let text = serde_json::to_string(&erased).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        for key in PERSONAL {
            assert!(v.get(key).is_none(), "{key} still in {text}");
        }
        assert_eq!(v["erased"], true);
        assert_eq!(v["content_digest"], json!(sealed.entry.content_digest));
        for gone in ["alice", "203.0.113.9", "a@x.io", "b@x.io", "curl"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        let back: AuditEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, erased);
        assert!(back.is_intact());
        // Not erased: nothing hidden, and `erased` is not written.
        let whole = serde_json::to_string(&sealed.entry).unwrap();
        assert!(!whole.contains("erased") && whole.contains("alice"), "{whole}");
    }

    #[test]
    fn content_put_back_altered_or_a_changed_digest_is_caught() {
        let mut chain = Chain::resume(None);
        let good = chain.seal(sample(1)).entry;
        let mut erased = good.clone();
        erased.erase();
        // Put back, but altered.
        let mut back = AuditEntry { erased: false, actor: "mallory".into(), ..good.clone() };
        assert!(!back.is_intact());
        back.actor = good.actor.clone();
        assert!(back.is_intact());
        // Put back whole, still marked erased: intact (the digest is not
        // checked on what claims to be erased, and nothing is hidden wrongly).
        let mut digest = erased.clone();
        digest.content_digest = Some(GENESIS.into());
        assert!(!digest.is_intact());
        // Version 1 entries cannot be erased; one marked erased is bad.
        let mut old = AuditEntry { prev_hash: GENESIS.into(), ..sample(1) };
        old.hash = old.compute_hash();
        assert!(old.is_intact());
        assert!(!old.clone().erase());
        assert!(!AuditEntry { erased: true, ..old.clone() }.is_intact());
        assert!(!AuditEntry { content_digest: Some(GENESIS.into()), ..old.clone() }.is_intact());
        assert!(!AuditEntry { chain_version: Some(3), ..good.clone() }.is_intact());
        assert!(!AuditEntry { chain_version: Some(3), ..erased.clone() }.is_intact());
    }

    #[test]
    fn a_check_counts_erased_entries_and_holds_them_to_the_erasures_recorded() {
        let mut chain = Chain::resume(None);
        let mut entries: Vec<AuditEntry> = (0..4).map(|i| chain.seal(sample(i)).entry).collect();
        let erasure = |n: u64| AuditEntry {
            action: erasure_record::ACTION.into(),
            resource_type: erasure_record::RESOURCE_TYPE.into(),
            path: erasure_record::PATH.into(),
            after: Some(json!({"erased": n})),
            ..sample(9)
        };
        entries.push(chain.seal(erasure(1)).entry);
        entries[1].erase();
        // One erased, one recorded.
        let v = verify_chain(&entries);
        assert!(v.ok, "{v:?}");
        assert_eq!((v.checked, v.erased, v.erased_unrecorded), (5, 1, 0));
        // Another erased behind the trail's back.
        entries[3].erase();
        let v = verify_chain(&entries);
        assert_eq!((v.ok, v.first_bad.as_deref(), v.erased_unrecorded), (false, None, 1), "{v:?}");
        // Recorded later: intact again. Not an erasure's entry: no count.
        entries.push(chain.seal(AuditEntry { action: "update".into(), ..erasure(5) }).entry);
        // Nor an app's own resource that looks like one (a proxied request).
        entries.push(chain.seal(AuditEntry { path: "/api/erasures/3/erase".into(), ..erasure(5) }).entry);
        assert_eq!(verify_chain(&entries).erased_unrecorded, 1);
        entries.push(chain.seal(erasure(1)).entry);
        let v = verify_chain(&entries);
        assert!(v.ok, "{v:?}");
        assert_eq!((v.checked, v.erased), (8, 2));
        // Its count altered: the erasure's entry itself fails.
        let mut altered = entries.clone();
        altered[7].after = Some(json!({"erased": 9}));
        assert_eq!(verify_chain(&altered).first_bad, Some(entries[7].id.clone()));
        let mut entries = sealed(4);
        entries[2].erase();
        entries[2].path = "/api/v1/users/9/".into();
        let v = verify_chain(&entries);
        assert_eq!(v.first_bad, Some(entries[2].id.clone()));
    }

    #[test]
    fn forged_erasure_counts_and_entries_erased_in_name_only_are_caught() {
        let mut chain = Chain::resume(None);
        let mut entries: Vec<AuditEntry> = (0..3).map(|i| chain.seal(sample(i)).entry).collect();
        let seal = |erased| ErasureSeal {
            erased,
            forced: false,
            not_erasable: 0,
            prefix_len: None,
            resource: None,
            selector: "actor".into(),
        };
        let record = |after: u64, sealed: u64| AuditEntry {
            action: erasure_record::ACTION.into(),
            resource_type: erasure_record::RESOURCE_TYPE.into(),
            path: erasure_record::PATH.into(),
            after: Some(json!({"erased": after})),
            erasure: Some(seal(sealed)),
            ..sample(9)
        };
        entries.push(chain.seal(record(1, 1)).entry);
        entries[0].erase();
        assert!(verify_chain(&entries).ok);
        // The probe: the erasure's own entry marked erased with its `after`
        // count raised, then two more entries stripped and marked erased.
        let mut forged = entries.clone();
        forged[3].erased = true;
        forged[3].after = Some(json!({"erased": 1000}));
        forged[1].erase();
        forged[2].erase();
        let v = verify_chain(&forged);
        assert_eq!((v.ok, v.first_bad.as_deref()), (false, Some(entries[3].id.as_str())), "{v:?}");
        // Erased properly (no personal field left), still an erasure's entry.
        forged[3].erase();
        assert_eq!(verify_chain(&forged).first_bad.as_deref(), Some(entries[3].id.as_str()));
        // Its `after` raised, not marked erased: the digest fails.
        let mut raised = entries.clone();
        raised[3].after = Some(json!({"erased": 1000}));
        assert_eq!(verify_chain(&raised).first_bad.as_deref(), Some(entries[3].id.as_str()));
        // Its sealed count raised: the hash fails.
        let mut raised = entries.clone();
        raised[3].erasure = Some(seal(1000));
        assert_eq!(verify_chain(&raised).first_bad.as_deref(), Some(entries[3].id.as_str()));
        // The count comes from the seal, not from `after`: a record whose
        // `after` says more than its seal allows no more.
        let mut chain = Chain::resume(None);
        let mut two: Vec<AuditEntry> = (0..2).map(|i| chain.seal(sample(i)).entry).collect();
        two.push(chain.seal(record(2, 1)).entry);
        two[0].erase();
        two[1].erase();
        assert_eq!(verify_chain(&two).erased_unrecorded, 1);
        // An entry marked erased that still holds a personal field, any one.
        for field in PERSONAL {
            let mut kept = entries.clone();
            let e = &mut kept[1];
            let original = e.clone();
            e.erase();
            match field {
                "actor" => e.actor = original.actor,
                "after" => e.after = original.after,
                "before" => e.before = original.before,
                "changes" => e.changes = original.changes,
                "client_ip" => e.client_ip = original.client_ip,
                "forwarded_for" => e.forwarded_for = original.forwarded_for,
                "peer_ip" => e.peer_ip = original.peer_ip,
                "query" => e.query = "q=1".into(),
                "request_body" => e.request_body = Some(json!({"x": 1})),
                "unapplied" => e.unapplied = Some(None),
                "user_agent" => e.user_agent = Some("curl".into()),
                other => panic!("a personal field this test does not know: {other}"),
            }
            assert!(!kept[1].is_intact(), "{field} kept on an erased entry");
            assert_eq!(verify_chain(&kept).first_bad.as_deref(), Some(entries[1].id.as_str()), "{field}");
        }
    }

    #[test]
    fn an_entry_of_version_1_with_a_version_2_field_is_never_intact() {
        let mut old = sample(1);
        old.id = ulid::Ulid::new().to_string();
        old.prev_hash = GENESIS.into();
        old.hash = old.compute_hash();
        assert!(old.is_intact(), "version 1, as written then");
        let seal = ErasureSeal {
            erased: 1,
            forced: false,
            not_erasable: 0,
            prefix_len: None,
            resource: None,
            selector: "actor".into(),
        };
        // Each made to hash, as someone rewriting the row would.
        let rehashed = |mut e: AuditEntry| {
            e.hash = e.compute_hash();
            e
        };
        let digest = rehashed(AuditEntry { content_digest: Some("0".repeat(64)), ..old.clone() });
        let sealed = rehashed(AuditEntry { erasure: Some(seal), ..old.clone() });
        let erased = rehashed(AuditEntry { erased: true, ..old.clone() });
        for (what, e) in [("a digest", digest), ("an erasure's seal", sealed), ("erased", erased)] {
            assert!(!e.is_intact(), "version 1 with {what}");
        }
    }

    #[test]
    fn an_erasures_sealed_count_is_what_it_may_erase_and_an_older_ones_after_is() {
        let record = |after: serde_json::Value, sealed: Option<u64>| AuditEntry {
            action: erasure_record::ACTION.into(),
            resource_type: erasure_record::RESOURCE_TYPE.into(),
            path: erasure_record::PATH.into(),
            after: Some(after),
            erasure: sealed.map(|erased| ErasureSeal {
                erased,
                forced: false,
                not_erasable: 0,
                prefix_len: None,
                resource: None,
                selector: "actor".into(),
            }),
            ..sample(9)
        };
        for (sealed, legacy) in [(Some(3), None), (None, Some(3))] {
            let mut chain = Chain::resume(None);
            let mut entries: Vec<AuditEntry> = (0..3).map(|i| chain.seal(sample(i)).entry).collect();
            let after = json!({"erased": legacy.unwrap_or(0)});
            entries.push(chain.seal(record(after, sealed)).entry);
            for e in &mut entries[..3] {
                e.erase();
            }
            let v = verify_chain(&entries);
            assert_eq!((v.ok, v.erased, v.erased_unrecorded), (true, 3, 0), "{sealed:?} {legacy:?}: {v:?}");
            assert_eq!(entries[3].erasure_count(), 3);
        }
        // An erased record counts nothing (and fails on its own).
        let mut chain = Chain::resume(None);
        let mut gone = chain.seal(record(json!({"erased": 5}), None)).entry;
        gone.erase();
        assert_eq!(gone.erasure_count(), 0);
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
        rehashed[5].resource_id = Some("9".into());
        rehashed[5].hash = rehashed[5].compute_hash();
        assert_eq!(verify_chain(&rehashed).first_bad, Some(entries[6].id.clone()));
        // A personal field is covered by the digest the hash covers.
        let mut personal = entries.clone();
        personal[5].actor = "mallory".into();
        personal[5].hash = personal[5].compute_hash();
        assert_eq!(verify_chain(&personal).first_bad, Some(entries[5].id.clone()));
    }

    #[test]
    fn the_direct_canonical_form_equals_the_generic_one() {
        for mut e in [sample(1), sample(2)] {
            e.before = Some(json!({"zeta": 1, "alpha": {"y": [{"b": 1, "a": 2}], "x": null}, "Mid": "é\"\n"}));
            e.request_body = Some(json!({"b": 2.5, "a": -1}));
            e.parents.push(Parent { kind: "org".into(), id: "9".into() });
            // Version 2: the sealed part and the personal fields, apart.
            let sealed = Chain::resume(None).seal(e).entry;
            let mut rest = serde_json::to_value(&sealed).unwrap();
            let rest_map = rest.as_object_mut().unwrap();
            rest_map.remove("hash");
            let personal: serde_json::Map<String, Value> =
                PERSONAL.iter().map(|k| (k.to_string(), rest_map.remove(*k).unwrap())).collect();
            for (value, direct) in [
                (rest, AuditEntry::write_sealed_part as fn(&AuditEntry, &mut Vec<u8>)),
                (Value::Object(personal), AuditEntry::write_personal),
            ] {
                let (mut generic, mut written) = (Vec::new(), Vec::new());
                write_canonical(&value, &mut generic);
                direct(&sealed, &mut written);
                assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(generic).unwrap());
            }
        }
    }

    #[test]
    fn a_query_time_is_utc_within_the_years_text_order_keeps() {
        assert_eq!(query_time("2026-12-07T12:00:00+01:00").as_deref(), Some("2026-12-07T11:00:00.000000Z"));
        assert_eq!(query_time("9999-12-31T23:59:59-23:59").as_deref(), Some("9999-12-31T23:59:59.999999Z"));
        assert_eq!(query_time("0000-01-01T00:00:00+23:59").as_deref(), Some("0000-01-01T00:00:00.000000Z"));
        assert_eq!(query_time("9999-12-31T23:59:59.999999Z").as_deref(), Some("9999-12-31T23:59:59.999999Z"));
        assert_eq!(query_time("monday"), None);
        assert!(query_time("9999-12-31T23:59:59-23:59").unwrap() > query_time("2026-01-01T00:00:00Z").unwrap());
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
