//! Erasure of personal data, legal holds and pseudonymous export (issue
//! 15), through the query port of a running auditgate in front of a real
//! upstream, on the test's store (SQLite, or PostgreSQL with
//! `TEST_POSTGRES_URL`): erased values are gone from every place the
//! trail keeps or serves them (the database's bytes included), and the
//! chains still verify.

use std::time::Duration;

use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::audit::wait_entries;
use crate::helpers::*;
use crate::sinks::{collector, hook_sink};
use auditgate::store::Store;

/// Values only zoe's requests carry: none may be found after her erasure.
const ZOE: &str = "zoe-q7x";
const ZOE_SECRETS: [&str; 3] = ["zoe-q7x", "zoe.q7x@example.org", "Quartzfield"];
/// Her client address (through a trusted proxy).
const ZOE_IP: &str = "198.51.100.77";

/// Sends a JSON request to the query port; answers status and JSON.
pub(crate) async fn query(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(app.query(path))
        .header("content-type", "application/json")
        .body(body.map_or_else(Full::default, |b| Full::new(b.to_string().into())))
        .unwrap();
    let res = send(&client(), req).await;
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

/// A request to the proxy as `user` from `ip` (the app trusts 127.0.0.1).
async fn request(
    app: &TestApp,
    user: &str,
    ip: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = as_basic(app, user, method, path, body);
    req.headers_mut().insert("x-forwarded-for", ip.parse().unwrap());
    let res = send(&client(), req).await;
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

/// Zoe creates and edits a record of her own; bob edits another. Answers
/// zoe's record's path and bob's.
async fn write_trail(app: &TestApp) -> (String, String) {
    let already = app.store.list(&Default::default(), None, 1000).await.unwrap().0.len();
    let zoe = json!({"email": "zoe.q7x@example.org", "name": "Zoe Quartzfield"});
    let (status, created) = request(app, ZOE, ZOE_IP, Method::POST, "/api/users/", Some(&zoe)).await;
    assert_eq!(status, 201);
    let hers = format!("/api/users/{}/", created["id"]);
    let edit = json!({"name": "Zoe Quartzfield-Lee"});
    assert_eq!(request(app, ZOE, ZOE_IP, Method::PATCH, &hers, Some(&edit)).await.0, 200);
    let (status, created) =
        request(app, "bob", "192.0.2.10", Method::POST, "/api/users/", Some(&json!({"email": "bob@example.org"})))
            .await;
    assert_eq!(status, 201);
    let his = format!("/api/users/{}/", created["id"]);
    let edit = json!({"email": "bob2@example.org"});
    assert_eq!(request(app, "bob", "192.0.2.10", Method::PATCH, &his, Some(&edit)).await.0, 200);
    wait_entries(&app.store, already + 4).await;
    (hers, his)
}

/// auditgate trusting 127.0.0.1 as a proxy, with `write_trail` done.
async fn app_with_trail() -> (TestApp, String, String) {
    let app = spawn_app_with(&[("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")], None).await;
    let (hers, his) = write_trail(&app).await;
    (app, hers, his)
}

/// Everything the store holds, as bytes: the SQLite file and its WAL, or
/// every row of every table of the PostgreSQL database as text.
async fn store_bytes(store: &Store, dir: &std::path::Path) -> Vec<u8> {
    match store {
        Store::Sqlite(_) => {
            let mut bytes = std::fs::read(dir.join("audit.db")).unwrap();
            bytes.extend(std::fs::read(dir.join("audit.db-wal")).unwrap_or_default());
            bytes
        }
        Store::Postgres(s) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
            )
            .fetch_all(s.pool())
            .await
            .unwrap();
            let mut bytes = Vec::new();
            for table in tables {
                let sql = format!("SELECT t::text FROM {table} t");
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(s.pool()).await.unwrap();
                bytes.extend(rows.join("\n").into_bytes());
            }
            bytes
        }
    }
}

