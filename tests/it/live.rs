//! A resource's state as of a time (`…/state?at=`) and the live stream of
//! new entries (`/api/v1/audit-logs/stream`), over real sockets.

use std::time::Duration;

use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::audit::wait_entries;
use crate::helpers::*;

async fn as_user(app: &TestApp, user: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    crate::helpers::as_user(app, user, method, path, body.as_ref()).await
}

async fn state(app: &TestApp, path_and_query: &str) -> (u16, Value) {
    let res = get(&app.query(path_and_query)).await;
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap())
}

fn at(t: &str, shift_us: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(t).unwrap() + chrono::Duration::microseconds(shift_us);
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B")
}

#[tokio::test]
async fn state_as_of_a_time_before_between_and_after_changes() {
    let app = spawn_app().await;
    let (_, made) = as_user(&app, "alice", Method::POST, "/api/items/", Some(json!({"name": "first"}))).await;
    let id = made["id"].as_u64().unwrap();
    let item = format!("/api/items/{id}/");
    as_user(&app, "bob", Method::PATCH, &item, Some(json!({"name": "second"}))).await;
    as_user(&app, "bob", Method::PATCH, &item, Some(json!({"name": "third"}))).await;
    as_user(&app, "carol", Method::DELETE, &item, None).await;
    let entries = wait_entries(&app.store, 4).await;
    let (kind, rid) = (entries[0].resource_type.clone(), entries[0].resource_id.clone().unwrap());
    assert!(entries.iter().all(|e| e.resource_id.as_deref() == Some(rid.as_str())));
    let base = format!("/api/v1/resources/{kind}/{rid}/state");

    let (status, body) = state(&app, &format!("{base}?at={}", at(&entries[0].timestamp, -1))).await;
    assert_eq!((status, &body["field"]), (404, &Value::Null), "no entry yet: {body}");
    for (i, name) in [(0, "first"), (1, "second"), (2, "third")] {
        for shift in [0, 1] {
            let next = entries[i + 1].timestamp.as_str();
            let t = if shift == 0 { at(&entries[i].timestamp, 0) } else { at(next, -1) };
            let (status, body) = state(&app, &format!("{base}?at={t}")).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["state"]["name"], name, "as of {t}: {body}");
            assert_eq!(body["entry"], entries[i].id.as_str());
        }
    }
    for q in [format!("?at={}", at(&entries[3].timestamp, 0)), String::new()] {
        let (status, body) = state(&app, &format!("{base}{q}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["state"], Value::Null, "deleted: {body}");
        assert_eq!((body["entry"].as_str(), body["action"].as_str()), (Some(entries[3].id.as_str()), Some("delete")));
    }
    // A time in another zone means the same moment.
    let t = chrono::DateTime::parse_from_rfc3339(&entries[1].timestamp).unwrap();
    let zoned = t.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap()).to_rfc3339().replace('+', "%2B");
    assert_eq!(state(&app, &format!("{base}?at={zoned}")).await.1["state"]["name"], "second");

    assert_eq!(state(&app, &format!("/api/v1/resources/{kind}/999999/state")).await.0, 404);
    let (status, body) = state(&app, &format!("{base}?at=monday")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("at")));
    let (status, body) = state(&app, &format!("{base}?when=now")).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("query")));
}

/// An open event stream and what it has sent so far.
pub(crate) struct Events {
    body: Incoming,
    buffered: String,
    /// Everything the stream sent.
    raw: String,
}

impl Events {
    pub(crate) async fn open(app: &TestApp, query: &str, last_event_id: Option<&str>) -> Events {
        let mut req = Request::get(app.query(&format!("/api/v1/audit-logs/stream{query}")));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = client().request(req.body(Full::default()).unwrap()).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Events { body: res.into_body(), buffered: String::new(), raw: String::new() }
    }

    /// The next event's id and entry, or `None` when nothing comes within `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffered.find("\n\n") {
                let event: String = self.buffered.drain(..end + 2).collect();
                let field =
                    |name: &str| event.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim_start().to_string());
                if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                    return Some((id, serde_json::from_str(&data).unwrap()));
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await.ok()??.unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffered.push_str(std::str::from_utf8(&data).unwrap());
                self.raw.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }
}

