//! The query port over a real socket: filters, cursor paging, export,
//! history, verify, stats, health, bad input and tokens.

use std::collections::HashSet;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::audit::wait_entries;
use crate::helpers::*;

async fn as_user(app: &TestApp, user: &str, method: Method, path: &str, body: Value) -> Value {
    crate::helpers::as_user(app, user, method, path, Some(&body)).await.1
}

async fn query(app: &TestApp, path_and_query: &str) -> (u16, Value) {
    let res = get(&app.query(path_and_query)).await;
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

/// Seeds 3 creates by alice, 6 patches by bob, 1 failed patch by carol.
pub(crate) async fn seeded() -> TestApp {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let created = as_user(&app, "alice", Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
        ids.push(created["id"].as_u64().unwrap());
    }
    for (i, id) in ids.iter().cycle().take(6).enumerate() {
        as_user(&app, "bob", Method::PATCH, &format!("/api/items/{id}/"), json!({"name": format!("renamed-{i}")}))
            .await;
    }
    as_user(&app, "carol", Method::PATCH, "/api/items/999/", json!({"name": "x"})).await;
    wait_entries(&app.store, 10).await;
    app
}

fn count(v: &Value) -> usize {
    v["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn filters_select_the_right_entries() {
    let app = seeded().await;
    let now = chrono::Utc::now();
    let later = (now + chrono::Duration::hours(1)).to_rfc3339();
    let earlier = (now - chrono::Duration::hours(1)).to_rfc3339();
    for (q, expected) in [
        ("", 10),
        ("action=create", 3),
        ("action=update", 7),
        ("actor=bob", 6),
        ("actor=carol&outcome=failure&status=404", 1),
        ("outcome=success", 9),
        ("resource_type=item", 10),
        ("resource_type=item&resource_id=1", 3),
        ("client_ip=127.0.0.0/8", 10),
        ("client_ip=10.0.0.0/8", 0),
        ("client_ip=127.0.0.1", 10),
        ("q=renamed-3", 1),
        ("q=%25", 0),
        (&format!("since={}", urlencode(&earlier)), 10),
        (&format!("since={}", urlencode(&later)), 0),
        (&format!("until={}", urlencode(&earlier)), 0),
        ("limit=4", 4),
    ] {
        let (status, body) = query(&app, &format!("/api/v1/audit-logs?{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(count(&body), expected, "{q}");
    }
    let (_, newest) = query(&app, "/api/v1/audit-logs?limit=1").await;
    assert_eq!(newest["items"][0]["actor"], "carol", "newest first");
}

#[tokio::test]
async fn every_filter_excludes_entries_that_do_not_match() {
    // Two entries that differ in every filtered field.
    let app = spawn_app_with(&[("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1")], None).await;
    let created = as_user(&app, "alice", Method::POST, "/api/items/", json!({"name": "kept"})).await;
    assert_eq!(created["id"], 1);
    let req = Request::patch(app.url("/api/orders/5/"))
        .header("authorization", "Basic ZGF2ZTpwdw==")
        .header("x-forwarded-for", "10.9.8.7")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"state\": \"shipped\"}")))
        .unwrap();
    assert_eq!(send(&client(), req).await.status(), 404);
    let e = wait_entries(&app.store, 2).await;
    let instance = e[0].instance.clone();
    for (q, expected) in [
        ("action=create", &["alice"][..]),
        ("action=update", &["dave"]),
        ("resource_type=order", &["dave"]),
        ("resource_id=1", &["alice"]),
        ("actor=dave", &["dave"]),
        ("client_ip=10.0.0.0/8", &["dave"]),
        ("client_ip=127.0.0.1", &["alice"]),
        ("outcome=failure", &["dave"]),
        ("outcome=success", &["alice"]),
        ("status=404", &["dave"]),
        ("status=201", &["alice"]),
        ("q=orders", &["dave"]),
        ("q=kept", &["alice"]),
        (&format!("instance={instance}"), &["dave", "alice"]),
        ("instance=elsewhere", &[]),
        ("configuration=anything", &[]),
    ] {
        let (status, body) = query(&app, &format!("/api/v1/audit-logs?{q}")).await;
        assert_eq!(status, 200, "{q}: {body}");
        let actors: Vec<&str> =
            body["items"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
        assert_eq!(actors, expected, "{q}");
    }
    let (_, both) = query(&app, &format!("/api/v1/audit-logs?since={}", urlencode(&e[1].timestamp))).await;
    assert_eq!(count(&both), 1, "since includes its instant and excludes what came before");
    let (_, first) = query(&app, &format!("/api/v1/audit-logs?until={}", urlencode(&e[0].timestamp))).await;
    assert_eq!(count(&first), 1, "until includes its instant and excludes what came after");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn cursor_walk_has_no_gaps_or_duplicates_and_export_matches() {
    let app = seeded().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit-logs?limit=3&cursor={c}"),
            None => "/api/v1/audit-logs?limit=3".to_string(),
        };
        let (_, page) = query(&app, &path).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 10);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "pages are newest first");

    let ndjson = get(&app.query("/api/v1/audit-logs/export?format=ndjson&actor=bob")).await;
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> =
        std::str::from_utf8(ndjson.body()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6);
    assert!(lines.iter().all(|e| e["actor"] == "bob"));
    let csv = get(&app.query("/api/v1/audit-logs/export?format=csv")).await;
    let text = std::str::from_utf8(csv.body()).unwrap();
    assert!(text.starts_with("id,timestamp,action,"));
    assert_eq!(text.matches("\r\n").count(), 11, "header + 10 rows");

    let one = &seen[4];
    let (status, entry) = query(&app, &format!("/api/v1/audit-logs/{one}")).await;
    assert_eq!((status, entry["id"].as_str()), (200, Some(one.as_str())));
    assert_eq!(query(&app, "/api/v1/audit-logs/01ARZ3NDEKTSV4RRFFQ69G5FAV").await.0, 404);

    let (_, history) = query(&app, "/api/v1/resources/item/2/history").await;
    let actions: Vec<&str> =
        history["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "update", "update"]);

    let (_, verify) = query(&app, "/api/v1/verify").await;
    assert_eq!((&verify["ok"], &verify["checked"], &verify["first_bad"]), (&json!(true), &json!(10), &Value::Null));
    assert_eq!(verify["heads"].as_array().map(Vec::len), Some(1), "one instance, one head");
    let (_, stats) = query(&app, "/api/v1/stats").await;
    assert_eq!(stats["total"], 10);
    assert_eq!(stats["by_actor"]["bob"], 6);
    assert_eq!(stats["by_action"]["create"], 3);
    assert_eq!(stats["by_outcome"]["failure"], 1);
    assert_eq!(query(&app, "/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(query(&app, "/readyz").await.0, 200);
    let metrics = get(&app.query("/metrics")).await;
    assert!(std::str::from_utf8(metrics.body()).unwrap().contains("auditgate_entries_written_total 10"));
}

#[tokio::test]
async fn e23_bad_input_is_400_naming_the_field() {
    let app = spawn_app().await;
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=lots", "limit"),
        ("cursor=%27%20OR%201%3D1%20--", "cursor"),
        ("since=yesterday", "since"),
        ("until=2026-02-30T00:00:00Z", "until"),
        ("client_ip=%27%3B%20DROP%20TABLE%20audit_log%3B", "client_ip"),
        ("status=999", "status"),
        ("outcome=maybe", "outcome"),
        ("nonsense=1", "query"),
    ] {
        let (status, body) = query(&app, &format!("/api/v1/audit-logs?{q}")).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{q}: {body}");
    }
    let (status, body) = query(&app, "/api/v1/audit-logs/export?format=xml").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("format")));
    // An injection attempt in a plain filter is just a value that matches nothing.
    let (status, body) = query(&app, "/api/v1/audit-logs?actor=%27%20OR%20%271%27%3D%271").await;
    assert_eq!((status, count(&body)), (200, 0));
    assert_eq!(query(&app, "/nope").await, (404, json!({"error": "not found"})));
    let post = send(&client(), Request::post(app.query("/api/v1/verify")).body(Full::default()).unwrap()).await;
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn e25_tokens_guard_everything_but_health() {
    let token = "0123456789abcdef-ops";
    let tokens = format!("[{{name = \"ops\", token = \"{token}\", role = \"read\"}}]");
    let app = spawn_app_with(&[("AUDITGATE_QUERY__TOKENS", &tokens)], None).await;
    assert_eq!(query(&app, "/api/v1/audit-logs").await.0, 401);
    let with = |t: &str| {
        Request::get(app.query("/api/v1/audit-logs"))
            .header("authorization", format!("Bearer {t}"))
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(send(&client(), with("wrong-token-wrong-token")).await.status(), 401);
    assert_eq!(send(&client(), with(token)).await.status(), 200);
    assert_eq!(query(&app, "/healthz").await.0, 200);
    assert_eq!(query(&app, "/readyz").await.0, 200);
}

#[tokio::test]
async fn e25_a_non_loopback_query_port_needs_tokens() {
    let flags = vec![
        ("upstream", "http://127.0.0.1:9".to_string()),
        ("listen", "127.0.0.1:0".to_string()),
        ("query_listen", "0.0.0.0:0".to_string()),
        ("database", "sqlite::memory:".to_string()),
    ];
    let config = auditgate::config::Config::load(None, Vec::new(), &flags).unwrap();
    let err = auditgate::App::build(config).await.unwrap_err();
    assert!(err.is_usage());
    assert!(err.to_string().contains("non-loopback"), "{err}");
}

#[tokio::test]
async fn e24_paging_stays_exact_while_entries_are_inserted() {
    let app = seeded().await;
    let (_, all) = query(&app, "/api/v1/audit-logs?limit=1000").await;
    let existing: Vec<String> =
        all["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().into()).collect();
    // Writers keep adding entries while the pages are read.
    let url = app.url("/api/items/1/");
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            let req = Request::patch(url.clone())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(json!({"name": format!("during-{i}")}).to_string())))
                .unwrap();
            send(&client(), req).await;
        }
    });
    // The walk starts from the first page as it was: newer entries land
    // before the cursor, never inside the walk.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = Some(existing[0].clone());
    seen.push(existing[0].clone());
    while let Some(c) = cursor {
        let (_, page) = query(&app, &format!("/api/v1/audit-logs?limit=2&cursor={c}")).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()));
        cursor = page["next_cursor"].as_str().map(str::to_string);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    writer.await.unwrap();
    assert_eq!(seen, existing, "no gap, no duplicate, same order");
    // Every write landed too.
    assert_eq!(wait_entries(&app.store, existing.len() + 40).await.len(), existing.len() + 40);
}