/// How many entries the `q` search's index holds `text` for (SQLite: every
/// trigram of it; PostgreSQL: the indexed text contains it).
async fn indexed_with(store: &Store, text: &str) -> i64 {
    match store {
        Store::Sqlite(s) => {
            let chars: Vec<char> = text.to_lowercase().chars().collect();
            let trigrams: Vec<String> =
                chars.windows(3).map(|w| format!("\"{}\"", w.iter().collect::<String>())).collect();
            let sql = "SELECT count(*) FROM audit_text WHERE audit_text MATCH ?";
            sqlx::query_scalar(sql).bind(trigrams.join(" AND ")).fetch_one(s.pool()).await.unwrap()
        }
        Store::Postgres(s) => sqlx::query_scalar("SELECT count(*) FROM audit_text WHERE strpos(text, $1) > 0")
            .bind(text)
            .fetch_one(s.pool())
            .await
            .unwrap(),
    }
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn verify(app: &TestApp) -> Value {
    let (status, v) = query(app, Method::GET, "/api/v1/verify", None).await;
    assert_eq!(status, 200);
    v
}

async fn text(url: &str) -> String {
    String::from_utf8(get(url).await.body().to_vec()).unwrap()
}

#[tokio::test]
async fn an_erased_actor_is_gone_from_the_store_the_api_exports_and_a_sink_and_the_chains_verify() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    // The sink's collector refuses until after the erasure: what it gets
    // then is read after it.
    let (hook, ca, _pki) = collector().await;
    hook.answer(503);
    let sink = hook_sink(&hook, &ca, "");
    let env = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("AUDITGATE_SINK", sink.as_str()),
    ];
    let app = spawn_app_with(&env, None).await;
    let (hers, his) = write_trail(&app).await;
    let before = verify(&app).await;
    assert_eq!((before["ok"].as_bool(), before["erased"].as_u64()), (Some(true), Some(0)), "{before}");
    // Indexed for `q` first, so the index has something to lose.
    crate::durability::wait_metric(&app, "auditgate_search_indexed_total", 4).await;
    assert_eq!(indexed_with(&app.store, "Quartzfield").await, 2);
    let bytes = store_bytes(&app.store, dir.path()).await;
    assert!(ZOE_SECRETS.iter().all(|s| holds(&bytes, s)), "the test's values are stored before");

    let (status, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report, json!({"erased": 2, "not_erasable": 0, "scrubbed": true}));
    let after = verify(&app).await;
    assert_eq!((after["ok"].as_bool(), after["erased"].as_u64()), (Some(true), Some(2)), "{after}");

    // The API: no entry by her name, her entries erased, bob's intact.
    let (_, listed) = query(&app, Method::GET, &format!("/api/v1/audit-logs?actor={ZOE}"), None).await;
    assert_eq!(listed["items"], json!([]));
    let (_, history) =
        query(&app, Method::GET, &format!("/api/v1/resources/user/{}/history", id_of(&hers)), None).await;
    let history = history["items"].as_array().unwrap().clone();
    assert_eq!(history.len(), 2);
    for e in &history {
        assert_eq!(e["erased"], true, "{e}");
        assert_eq!(e["chain_version"], 2);
        assert!(e["content_digest"].is_string());
        for field in auditgate::entry::PERSONAL {
            assert!(e.get(field).is_none(), "{field} in {e}");
        }
    }
    let (_, one) =
        query(&app, Method::GET, &format!("/api/v1/audit-logs/{}", history[0]["id"].as_str().unwrap()), None).await;
    assert_eq!(one["erased"], true);
    let (_, state) = query(&app, Method::GET, &format!("/api/v1/resources/user/{}/state", id_of(&hers)), None).await;
    assert_eq!((state["state"].clone(), state["erased"].clone()), (Value::Null, json!(true)), "{state}");
    let (_, bob) = query(&app, Method::GET, &format!("/api/v1/resources/user/{}/history", id_of(&his)), None).await;
    assert_eq!(
        bob["items"][1]["changes"],
        json!([{"path": "/email", "old": "bob@example.org", "new": "bob2@example.org"}])
    );
    assert_eq!(bob["items"][1]["actor"], "bob");
    let (_, searched) = query(&app, Method::GET, "/api/v1/audit-logs?q=Quartzfield", None).await;
    assert_eq!(searched["items"], json!([]));
    assert_eq!(indexed_with(&app.store, "Quartzfield").await, 0, "the search index forgot it too");
    let (_, stats) = query(&app, Method::GET, "/api/v1/stats", None).await;
    // The erasure's own entry (made on the query port, not by her).
    let erasure = wait_for(&app, "erasure", 1).await;
    assert_eq!(erasure["action"], "erase");
    assert_eq!(
        erasure["after"],
        json!({"selector": {"actor": "[erased]"}, "erased": 2, "not_erasable": 0, "reason": null})
    );
    let exported = [
        text(&app.query("/api/v1/audit-logs/export?format=ndjson")).await,
        text(&app.query("/api/v1/audit-logs/export?format=csv")).await,
        stats.to_string(),
    ];
    for secret in ZOE_SECRETS.iter().chain([&ZOE_IP]) {
        for out in &exported {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
    }
    assert!(exported[0].contains("bob2@example.org"));

    // The sink, delivering only now, sends them erased.
    hook.answer(200);
    let delivered = hook.wait_accepted(5).await;
    let delivered = serde_json::to_string(&delivered).unwrap();
    for secret in ZOE_SECRETS.iter().chain([&ZOE_IP]) {
        assert!(!delivered.contains(secret), "{secret} sent: {delivered}");
    }

    // The database's own bytes (the WAL emptied by the erasure).
    let bytes = store_bytes(&app.store, dir.path()).await;
    for secret in ZOE_SECRETS.iter().chain([&ZOE_IP]) {
        assert!(!holds(&bytes, secret), "{secret} still in the database");
    }
    assert!(holds(&bytes, "bob2@example.org"));
    app.stop().await;
}

fn id_of(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap()
}