#[tokio::test]
async fn the_stream_sends_new_matching_entries_and_resumes_without_loss() {
    let app = spawn_app().await;
    let (_, made) = as_user(&app, "alice", Method::POST, "/api/items/", Some(json!({"name": "old"}))).await;
    let item = format!("/api/items/{}/", made["id"]);
    wait_entries(&app.store, 1).await;

    let mut bobs = Events::open(&app, "?actor=bob", None).await;
    let mut all = Events::open(&app, "", None).await;
    as_user(&app, "alice", Method::PATCH, &item, Some(json!({"name": "by alice"}))).await;
    as_user(&app, "bob", Method::PATCH, &item, Some(json!({"name": "by bob"}))).await;
    let (id, entry) = bobs.next(Duration::from_secs(10)).await.expect("bob's change is streamed");
    assert_eq!((entry["actor"].as_str(), entry["id"].as_str()), (Some("bob"), Some(id.as_str())));
    assert_eq!(entry["after"]["name"], "by bob");
    // The entry stored before the stream opened is not sent; alice's and
    // bob's are, in order.
    let first = all.next(Duration::from_secs(10)).await.unwrap();
    let second = all.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!((first.1["actor"].as_str(), second.1["actor"].as_str()), (Some("alice"), Some("bob")));
    assert_eq!(second.0, id);
    drop(bobs);

    // While no one listens, three more changes by bob and one by alice.
    for i in 0..3 {
        as_user(&app, "bob", Method::PATCH, &item, Some(json!({"name": format!("later {i}")}))).await;
    }
    as_user(&app, "alice", Method::PATCH, &item, Some(json!({"name": "not bob"}))).await;
    wait_entries(&app.store, 7).await;
    let mut resumed = Events::open(&app, "?actor=bob", Some(&id)).await;
    let mut names = Vec::new();
    while let Some((event_id, entry)) = resumed.next(Duration::from_secs(3)).await {
        assert!(event_id > id, "nothing at or before the resume point is sent again");
        names.push(entry["after"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(names, ["later 0", "later 1", "later 2"]);

    // Bad input is answered before the stream starts.
    for (query, last, field) in [("?actor=bob", Some("not-an-id"), "Last-Event-ID"), ("?colour=red", None, "query")] {
        let mut req = Request::get(app.query(&format!("/api/v1/audit-logs/stream{query}")));
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let res = send(&client(), req.body(Full::default()).unwrap()).await;
        let body: Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!((res.status().as_u16(), body["field"].as_str()), (400, Some(field)));
    }
}

/// A quiet stream stays quiet: after its `retry:` line, nothing until an
/// entry comes or 15 s pass (then a keep-alive comment).
#[tokio::test]
async fn a_quiet_stream_sends_nothing_but_its_retry_line() {
    let app = spawn_app().await;
    let mut events = Events::open(&app, "", None).await;
    assert!(events.next(Duration::from_millis(2500)).await.is_none());
    assert_eq!(events.raw, "retry: 1000\n\n");
}

#[tokio::test]
async fn an_open_stream_does_not_hold_shutdown() {
    let app = spawn_app().await;
    let mut events = Events::open(&app, "", None).await;
    // `stop` fails unless the app has stopped within 10 s (the default
    // shutdown_timeout is 30 s: an open stream would hold it that long).
    app.stop().await;
    assert!(events.next(Duration::from_secs(2)).await.is_none(), "the stream ends");
}

#[tokio::test]
async fn open_streams_are_capped_per_token_and_a_closed_one_frees_its_place() {
    let tokens = "[{name = \"ops\", token = \"ops-0123456789abcdef\", role = \"read\"}, \
                  {name = \"siem\", token = \"siem-0123456789abcdef\", role = \"read\"}]";
    let env = [("AUDITGATE_QUERY__TOKENS", tokens), ("AUDITGATE_QUERY__MAX_STREAMS", "2")];
    let app = spawn_app_with(&env, None).await;
    let open = |token: &'static str| {
        let req = Request::get(app.query("/api/v1/audit-logs/stream?outcome=error"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        client().request(req)
    };
    let first = open("ops-0123456789abcdef").await.unwrap();
    let second = open("ops-0123456789abcdef").await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let refused = open("ops-0123456789abcdef").await.unwrap();
    assert_eq!(refused.status(), 429);
    let body: Value = serde_json::from_slice(&refused.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("max_streams"), "{body}");
    // Another token has places of its own.
    assert_eq!(open("siem-0123456789abcdef").await.unwrap().status(), 200);
    // A stream whose client went away gives its place back.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = open("ops-0123456789abcdef").await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the closed stream's place never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
}

#[tokio::test]
async fn max_streams_out_of_bounds_is_a_configuration_error() {
    for bad in ["0", "10001"] {
        let env = [("AUDITGATE_QUERY__MAX_STREAMS".to_string(), bad.to_string())];
        let err = auditgate::config::Config::load(None, env, &Vec::new()).unwrap_err().to_string();
        assert!(err.contains("query.max_streams"), "{err}");
    }
}
