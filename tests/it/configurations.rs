//! Audit configurations end to end (docs/rules.md, docs/query-api.md): created through the
//! query port, obeyed by the proxy in front of the example upstream's REST
//! collections, recorded in the trail, shared between instances.

use std::time::Duration;

use auditgate::entry::AuditEntry;
use auditgate::store::{Filter, Store};
use base64::Engine;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::helpers::*;

/// A request through the proxy as `user` (Basic), from `ip` (sent as
/// `X-Forwarded-For`, believed only where 127.0.0.1 is a trusted proxy).
async fn call_as(app: &TestApp, user: &str, ip: &str, method: Method, path: &str, body: Value) -> u16 {
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw")));
    let req = Request::builder()
        .method(method)
        .uri(app.url(path))
        .header("authorization", auth)
        .header("x-forwarded-for", ip)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(if body.is_null() { String::new() } else { body.to_string() })))
        .unwrap();
    send(&client(), req).await.status().as_u16()
}

async fn call(app: &TestApp, method: Method, path: &str, body: Value) -> u16 {
    call_as(app, "alice", "203.0.113.9", method, path, body).await
}

/// A query-port request with an optional bearer token.
pub(crate) async fn api(app: &TestApp, token: Option<&str>, method: Method, path: &str, body: &str) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(app.query(path)).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = send(&client(), req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await;
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

/// An include configuration for `settle`'s markers (lowest priority).
async fn markers(app: &TestApp) {
    configure(app, json!({"name": "Markers", "audit_resource_types": ["marker"], "priority": -100})).await;
}

async fn configure(app: &TestApp, config: Value) -> Value {
    let (status, body) = api(app, None, Method::POST, "/api/v1/audit-configurations", &config.to_string()).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Entries of the proxied app (configuration changes left out), oldest first.
async fn app_entries(store: &Store) -> Vec<AuditEntry> {
    let (mut all, _) = store.list(&Filter::default(), None, 1000).await.unwrap();
    all.retain(|e| e.resource_type != "audit_configuration");
    all.reverse();
    all
}

/// Sends `marker` (which must be recorded), waits for its entry and for the
/// trail to stay still for 300 ms, and returns the other entries: whatever
/// was sent earlier and not recorded by then is not going to be.
async fn settle(app: &TestApp, marker: &str) -> Vec<AuditEntry> {
    assert_eq!(call_as(app, "marker", "203.0.113.9", Method::POST, marker, json!({"m": 1})).await, 201);
    // Generous: the suite runs beside headless Chromium and PostgreSQL.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = app_entries(&app.store).await;
    let mut still_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = app_entries(&app.store).await;
        if now.len() != seen.len() {
            still_since = tokio::time::Instant::now();
        }
        seen = now;
        let marked = seen.iter().any(|e| e.actor == "marker");
        if marked && still_since.elapsed() >= Duration::from_millis(300) {
            seen.retain(|e| e.actor != "marker");
            return seen;
        }
        if tokio::time::Instant::now() >= deadline {
            let metrics = String::from_utf8_lossy(get(&app.query("/metrics")).await.body()).into_owned();
            let gauges: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#')).collect();
            let why = if marked { "the trail kept moving" } else { "the marker was not recorded" };
            panic!("{why}; entries {:?}; metrics {gauges:?}", summary(&seen));
        }
    }
}

/// The trail's configuration changes, oldest first, once there are `n`.
async fn configuration_changes(app: &TestApp, n: usize) -> Vec<AuditEntry> {
    let mut f = Filter::default();
    f.set("resource_type", "audit_configuration").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (mut found, _) = app.store.list(&f, None, 1000).await.unwrap();
        if found.len() >= n {
            found.reverse();
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} configuration changes recorded", found.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn summary(entries: &[AuditEntry]) -> Vec<(String, String, String, Option<String>)> {
    entries
        .iter()
        .map(|e| (e.action.clone(), e.resource_type.clone(), e.actor.clone(), e.configuration.clone()))
        .collect()
}

fn row(action: &str, kind: &str, actor: &str, config: &str) -> (String, String, String, Option<String>) {
    (action.into(), kind.into(), actor.into(), Some(config.into()))
}

#[tokio::test]
async fn audit_all_user_changes() {
    let app = spawn_app().await;
    configure(
        &app,
        json!({"name": "Audit All User Changes", "configuration_type": "include", "is_active": true,
        "audit_actions": ["create", "update", "delete"], "audit_resource_types": ["user"],
        "audit_all_users": true, "audit_all_ips": true}),
    )
    .await;
    markers(&app).await;
    assert_eq!(call(&app, Method::POST, "/api/users/", json!({"n": 1})).await, 201);
    assert_eq!(call(&app, Method::PATCH, "/api/users/1/", json!({"n": 2})).await, 200);
    assert_eq!(call(&app, Method::POST, "/api/orders/", json!({"n": 1})).await, 201);
    assert_eq!(call(&app, Method::GET, "/api/users/1/", Value::Null).await, 200);
    let entries = settle(&app, "/api/markers/").await;
    let name = "Audit All User Changes";
    // No order; no read (reads are recorded only when named).
    assert_eq!(summary(&entries), vec![row("create", "user", "alice", name), row("update", "user", "alice", name)]);
    assert_eq!(entries[1].changes.len(), 1);
}

#[tokio::test]
async fn admin_actions_only() {
    let app = spawn_app().await;
    configure(
        &app,
        json!({"name": "Admin Actions Only", "audit_actions": ["create", "update", "delete"],
        "audit_all_users": false, "audit_users": ["admin-user-id"], "audit_all_resource_types": true}),
    )
    .await;
    markers(&app).await;
    assert_eq!(call_as(&app, "admin-user-id", "1.2.3.4", Method::POST, "/api/orders/", json!({})).await, 201);
    assert_eq!(call_as(&app, "bob", "1.2.3.4", Method::POST, "/api/orders/", json!({})).await, 201);
    let anonymous = Request::post(app.url("/api/orders/")).body(Full::new(Bytes::from("{}"))).unwrap();
    assert_eq!(send(&client(), anonymous).await.status(), 201);
    assert_eq!(call_as(&app, "admin-user-id", "1.2.3.4", Method::DELETE, "/api/orders/2/", Value::Null).await, 204);
    let entries = settle(&app, "/api/markers/").await;
    assert_eq!(
        summary(&entries),
        vec![
            row("create", "order", "admin-user-id", "Admin Actions Only"),
            row("delete", "order", "admin-user-id", "Admin Actions Only"),
        ]
    );
}

#[tokio::test]
async fn exclude_system_models() {
    let app = spawn_app().await;
    configure(
        &app,
        json!({"name": "Exclude System Models", "exclude_resource_types": ["session", "logentry"],
        "audit_all_actions": true, "audit_all_users": true}),
    )
    .await;
    for path in ["/api/sessions/", "/api/logentries/", "/api/users/"] {
        assert_eq!(call(&app, Method::POST, path, json!({"n": 1})).await, 201);
    }
    let entries = settle(&app, "/api/markers/").await;
    assert_eq!(summary(&entries), vec![row("create", "user", "alice", "Exclude System Models")]);
}

#[tokio::test]
async fn office_ips_only() {
    let app = spawn_app_with(&[("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")], None).await;
    configure(
        &app,
        json!({"name": "Office IPs Only", "audit_all_ips": false,
        "audit_ips": ["192.168.1.0/24", "10.0.0.0/8"], "audit_all_actions": true}),
    )
    .await;
    markers(&app).await;
    for ip in ["192.168.1.77", "172.16.0.1", "10.20.30.40", "2001:db8::5"] {
        assert_eq!(call_as(&app, "carol", ip, Method::POST, "/api/users/", json!({})).await, 201);
    }
    let entries = settle(&app, "/api/markers/").await;
    let ips: Vec<&str> = entries.iter().map(|e| e.client_ip.as_str()).collect();
    assert_eq!(ips, ["192.168.1.77", "10.20.30.40"]);
    assert!(entries.iter().all(|e| e.configuration.as_deref() == Some("Office IPs Only")));
}

#[tokio::test]
async fn inactive_is_ignored_priority_credits_and_capture_levels_apply() {
    let app = spawn_app().await;
    // Inactive: as if absent, so every mutation is still audited.
    let off = configure(&app, json!({"name": "off", "is_active": false, "audit_resource_types": ["nothing"]})).await;
    assert_eq!(off["is_active"], false);
    assert_eq!(call(&app, Method::POST, "/api/orders/", json!({"n": 1})).await, 201);
    let entries = settle(&app, "/api/markers/").await;
    assert_eq!((entries.len(), entries[0].configuration.clone()), (1, None));

    configure(&app, json!({"name": "low", "priority": 1, "capture": "metadata"})).await;
    configure(&app, json!({"name": "high", "priority": 5, "audit_resource_types": ["user"], "capture": "full"})).await;
    assert_eq!(call(&app, Method::POST, "/api/users/", json!({"name": "u", "password": "hunter2"})).await, 201);
    assert_eq!(call(&app, Method::PATCH, "/api/orders/1/", json!({"n": 2})).await, 200);
    let entries = settle(&app, "/api/markers/").await;
    let (user, order) = (&entries[1], &entries[2]);
    assert_eq!((user.configuration.as_deref(), order.configuration.as_deref()), (Some("high"), Some("low")));
    // full: the request body, redacted; metadata: no states, no diff.
    assert_eq!(user.request_body, Some(json!({"name": "u", "password": "[REDACTED]"})));
    assert!(user.after.is_some());
    assert_eq!((order.before.clone(), order.after.clone(), order.changes.len()), (None, None, 0));
    assert_eq!(order.request_body, None);
}

#[tokio::test]
async fn configurations_are_validated_and_every_change_is_recorded() {
    let app = spawn_app().await;
    let path = "/api/v1/audit-configurations";
    for (body, field) in [
        (r#"{"name": "a", "colour": "red"}"#, "colour"),
        (r#"{"name": "a", "audit_actions": ["frobnicate"]}"#, "audit_actions"),
        (r#"{"name": "a", "audit_ips": ["10.0.0.0/99"]}"#, "audit_ips"),
        (r#"{"name": "a", "exclude_ips": ["nope"]}"#, "exclude_ips"),
        (r#"{"name": "a", "priority": "high"}"#, "priority"),
        (r#"{"name": "a", "is_active": "yes"}"#, "is_active"),
        (r#"{"priority": 1}"#, "name"),
        (r#"{"name": "a", "#, "body"),
        (r#"[1, 2]"#, "body"),
    ] {
        let (status, answer) = api(&app, None, Method::POST, path, body).await;
        assert_eq!((status, answer["field"].as_str()), (400, Some(field)), "{body} → {answer}");
        assert!(answer["error"].is_string());
    }
    let huge = format!(r#"{{"name": "a", "description": "{}"}}"#, "x".repeat(3 << 20));
    let (status, answer) = api(&app, None, Method::POST, path, &huge).await;
    assert_eq!((status, answer["field"].as_str()), (413, Some("body")));
    let created = configure(&app, json!({"name": "users", "audit_resource_types": ["user"]})).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["capture"], "diff");
    assert_eq!(created["source"], "api");
    let (status, dup) = api(&app, None, Method::POST, path, r#"{"name": "users"}"#).await;
    // A name already taken is a conflict with the stored state, not bad input.
    assert_eq!((status, dup["field"].as_str()), (409, Some("name")));

    let one = format!("{path}/{id}");
    let (status, patched) = api(&app, None, Method::PATCH, &one, r#"{"priority": 3}"#).await;
    assert_eq!(
        (status, patched["priority"].as_i64(), patched["audit_resource_types"].clone()),
        (200, Some(3), json!(["user"]))
    );
    let (status, replaced) = api(&app, None, Method::PUT, &one, r#"{"name": "users", "capture": "full"}"#).await;
    assert_eq!(
        (status, replaced["priority"].as_i64(), replaced["audit_resource_types"].clone()),
        (200, Some(0), json!([]))
    );
    let (status, bad) = api(&app, None, Method::PATCH, &one, r#"{"capture": "all"}"#).await;
    assert_eq!((status, bad["field"].as_str()), (400, Some("capture")));
    assert_eq!(api(&app, None, Method::GET, &one, "").await.1["capture"], "full");
    let (status, list) = api(&app, None, Method::GET, path, "").await;
    assert_eq!((status, list["items"].as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(api(&app, None, Method::DELETE, &one, "").await.0, 204);
    assert_eq!(api(&app, None, Method::GET, &one, "").await.0, 404);
    assert_eq!(api(&app, None, Method::DELETE, &one, "").await.0, 404);
    assert_eq!(api(&app, None, Method::GET, &format!("{path}/abc"), "").await.0, 404);

    // Create, patch, put, delete: four entries, before and after kept.
    let changes = configuration_changes(&app, 4).await;
    let actions: Vec<&str> = changes.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "update", "update", "delete"]);
    assert!(changes.iter().all(|e| e.actor == "local" && e.resource_id.as_deref() == Some(id.to_string().as_str())));
    assert_eq!(changes[1].changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/priority", "/updated_at"]);
    assert_eq!((changes[0].before.clone(), changes[3].after.clone()), (None, None));
    assert_eq!(changes[3].before.as_ref().unwrap()["capture"], "full");
}

#[tokio::test]
async fn read_tokens_read_and_admin_tokens_change() {
    let tokens = r#"[{name = "siem", token = "r-token-123", role = "read"}, {name = "ops", token = "a-token-456", role = "admin"}]"#;
    let app = spawn_app_with(&[("AUDITGATE_QUERY__TOKENS", tokens)], None).await;
    let path = "/api/v1/audit-configurations";
    let body = r#"{"name": "users", "audit_resource_types": ["user"]}"#;
    assert_eq!(api(&app, None, Method::GET, path, "").await.0, 401);
    assert_eq!(api(&app, None, Method::POST, path, body).await.0, 401);
    assert_eq!(api(&app, Some("r-token-123"), Method::GET, path, "").await.0, 200);
    let (status, answer) = api(&app, Some("r-token-123"), Method::POST, path, body).await;
    assert_eq!((status, answer["error"].is_string()), (403, true));
    let (status, created) = api(&app, Some("a-token-456"), Method::POST, path, body).await;
    assert_eq!(status, 201);
    let one = format!("{path}/{}", created["id"]);
    assert_eq!(api(&app, Some("r-token-123"), Method::DELETE, &one, "").await.0, 403);
    assert_eq!(api(&app, Some("r-token-123"), Method::GET, &one, "").await.0, 200);

    let found = configuration_changes(&app, 1).await;
    let e = &found[0];
    assert_eq!((found.len(), e.actor.as_str(), e.action.as_str()), (1, "ops", "create"));
}

#[tokio::test]
async fn a_change_through_one_instance_is_obeyed_by_another_within_config_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let env_a = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_CONFIG_REFRESH", "200ms"),
        ("AUDITGATE_INSTANCE", "gw-a"),
    ];
    let mut env_b = env_a;
    env_b[2].1 = "gw-b";
    let a = spawn_app_with(&env_a, None).await;
    let b = spawn_app_to(&a.upstream.as_ref().unwrap().url(), &env_b, None).await;

    // Before: no configuration, b audits every mutation.
    assert_eq!(call(&b, Method::POST, "/api/orders/", json!({})).await, 201);
    configure(&a, json!({"name": "users only", "audit_resource_types": ["user", "marker"]})).await;
    let changed = tokio::time::Instant::now();
    // b obeys within config_refresh (plus the time to see it here).
    loop {
        assert_eq!(call(&b, Method::POST, "/api/users/", json!({})).await, 201);
        let mut f = Filter::default();
        f.set("instance", "gw-b").unwrap();
        let (recent, _) = b.store.list(&f, None, 1).await.unwrap();
        if recent.first().is_some_and(|e| e.resource_type == "user" && e.configuration.as_deref() == Some("users only"))
        {
            break;
        }
        assert!(changed.elapsed() < Duration::from_secs(3), "instance b did not pick up the change");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(changed.elapsed() < Duration::from_secs(3));
    assert_eq!(call(&b, Method::POST, "/api/orders/", json!({})).await, 201);
    let entries = settle(&b, "/api/markers/").await;
    let orders: Vec<_> = entries.iter().filter(|e| e.resource_type == "order").collect();
    assert_eq!(orders.len(), 1, "only the order made before the change is recorded");
    assert_eq!(orders[0].configuration, None);
    assert!(a.store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn the_seed_file_configures_at_start_and_logins_are_recorded_without_passwords() {
    let resources = r#"
[[resource]]
pattern = "/api/login/"
type = "session"
action = "login"
username_from = "json:/username"

[[resource]]
pattern = "/api/login/{id}/"
type = "session"
action = "login"
username_from = "json:/username"

[[resource]]
pattern = "/status/{id}"
type = "session"
action = "login"
username_from = "json:/username"
"#;
    let audit = r#"
[[configuration]]
name = "Logins"
audit_actions = ["login"]

[[configuration]]
name = "Markers"
audit_resource_types = ["marker"]
"#;
    let upstream = spawn_upstream();
    let app = spawn_app_files(&upstream.url(), &[], &[("resources.toml", resources), ("audit.toml", audit)]).await;
    let (_, list) = api(&app, None, Method::GET, "/api/v1/audit-configurations", "").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(
        items.iter().map(|c| (c["name"].as_str().unwrap(), c["source"].as_str().unwrap())).collect::<Vec<_>>(),
        [("Logins", "file"), ("Markers", "file")]
    );
    let login = |user: &str, path: &str| {
        Request::post(app.url(path))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json!({"username": user, "password": "s3cret-pw"}).to_string())))
            .unwrap()
    };
    assert_eq!(send(&client(), login("dora", "/api/login/")).await.status(), 201);
    // The app refuses this one (405): a failed login.
    assert_eq!(send(&client(), login("eve", "/api/login/7/")).await.status(), 405);
    // A redirect is how many login forms say "try again": not a success.
    assert_eq!(send(&client(), login("frank", "/status/302")).await.status(), 302);
    let entries = settle(&app, "/api/markers/").await;
    let seen: Vec<_> = entries.iter().map(|e| (e.action.as_str(), e.actor.as_str(), e.outcome.as_str())).collect();
    assert_eq!(seen, [("login", "dora", "success"), ("login", "eve", "failure"), ("login", "frank", "failure")]);
    assert!(entries.iter().all(|e| e.configuration.as_deref() == Some("Logins")
        && e.actor_source == auditgate::identity::ActorSource::Login
        && e.request_body.is_none()));
    let stored = stored_entries(&app.store).await;
    assert!(stored.iter().all(|text| !text.contains("s3cret-pw")), "a password reached the trail");
    // The seeding itself is in the trail.
    assert_eq!(configuration_changes(&app, 2).await.len(), 2);
}

#[tokio::test]
async fn concurrent_changes_while_the_trail_is_written_all_succeed_and_are_all_recorded() {
    let app = spawn_app().await;
    let created = configure(&app, json!({"name": "contended"})).await;
    let one = format!("/api/v1/audit-configurations/{}", created["id"]);
    // Changes read the stored configuration and then write it, while the
    // recorder writes each change's entry on its own connection.
    let changes = (0..40).map(|i| {
        let (app, one) = (&app, &one);
        async move {
            let (method, body) = match i % 3 {
                0 => (Method::PATCH, json!({"priority": i})),
                1 => (Method::PUT, json!({"name": "contended", "description": format!("v{i}")})),
                _ => (Method::POST, json!({"name": format!("new {i}")})),
            };
            let path = if method == Method::POST { "/api/v1/audit-configurations" } else { one.as_str() };
            api(app, None, method, path, &body.to_string()).await
        }
    });
    for (status, body) in futures_util::future::join_all(changes).await {
        assert!(status == 200 || status == 201, "{status} {body}");
    }
    configuration_changes(&app, 41).await;
}

/// A restart with the same seed file changes nothing: no configuration is
/// rewritten, the version does not move, no change is recorded; an edited
/// seed is one recorded change.
#[tokio::test]
async fn a_restart_with_an_unchanged_seed_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let spool = dir.path().join("audit.spool").display().to_string();
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_RECORDER__SPOOL", spool.as_str())];
    let seed = "[[configuration]]\nname = \"Users\"\naudit_resource_types = [\"user\"]\n";
    let upstream = spawn_upstream();
    let first = spawn_app_files(&upstream.url(), &env, &[("audit.toml", seed)]).await;
    configuration_changes(&first, 1).await;
    let (version, configs) = first.store.configurations().await.unwrap();
    first.stop().await;

    let again = spawn_app_files(&upstream.url(), &env, &[("audit.toml", seed)]).await;
    assert_eq!(again.store.configurations().await.unwrap(), (version, configs.clone()), "nothing rewritten");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(configuration_changes(&again, 1).await.len(), 1, "no change recorded");
    again.stop().await;

    let edited = seed.replace("\"user\"", "\"order\"");
    let third = spawn_app_files(&upstream.url(), &env, &[("audit.toml", &edited)]).await;
    let (moved, now) = third.store.configurations().await.unwrap();
    assert_eq!((moved, now[0].id), (version + 1, configs[0].id), "the same configuration, changed once");
    assert_eq!(configuration_changes(&third, 2).await.len(), 2);
}