/// The newest entry of `resource_type`, once there are `n`.
async fn wait_for(app: &TestApp, resource_type: &str, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, found) =
            query(app, Method::GET, &format!("/api/v1/audit-logs?resource_type={resource_type}"), None).await;
        if found["items"].as_array().is_some_and(|items| items.len() >= n) {
            return found["items"][0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "no {resource_type} entry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn erasing_a_resource_or_an_address_range_erases_those_entries_only() {
    let (app, hers, his) = app_with_trail().await;
    // By resource: bob's record's two entries.
    let resource = format!("user/{}", id_of(&his));
    let (status, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"resource": resource}))).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(2)), "{report}");
    let (_, listed) = query(&app, Method::GET, "/api/v1/audit-logs?resource_type=user", None).await;
    let erased: Vec<bool> = listed["items"].as_array().unwrap().iter().map(|e| e["erased"] == true).collect();
    assert_eq!(erased, [true, true, false, false]);
    // Again: nothing left to erase.
    let (_, again) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"resource": resource}))).await;
    assert_eq!(again["erased"], 0);
    let second = wait_for(&app, "erasure", 2).await;
    assert_eq!(second["erasure"]["erased"], 0, "its sealed count, too: {second}");
    // By address range: zoe's two.
    let (status, report) =
        query(&app, Method::POST, "/api/v1/erasures", Some(json!({"client_ip": "198.51.100.0/24"}))).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(2)), "{report}");
    let (_, listed) = query(&app, Method::GET, &format!("/api/v1/resources/user/{}/history", id_of(&hers)), None).await;
    assert!(listed["items"].as_array().unwrap().iter().all(|e| e["erased"] == true), "{listed}");
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["erased"].as_u64()), (Some(true), Some(4)), "{v}");
    let erasure = wait_for(&app, "erasure", 3).await;
    assert_eq!(erasure["after"]["selector"], json!({"client_ip": "[erased]", "prefix_len": 24}));
    // Bad bodies name their field.
    for (body, field) in [
        (json!({}), "selector"),
        (json!({"actor": "a", "resource": "user/1"}), "selector"),
        (json!({"client_ip": "300.1.1.1"}), "client_ip"),
        (json!({"resource": "user"}), "resource"),
        (json!({"actor": "a", "why": "x"}), "body"),
    ] {
        let (status, err) = query(&app, Method::POST, "/api/v1/erasures", Some(body.clone())).await;
        assert_eq!((status, err["field"].as_str()), (400, Some(field)), "{body}: {err}");
    }
    app.stop().await;
}

#[tokio::test]
async fn erased_content_put_back_altered_or_a_changed_digest_fails_verify() {
    let (app, _, _) = app_with_trail().await;
    let (_, listed) = query(&app, Method::GET, &format!("/api/v1/audit-logs?actor={ZOE}"), None).await;
    let original = listed["items"][0].clone();
    let id = original["id"].as_str().unwrap().to_string();
    // The row's columns as they were, to put back with the content (the
    // columns must agree with the entry, or verify fails on them first).
    execute(&app.store, &format!("CREATE TABLE saved AS SELECT * FROM audit_log WHERE id = '{id}'"), &[]).await;
    assert_eq!(query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await.0, 200);
    let (_, erased) = query(&app, Method::GET, &format!("/api/v1/audit-logs/{id}"), None).await;
    // Put back as it was: verifies (the digest matches).
    put_row(&app.store, &id, &original, true).await;
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["erased"].as_u64()), (Some(true), Some(1)), "{v}");
    // Put back altered: the digest no longer matches.
    let mut altered = original.clone();
    altered["after"]["name"] = json!("Someone Else");
    put_row(&app.store, &id, &altered, true).await;
    assert_eq!(verify(&app).await["first_bad"], id.as_str());
    // Erased, with another digest: the hash no longer matches.
    let mut forged = erased.clone();
    forged["content_digest"] = json!("0".repeat(64));
    put_row(&app.store, &id, &forged, false).await;
    assert_eq!(verify(&app).await["first_bad"], id.as_str());
    put_row(&app.store, &id, &erased, false).await;
    assert_eq!(verify(&app).await["ok"], true);
    // Bob's content stripped in the database, as an erasure would, but
    // with no erasure's entry to account for it: caught.
    let (_, bobs) = query(&app, Method::GET, "/api/v1/audit-logs?actor=bob", None).await;
    let mut stripped = bobs["items"][0].clone();
    let bob_id = stripped["id"].as_str().unwrap().to_string();
    execute(&app.store, &format!("CREATE TABLE saved_bob AS SELECT * FROM audit_log WHERE id = '{bob_id}'"), &[]).await;
    for field in auditgate::entry::PERSONAL {
        stripped.as_object_mut().unwrap().remove(field);
    }
    stripped["erased"] = json!(true);
    put_row(&app.store, &bob_id, &stripped, false).await;
    let v = verify(&app).await;
    assert_eq!(
        (v["ok"].as_bool(), v["erased_unrecorded"].as_u64(), v["first_bad"].clone()),
        (Some(false), Some(1), Value::Null),
        "{v}"
    );
    app.stop().await;
}

/// Writes `entry` into row `id`, with the columns saved before the erasure
/// (`saved`) or an erased entry's.
async fn put_row(store: &Store, id: &str, entry: &Value, saved: bool) {
    let columns = match (store, saved) {
        (Store::Sqlite(_), true) => {
            "actor = (SELECT actor FROM saved), client_ip_key = (SELECT client_ip_key FROM saved)"
        }
        (Store::Sqlite(_), false) => "actor = '', client_ip_key = zeroblob(16)",
        (Store::Postgres(_), true) => {
            "actor = s.actor, client_ip_key = s.client_ip_key, changes = s.changes, unapplied = s.unapplied"
        }
        (Store::Postgres(_), false) => {
            "actor = '', client_ip_key = decode(repeat('00', 16), 'hex'), changes = '[]', unapplied = 0"
        }
    };
    let from = if matches!(store, Store::Postgres(_)) { " FROM saved s" } else { "" };
    let sql = format!("UPDATE audit_log SET entry = $1, {columns}{from} WHERE audit_log.id = $2");
    assert_eq!(execute(store, &sql, &[&entry.to_string(), id]).await, 1);
}

