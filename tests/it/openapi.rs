//! The query port's OpenAPI document (docs/query-api.md): it names every route and
//! nothing else, each operation in it answers as documented, and
//! schemathesis (PyPI, installed into `tests/schemathesis/.venv` by
//! scripts/test.sh) finds no 5xx and no answer off its schema (docs/security.md E22).

use std::collections::BTreeSet;
use std::process::Command;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::query::seeded;

async fn document(app: &TestApp) -> Value {
    let res = get(&app.query("/api/v1/openapi.json")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    serde_json::from_slice(res.body()).expect("the document is JSON")
}

#[tokio::test]
async fn e22_the_document_names_every_route_and_every_operation_in_it_answers() {
    let app = seeded().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");

    // The routes the query port serves, read from where they are declared.
    let source = include_str!("../../src/api/mod.rs");
    let routed: BTreeSet<&str> =
        source.split(".route(").skip(1).filter_map(|s| s.trim_start().strip_prefix('"')?.split('"').next()).collect();
    let documented: BTreeSet<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(routed, documented, "routes and documented paths differ");

    // Every documented operation, with ids that exist, gets one of its
    // documented success statuses.
    let page: Value = serde_json::from_slice(get(&app.query("/api/v1/audit-logs?limit=1")).await.body()).unwrap();
    let entry = &page["items"][0];
    let created = send(
        &client(),
        Request::post(app.query("/api/v1/audit-configurations"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json!({"name": "from the test"}).to_string())))
            .unwrap(),
    )
    .await;
    assert_eq!(created.status(), 201);
    let config: Value = serde_json::from_slice(created.body()).unwrap();
    let hold = send(
        &client(),
        Request::post(app.query("/api/v1/holds"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json!({"actor": "nobody", "reason": "the test"}).to_string())))
            .unwrap(),
    )
    .await;
    assert_eq!(hold.status(), 201);
    let hold: Value = serde_json::from_slice(hold.body()).unwrap();
    let mut answered = 0;
    // DELETE last, so the configuration is there for the others.
    for verb in ["get", "post", "put", "patch", "delete"] {
        for (path, item) in doc["paths"].as_object().unwrap() {
            let Some(op) = item.get(verb) else { continue };
            let url = path
                .replace("/audit-logs/{id}", &format!("/audit-logs/{}", entry["id"].as_str().unwrap()))
                .replace("/audit-configurations/{id}", &format!("/audit-configurations/{}", config["id"]))
                .replace("/holds/{id}", &format!("/holds/{}", hold["id"]))
                .replace("{kind}", entry["resource_type"].as_str().unwrap())
                .replace("{id}", entry["resource_id"].as_str().unwrap());
            let body = match verb {
                "post" if path == "/api/v1/erasures" => json!({"actor": "nobody-in-the-trail"}),
                "post" if path == "/api/v1/holds" => json!({"resource": "item/1", "reason": "the test"}),
                "post" => json!({"name": "another"}),
                "put" => json!({"name": "from the test", "description": "replaced"}),
                "delete" => json!({}),
                _ => json!({"description": "patched"}),
            };
            let req = Request::builder()
                .method(Method::from_bytes(verb.to_uppercase().as_bytes()).unwrap())
                .uri(app.query(&url))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(if op.get("requestBody").is_some() {
                    body.to_string()
                } else {
                    String::new()
                })))
                .unwrap();
            // The event stream never ends: its status and type are the answer.
            let res = if path.ends_with("/stream") {
                let res = client().request(req).await.unwrap();
                assert_eq!(res.headers()["content-type"], "text/event-stream");
                res.map(|_| Bytes::new())
            } else {
                send(&client(), req).await
            };
            let status = res.status().as_str().to_string();
            assert!(status.starts_with('2'), "{verb} {url}: {status} {:?}", res.body());
            assert!(op["responses"].get(&status).is_some(), "{verb} {path}: {status} is not documented");
            answered += 1;
        }
    }
    assert_eq!(answered, 22);
}

#[tokio::test]
async fn e22_schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let cli = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/.venv/bin/schemathesis");
    assert!(cli.exists(), "schemathesis is not installed: run scripts/test.sh (a venv in tests/schemathesis)");
    let app = seeded().await;
    let schema = app.query("/api/v1/openapi.json");
    let examples = std::env::var("AUDITGATE_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "30".into());
    // Run where its failure cache cannot replay an earlier run's cases.
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_path_buf();
    // Blocking, so on a thread of its own: the app runs on this test's runtime.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(cli)
            .args(["run", &schema, "--checks", "all", "--max-examples", &examples, "--seed", "1", "--workers", "1"])
            .args(["--no-color", "--phases", "examples,coverage,fuzzing,stateful"])
            // An event stream is endless: a request for it never completes.
            .args(["--exclude-operation-id", "streamEntries"])
            .current_dir(&cwd)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems:\n{report}");
    assert!(report.contains("passed"), "schemathesis ran no test:\n{report}");
}
