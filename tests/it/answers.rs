//! Audited answers read through the tee: a create's id is found whatever the
//! framing (declared length, chunked, closed-delimited) and coding (gzip,
//! deflate, br) of its answer, the client gets the upstream's bytes as they
//! come, and what was asked but not applied is recorded (`unapplied`).

use std::time::Duration;

use auditgate::entry::AuditEntry;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::audit::wait_entries;
use crate::helpers::*;

/// `POST url` with a JSON body; the answer with its body as sent (not decoded).
async fn post(url: &str, body: Value) -> Response<Bytes> {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip, deflate, br")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(&client(), req).await
}

fn summary(e: &AuditEntry) -> (&str, Option<&str>, Option<&str>) {
    (e.action.as_str(), e.resource_id.as_deref(), e.snapshot_error.as_deref())
}

#[tokio::test]
async fn a_create_finds_its_id_whatever_the_framing_and_coding_and_the_client_gets_the_same_bytes() {
    let app = spawn_app().await;
    let upstream = app.upstream.as_ref().unwrap().url();
    let modes = ["length", "chunked", "gzip", "deflate", "br", "bigid"];
    for (n, mode) in modes.iter().enumerate() {
        let path = format!("/framed/{mode}/items/");
        let reset = format!("{upstream}/framed/reset");
        post(&reset, Value::Null).await;
        let through = post(&app.url(&path), json!({"name": mode})).await;
        let entries = wait_entries(&app.store, n + 1).await;
        let entry = &entries[n];
        post(&reset, Value::Null).await;
        let direct = post(&format!("{upstream}{path}"), json!({"name": mode})).await;
        assert_eq!(through.status(), 201);
        assert_eq!(through.body(), direct.body(), "{mode}: the client's bytes differ from the app's");
        assert_eq!(through.headers().get("content-encoding"), direct.headers().get("content-encoding"), "{mode}");
        assert_eq!(through.headers().get("content-length"), direct.headers().get("content-length"), "{mode}");
        let id = if *mode == "bigid" { "123456789012345678901234567891" } else { "1" };
        assert_eq!(summary(entry), ("create", Some(id), None), "{mode}");
        assert_eq!(entry.after.as_ref().unwrap()["name"], *mode);
        // The id keeps the app's digits in the after-state too.
        assert_eq!(entry.after.as_ref().unwrap()["id"].to_string(), id);
        assert_eq!(entry.parents[0].id, *mode);
    }
}

#[tokio::test]
async fn an_answer_streams_to_the_client_before_it_ends_and_the_entry_waits_for_its_end() {
    let app = spawn_app().await;
    let upstream = app.upstream.as_ref().unwrap().url();
    let req = Request::post(app.url("/framed/trickle/items/"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({"name": "slowly"}).to_string())))
        .unwrap();
    let res = client().request(req).await.unwrap();
    assert_eq!(res.status(), 201);
    let mut body = res.into_body();
    // The upstream holds its last chunk until released: a proxy that
    // buffered the answer would show the client nothing yet.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first bytes arrive before the answer ends")
        .unwrap()
        .unwrap();
    let mut seen = first.into_data().unwrap().to_vec();
    assert!(!seen.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (written, _) = app.store.list(&Default::default(), None, 10).await.unwrap();
    assert!(written.is_empty(), "the entry was completed before the answer ended");
    post(&format!("{upstream}/framed/release"), Value::Null).await;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            seen.extend_from_slice(&data);
        }
    }
    assert_eq!(serde_json::from_slice::<Value>(&seen).unwrap(), json!({"id": 1, "name": "slowly"}));
    let e = wait_entries(&app.store, 1).await;
    assert_eq!(summary(&e[0]), ("create", Some("1"), None));
    assert_eq!(e[0].after, Some(json!({"id": 1, "name": "slowly"})));
}