#[tokio::test]
async fn a_legal_hold_blocks_erasure_and_retention_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")];
    let app = spawn_app_with(&env, None).await;
    let (hers, _) = write_trail(&app).await;
    // A NUL in the reason is kept (PostgreSQL: as U+FFFD).
    let hold = json!({"resource": format!("user/{}", id_of(&hers)), "reason": "litigation 2026-17\u{0}"});
    let (status, made) = query(&app, Method::POST, "/api/v1/holds", Some(hold)).await;
    assert_eq!(status, 201, "{made}");
    let hold_id = made["id"].as_i64().unwrap();
    assert_eq!((made["created_by"].as_str(), made["released_at"].clone()), (Some("local"), Value::Null));
    assert_eq!(wait_for(&app, "legal_hold", 1).await["action"], "create");

    // Erasing her (whose entries the hold covers) is refused, naming it;
    // nothing is erased.
    let (status, err) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await;
    assert_eq!((status, err["hold"].as_i64()), (409, Some(hold_id)), "{err}");
    assert!(err["error"].as_str().unwrap().contains("litigation 2026-17"), "{err}");
    assert_eq!(verify(&app).await["erased"], 0);
    // Bob's are not held.
    let (status, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": "bob"}))).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(2)), "{report}");

    // Retention stops at the oldest held entry (her create, the first).
    let all = wait_entries(&app.store, 4).await;
    let config = auditgate::recorder::RecorderConfig {
        queue: 16,
        batch: 16,
        flush_interval: Duration::from_millis(10),
        spool: dir.path().join("retention.spool"),
        max_pending: 16,
        fail_mode: auditgate::config::FailMode::Open,
        durability: auditgate::recorder::Durability::Async,
    };
    let (recorder, _writer) = auditgate::recorder::recorder(app.store.clone(), "gw", &config).await.unwrap();
    let trail = recorder.downgrade();
    let later = chrono::Utc::now() + chrono::Duration::days(400);
    let deleted = auditgate::retention::pass(&app.store, &trail, "gw", 1, later).await.unwrap();
    assert_eq!(deleted, 0);
    assert_eq!(app.store.get(&all[0].id).await.unwrap().map(|e| e.id), Some(all[0].id.clone()));

    // Released: both go ahead.
    let (status, released) = query(&app, Method::DELETE, &format!("/api/v1/holds/{hold_id}"), None).await;
    assert_eq!(status, 200, "{released}");
    assert!(released["released_at"].is_string());
    let (_, listed) = query(&app, Method::GET, "/api/v1/holds", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let (status, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(2)), "{report}");
    let (_, holds) = query(&app, Method::GET, "/api/v1/audit-logs?resource_type=legal_hold", None).await;
    let actions: Vec<&str> = holds["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["delete", "create"]);
    assert!(auditgate::retention::pass(&app.store, &trail, "gw", 1, later).await.unwrap() >= 4);
    assert_eq!(query(&app, Method::DELETE, "/api/v1/holds/999", None).await.0, 404);
    let (status, err) = query(&app, Method::POST, "/api/v1/holds", Some(json!({"actor": "x"}))).await;
    assert_eq!((status, err["field"].as_str()), (400, Some("reason")));
    app.stop().await;
}

#[tokio::test]
async fn a_pseudonymous_export_is_stable_under_its_key_and_hides_names_and_addresses() {
    let (app, _, _) = app_with_trail().await;
    let export = |key: Option<&'static str>| {
        let mut req = Request::get(app.query("/api/v1/audit-logs/export?format=ndjson&pseudonymize=true"));
        if let Some(key) = key {
            req = req.header("x-auditgate-pseudonym-key", key);
        }
        async move {
            let res = send(&client(), req.body(Full::default()).unwrap()).await;
            assert_eq!(res.status(), 200);
            let text = String::from_utf8(res.body().to_vec()).unwrap();
            text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect::<Vec<_>>()
        }
    };
    let key = "an-auditors-key-of-32-characters";
    let (first, second, other) = (export(Some(key)).await, export(Some(key)).await, export(None).await);
    assert_eq!(first, second, "the same key, the same pseudonyms");
    assert_eq!(first.len(), 4);
    let actors: Vec<&str> = first.iter().map(|e| e["actor"].as_str().unwrap()).collect();
    // Newest first: bob's two, then zoe's two; each one pseudonym.
    assert_eq!(actors[0], actors[1]);
    assert_eq!(actors[2], actors[3]);
    assert_ne!(actors[0], actors[2]);
    assert!(actors.iter().all(|a| a.starts_with("actor-")), "{actors:?}");
    assert_ne!(other[0]["actor"], first[0]["actor"], "another key, other pseudonyms");
    let text = serde_json::to_string(&first).unwrap();
    for plain in [ZOE, "bob\"", ZOE_IP, "192.0.2.10", "127.0.0.1"] {
        assert!(!text.contains(plain), "{plain} in {text}");
    }
    assert!(first.iter().all(|e| e["client_ip"].as_str().unwrap().starts_with("ip-")));
    // The rest is the trail as kept.
    assert_eq!(first[0]["changes"], json!([{"path": "/email", "old": "bob@example.org", "new": "bob2@example.org"}]));
    // A key of 16 bytes is the shortest taken.
    for (key, status) in [("fifteen-bytes-k", 400), ("sixteen-bytes-ky", 200)] {
        let res = send(
            &client(),
            Request::get(app.query("/api/v1/audit-logs/export?pseudonymize=true"))
                .header("x-auditgate-pseudonym-key", key)
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), status, "{key}");
    }
    // A key alone asks for pseudonyms too.
    let keyed = send(
        &client(),
        Request::get(app.query("/api/v1/audit-logs/export?pseudonymize=false"))
            .header("x-auditgate-pseudonym-key", key)
            .body(Full::default())
            .unwrap(),
    )
    .await;
    let keyed: Vec<Value> =
        std::str::from_utf8(keyed.body()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(keyed, first);
    let (status, err) = query(&app, Method::GET, "/api/v1/audit-logs?pseudonymize=true", None).await;
    assert_eq!((status, err["field"].as_str()), (400, Some("query")));
    app.stop().await;
}