/// A NUL in the app's JSON, in a resource id and in an actor's name is
/// stored, found by the filters, counted and verified, on either store:
/// PostgreSQL's text cannot hold NUL and its json operators fail on a
/// document with `\u0000` anywhere, so one such entry must not break the
/// queries of every other.
#[tokio::test]
async fn a_nul_in_app_data_an_id_or_a_name_breaks_no_query() {
    let app = spawn_app().await;
    let created = as_user(&app, "alice", Method::POST, "/api/items/", json!({"name": "x\u{0}y"})).await;
    let item = format!("/api/items/{}/", created["id"]);
    as_user(&app, "e\u{0}ve", Method::PATCH, &item, json!({"name": "z\u{0}z"})).await;
    as_user(&app, "alice", Method::PATCH, "/api/items/a%00b/", json!({"name": "w"})).await;
    let entries = wait_entries(&app.store, 3).await;
    assert!(entries.iter().any(|e| e.resource_id.as_deref() == Some("a\u{0}b")), "{entries:?}");
    assert!(entries.iter().any(|e| e.actor == "e\u{0}ve"));
    assert!(app.store.verify().await.unwrap().ok);

    let count = |q: &'static str| {
        let app = &app;
        async move {
            let (status, page) = query(app, &format!("/api/v1/audit-logs?{q}")).await;
            assert_eq!(status, 200, "{q}: {page}");
            page["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("action=update").await, 2);
    assert_eq!(count("outcome=success").await, 2);
    // `q` searches the changes as JSON text, where the NUL is written `\u0000`.
    assert_eq!(count("q=z%5Cu0000z").await, 1);
    assert_eq!(count("actor=e%00ve").await, 1);
    assert_eq!(count("resource_id=a%00b").await, 1);
    assert_eq!(count("status=201").await, 1);
    let (status, stats) = query(&app, "/api/v1/stats").await;
    assert_eq!((status, &stats["total"]), (200, &json!(3)), "{stats}");
    let (status, history) = query(&app, "/api/v1/resources/item/a%00b/history").await;
    assert_eq!((status, history["items"].as_array().map(Vec::len)), (200, Some(1)), "{history}");
}

/// An id or a cursor with a NUL is not found or refused, never a store error.
#[tokio::test]
async fn an_entry_id_with_a_nul_is_not_found() {
    let app = spawn_app().await;
    let (status, _) = query(&app, "/api/v1/audit-logs/01J%00X").await;
    assert_eq!(status, 404);
    let (status, page) = query(&app, "/api/v1/audit-logs?cursor=01J%00X").await;
    assert_eq!((status, &page["field"]), (400, &json!("cursor")), "{page}");
}

/// A page that holds exactly the last entries says so: no next cursor.
#[tokio::test]
async fn a_page_ending_exactly_at_the_last_entry_has_no_next_cursor() {
    let app = seeded().await;
    let (status, all) = query(&app, "/api/v1/audit-logs?limit=10").await;
    assert_eq!((status, all["items"].as_array().map(Vec::len)), (200, Some(10)), "{all}");
    assert_eq!(all["next_cursor"], Value::Null);
    let (_, short) = query(&app, "/api/v1/audit-logs?limit=9").await;
    assert!(short["next_cursor"].is_string(), "{short}");
}

#[tokio::test]
async fn a_resources_history_is_paged_oldest_first_and_bounded() {
    let app = spawn_app().await;
    // 2,222 entries of one resource, written as a second instance would.
    let busy = crate::store::busy_resource(&app.store, 2222).await;
    // Other resources' entries, which no page holds (user/7 of another type).
    let mut other = auditgate::entry::Chain::resume(None);
    let orders: Vec<_> = (0..50)
        .map(|n| {
            other.seal(auditgate::entry::AuditEntry {
                resource_type: "order".into(),
                ..crate::store::entry("gw-order", n)
            })
        })
        .collect();
    app.store.insert_batch(&orders).await.unwrap();
    let sevens: Vec<&str> = busy.iter().map(|s| s.entry.id.as_str()).collect();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/resources/user/7/history?cursor={c}"),
            None => "/api/v1/resources/user/7/history".into(),
        };
        let (status, page) = query(&app, &path).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        pages.push(items.len());
        seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, [1000, 1000, sevens.len() - 2000], "a default page is 1,000");
    assert_eq!(seen, sevens, "every entry once, oldest first");
    let (_, small) = query(&app, "/api/v1/resources/user/7/history?limit=3").await;
    let ids: Vec<&str> = small["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!((ids.as_slice(), small["next_cursor"].as_str()), (&sevens[..3], Some(sevens[2])));
    let (_, last) = query(&app, &format!("/api/v1/resources/user/7/history?cursor={}", sevens[sevens.len() - 1])).await;
    assert_eq!(last, json!({"items": [], "next_cursor": null}));
    for (bad, field) in [("limit=1001", "limit"), ("limit=0", "limit"), ("cursor=x", "cursor"), ("since=now", "query")]
    {
        let (status, body) = query(&app, &format!("/api/v1/resources/user/7/history?{bad}")).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{bad}: {body}");
    }
}

#[tokio::test]
async fn every_answer_is_json_ending_in_a_newline_bad_paths_too() {
    let app = crate::query::seeded().await;
    for (path, status) in [
        ("/api/v1/audit-logs?limit=2", 200),
        ("/api/v1/verify", 200),
        ("/api/v1/openapi.json", 200),
        ("/api/v1/audit-logs/%FF%FE", 400),
        ("/api/v1/resources/item/%C3%28/history", 400),
        ("/api/v1/audit-logs?limit=x", 400),
        ("/nope", 404),
    ] {
        let res = get(&app.query(path)).await;
        assert_eq!(res.status().as_u16(), status, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json", "{path}");
        let body = res.body();
        assert_eq!(body.last(), Some(&b'\n'), "{path} ends in a newline");
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{path}: {e}"));
        if status >= 400 {
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {v}");
        }
    }
    // axum's own refusal keeps its words, not only its status's.
    let res = get(&app.query("/api/v1/audit-logs/%FF")).await;
    let v: Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(v["error"], "Invalid URL: Invalid UTF-8 in `id`");
    // An event stream and an export are not JSON documents: as they are.
    let ndjson = get(&app.query("/api/v1/audit-logs/export")).await;
    assert_eq!(ndjson.headers()["content-type"], "application/x-ndjson");
    assert_eq!(String::from_utf8_lossy(ndjson.body()).lines().count(), 10);
}

#[tokio::test]
async fn a_moment_past_the_year_9999_in_utc_is_still_after_every_entry() {
    let app = crate::query::seeded().await;
    let far = "9999-12-31T23:59:59-23:59".replace('+', "%2B").replace(':', "%3A");
    let (status, state) = query(&app, &format!("/api/v1/resources/item/1/state?at={far}")).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["state"]["name"], "renamed-3", "the latest state of item 1");
    let (status, listed) = query(&app, &format!("/api/v1/audit-logs?until={far}")).await;
    assert_eq!((status, count(&listed)), (200, 10));
    let (_, listed) = query(&app, &format!("/api/v1/audit-logs?since={far}")).await;
    assert_eq!(count(&listed), 0);
    let early = "0000-01-01T00:00:00%2B23:59";
    let (status, listed) = query(&app, &format!("/api/v1/audit-logs?since={early}")).await;
    assert_eq!((status, count(&listed)), (200, 10));
}
