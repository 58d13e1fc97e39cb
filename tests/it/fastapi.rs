//! End to end against a second real third-party app, from another ecosystem
//! than json-server: a FastAPI service on uvicorn (PyPI, installed into
//! `tests/fastapi/.venv` by scripts/test.sh). Its creates answer chunked with
//! no `Location`, one of them gzip-encoded; pydantic normalises what it is
//! sent.

use std::process::Command;

use bytes::Bytes;
use http::{Method, Response};
use serde_json::{Value, json};

use crate::audit::wait_entries;
use crate::helpers::*;

/// uvicorn serving `tests/fastapi/app.py` on a free port.
fn spawn_fastapi() -> AppServer {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fastapi");
    let python = dir.join(".venv/bin/python");
    assert!(python.exists(), "FastAPI is not installed: run scripts/test.sh (a venv in tests/fastapi)");
    let port = AppServer::free_port();
    let mut uvicorn = Command::new(python);
    uvicorn
        .args(["-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--log-level", "warning"])
        .current_dir(&dir);
    AppServer::start(&mut uvicorn, port, "uvicorn", "python runs uvicorn")
}

/// A create to make: its path, extra request headers, the id it gets.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

fn json_of(res: &Response<Bytes>) -> Value {
    serde_json::from_slice(res.body()).unwrap()
}

#[tokio::test]
async fn fastapi_creates_answered_chunked_without_location_have_their_id_and_the_same_bytes() {
    let app_server = spawn_fastapi();
    let app = spawn_app_to(&app_server.url(""), &[], None).await;
    // (path, request headers, the id the create gets)
    let cases: [Case<'_>; 3] = [
        ("/api/v1/customers/", &[], "1"),
        ("/api/v1/orders/", &[("accept-encoding", "gzip")], "1"),
        ("/api/v1/ledgers/", &[], "100000000000000000000000000001"),
    ];
    for (n, (path, headers, id)) in cases.into_iter().enumerate() {
        as_diana(&app_server.url("/reset"), Method::POST, None, &[]).await;
        let through = as_diana(&app.url(path), Method::POST, Some(json!({"name": path})), headers).await;
        let entry = wait_entries(&app.store, n + 1).await.remove(n);
        as_diana(&app_server.url("/reset"), Method::POST, None, &[]).await;
        let direct = as_diana(&app_server.url(path), Method::POST, Some(json!({"name": path})), headers).await;
        // The framework's framing: chunked, no Location.
        assert_eq!(through.status(), 201);
        assert!(direct.headers().get("content-length").is_none() && direct.headers().get("location").is_none());
        assert_eq!(through.body(), direct.body(), "{path}: the client's bytes differ from the app's");
        for h in ["content-type", "content-encoding", "content-length", "location"] {
            assert_eq!(through.headers().get(h), direct.headers().get(h), "{path}: {h}");
        }
        assert_eq!(
            (entry.action.as_str(), entry.resource_id.as_deref(), entry.snapshot_error.as_deref()),
            ("create", Some(id), None),
            "{path}"
        );
        let after = entry.after.unwrap();
        assert_eq!((after["id"].to_string(), &after["name"]), (id.to_string(), &json!(path)));
    }
    assert_eq!(as_diana(&app.url("/api/v1/orders/"), Method::POST, Some(json!({})), &[]).await.status(), 201);
}

#[tokio::test]
async fn fastapi_lifecycle_has_a_timeline_and_what_pydantic_changed_is_unapplied() {
    let app_server = spawn_fastapi();
    let app = spawn_app_to(&app_server.url(""), &[], None).await;
    let asked = json!({
        "name": "Ann", "email": " ANN@X.IO", "age": "42", "role": "admin", "password": "pw-secret-1",
        "address": {"city": "Lyon", "zip": "69001"},
    });
    let created = as_diana(&app.url("/api/v1/customers/"), Method::POST, Some(asked), &[]).await;
    assert_eq!(created.status(), 201);
    let id = json_of(&created)["id"].to_string();
    let item = format!("/api/v1/customers/{id}/");
    let moved = json!({"address": {"city": "Paris", "zip": "75001"}});
    assert_eq!(as_diana(&app.url(&item), Method::PATCH, Some(moved), &[]).await.status(), 200);
    let put = json!({"name": "Ann Lee", "email": "ann@corp.io", "password": "pw-secret-2"});
    assert_eq!(as_diana(&app.url(&item), Method::PUT, Some(put), &[]).await.status(), 200);
    let invalid = as_diana(&app.url(&item), Method::PATCH, Some(json!({"age": "forty"})), &[]).await;
    assert_eq!(invalid.status(), 422);
    assert_eq!(as_diana(&app.url(&item), Method::DELETE, None, &[]).await.status(), 204);

    let e = wait_entries(&app.store, 5).await;
    let summary: Vec<(&str, Option<&str>, u16)> =
        e.iter().map(|e| (e.action.as_str(), e.resource_id.as_deref(), e.status)).collect();
    let id = id.as_str();
    assert_eq!(
        summary,
        [
            ("create", Some(id), 201),
            ("update", Some(id), 200),
            ("update", Some(id), 200),
            ("update", Some(id), 422),
            ("delete", Some(id), 204)
        ]
    );
    let (create, patch, put, failed, delete) = (&e[0], &e[1], &e[2], &e[3], &e[4]);
    assert_eq!(
        create.after,
        Some(json!({"id": 1, "role": "customer", "name": "Ann", "email": "ann@x.io", "age": 42,
                    "address": {"city": "Lyon", "zip": "69001"}}))
    );
    // Coerced, normalised and read-only fields; the write-only password is not listed.
    let unapplied: Vec<(String, Value, Value)> =
        create.unapplied.clone().flatten().unwrap().into_iter().map(|u| (u.path, u.requested, u.applied)).collect();
    assert_eq!(
        unapplied,
        [
            ("/age".into(), json!("42"), json!(42)),
            ("/email".into(), json!(" ANN@X.IO"), json!("ann@x.io")),
            ("/role".into(), json!("admin"), json!("customer")),
        ]
    );
    assert_eq!(patch.unapplied, Some(Some(vec![])));
    let changed: Vec<&str> = patch.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(changed, ["/address/city", "/address/zip"]);
    // The timeline chains: each before is the previous after.
    assert_eq!(patch.before, create.after);
    assert_eq!(put.before, patch.after);
    assert_eq!(failed.before, put.after);
    assert_eq!((failed.after.clone(), failed.outcome.as_str()), (None, "failure"));
    assert_eq!((delete.before.clone(), delete.after.clone()), (put.after.clone(), None));
    let history = app.store.history("customer", id, None, 1000).await.unwrap().0;
    assert_eq!(history.len(), 5);
    assert!(app.store.verify().await.unwrap().ok);
    let rows = stored_entries(&app.store).await;
    assert!(rows.iter().all(|row| !row.contains("pw-secret")), "a password was stored");
}