/// A database holding the trail an earlier auditgate wrote
/// (`tests/fixtures/trail-v1.*.sql`): chain version 1, instance `vm`.
async fn database_from_before(dir: &std::path::Path) -> String {
    use sqlx::Connection;
    match test_postgres() {
        None => {
            let url = format!("sqlite://{}", dir.join("audit.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await.unwrap();
            sqlx::raw_sql(include_str!("../fixtures/trail-v1.sqlite.sql")).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            url
        }
        Some(server) => {
            let url = new_postgres_database(&server).await;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(include_str!("../fixtures/trail-v1.postgres.sql")).execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            url
        }
    }
}

#[tokio::test]
async fn a_trail_from_before_chain_version_2_verifies_with_new_entries_on_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let database = database_from_before(dir.path()).await;
    // The same instance name: its chain goes on from the old head.
    let env = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("AUDITGATE_INSTANCE", "vm"),
    ];
    let app = spawn_app_with(&env, None).await;
    let old = verify(&app).await;
    assert_eq!((old["ok"].as_bool(), old["checked"].as_u64()), (Some(true), Some(4)), "{old}");
    let (_, listed) = query(&app, Method::GET, "/api/v1/audit-logs?actor=dave", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    assert!(listed["items"][0].get("chain_version").is_none());
    write_trail(&app).await;
    let both = verify(&app).await;
    assert_eq!((both["ok"].as_bool(), both["checked"].as_u64()), (Some(true), Some(8)), "{both}");
    assert_eq!(both["heads"].as_array().unwrap().len(), 1, "one chain: {both}");
    // Entries of version 1 cannot be erased (their hash covers their
    // content): the answer says so; version 2 entries can.
    let (_, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": "dave"}))).await;
    assert_eq!(report, json!({"erased": 0, "not_erasable": 3, "scrubbed": true}));
    let (_, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await;
    assert_eq!(report["erased"], 2);
    wait_for(&app, "erasure", 2).await;
    let after = verify(&app).await;
    assert_eq!((after["ok"].as_bool(), after["erased"].as_u64()), (Some(true), Some(2)), "{after}");
    // Altering an old entry is still caught by the old rule.
    let (_, listed) = query(&app, Method::GET, "/api/v1/audit-logs?actor=dave", None).await;
    let mut old_entry = listed["items"][1].clone();
    let id = old_entry["id"].as_str().unwrap().to_string();
    old_entry["status"] = json!(500);
    execute(&app.store, "UPDATE audit_log SET entry = $1 WHERE id = $2", &[&old_entry.to_string(), &id]).await;
    assert_eq!(verify(&app).await["first_bad"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn auditgate_erase_on_the_command_line_erases_and_records_it_in_its_own_chain() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")];
    let app = spawn_app_with(&env, None).await;
    write_trail(&app).await;
    app.stop().await;
    let store = Store::open(&database, false).await.unwrap();
    let out = erase_cli(&database, &["--actor", ZOE, "--reason", "GDPR request 7"]).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json!({"erased": 2, "not_erasable": 0, "scrubbed": true}));
    assert!(said.contains("2 entries erased"), "{said}");
    let verification = store.verify().await.unwrap();
    assert!(verification.ok && verification.erased == 2, "{verification:?}");
    let heads: Vec<&str> = verification.heads.iter().map(|h| h.instance.as_str()).collect();
    assert!(heads.contains(&"gw-test-cli"), "{heads:?}");
    let erasures = auditgate::store::Filter { resource_type: Some("erasure".into()), ..Default::default() };
    let (entries, _) = store.list(&erasures, None, 5).await.unwrap();
    assert_eq!(entries.len(), 1);
    let recorded =
        json!({"selector": {"actor": "[erased]"}, "erased": 2, "not_erasable": 0, "reason": "GDPR request 7"});
    assert_eq!(entries[0].after, Some(recorded));
    // A second run finds nothing left; its chain goes on.
    let out = erase_cli(&database, &["--actor", ZOE]).await;
    assert!(out.status.success());
    let verification = store.verify().await.unwrap();
    assert!(verification.ok && verification.checked == 6, "{verification:?}");
    // A bad selector is a usage error naming it.
    let out = erase_cli(&database, &["--resource", "user"]).await;
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resource: expected TYPE/ID"), "{out:?}");
    store.close().await;
}

/// Runs `auditgate erase` (instance `gw-test`) on `database`.
async fn erase_cli(database: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = crate::binary::auditgate();
    cmd.env("AUDITGATE_INSTANCE", "gw-test").args(["erase", "--database", database]).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

#[tokio::test]
async fn an_erasure_waits_for_spooled_entries_to_reach_the_store_and_erases_them_too() {
    use crate::durability::{accept, metric, refuse, wait_metric};
    let (app, hers, _) = app_with_trail().await;
    // The store refuses: her next change waits in the spool.
    refuse(&app.store).await;
    let edit = json!({"name": "Zoe Quartzfield-Spooled"});
    assert_eq!(request(&app, ZOE, ZOE_IP, Method::PATCH, &hers, Some(&edit)).await.0, 200);
    wait_metric(&app, "auditgate_spool_entries", 1).await;
    assert!(holds(&std::fs::read(&app.spool).unwrap(), "Quartzfield-Spooled"));
    // Erasing now would miss it: refused until it is in the store.
    let (status, err) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await;
    assert_eq!(status, 503, "{err}");
    assert!(err["error"].as_str().unwrap().contains("spool"), "{err}");
    assert_eq!(verify(&app).await["erased"], 0, "nothing erased");
    accept(&app.store).await;
    wait_metric(&app, "auditgate_spool_entries", 0).await;
    let (status, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(3)), "{report}");
    // The spool was emptied by the replay; nothing of hers anywhere.
    assert_eq!(std::fs::metadata(&app.spool).unwrap().len(), 0);
    let exported = text(&app.query("/api/v1/audit-logs/export")).await;
    assert!(!exported.contains("Quartzfield") && !exported.contains(ZOE), "{exported}");
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["erased"].as_u64()), (Some(true), Some(3)), "{v}");
    assert_eq!(metric(&app, "auditgate_entries_dropped_total").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn only_an_admin_token_erases_or_holds_and_the_entries_name_it() {
    use crate::configurations::api;
    let tokens = r#"[{name = "siem", token = "r-token-123", role = "read"}, {name = "dpo", token = "a-token-456", role = "admin"}]"#;
    let env = [("AUDITGATE_QUERY__TOKENS", tokens), ("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")];
    let app = spawn_app_with(&env, None).await;
    write_trail(&app).await;
    let erase = r#"{"actor": "zoe-q7x"}"#;
    let hold = r#"{"actor": "bob", "reason": "audit 2026"}"#;
    for (path, body) in [("/api/v1/erasures", erase), ("/api/v1/holds", hold)] {
        assert_eq!(api(&app, None, Method::POST, path, body).await.0, 401, "{path}");
        assert_eq!(api(&app, Some("r-token-123"), Method::POST, path, body).await.0, 403, "{path}");
    }
    assert_eq!(api(&app, Some("r-token-123"), Method::GET, "/api/v1/holds", "").await.0, 200);
    let (status, report) = api(&app, Some("a-token-456"), Method::POST, "/api/v1/erasures", erase).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(2)), "{report}");
    let (status, made) = api(&app, Some("a-token-456"), Method::POST, "/api/v1/holds", hold).await;
    assert_eq!((status, made["created_by"].as_str()), (201, Some("dpo")), "{made}");
    let one = format!("/api/v1/holds/{}", made["id"]);
    assert_eq!(api(&app, Some("r-token-123"), Method::DELETE, &one, "").await.0, 403);
    let (_, found) = api(&app, Some("r-token-123"), Method::GET, "/api/v1/audit-logs?resource_type=erasure", "").await;
    let erasure = &found["items"][0];
    assert_eq!((erasure["actor"].as_str(), erasure["actor_source"].as_str()), (Some("dpo"), Some("token")));
    app.stop().await;
}

#[tokio::test]
async fn an_erasure_of_more_entries_than_a_batch_plans_and_erases_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let mut chain = auditgate::entry::Chain::resume(None);
    // 2,004 entries, a quarter each by actor-0 … actor-3: 501 by actor-2,
    // one more than an erasure reads a page.
    for start in (0..2004).step_by(501) {
        store.insert_batch(&crate::store::sealed(&mut chain, "gw", start..start + 501)).await.unwrap();
    }
    let selector = auditgate::erasure::Selector::Actor("actor-2".into());
    let plan = auditgate::erasure::plan(&store, &selector).await.unwrap();
    assert_eq!((plan.ids.len(), plan.not_erasable), (501, 0));
    let report = auditgate::erasure::carry_out(&store, &plan).await.unwrap();
    assert_eq!(report.erased, 501);
    // Carried out without its entry (`erasure::entry`): verify says so.
    let v = store.verify().await.unwrap();
    assert_eq!((v.ok, v.erased, v.erased_unrecorded), (false, 501, 501), "{v:?}");
    store.close().await;
}

#[tokio::test]
async fn an_erasures_own_entries_are_never_erased_and_count_only_what_is_left() {
    let (app, _, _) = app_with_trail().await;
    let erase = |body: Value| query(&app, Method::POST, "/api/v1/erasures", Some(body));
    assert_eq!(erase(json!({"actor": ZOE})).await.1["erased"], 2);
    // Again: nothing left to erase, and its entry says so.
    assert_eq!(erase(json!({"actor": ZOE})).await.1["erased"], 0);
    let second = wait_for(&app, "erasure", 2).await;
    assert_eq!(second["after"]["erased"], 0, "{second}");
    // The operator (`local`) made both erasures' entries: they stay.
    assert_eq!(erase(json!({"actor": "local"})).await.1["erased"], 0);
    let (_, erasures) = query(&app, Method::GET, "/api/v1/audit-logs?resource_type=erasure", None).await;
    let erasures = erasures["items"].as_array().unwrap().clone();
    assert_eq!(erasures.len(), 3);
    assert!(erasures.iter().all(|e| e["actor"] == "local" && e.get("erased").is_none()), "{erasures:?}");
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["erased"].as_u64()), (Some(true), Some(2)), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn retention_stops_at_the_oldest_entry_any_active_hold_covers() {
    use auditgate::erasure::Selector;
    use auditgate::hold::{NewHold, oldest_held};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let mut chain = auditgate::entry::Chain::resume(None);
    store.insert_batch(&crate::store::sealed(&mut chain, "gw", 0..12)).await.unwrap();
    let all = wait_entries(&store, 12).await;
    assert_eq!(oldest_held(&store).await.unwrap(), None);
    // Made first, but covering later entries (actor-3: the 4th, 8th, 12th).
    let at = "2026-12-01T00:00:00.000000Z";
    let later = NewHold::new(Selector::Actor("actor-3".into()), None, None, "later").unwrap();
    store.insert_hold(&later, "ops", at).await.unwrap();
    let (from, hold) = oldest_held(&store).await.unwrap().unwrap();
    assert_eq!((from.as_str(), hold.reason.as_str()), (all[3].id.as_str(), "later"));
    // Then one covering the 2nd entry (actor-1): retention stops there.
    let earlier = NewHold::new(Selector::Actor("actor-1".into()), None, None, "earlier").unwrap();
    let made = store.insert_hold(&earlier, "ops", at).await.unwrap();
    let (from, hold) = oldest_held(&store).await.unwrap().unwrap();
    assert_eq!((from.as_str(), hold.reason.as_str()), (all[1].id.as_str(), "earlier"));
    // Released: back to the other.
    store.release_hold(made.id, "ops", at).await.unwrap().unwrap();
    assert_eq!(oldest_held(&store).await.unwrap().unwrap().0, all[3].id);
    store.close().await;
}

#[tokio::test]
async fn an_erasure_never_wipes_the_evidence_of_how_the_trail_was_kept() {
    let (app, _, _) = app_with_trail().await;
    let erase = |body: Value| query(&app, Method::POST, "/api/v1/erasures", Some(body));
    let (status, config) =
        query(&app, Method::POST, "/api/v1/audit-configurations", Some(json!({"name": "evidence"}))).await;
    assert_eq!(status, 201);
    let configuration = format!("audit_configuration/{}", config["id"]);
    // Its own resources are not erasable by name.
    for own in [configuration.as_str(), "legal_hold/1", "erasure/1", "audit_log/1"] {
        let (status, err) = erase(json!({"resource": own})).await;
        assert_eq!((status, err["field"].as_str()), (400, Some("resource")), "{own}: {err}");
    }
    // A range wider than a /16 needs `force`.
    for range in ["0.0.0.0/0", "198.0.0.0/8", "::/0"] {
        let (status, err) = erase(json!({"client_ip": range})).await;
        assert_eq!((status, err["field"].as_str()), (400, Some("force")), "{range}: {err}");
    }
    assert_eq!(verify(&app).await["erased"], 0, "nothing erased by a refused erasure");
    // Forced: every app entry from an IPv4 address (zoe's and bob's), but
    // not the configuration's entry, though it came from 127.0.0.1.
    let (status, report) = erase(json!({"client_ip": "0.0.0.0/0", "force": true, "reason": "ticket 12"})).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(4)), "{report}");
    let (_, configs) = query(&app, Method::GET, "/api/v1/audit-logs?resource_type=audit_configuration", None).await;
    let made = &configs["items"][0];
    assert_eq!((made["actor"].as_str(), made["after"]["name"].as_str()), (Some("local"), Some("evidence")), "{made}");
    assert_eq!(made["client_ip"], "127.0.0.1");
    // The erasure's entry says what kind of selector and how wide, sealed.
    let record = wait_for(&app, "erasure", 1).await;
    let seal = json!({"selector": "client_ip", "prefix_len": 0, "forced": true, "erased": 4, "not_erasable": 0});
    assert_eq!(record["erasure"], seal, "{record}");
    assert_eq!(record["after"]["selector"], json!({"client_ip": "[erased]", "prefix_len": 0}));
    // The first erasure's entry stays whole through a second erasure by
    // the operator's name and address.
    assert_eq!(erase(json!({"client_ip": "127.0.0.1"})).await.1["erased"], 0);
    assert_eq!(erase(json!({"actor": "local"})).await.1["erased"], 0);
    let (_, one) =
        query(&app, Method::GET, &format!("/api/v1/audit-logs/{}", record["id"].as_str().unwrap()), None).await;
    assert_eq!((one["actor"].as_str(), one.get("erased")), (Some("local"), None), "{one}");
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["erased"].as_u64()), (Some(true), Some(4)), "{v}");
    app.stop().await;
}

