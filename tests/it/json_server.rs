//! End to end against a real third-party REST app: json-server 0.17 (npm,
//! installed by scripts/test.sh), under an `/api/v1/` prefix, with the trail
//! read back through the query port.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::helpers::*;

fn spawn_json_server() -> AppServer {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/json-server/node_modules/json-server/lib/cli/bin.js");
    assert!(bin.exists(), "json-server is not installed: run scripts/test.sh (npm ci in tests/json-server)");
    let dir = tempfile::tempdir().unwrap();
    let db = json!({"users": [
        {"id": 1, "name": "Alice", "email": "a@x.io", "address": {"city": "Paris", "zip": "75001"}, "password": "pw-alice-1"},
        {"id": 2, "name": "Bob", "email": "bob@x.io", "password": "pw-bob-2"},
    ]});
    std::fs::write(dir.path().join("db.json"), db.to_string()).unwrap();
    std::fs::write(dir.path().join("routes.json"), r#"{"/api/v1/*": "/$1"}"#).unwrap();
    let port = AppServer::free_port();
    let mut node = Command::new("node");
    node.arg(&bin)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--routes", "routes.json", "--quiet", "db.json"])
        .current_dir(dir.path());
    AppServer::start(&mut node, port, "json-server", "node runs json-server").keeping(dir)
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>, extra: &[(&str, &str)]) -> u16 {
    as_diana(&app.url(path), method, body, extra).await.status().as_u16()
}

async fn trail(app: &TestApp, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page: Value =
            serde_json::from_slice(get(&app.query("/api/v1/audit-logs?limit=1000")).await.body()).unwrap();
        let mut items = page["items"].as_array().unwrap().clone();
        if items.len() >= n {
            items.reverse();
            return items;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "only {} of {n} entries", items.len());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn changes(e: &Value) -> Vec<(String, Value, Value)> {
    e["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap().to_string(), c["old"].clone(), c["new"].clone()))
        .collect()
}

#[tokio::test]
async fn json_server_lifecycle_is_recorded_exactly() {
    let server = spawn_json_server();
    let app = spawn_app_to(&server.url(""), &[], None).await;
    assert_eq!(
        call(&app, Method::POST, "/api/v1/users", Some(json!({"name": "Carol", "email": "c@x.io"})), &[]).await,
        201
    );
    assert_eq!(call(&app, Method::PATCH, "/api/v1/users/1/", Some(json!({"email": "alice@corp.io"})), &[]).await, 200);
    assert_eq!(
        call(&app, Method::PATCH, "/api/v1/users/1/", Some(json!({"address": {"city": "Lyon", "zip": "75001"}})), &[])
            .await,
        200
    );
    let put = json!({"name": "Alice", "email": "alice@corp.io", "password": "pw-alice-2"});
    assert_eq!(call(&app, Method::PUT, "/api/v1/users/1/", Some(put), &[]).await, 200);
    assert_eq!(call(&app, Method::PATCH, "/api/v1/users/999/", Some(json!({"name": "x"})), &[]).await, 404);
    // A POST that json-server treats as DELETE is recorded as the delete it is.
    assert_eq!(call(&app, Method::POST, "/api/v1/users/2", None, &[("x-http-method-override", "DELETE")]).await, 200);
    assert_eq!(call(&app, Method::DELETE, "/api/v1/users/1/", None, &[]).await, 200);

    let e = trail(&app, 7).await;
    let summary: Vec<(String, String, String)> = e
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["resource_id"].as_str().unwrap_or("").into(),
                e["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("create", "3", "success"),
        ("update", "1", "success"),
        ("update", "1", "success"),
        ("update", "1", "success"),
        ("update", "999", "failure"),
        ("delete", "2", "success"),
        ("delete", "1", "success"),
    ];
    assert_eq!(summary, expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));

    let (create, patch, nested, put, failed, overridden, delete) = (&e[0], &e[1], &e[2], &e[3], &e[4], &e[5], &e[6]);
    assert_eq!(create["before"], Value::Null);
    assert_eq!(create["after"], json!({"id": 3, "name": "Carol", "email": "c@x.io"}));
    assert_eq!(changes(patch), vec![("/email".into(), json!("a@x.io"), json!("alice@corp.io"))]);
    assert_eq!(changes(nested), vec![("/address/city".into(), json!("Paris"), json!("Lyon"))]);
    assert_eq!(
        changes(put),
        vec![
            ("/address".into(), json!({"city": "Lyon", "zip": "75001"}), Value::Null),
            ("/password".into(), json!("[REDACTED]"), json!("[REDACTED]"))
        ]
    );
    assert_eq!(failed["status"], 404);
    assert_eq!((overridden["method"].as_str(), overridden["resource_type"].as_str()), (Some("POST"), Some("user")));
    assert_eq!(overridden["before"]["name"], "Bob");
    assert_eq!((delete["before"]["name"].as_str(), &delete["after"]), (Some("Alice"), &Value::Null));
    assert!(e.iter().all(|e| e["actor"] == "diana" && e["actor_source"] == "basic"));

    // The secrets are nowhere in the stored trail.
    let export = get(&app.query("/api/v1/audit-logs/export?format=ndjson")).await;
    let text = std::str::from_utf8(export.body()).unwrap();
    assert_eq!(text.lines().count(), 7);
    for secret in ["pw-alice-1", "pw-alice-2", "pw-bob-2"] {
        assert!(!text.contains(secret), "{secret} was stored");
    }
    let history: Value =
        serde_json::from_slice(get(&app.query("/api/v1/resources/user/1/history")).await.body()).unwrap();
    let actions: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["update", "update", "update", "delete"]);
    let verify: Value = serde_json::from_slice(get(&app.query("/api/v1/verify")).await.body()).unwrap();
    assert_eq!((&verify["ok"], &verify["checked"], &verify["first_bad"]), (&json!(true), &json!(7), &Value::Null));
    assert_eq!(verify["heads"].as_array().map(Vec::len), Some(1), "one instance, one head");
}

#[tokio::test]
async fn concurrent_json_server_patches_chain_their_states() {
    let server = spawn_json_server();
    let app = spawn_app_to(&server.url(""), &[], None).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let url = app.url("/api/v1/users/1/");
        tasks.push(tokio::spawn(async move {
            let body = Full::new(Bytes::from(json!({"email": format!("v{i}@x.io")}).to_string()));
            send(&client(), Request::patch(url).header("content-type", "application/json").body(body).unwrap())
                .await
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let mut e = trail(&app, 24).await;
    e.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    assert_eq!(e[0]["before"]["email"], "a@x.io");
    for pair in e.windows(2) {
        assert_eq!(pair[1]["before"], pair[0]["after"], "two PATCHes shared a snapshot");
    }
    for entry in &e {
        assert_eq!(changes(entry).len(), 1, "{entry}");
    }
}

/// `Bearer` credentials for an HS256 JWT naming `sub`, signed with `secret`.
fn hs256(sub: &str, secret: &str) -> String {
    let claims = json!({"sub": sub});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    format!("Bearer {}", jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap())
}

#[tokio::test]
async fn c14_overrides_and_unverified_names_cannot_evade_the_trail() {
    use base64::Engine;
    let server = spawn_json_server();
    let upstream = server.url("");
    let exclude = "[[configuration]]\nname = \"Not the sync job\"\nconfiguration_type = \"exclude\"\n\
                   audit_all_users = false\naudit_users = [\"svc-sync\"]\n";
    let env = [("AUDITGATE_ACTOR__JWT_SECRET", "the-real-secret")];
    let app = spawn_app_files(&upstream, &env, &[("audit.toml", exclude)]).await;
    let create = |extra: &'static [(&'static str, &'static str)]| {
        call(&app, Method::POST, "/api/v1/users", Some(json!({"name": "via override"})), extra)
    };
    // Overrides naming a read: json-server ignores them and creates; so is the trail.
    assert_eq!(create(&[("x-http-method", "GET")]).await, 201);
    assert_eq!(create(&[("x-method-override", "GET")]).await, 201);
    assert_eq!(create(&[("x-http-method", "HEAD")]).await, 201);
    assert_eq!(create(&[("x-http-method", "OPTIONS")]).await, 201);
    let form = Request::post(app.url("/api/v1/users"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"name=x&_method=GET")))
        .unwrap();
    assert_eq!(send(&client(), form).await.status(), 201);
    // An override the client asks the proxy to drop is not what the app acts on.
    let dropped = [("x-http-method-override", "DELETE"), ("connection", "X-HTTP-Method-Override")];
    assert_eq!(call(&app, Method::POST, "/api/v1/users/2", None, &dropped).await, 404);
    assert_eq!(get(&format!("{upstream}/users/2")).await.status(), 200, "user 2 still exists");
    // Unverified names of the excluded user still leave entries; the verified one does not.
    let none = format!(
        "Bearer {}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"svc-sync"}"#)
    );
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("svc-sync:x"));
    let verified = hs256("svc-sync", "the-real-secret");
    for (i, auth) in [hs256("svc-sync", "a-wrong-key"), verified.clone(), none, basic].iter().enumerate() {
        let patch = Request::patch(app.url("/api/v1/users/1"))
            .header("content-type", "application/json")
            .header("authorization", auth.as_str())
            .body(Full::new(Bytes::from(json!({"name": format!("sync {i}")}).to_string())))
            .unwrap();
        assert_eq!(send(&client(), patch).await.status(), 200);
    }
    // A last recorded request, so that everything before it has been written.
    assert_eq!(call(&app, Method::DELETE, "/api/v1/users/3", None, &[]).await, 200);

    let all = trail(&app, 11).await;
    assert_eq!(all[0]["resource_type"], "audit_configuration", "the seeded exclusion comes first");
    let e = &all[1..];
    let summary: Vec<(String, String, String, u64)> = e
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["resource_id"].as_str().unwrap_or("").into(),
                e["method"].as_str().unwrap().into(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("create", "3", "POST", 201),
        ("create", "4", "POST", 201),
        ("create", "5", "POST", 201),
        ("create", "6", "POST", 201),
        ("create", "7", "POST", 201),
        ("update", "2", "POST", 404),
        ("update", "1", "PATCH", 200),
        ("update", "1", "PATCH", 200),
        ("update", "1", "PATCH", 200),
        ("delete", "3", "DELETE", 200),
    ];
    assert_eq!(summary, expected.map(|(a, id, m, s)| (a.to_string(), id.to_string(), m.to_string(), s)));
    assert_eq!(e[4]["after"]["_method"], "GET", "the form create's after-state");
    let names: Vec<(&str, bool, &str)> = e[6..9]
        .iter()
        .map(|e| {
            (e["actor"].as_str().unwrap(), e["actor_verified"].as_bool().unwrap(), e["after"]["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(names, [("svc-sync", false, "sync 0"), ("svc-sync", false, "sync 2"), ("svc-sync", false, "sync 3")]);
    // The verified change happened, unrecorded as configured: entry 3 starts from it.
    assert_eq!(e[7]["before"]["name"], "sync 1");
}