#[tokio::test]
async fn an_answer_beyond_the_bound_streams_whole_and_takes_its_id_from_location_or_says_why() {
    let app = spawn_app_with(&[("AUDITGATE_SNAPSHOT__MAX_BYTES", "65536")], None).await;
    let located = post(&app.url("/framed/huge/items/?location=1"), json!({"name": "big"})).await;
    assert!(located.body().len() > 70_000);
    let nameless = post(&app.url("/framed/huge/items/"), json!({"name": "bigger"})).await;
    assert_eq!(serde_json::from_slice::<Value>(nameless.body()).unwrap()["name"], "bigger");
    let e = wait_entries(&app.store, 2).await;
    // The after-state is itself over the bound: the entry says so.
    assert_eq!(e[0].resource_id.as_deref(), Some("1"));
    assert!(e[0].snapshot_error.as_deref().unwrap().contains("larger than snapshot.max_bytes"), "{e:?}");
    assert_eq!(e[1].resource_id, None);
    assert_eq!(
        e[1].snapshot_error.as_deref(),
        Some("id not found in Location or the response body (the answer is larger than snapshot.max_bytes (65536))")
    );
}

#[tokio::test]
async fn a_rule_whose_path_holds_no_id_names_it_in_the_answer() {
    // A "save" endpoint: the resource is known only once the app answers.
    let rules = r#"
[[resource]]
pattern = "/framed/gzip/items/"
method = ["POST"]
type = "item"
action = "save"
id_field = "/id"
snapshot = "/framed/gzip/items/{id}/"
"#;
    let app = spawn_app_with(&[], Some(rules)).await;
    assert_eq!(post(&app.url("/framed/gzip/items/"), json!({"name": "saved"})).await.status(), 201);
    let e = wait_entries(&app.store, 1).await;
    assert_eq!((e[0].action.as_str(), e[0].resource_id.as_deref()), ("save", Some("1")));
    assert_eq!(e[0].after, Some(json!({"id": 1, "name": "saved"})));
    assert_eq!(e[0].before, None);
    assert_eq!(e[0].snapshot_error.as_deref(), Some("no before-state: the id was known only from the answer"));
}

#[tokio::test]
async fn an_answer_exactly_at_the_bound_is_read() {
    // `{"id":1,"name":"exact"}`, answered chunked, is 23 bytes.
    let app = spawn_app_with(&[("AUDITGATE_SNAPSHOT__MAX_BYTES", "23")], None).await;
    let res = post(&app.url("/framed/chunked/items/"), json!({"name": "exact"})).await;
    assert_eq!(res.body().len(), 23);
    let e = wait_entries(&app.store, 1).await;
    assert_eq!(summary(&e[0]), ("create", Some("1"), None));
}

#[tokio::test]
async fn an_id_field_names_where_the_state_keeps_its_id_and_reads_learn_none() {
    let rules = r#"
[[resource]]
pattern = "/api/items/{id}/"
type = "item"
id_field = "/name"
"#;
    let audit = r#"
[[configuration]]
name = "changes"
audit_all_actions = true

[[configuration]]
name = "reads"
audit_actions = ["read"]
"#;
    let upstream = spawn_upstream();
    let app = spawn_app_files(&upstream.url(), &[], &[("resources.toml", rules), ("audit.toml", audit)]).await;
    let created = post(&format!("{}/api/items/", upstream.url()), json!({"name": "first"})).await;
    let id = serde_json::from_slice::<Value>(created.body()).unwrap()["id"].to_string();
    let patch = Request::patch(app.url(&format!("/api/items/{id}/")))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({"name": "renamed"}).to_string())))
        .unwrap();
    assert_eq!(send(&client(), patch).await.status(), 200);
    assert_eq!(get(&app.url("/api/items/")).await.status(), 200);
    // After the two configurations' seeding.
    let e = &wait_entries(&app.store, 4).await[2..];
    // The rule says the state's `/name` is its id: the entry is filed under
    // the id the state names after the change, the path's kept beside it.
    assert_eq!(summary(&e[0]), ("update", Some("renamed"), None));
    assert_eq!(e[0].path_resource_id.as_deref(), Some(id.as_str()));
    assert_eq!(e[0].before.as_ref().unwrap()["name"], "first");
    assert_eq!(e[0].after.as_ref().unwrap()["name"], "renamed");
    // A read of the collection names no resource and reads no answer.
    assert_eq!(summary(&e[1]), ("read", None, None));
}