#[tokio::test]
async fn erasing_an_actor_erases_the_released_holds_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")];
    let app = spawn_app_with(&env, None).await;
    write_trail(&app).await;
    const REASON: &str = "Quartzfield v. Example Corp";
    let (status, hold) =
        query(&app, Method::POST, "/api/v1/holds", Some(json!({"actor": ZOE, "reason": REASON}))).await;
    assert_eq!(status, 201, "{hold}");
    // Bob's hold names someone else and stays as it is.
    let (_, other) =
        query(&app, Method::POST, "/api/v1/holds", Some(json!({"actor": "bob", "reason": "bob's case"}))).await;
    let released = format!("/api/v1/holds/{}", hold["id"]);
    assert_eq!(query(&app, Method::DELETE, &released, None).await.0, 200);
    assert_eq!(query(&app, Method::DELETE, &format!("/api/v1/holds/{}", other["id"]), None).await.0, 200);
    wait_for(&app, "legal_hold", 4).await;
    let (_, found) = query(&app, Method::GET, "/api/v1/audit-logs?q=Quartzfield%20v.", None).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "the hold's entry holds the reason: {found}");
    // Zoe's two entries and her hold's two.
    let (status, report) = query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await;
    assert_eq!((status, report["erased"].as_u64()), (200, Some(4)), "{report}");
    let (_, listing) = query(&app, Method::GET, "/api/v1/holds", None).await;
    let listed = listing.to_string();
    assert!(!listed.contains(ZOE) && !listed.contains("Quartzfield"), "{listed}");
    assert_eq!(listing["items"][0]["actor"], "[erased]");
    assert_eq!(listing["items"][0]["reason"], "[erased]");
    assert_eq!(listing["items"][1]["reason"], "bob's case");
    for q in ["Quartzfield", ZOE] {
        let (_, found) = query(&app, Method::GET, &format!("/api/v1/audit-logs?q={q}"), None).await;
        assert_eq!(found["items"], json!([]), "{q}");
    }
    let history = format!("/api/v1/resources/legal_hold/{}/history", hold["id"]);
    let (_, history) = query(&app, Method::GET, &history, None).await;
    let history = history["items"].as_array().unwrap().clone();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|e| e["erased"] == true && e.get("after").is_none()), "{history:?}");
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["erased"].as_u64()), (Some(true), Some(4)), "{v}");
    let bytes = store_bytes(&app.store, dir.path()).await;
    for secret in ZOE_SECRETS.iter().chain([&REASON]) {
        assert!(!holds(&bytes, secret), "`{secret}` is still in the store's files");
    }
    assert!(holds(&bytes, "bob's case"));
    app.stop().await;
}

