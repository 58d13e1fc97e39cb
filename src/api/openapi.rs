//! The OpenAPI 3.1 document of the query API, made here from the code it
//! describes: the filters are the store's (`Filter::FIELDS`), the page
//! bounds the listing's, the enums the domain types' own values, the
//! actions this instance's; tests hold its paths to the routes, its
//! schemas' properties to the serialised domain types, and schemathesis
//! holds the answers to it.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::entry::{CHAIN_VERSION, Outcome, PERSONAL, SnapshotFormat};
use crate::identity::ActorSource;
use crate::policy::{Capture, Kind, Source};
use crate::pseudonym::MIN_KEY_BYTES;
use crate::store::{FILTERS, MAX_FILTER_CHARS};

/// The document, its `Action` schema listing exactly the actions a
/// configuration may name here (the built-ins and resources.toml's own).
pub fn document(actions: &HashSet<String>) -> String {
    let mut names: Vec<&str> = actions.iter().map(String::as_str).collect();
    names.sort_unstable();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "auditgate query API",
            "version": "1",
            "description": "The query port of auditgate: the audit trail, its verification and the audit \
                configurations. Errors are `{\"error\": \"…\", \"field\": \"…\"}`.",
        },
        "security": [{}, {"bearer": []}],
        "paths": with_browser_refusals(paths()),
        "components": {
            "schemas": schemas(&names),
            "parameters": parameters(),
            "responses": responses(),
            "securitySchemes": {"bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "Needed when `[query] tokens` are configured; `read` tokens may not change \
                    configurations.",
            }},
        },
    })
    .to_string()
}