/// A raw HTTP/1.1 upstream: `POST` is answered with `create` (written as
/// is, then the connection closes), `GET` with `state` (declared length).
async fn raw_upstream(create: &'static [u8], state: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let Some(head) = read_head(&mut socket).await else { return };
                if head.starts_with(b"POST") {
                    let _ = socket.write_all(create).await;
                } else {
                    let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{state}", state.len());
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_close_delimited_answer_names_its_id_and_a_broken_one_is_still_recorded() {
    let closed = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"id\": 41, \"name\": \"closed\"}";
    let upstream = raw_upstream(closed, r#"{"id": 41, "name": "closed"}"#).await;
    let app = spawn_app_to(&format!("http://{upstream}"), &[], None).await;
    let res = post(&app.url("/api/widgets/"), json!({"name": "closed"})).await;
    assert_eq!(res.body().as_ref(), br#"{"id": 41, "name": "closed"}"#);
    let e = wait_entries(&app.store, 1).await;
    assert_eq!(summary(&e[0]), ("create", Some("41"), None));
    assert_eq!(e[0].after, Some(json!({"id": 41, "name": "closed"})));

    // A 2xx answer that breaks off midway: the change happened, so it is recorded.
    let broken =
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\nlocation: /api/widgets/42/\r\n\r\n5\r\n{\"id\"";
    let upstream = raw_upstream(broken, r#"{"id": 42}"#).await;
    let app = spawn_app_to(&format!("http://{upstream}"), &[], None).await;
    let req = Request::post(app.url("/api/widgets/")).body(Full::new(Bytes::from_static(b"{}"))).unwrap();
    let res = client().request(req).await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.into_body().collect().await.is_err(), "the client sees the answer break off");
    let e = wait_entries(&app.store, 1).await;
    assert_eq!(summary(&e[0]), ("create", Some("42"), None));
    assert_eq!((e[0].outcome.as_str(), e[0].status), ("success", 201));
}

/// An answer that breaks off right after its last bytes came (they and the
/// end of the connection read together): the client still gets its head and
/// those bytes, then the break, whether the request was passed through or
/// audited (both read the answer from the lean connection).
#[tokio::test]
async fn an_answer_that_breaks_off_at_once_still_gives_the_client_its_head() {
    let half = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{\"id\": 43";
    let upstream = raw_upstream(half, r#"{"id": 43}"#).await;
    let app = spawn_app_to(&format!("http://{upstream}"), &[], None).await;
    let req = Request::post(app.url("/api/widgets/")).body(Full::new(Bytes::from_static(b"{}"))).unwrap();
    let res = client().request(req).await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.into_body().collect().await.is_err(), "the client sees the answer break off");
    assert_eq!(summary(&wait_entries(&app.store, 1).await[0]).0, "create");

    let broken_get = b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n{\"id\": 44";
    let upstream = raw_get_upstream(broken_get).await;
    let app = spawn_app_to(&format!("http://{upstream}"), &[], None).await;
    let res = client().request(Request::get(app.url("/api/widgets/44/")).body(Full::new(Bytes::new())).unwrap());
    let res = res.await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.into_body().collect().await.is_err(), "the client sees the answer break off");
}

/// An upstream that answers every request with `answer` and closes.
pub(crate) async fn raw_get_upstream(answer: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                if read_head(&mut socket).await.is_none() {
                    return;
                }
                let _ = socket.write_all(answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    addr
}

/// Reads a request's head (and whatever came with it); `None` when the
/// connection ends first.
async fn read_head(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

/// `PATCH` (or `POST` to the collection) of `/accounts/`, the app that ignores,
/// normalises and hides fields.
async fn account(app: &TestApp, method: http::Method, path: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(app.url(path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    serde_json::from_slice(send(&client(), req).await.body()).unwrap()
}

fn unapplied(e: &AuditEntry) -> Option<Vec<(String, Value, Value)>> {
    e.unapplied
        .clone()
        .expect("written with the field")
        .map(|list| list.into_iter().map(|u| (u.path, u.requested, u.applied)).collect())
}

#[tokio::test]
async fn what_was_asked_but_not_applied_is_recorded() {
    let app = spawn_app().await;
    let created = account(&app, http::Method::POST, "/accounts", json!({"name": "Ann", "role": "admin"})).await;
    assert_eq!(created["role"], "user");
    let item = format!("/accounts/{}/", created["id"]);
    let asked = json!({
        "name": "Ann Lee",
        "role": "admin",
        "email": " ANN@X.IO",
        "password": "hunter2",
        "secret": " s3 ",
        "address": {"city": "lyon", "zip": "69001", "floor": {"n": 2}},
    });
    account(&app, http::Method::PATCH, &item, asked).await;
    account(&app, http::Method::PATCH, &item, json!({"name": "Ann", "address": {"zip": "69002"}})).await;
    let form = Request::patch(app.url(&item))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"name=x")))
        .unwrap();
    send(&client(), form).await;
    // A custom action: what it was sent is not a request for fields.
    let activated = account(&app, http::Method::POST, &format!("{item}activate/"), json!({"active": false})).await;
    assert_eq!(activated["active"], true);

    let e = wait_entries(&app.store, 5).await;
    assert_eq!(unapplied(&e[0]), Some(vec![("/role".into(), json!("admin"), json!("user"))]));
    // Read-only, normalised, nested, redacted; the write-only password is not listed.
    assert_eq!(
        unapplied(&e[1]),
        Some(vec![
            ("/address/city".into(), json!("lyon"), json!("Lyon")),
            ("/email".into(), json!(" ANN@X.IO"), json!("ann@x.io")),
            ("/role".into(), json!("admin"), json!("user")),
            ("/secret".into(), json!("[REDACTED]"), json!("[REDACTED]")),
        ])
    );
    // Done exactly as asked: an empty list. Nothing to compare (a form): null.
    assert_eq!(unapplied(&e[2]), Some(vec![]));
    assert_eq!(unapplied(&e[3]), None);
    assert_eq!((e[4].action.as_str(), e[4].after.as_ref().map(|a| &a["active"])), ("activate", Some(&json!(true))));
    assert_eq!(unapplied(&e[4]), None);
    let rows = stored_entries(&app.store).await;
    assert!(rows.iter().all(|row| !row.contains("s3") && !row.contains("hunter2")));

    // The query port filters on it.
    let page = |q: &str| {
        let url = app.query(&format!("/api/v1/audit-logs?{q}"));
        async move { serde_json::from_slice::<Value>(get(&url).await.body()).unwrap() }
    };
    let ids = |v: Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(page("unapplied=true").await), [e[1].id.clone(), e[0].id.clone()]);
    assert_eq!(ids(page("unapplied=false").await), [e[4].id.clone(), e[3].id.clone(), e[2].id.clone()]);
    let bad = get(&app.query("/api/v1/audit-logs?unapplied=maybe")).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(serde_json::from_slice::<Value>(bad.body()).unwrap()["field"], "unapplied");
}

#[tokio::test]
async fn a_client_that_leaves_before_the_end_does_not_cost_the_entry_its_id() {
    let app = spawn_app().await;
    let upstream = app.upstream.as_ref().unwrap().url();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"name": "left"}"#;
    let head = format!(
        "POST /framed/trickle/items/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 201"));
    // Gone before the answer's last chunk; the upstream then finishes it.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    post(&format!("{upstream}/framed/release"), Value::Null).await;
    let e = wait_entries(&app.store, 1).await;
    assert_eq!(summary(&e[0]), ("create", Some("1"), None));
    assert_eq!(e[0].after, Some(json!({"id": 1, "name": "left"})));
}