#[tokio::test]
async fn forged_erasure_counts_and_entries_erased_in_name_only_fail_verify() {
    let (app, _, _) = app_with_trail().await;
    assert_eq!(query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await.0, 200);
    let record = wait_for(&app, "erasure", 1).await;
    let record_id = record["id"].as_str().unwrap().to_string();
    assert_eq!(verify(&app).await["ok"], true);
    execute(&app.store, &format!("CREATE TABLE saved AS SELECT * FROM audit_log WHERE id = '{record_id}'"), &[]).await;
    // The probe: the erasure's own entry marked erased (its other personal
    // fields stripped, so its columns agree) with its `after` count raised.
    let mut forged = record.clone();
    for field in auditgate::entry::PERSONAL.iter().filter(|f| **f != "after") {
        forged.as_object_mut().unwrap().remove(*field);
    }
    forged["erased"] = json!(true);
    forged["after"]["erased"] = json!(1000);
    put_row(&app.store, &record_id, &forged, false).await;
    // Then bob's two entries stripped and marked erased.
    let (_, bobs) = query(&app, Method::GET, "/api/v1/audit-logs?actor=bob", None).await;
    for entry in bobs["items"].as_array().unwrap() {
        let mut stripped = entry.clone();
        for field in auditgate::entry::PERSONAL {
            stripped.as_object_mut().unwrap().remove(field);
        }
        stripped["erased"] = json!(true);
        put_row(&app.store, entry["id"].as_str().unwrap(), &stripped, false).await;
    }
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["first_bad"].as_str()), (Some(false), Some(record_id.as_str())), "{v}");
    assert_eq!(app.store.verify().await.unwrap().first_bad.as_deref(), Some(record_id.as_str()));
    // Its `after` gone too (erased as an erasure would): an erasure's entry
    // is never erased.
    forged.as_object_mut().unwrap().remove("after");
    put_row(&app.store, &record_id, &forged, false).await;
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["first_bad"].as_str()), (Some(false), Some(record_id.as_str())), "{v}");
    // Back as it was: bob's entries are erased beyond the sealed count.
    put_row(&app.store, &record_id, &record, true).await;
    let v = verify(&app).await;
    assert_eq!(
        (v["ok"].as_bool(), v["first_bad"].as_str(), v["erased_unrecorded"].as_u64()),
        (Some(false), None, Some(2)),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_entry_marked_erased_that_keeps_a_personal_field_fails_verify() {
    let (app, _, _) = app_with_trail().await;
    assert_eq!(query(&app, Method::POST, "/api/v1/erasures", Some(json!({"actor": ZOE}))).await.0, 200);
    let (_, hers) = query(&app, Method::GET, "/api/v1/audit-logs?resource_type=user&limit=4", None).await;
    let erased = hers["items"].as_array().unwrap().iter().find(|e| e["erased"] == true).unwrap().clone();
    let id = erased["id"].as_str().unwrap().to_string();
    execute(&app.store, &format!("CREATE TABLE saved AS SELECT * FROM audit_log WHERE id = '{id}'"), &[]).await;
    // Flagged erased, with an altered personal field kept: the digest is
    // not checked for an erased entry, so no field may be left at all.
    let mut kept = erased.clone();
    kept["after"] = json!({"name": "Someone Else", "role": "admin"});
    put_row(&app.store, &id, &kept, false).await;
    let v = verify(&app).await;
    assert_eq!((v["ok"].as_bool(), v["first_bad"].as_str()), (Some(false), Some(id.as_str())), "{v}");
    put_row(&app.store, &id, &erased, false).await;
    assert_eq!(verify(&app).await["ok"], true);
    app.stop().await;
}