/// An object of these members, in order.
fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(members.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn parameter(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn response(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

/// A JSON answer of `body` described as `description`.
fn ok_json(body: Value, description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": body}}})
}

/// The names serde gives these values.
fn names<T: serde::Serialize>(values: &[T]) -> Value {
    values.iter().map(|v| serde_json::to_value(v).expect("an enum serialises")).collect()
}

fn outcomes() -> Value {
    [Outcome::Success, Outcome::Failure, Outcome::Error].map(Outcome::as_str).to_vec().into()
}

/// The filters of a listing, as parameter references.
fn filters() -> Vec<Value> {
    FILTERS.iter().map(|f| parameter(f)).collect()
}

fn parameters() -> Value {
    let query = |name: &str, description: Option<&str>, schema: Value| {
        let mut p = json!({"name": name, "in": "query", "required": false, "schema": schema});
        if let Some(d) = description {
            p["description"] = d.into();
        }
        p
    };
    let text = |name: &str, description: &str| {
        query(name, Some(description), json!({"type": "string", "maxLength": MAX_FILTER_CHARS}))
    };
    let path = |description: Option<&str>| {
        let mut p = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
        if let Some(d) = description {
            p["description"] = d.into();
        }
        p
    };
    let mut all = Map::new();
    for f in FILTERS {
        let p = match f {
            "action" => text(f, "Exact action (create, update, delete, read, login or a custom action)."),
            "resource_type" => text(f, "Exact resource type."),
            "resource_id" => text(f, "Exact resource id."),
            "actor" => text(f, "Exact actor name."),
            "configuration" => text(f, "Name of the configuration that caused the entry."),
            "instance" => text(f, "The instance that wrote the entry."),
            "q" => text(f, "Text contained in the path or the changes."),
            "client_ip" => query(f, Some("Client address, or a CIDR range containing it."), schema("IpOrRange")),
            "outcome" => query(f, None, json!({"type": "string", "enum": outcomes()})),
            "status" => query(
                f,
                Some("The HTTP status the client got."),
                json!({"type": "integer", "minimum": 100, "maximum": 599}),
            ),
            "since" => query(
                f,
                Some("Entries at or after this time (RFC 3339)."),
                json!({"type": "string", "format": "date-time"}),
            ),
            "until" => query(
                f,
                Some("Entries at or before this time (RFC 3339)."),
                json!({"type": "string", "format": "date-time"}),
            ),
            "unapplied" => query(
                f,
                Some("true: entries whose request asked for something the app did not apply; false: the others."),
                json!({"type": "boolean"}),
            ),
            other => unreachable!("filter `{other}` has no description here"),
        };
        all.insert(f.to_string(), p);
    }
    let (default, max) = (super::logs::DEFAULT_LIMIT, super::logs::MAX_LIMIT);
    all.insert(
        "limit".into(),
        query("limit", None, json!({"type": "integer", "minimum": 1, "maximum": max, "default": default})),
    );
    all.insert("cursor".into(), query("cursor", Some("`next_cursor` of the previous page."), schema("Ulid")));
    let history = super::logs::HISTORY_LIMIT;
    all.insert(
        "history_limit".into(),
        query("limit", None, json!({"type": "integer", "minimum": 1, "maximum": max, "default": history})),
    );
    all.insert(
        "format".into(),
        query("format", None, json!({"type": "string", "enum": ["ndjson", "csv"], "default": "ndjson"})),
    );
    all.insert(
        "pseudonymize".into(),
        query(
            "pseudonymize",
            Some("true: actors and client addresses replaced by keyed hashes (HMAC-SHA256)."),
            json!({"type": "boolean", "default": false}),
        ),
    );
    all.insert(
        "pseudonym_key".into(),
        json!({"name": "X-Auditgate-Pseudonym-Key", "in": "header", "required": false,
            "description": "The pseudonyms' key (at least 16 bytes; given, it asks for pseudonyms too): the same \
                key gives the same pseudonyms. With pseudonymize=true and no key, a random key forgotten after \
                the export.",
            "schema": {"type": "string", "minLength": MIN_KEY_BYTES}}),
    );
    all.insert("entry_id".into(), path(None));
    all.insert("hold_id".into(), json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}));
    all.insert("config_id".into(), path(None));
    all.insert(
        "kind".into(),
        json!({"name": "kind", "in": "path", "required": true, "description": "Resource type.", "schema": {"type": "string"}}),
    );
    all.insert("resource_id_path".into(), path(Some("Resource id.")));
    Value::Object(all)
}

fn schemas(actions: &[&str]) -> Value {
    let nullable_str = json!({"type": ["string", "null"]});
    let str_list = json!({"type": "array", "items": {"type": "string"}});
    let hex_hash = json!({"type": "string", "pattern": "^[0-9a-f]{64}$"});
    let actor_sources = [
        ActorSource::Header,
        ActorSource::Jwt,
        ActorSource::Basic,
        ActorSource::Whoami,
        ActorSource::Login,
        ActorSource::Anonymous,
        ActorSource::Token,
    ];
    let entry = object([
        ("id", schema("Ulid")),
        (
            "timestamp",
            json!({"type": "string", "format": "date-time", "description": "When the upstream answered (UTC, microseconds)."}),
        ),
        ("request_id", json!({"type": "string"})),
        ("action", json!({"type": "string"})),
        ("outcome", json!({"type": "string", "enum": outcomes()})),
        ("method", json!({"type": "string"})),
        ("path", json!({"type": "string"})),
        ("query", json!({"type": "string"})),
        ("status", json!({"type": "integer", "minimum": 0, "maximum": 999})),
        ("duration_ms", json!({"type": "number", "minimum": 0})),
        ("resource_type", json!({"type": "string"})),
        ("resource_id", nullable_str.clone()),
        ("parents", json!({"type": "array", "items": schema("Parent")})),
        ("actor", json!({"type": "string"})),
        ("actor_source", json!({"type": "string", "enum": names(&actor_sources)})),
        ("actor_verified", json!({"type": "boolean"})),
        ("client_ip", json!({"type": "string"})),
        ("peer_ip", json!({"type": "string"})),
        ("forwarded_for", str_list.clone()),
        ("user_agent", nullable_str.clone()),
        ("configuration", nullable_str.clone()),
        ("before", json!({"description": "The resource before the change (any JSON), or null."})),
        ("after", json!({"description": "The resource after the change (any JSON), or null."})),
        ("changes", json!({"type": "array", "items": schema("Change")})),
        (
            "unapplied",
            json!({"type": ["array", "null"], "items": schema("Unapplied"),
                "description": "Requested fields the app did not apply as asked; null when there is nothing to \
                    compare. Absent on entries written before it existed."}),
        ),
        ("request_body", json!({"description": "The redacted request body (capture full), or null."})),
        ("snapshot_error", nullable_str.clone()),
        ("instance", json!({"type": "string"})),
        ("prev_hash", hex_hash.clone()),
        ("hash", hex_hash.clone()),
        (
            "chain_version",
            json!({"type": "integer", "enum": [CHAIN_VERSION],
                "description": "2: the hash covers `content_digest` instead of the personal fields. Absent on \
                    entries written before it."}),
        ),
        (
            "content_digest",
            json!({"type": "string", "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 of the canonical JSON of the personal fields (chain version 2)."}),
        ),
        (
            "erased",
            json!({"type": "boolean", "enum": [true],
                "description": "The personal fields were erased (absent then); `content_digest` stands for them."}),
        ),
        (
            "snapshot_format",
            json!({"type": "string", "enum": names(&[SnapshotFormat::Json, SnapshotFormat::Form, SnapshotFormat::Html,
                    SnapshotFormat::Xml]),
                "description": "How the snapshots were read: JSON, an HTML page's form or named elements, XML. \
                    Absent on an entry with no snapshot."}),
        ),
        (
            "path_resource_id",
            json!({"type": "string", "description": "The id the request path named, present only when the \
                resource's own state (its `id_field`) names another: the entry is filed under that one."}),
        ),
        (
            "erasure",
            json!({"type": "object", "required": ["selector", "erased", "not_erasable"],
                "description": "On an erasure's own entry: what it selected and how many entries it erases, \
                    sealed (the hash covers it).",
                "properties": {
                    "selector": {"type": "string", "enum": crate::erasure::SELECTORS},
                    "resource": {"type": "string", "description": "A resource selector's TYPE/ID."},
                    "prefix_len": {"type": "integer", "minimum": 0, "maximum": 128,
                        "description": "An address selector's prefix length (32 or 128: one address)."},
                    "forced": {"type": "boolean", "description": "A range wider than a /16 or /48, asked for with `force`."},
                    "erased": {"type": "integer", "minimum": 0},
                    "not_erasable": {"type": "integer", "minimum": 0}}}),
        ),
    ]);
    // Absent on some entries: the personal fields (erased), `unapplied`
    // and the version-2 fields (older entries), `erased` (not erased).
    let optional = |k: &str| {
        PERSONAL.contains(&k)
            || [
                "unapplied",
                "chain_version",
                "content_digest",
                "erased",
                "erasure",
                "path_resource_id",
                "snapshot_format",
            ]
            .contains(&k)
    };
    let required: Vec<&String> = entry.as_object().expect("an object").keys().filter(|k| !optional(k)).collect();
    let entry = json!({"type": "object", "properties": entry, "required": required});

    let (input, output) = configuration_fields();
    let required_out: Vec<&String> = output.as_object().expect("an object").keys().collect();
    let configuration = json!({"type": "object", "properties": output, "required": required_out});
    let list_of = |item: &str| json!({"type": "object", "properties": {"items": {"type": "array", "items": schema(item)}}, "required": ["items"]});
    let counts = schema("Counts");
    // An erasure never names auditgate's own resources.
    let own_types = format!("^({})/", crate::erasure::OWN_TYPES.join("|"));
    object([
        (
            "Ulid",
            json!({"type": "string", "pattern": "^[0-9A-HJKMNP-TV-Z]{26}$", "description": "A ULID: sortable by time."}),
        ),
        (
            "Error",
            json!({"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"},
                "hold": {"type": "integer", "description": "The legal hold in the way (409)."}}, "required": ["error"]}),
        ),
        (
            "Parent",
            json!({"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}}, "required": ["type", "id"]}),
        ),
        (
            "Change",
            json!({"type": "object", "properties": {"path": {"type": "string"}, "old": {}, "new": {}}, "required": ["path", "old", "new"]}),
        ),
        (
            "Unapplied",
            json!({"type": "object",
                "properties": {"path": {"type": "string", "description": "JSON Pointer."}, "requested": {}, "applied": {}},
                "required": ["path", "requested", "applied"]}),
        ),
        ("Entry", entry),
        (
            "EntryPage",
            json!({"type": "object",
                "properties": {"items": {"type": "array", "items": schema("Entry")},
                    "next_cursor": {"oneOf": [schema("Ulid"), {"type": "null"}],
                        "description": "The next page's cursor; null at the end. A search no index narrows (`q` of \
                            one or two characters, or in too many entries) reads a bounded stretch of the trail a \
                            page, so a page can hold fewer items than `limit`, or none, and still name one."}},
                "required": ["items", "next_cursor"]}),
        ),
        (
            "HistoryPage",
            json!({"type": "object",
                "properties": {"items": {"type": "array", "items": schema("Entry")},
                    "next_cursor": {"oneOf": [schema("Ulid"), {"type": "null"}],
                        "description": "The next page's cursor (later entries); null at the end."}},
                "required": ["items", "next_cursor"]}),
        ),
        (
            "Action",
            json!({"type": "string", "enum": actions,
                "description": "A built-in action or one declared in resources.toml (this instance lists its own)."}),
        ),
        ("IpOrRange", ip_or_range()),
        (
            "ConfigurationInput",
            json!({"type": "object", "properties": input.clone(), "additionalProperties": false, "required": ["name"],
                "description": "A whole configuration: absent fields take their defaults."}),
        ),
        (
            "ConfigurationPatch",
            json!({"type": "object", "properties": input, "additionalProperties": false,
                "description": "The fields to change."}),
        ),
        ("Configuration", configuration),
        ("ConfigurationList", list_of("Configuration")),
        (
            "Verification",
            json!({"type": "object",
                "properties": {
                    "ok": {"type": "boolean"},
                    "checked": {"type": "integer", "minimum": 0},
                    "erased": {"type": "integer", "minimum": 0,
                        "description": "Entries checked whose personal content was erased (their digests stand for it)."},
                    "erased_unrecorded": {"type": "integer", "minimum": 1,
                        "description": "Present when more entries are erased than the trail's erasures recorded \
                            (each records its count before it erases): `ok` is false."},
                    "first_bad": {"oneOf": [schema("Ulid"), {"type": "null"}]},
                    "heads": {"type": "array", "items": schema("Head"),
                        "description": "Each instance's newest entry: keep it elsewhere, and `auditgate verify \
                            --heads FILE` fails if a chain no longer reaches it."}},
                "required": ["ok", "checked", "erased", "first_bad", "heads"]}),
        ),
        (
            "Head",
            json!({"type": "object", "properties": {"instance": {"type": "string"}, "id": schema("Ulid"), "hash": hex_hash},
                "required": ["instance", "id", "hash"]}),
        ),
        ("Counts", json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}})),
        (
            "Stats",
            json!({"type": "object",
                "properties": {"by_action": counts.clone(), "by_resource_type": counts.clone(),
                    "by_actor": counts.clone(), "by_outcome": counts, "total": {"type": "integer", "minimum": 0}},
                "required": ["by_action", "by_resource_type", "by_actor", "by_outcome", "total"]}),
        ),
        ("Status", json!({"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]})),
        (
            "State",
            json!({"type": "object", "required": ["state", "entry", "timestamp", "action"],
                "properties": {
                    "state": {"description": "The resource's after-state, null when the entry deleted it or took no snapshot."},
                    "entry": schema("Ulid"),
                    "timestamp": {"type": "string", "format": "date-time"},
                    "action": {"type": "string"},
                    "erased": {"type": "boolean", "enum": [true],
                        "description": "That entry's content was erased: the state is no longer known."}}}),
        ),
        (
            "ErasureRequest",
            json!({"type": "object", "additionalProperties": false, "oneOf": one_selector(),
                "description": "Exactly one of `actor`, `resource` (TYPE/ID) and `client_ip` (address or CIDR); \
                    a range wider than a /16 (IPv4) or a /48 (IPv6) needs `force`.",
                "if": {"required": ["client_ip"], "properties": {"client_ip": {"type": "string",
                    "pattern": "^([0-9.]+/([0-9]|1[0-5])|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*/([0-9]|[1-3][0-9]|4[0-7]))$"}}},
                "then": {"required": ["force"], "properties": {"force": {"const": true}}},
                "properties": {
                    "actor": {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_CHARS},
                    "resource": {"type": "string", "pattern": "^[^/]+/.+$",
                        "not": {"pattern": own_types}},
                    "client_ip": schema("IpOrRange"),
                    "reason": {"type": ["string", "null"], "description": "Kept in the erasure's entry (which is \
                        never erased: name no person here)."},
                    "force": {"type": ["boolean", "null"],
                        "description": "true to erase an address range wider than a /16 (IPv4) or a /48 (IPv6)."}}}),
        ),
        (
            "Erasure",
            json!({"type": "object", "required": ["erased", "not_erasable", "scrubbed"],
                "properties": {
                    "erased": {"type": "integer", "minimum": 0},
                    "not_erasable": {"type": "integer", "minimum": 0,
                        "description": "Entries written before chain version 2, left as they are (their hash covers \
                            their content)."},
                    "scrubbed": {"type": "boolean",
                        "description": "false: SQLite's WAL could not be emptied yet (readers held it)."}}}),
        ),
        (
            "HoldInput",
            json!({"type": "object", "additionalProperties": false, "required": ["reason"], "oneOf": one_selector(),
                "description": "Exactly one of `actor`, `resource` (TYPE/ID) and `client_ip`; optionally a time range.",
                "properties": {
                    "actor": {"type": "string", "minLength": 1, "maxLength": MAX_FILTER_CHARS},
                    "resource": {"type": "string", "pattern": "^[^/]+/.+$"},
                    "client_ip": schema("IpOrRange"),
                    "since": {"type": ["string", "null"], "format": "date-time"},
                    "until": {"type": ["string", "null"], "format": "date-time"},
                    "reason": {"type": "string", "minLength": 1, "pattern": "\\S"}}}),
        ),
        (
            "Hold",
            json!({"type": "object",
                "required": ["id", "since", "until", "reason", "created_at", "created_by", "released_at", "released_by"],
                "properties": {
                    "id": {"type": "integer"},
                    "actor": {"type": "string"},
                    "resource_type": {"type": "string"},
                    "resource_id": {"type": "string"},
                    "client_ip": {"type": "string"},
                    "since": nullable_str.clone(),
                    "until": nullable_str.clone(),
                    "reason": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "created_by": {"type": "string"},
                    "released_at": nullable_str.clone(),
                    "released_by": nullable_str}}),
        ),
        ("HoldList", list_of("Hold")),
    ])
}

/// Exactly one of an erasure's or a hold's three selectors.
fn one_selector() -> Value {
    json!([{"required": ["actor"]}, {"required": ["resource"]}, {"required": ["client_ip"]}])
}

/// An address or a CIDR range: what `client_ip` and `audit_ips` take.
fn ip_or_range() -> Value {
    let octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    json!({"anyOf": [
            {"type": "string", "format": "ipv4"},
            {"type": "string", "format": "ipv6"},
            {"type": "string", "pattern": format!("^({octet}\\.){{3}}{octet}/(3[0-2]|[12]?[0-9])$")}],
        "description": "An address or a CIDR range (IPv6 ranges such as `2001:db8::/32` too)."})
}

/// A configuration's fields as a client sends them, and as served.
fn configuration_fields() -> (Value, Value) {
    let nullable_flag = json!({"type": ["boolean", "null"]});
    let list =
        |items: Value| json!({"type": ["array", "null"], "items": items, "description": "null is the empty list."});
    let names_list = list(json!({"type": "string", "pattern": "\\S"}));
    let actions = list(schema("Action"));
    let ips = list(schema("IpOrRange"));
    let input = object([
        // Not blank, no control character (U+0000-001F, U+007F-009F).
        (
            "name",
            json!({"type": "string", "minLength": 1, "maxLength": 200,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"}),
        ),
        ("description", json!({"type": ["string", "null"]})),
        ("configuration_type", json!({"type": "string", "enum": names(&[Kind::Include, Kind::Exclude])})),
        ("is_active", json!({"type": "boolean"})),
        ("priority", json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX})),
        ("audit_actions", actions.clone()),
        ("audit_all_actions", nullable_flag.clone()),
        ("audit_resource_types", names_list.clone()),
        ("audit_all_resource_types", nullable_flag.clone()),
        ("audit_users", names_list.clone()),
        ("audit_all_users", nullable_flag.clone()),
        ("audit_ips", ips.clone()),
        ("audit_all_ips", nullable_flag),
        ("exclude_actions", actions),
        ("exclude_resource_types", names_list.clone()),
        ("exclude_users", names_list),
        ("exclude_ips", ips),
        ("capture", json!({"type": "string", "enum": names(&[Capture::Metadata, Capture::Diff, Capture::Full])})),
    ]);
    // Served: lists are lists, the description a string, and the
    // configuration's own id, source and times besides.
    let mut output = Map::new();
    output.insert("id".into(), json!({"type": "integer"}));
    for (k, v) in input.as_object().expect("an object") {
        let listed =
            ["_actions", "_types", "_users", "_ips"].iter().any(|s| k.ends_with(s)) && !k.starts_with("audit_all_");
        let served = match k.as_str() {
            "description" => json!({"type": "string"}),
            _ if listed => json!({"type": "array", "items": {"type": "string"}}),
            _ => v.clone(),
        };
        output.insert(k.clone(), served);
    }
    output.insert("source".into(), json!({"type": "string", "enum": names(&[Source::Api, Source::File])}));
    output.insert("created_at".into(), json!({"type": "string"}));
    output.insert("updated_at".into(), json!({"type": "string"}));
    (input, Value::Object(output))
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema("Error")}}})
}

fn responses() -> Value {
    let mut unauthorized = error("Tokens are configured and no valid bearer token was sent.");
    unauthorized["headers"] = json!({"WWW-Authenticate": {"schema": {"type": "string"}}});
    object([
        ("BadRequest", error("A parameter or the body cannot be accepted; `field` names it.")),
        ("Unauthorized", unauthorized),
        (
            "Forbidden",
            error("A read token tried to change something, or a web page of another origin sent the request."),
        ),
        ("Misdirected", error("A port without tokens was named by a host that is not a loopback name or address.")),
        ("NotJson", error("A change was sent without `Content-Type: application/json`.")),
        ("TooManyStreams", error("This token holds `[query] max_streams` open event streams already.")),
        (
            "Conflict",
            error("Another configuration has this name, or a legal hold covers entries the erasure selects (`hold`)."),
        ),
        ("NotFound", error("No such entry, configuration or resource.")),
        ("TooLarge", error("The body is larger than allowed.")),
        ("TooSlow", error("The body arrived slower than the minimum rate.")),
        ("Unavailable", error("The store is unavailable, or the instance is shutting down.")),
    ])
}

/// Every operation with the answers of the browser guard (docs/query-api.md): a
/// foreign origin (403), a foreign host (421), a change not declared JSON
/// (415).
fn with_browser_refusals(mut paths: Value) -> Value {
    for item in paths.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
        let operations = item.as_object_mut().into_iter().flat_map(|m| m.iter_mut());
        for (verb, op) in
            operations.filter(|(verb, _)| ["get", "post", "put", "patch", "delete"].contains(&verb.as_str()))
        {
            let answers = &mut op["responses"];
            answers["403"] = response("Forbidden");
            answers["421"] = response("Misdirected");
            if verb != "get" {
                answers["415"] = response("NotJson");
            }
            // A DELETE is a change like any other: declared JSON, its body
            // empty (or `{}`).
            if verb == "delete" {
                op["responses"]["400"] = response("BadRequest");
                op["requestBody"] = json!({"required": true, "description": "None: send `Content-Type: \
                    application/json` with no body or `{}`.",
                    "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}});
            }
        }
    }
    paths
}

/// Responses: the given ones, then these statuses' shared ones.
fn answers<const N: usize>(own: [(&str, Value); N], shared: &[(&str, &str)]) -> Value {
    let mut all = object(own);
    for (status, name) in shared {
        all[*status] = response(name);
    }
    all
}

const READ_ERRORS: &[(&str, &str)] = &[("400", "BadRequest"), ("401", "Unauthorized"), ("503", "Unavailable")];
const WRITE_ERRORS: &[(&str, &str)] = &[
    ("400", "BadRequest"),
    ("401", "Unauthorized"),
    ("403", "Forbidden"),
    ("409", "Conflict"),
    ("408", "TooSlow"),
    ("413", "TooLarge"),
    ("503", "Unavailable"),
];

fn paths() -> Value {
    let with = |mut list: Vec<Value>, more: &[Value]| {
        list.extend_from_slice(more);
        list
    };
    let body = |name: &str| json!({"required": true, "content": {"application/json": {"schema": schema(name)}}});
    let mut config_links = Map::new();
    for op in ["getConfiguration", "replaceConfiguration", "updateConfiguration", "deleteConfiguration"] {
        config_links.insert(op.into(), json!({"operationId": op, "parameters": {"id": "$response.body#/id"}}));
    }
    let mut list_ok = ok_json(schema("EntryPage"), "OK");
    list_ok["links"] = json!({
        "getEntry": {"operationId": "getEntry", "parameters": {"id": "$response.body#/items/0/id"}},
        "resourceHistory": {"operationId": "resourceHistory", "parameters": {
            "kind": "$response.body#/items/0/resource_type", "id": "$response.body#/items/0/resource_id"}},
    });
    let mut created = ok_json(schema("Configuration"), "Created");
    created["headers"] = json!({"Location": {"schema": {"type": "string"}}});
    created["links"] = Value::Object(config_links);
    let unauthorized_unavailable: &[(&str, &str)] = &[("401", "Unauthorized"), ("503", "Unavailable")];
    object([
        (
            "/api/v1/audit-logs",
            json!({"get": {"operationId": "listEntries", "summary": "Entries, newest first, keyset-paged.",
                "parameters": with(filters(), &[parameter("limit"), parameter("cursor")]),
                "responses": answers([("200", list_ok)], READ_ERRORS)}}),
        ),
        (
            "/api/v1/audit-logs/export",
            json!({"get": {"operationId": "exportEntries", "summary": "Every matching entry, streamed, newest first.",
                "parameters": with(filters(), &[parameter("format"), parameter("pseudonymize"), parameter("pseudonym_key")]),
                "responses": answers([("200", json!({
                    "description": "NDJSON (one entry a line) or CSV (cells that could be read as formulas are defused).",
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}))],
                    READ_ERRORS)}}),
        ),
        (
            "/api/v1/audit-logs/stream",
            json!({"get": {"operationId": "streamEntries",
                "summary": "Server-Sent Events: each newly committed entry matching the filters, oldest first (`id:` \
                    the entry id, `data:` the entry). Without Last-Event-ID it starts after the newest entry stored now.",
                "parameters": with(filters(), &[json!({"name": "Last-Event-ID", "in": "header", "required": false,
                    "description": "Resume after this entry (the id of the last event received).", "schema": schema("Ulid")})]),
                "responses": answers([("200", json!({
                    "description": "An endless event stream; a comment line keeps it alive when quiet.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}})),
                    ("429", response("TooManyStreams"))], READ_ERRORS)}}),
        ),
        (
            "/api/v1/audit-logs/{id}",
            json!({"get": {"operationId": "getEntry", "parameters": [parameter("entry_id")],
                "responses": answers([("200", ok_json(schema("Entry"), "OK")), ("404", response("NotFound"))],
                    unauthorized_unavailable)}}),
        ),
        (
            "/api/v1/resources/{kind}/{id}/history",
            json!({"get": {"operationId": "resourceHistory",
                "summary": "A resource's entries, oldest first, keyset-paged (export takes everything at once).",
                "parameters": [parameter("kind"), parameter("resource_id_path"), parameter("history_limit"),
                    parameter("cursor")],
                "responses": answers([("200", ok_json(schema("HistoryPage"), "OK"))], READ_ERRORS)}}),
        ),
        (
            "/api/v1/resources/{kind}/{id}/state",
            json!({"get": {"operationId": "resourceState",
                "summary": "The resource as of a moment: the `after` of its last entry at or before `at` (null when \
                    that entry deleted it).",
                "parameters": [parameter("kind"), parameter("resource_id_path"), {"name": "at", "in": "query",
                    "required": false, "description": "The moment (RFC 3339); now when absent.",
                    "schema": {"type": "string", "format": "date-time"}}],
                "responses": answers([("200", ok_json(schema("State"), "OK")), ("404", response("NotFound"))],
                    READ_ERRORS)}}),
        ),
        (
            "/api/v1/audit-configurations",
            json!({
                "get": {"operationId": "listConfigurations", "summary": "Every audit configuration, oldest first.",
                    "responses": answers([("200", ok_json(schema("ConfigurationList"), "OK"))], unauthorized_unavailable)},
                "post": {"operationId": "createConfiguration", "summary": "Create (admin); recorded in the trail.",
                    "requestBody": body("ConfigurationInput"),
                    "responses": answers([("201", created)], WRITE_ERRORS)}}),
        ),
        (
            "/api/v1/audit-configurations/{id}",
            json!({
                "parameters": [parameter("config_id")],
                "get": {"operationId": "getConfiguration",
                    "responses": answers([("200", ok_json(schema("Configuration"), "OK")), ("404", response("NotFound"))],
                        unauthorized_unavailable)},
                "put": {"operationId": "replaceConfiguration", "summary": "Replace (admin): absent fields take their defaults.",
                    "requestBody": body("ConfigurationInput"),
                    "responses": answers([("200", ok_json(schema("Configuration"), "OK")), ("404", response("NotFound"))],
                        WRITE_ERRORS)},
                "patch": {"operationId": "updateConfiguration", "summary": "Merge the given fields (admin).",
                    "requestBody": body("ConfigurationPatch"),
                    "responses": answers([("200", ok_json(schema("Configuration"), "OK")), ("404", response("NotFound"))],
                        WRITE_ERRORS)},
                "delete": {"operationId": "deleteConfiguration", "summary": "Delete (admin); recorded in the trail.",
                    "responses": answers([("204", json!({"description": "Deleted"})), ("403", response("Forbidden")),
                        ("404", response("NotFound"))], unauthorized_unavailable)}}),
        ),
        (
            "/api/v1/erasures",
            json!({"post": {"operationId": "erase",
                "summary": "Erase (admin) the personal content of the entries an actor, a resource or a client \
                    address names; the chains still verify. Refused (409) while a legal hold covers any of them; \
                    recorded in the trail.",
                "requestBody": body("ErasureRequest"),
                "responses": answers([("200", ok_json(schema("Erasure"), "Erased"))], WRITE_ERRORS)}}),
        ),
        (
            "/api/v1/holds",
            json!({
                "get": {"operationId": "listHolds", "summary": "Every legal hold, released ones too, oldest first.",
                    "responses": answers([("200", ok_json(schema("HoldList"), "OK"))], unauthorized_unavailable)},
                "post": {"operationId": "createHold",
                    "summary": "Make a legal hold (admin): erasure and retention leave what it covers until it is \
                        released; recorded in the trail.",
                    "requestBody": body("HoldInput"),
                    "responses": answers([("201", ok_json(schema("Hold"), "Created"))], WRITE_ERRORS)}}),
        ),
        (
            "/api/v1/holds/{id}",
            json!({"delete": {"operationId": "releaseHold", "summary": "Release a legal hold (admin); recorded in the trail.",
                "parameters": [parameter("hold_id")],
                "responses": answers([("200", ok_json(schema("Hold"), "Released")), ("403", response("Forbidden")),
                    ("404", response("NotFound"))], unauthorized_unavailable)}}),
        ),
        (
            "/api/v1/verify",
            json!({"get": {"operationId": "verify", "summary": "Checks every instance's hash chain.",
                "responses": answers([("200", ok_json(schema("Verification"), "OK"))], unauthorized_unavailable)}}),
        ),
        (
            "/api/v1/stats",
            json!({"get": {"operationId": "stats", "summary": "Counts by action, resource type, actor and outcome.",
                "parameters": [parameter("since"), parameter("until")],
                "responses": answers([("200", ok_json(schema("Stats"), "OK"))], READ_ERRORS)}}),
        ),
        (
            "/api/v1/openapi.json",
            json!({"get": {"operationId": "openapi", "summary": "This document.",
                "responses": answers([("200", ok_json(json!({"type": "object"}), "OK"))], &[("401", "Unauthorized")])}}),
        ),
        (
            "/metrics",
            json!({"get": {"operationId": "metrics", "summary": "Prometheus text format.",
                "responses": answers([("200", json!({"description": "Counters",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}))], &[("401", "Unauthorized")])}}),
        ),
        (
            "/healthz",
            json!({"get": {"operationId": "healthz", "security": [], "summary": "The process answers.",
                "responses": {"200": ok_json(schema("Status"), "OK")}}}),
        ),
        (
            "/readyz",
            json!({"get": {"operationId": "readyz", "security": [], "summary": "Ready: not shutting down, and the store answers.",
                "responses": {"200": ok_json(schema("Status"), "OK"), "503": ok_json(schema("Status"), "Not ready")}}}),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::from_str(&document(&crate::policy::known_actions(["approve"]))).unwrap()
    }

    #[test]
    fn the_action_schema_lists_this_instances_actions() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let listed = &doc["components"]["schemas"]["Action"]["enum"];
        assert_eq!(listed, &json!(["approve", "create", "delete", "login", "read", "update"]));
    }

    /// The filters a listing takes are the store's, each described; the
    /// page bounds are the listing's.
    #[test]
    fn every_filter_the_store_takes_is_a_parameter_of_the_listings() {
        let doc = doc();
        for path in ["/api/v1/audit-logs", "/api/v1/audit-logs/export", "/api/v1/audit-logs/stream"] {
            let refs: Vec<&str> = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["$ref"].as_str()?.strip_prefix("#/components/parameters/"))
                .filter(|p| !["limit", "cursor", "format", "pseudonymize", "pseudonym_key"].contains(p))
                .collect();
            assert_eq!(refs, FILTERS, "{path}");
        }
        for f in FILTERS {
            let p = &doc["components"]["parameters"][f];
            assert_eq!(p["name"], f);
            assert!(p["description"].is_string() || p["schema"]["enum"].is_array(), "{f} is described");
            let mut filter = crate::store::Filter::default();
            let sample = match f {
                "client_ip" => "10.0.0.0/8",
                "outcome" => "error",
                "status" => "404",
                "since" | "until" => "2026-01-01T00:00:00Z",
                "unapplied" => "true",
                _ => "x",
            };
            filter.set(f, sample).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
        let limit = &doc["components"]["parameters"]["limit"]["schema"];
        assert_eq!((limit["maximum"].as_u64(), limit["default"].as_u64()), (Some(1000), Some(50)));
        assert_eq!(doc["components"]["parameters"]["q"]["schema"]["maxLength"], MAX_FILTER_CHARS);
        assert_eq!(
            doc["components"]["schemas"]["Entry"]["properties"]["outcome"]["enum"],
            json!(["success", "failure", "error"])
        );
    }

    /// Every `$ref` names a component that exists, and what they name is
    /// what the port answers: JSON errors, the served configuration's
    /// lists and strings, addresses or ranges.
    #[test]
    fn every_reference_resolves_and_the_shared_parts_say_what_is_served() {
        let doc = doc();
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => out.push(r),
                    _ => refs(v, out),
                }),
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 100, "{}", all.len());
        for r in all {
            let target = doc.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null);
            assert!(target.is_object(), "{r} resolves to nothing");
        }
        let ops = ["get", "post", "put", "patch", "delete"];
        let mut operations = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in ops.iter().filter_map(|o| item.get(*o)) {
                operations += 1;
                let statuses = op["responses"].as_object().unwrap();
                assert!(statuses.keys().any(|s| s.starts_with('2')), "{op}");
                for answer in statuses.values() {
                    assert!(answer["description"].is_string() || answer["$ref"].is_string(), "{answer}");
                }
            }
        }
        assert_eq!(operations, 22);
        let c = &doc["components"];
        for name in [
            "BadRequest",
            "Unauthorized",
            "Forbidden",
            "Misdirected",
            "NotJson",
            "Conflict",
            "NotFound",
            "TooLarge",
            "TooSlow",
            "Unavailable",
        ] {
            assert_eq!(
                c["responses"][name]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error"
            );
        }
        assert!(c["responses"]["Unauthorized"]["headers"]["WWW-Authenticate"].is_object());
        let list = &doc["paths"]["/api/v1/audit-logs"]["get"]["responses"];
        assert_eq!(list["200"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/EntryPage");
        assert_eq!(list["401"]["$ref"], "#/components/responses/Unauthorized");
        assert_eq!(list["421"]["$ref"], "#/components/responses/Misdirected");
        assert_eq!(list["403"]["$ref"], "#/components/responses/Forbidden");
        assert!(list.get("415").is_none(), "a read is never refused for its type");
        let release = &doc["paths"]["/api/v1/holds/{id}"]["delete"]["responses"];
        assert_eq!(release["415"]["$ref"], "#/components/responses/NotJson");
        // A DELETE declares its empty body; nothing else is given one.
        let empty = &doc["paths"]["/api/v1/holds/{id}"]["delete"]["requestBody"]["content"]["application/json"];
        assert_eq!(empty["schema"]["maxProperties"], 0);
        assert!(doc["paths"]["/api/v1/holds"]["get"].get("requestBody").is_none());
        let hold = &doc["paths"]["/api/v1/holds"]["post"]["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(hold["$ref"], "#/components/schemas/HoldInput");
        let served = &c["schemas"]["Configuration"]["properties"];
        assert_eq!(served["description"], json!({"type": "string"}));
        assert_eq!(served["audit_users"], json!({"type": "array", "items": {"type": "string"}}));
        assert_eq!(served["audit_all_users"], json!({"type": ["boolean", "null"]}));
        assert_eq!(served["capture"]["enum"], json!(["metadata", "diff", "full"]));
        let sent = &c["schemas"]["ConfigurationInput"]["properties"];
        assert_eq!(sent["description"], json!({"type": ["string", "null"]}));
        assert_eq!(sent["audit_users"]["type"], json!(["array", "null"]));
        let ranges = c["schemas"]["IpOrRange"]["anyOf"].as_array().unwrap();
        assert_eq!(ranges.len(), 3);
        let v4 = regex::Regex::new(ranges[2]["pattern"].as_str().unwrap()).unwrap();
        assert!(v4.is_match("10.0.0.0/8") && !v4.is_match("10.0.0.0/33") && !v4.is_match("256.0.0.0/8"));
    }

    /// The schemas name exactly the fields the domain types serialise.
    #[test]
    fn the_entry_and_configuration_schemas_are_the_types_fields() {
        let doc = doc();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<std::collections::BTreeSet<_>>();
        let sealed = crate::entry::Chain::resume(None).seal(crate::entry::tests::sample(1)).entry;
        let mut entry = serde_json::to_value(&sealed).unwrap();
        let mut erased = sealed.clone();
        erased.erase();
        let erased = serde_json::to_value(&erased).unwrap();
        entry["erased"] = erased["erased"].clone();
        // An erasure's own entry has its seal.
        let mut record = sealed.clone();
        record.erasure = Some(crate::entry::ErasureSeal {
            erased: 1,
            forced: true,
            not_erasable: 0,
            prefix_len: Some(8),
            resource: Some("user/1".into()),
            selector: "client_ip".into(),
        });
        let record = serde_json::to_value(&record).unwrap();
        entry["erasure"] = record["erasure"].clone();
        entry["path_resource_id"] = json!("1.json");
        entry["snapshot_format"] = json!("form");
        assert_eq!(
            keys(&doc["components"]["schemas"]["Entry"]["properties"]["erasure"]["properties"]),
            keys(&record["erasure"])
        );
        assert_eq!(keys(&doc["components"]["schemas"]["Entry"]["properties"]), keys(&entry));
        // Required: what an erased entry and an entry of chain version 1 both have.
        let required: std::collections::BTreeSet<String> = doc["components"]["schemas"]["Entry"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let old = serde_json::to_value(crate::entry::tests::sample(1)).unwrap();
        let mut both = keys(&erased);
        both.retain(|k| old.get(k).is_some() && k != "unapplied");
        assert_eq!(required, both);
        let config = serde_json::to_value(crate::policy::AuditConfiguration::default()).unwrap();
        assert_eq!(keys(&doc["components"]["schemas"]["Configuration"]["properties"]), keys(&config));
        let sources = &doc["components"]["schemas"]["Entry"]["properties"]["actor_source"]["enum"];
        assert_eq!(sources.as_array().unwrap().len(), 7);
        assert_eq!(sources[6], "token");
    }
}
