//! The audit trail end to end: mutations through the proxy against the
//! upstream's `/api/items/` collection, entries read back from the SQLite file.

use std::time::Duration;

use auditgate::entry::AuditEntry;
use auditgate::store::{Filter, Store};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::helpers::*;

/// Waits until the store holds `n` entries and returns them oldest first.
pub async fn wait_entries(store: &Store, n: usize) -> Vec<AuditEntry> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (mut entries, _) = store.list(&Filter::default(), None, 1000).await.unwrap();
        if entries.len() >= n {
            entries.reverse();
            return entries;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} entries were written", entries.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn call(app: &TestApp, method: Method, path: &str, body: Value) -> (u16, Value) {
    let mut builder =
        Request::builder().method(method).uri(app.url(path)).header("authorization", "Basic YWxpY2U6czNjcmV0");
    let body = if body.is_null() {
        Full::default()
    } else {
        builder = builder.header("content-type", "application/json");
        Full::new(Bytes::from(body.to_string()))
    };
    let res = send(&client(), builder.body(body).unwrap()).await;
    let json = serde_json::from_slice(res.body()).unwrap_or(Value::Null);
    (res.status().as_u16(), json)
}

fn changes(e: &AuditEntry) -> Vec<(String, Value, Value)> {
    e.changes.iter().map(|c| (c.path.clone(), c.old.clone(), c.new.clone())).collect()
}

#[tokio::test]
async fn create_update_delete_are_recorded_with_exact_diffs() {
    let app = spawn_app().await;
    let (status, created) = call(
        &app,
        Method::POST,
        "/api/items/",
        json!({"name": "a", "email": "a@x.io", "addr": {"city": "X", "zip": "1"}}),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_u64().unwrap().to_string();
    let item = format!("/api/items/{id}/");
    assert_eq!(call(&app, Method::PATCH, &item, json!({"email": "b@x.io"})).await.0, 200);
    assert_eq!(call(&app, Method::PATCH, &item, json!({"addr": {"city": "Y", "zip": "1"}})).await.0, 200);
    assert_eq!(call(&app, Method::PUT, &item, json!({"name": "a", "addr": {"city": "Y", "zip": "1"}})).await.0, 200);
    assert_eq!(call(&app, Method::DELETE, &item, Value::Null).await.0, 204);

    let e = wait_entries(&app.store, 5).await;
    let (create, patch, nested, put, delete) = (&e[0], &e[1], &e[2], &e[3], &e[4]);
    assert_eq!(
        (create.action.as_str(), create.resource_type.as_str(), create.resource_id.as_deref()),
        ("create", "item", Some(id.as_str()))
    );
    assert_eq!(create.before, None);
    assert_eq!(create.after.as_ref().unwrap()["email"], "a@x.io");
    assert_eq!(create.status, 201);
    assert!(changes(create).contains(&("/name".into(), Value::Null, json!("a"))));

    assert_eq!(patch.action, "update");
    assert_eq!(changes(patch), vec![("/email".into(), json!("a@x.io"), json!("b@x.io"))]);
    assert_eq!(changes(nested), vec![("/addr/city".into(), json!("X"), json!("Y"))]);
    assert_eq!(changes(put), vec![("/email".into(), json!("b@x.io"), Value::Null)]);
    assert_eq!(delete.action, "delete");
    assert_eq!(delete.before.as_ref().unwrap()["name"], "a");
    assert_eq!(delete.after, None);
    for entry in &e {
        assert_eq!(entry.actor, "alice");
        assert_eq!(entry.outcome.as_str(), "success");
        assert_eq!(entry.client_ip, "127.0.0.1");
        assert_eq!(entry.request_id.len(), 26);
        assert!(entry.snapshot_error.is_none(), "{:?}", entry.snapshot_error);
    }
    // Snapshots carried the client's credentials and the snapshot header.
    let seen: Value = serde_json::from_slice(get(&app.url("/snapshots")).await.body()).unwrap();
    let seen = seen.as_array().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s["authorization"] == "Basic YWxpY2U6czNjcmV0"));
    // The history of the resource, oldest first, and the chain verifies.
    let history = app.store.history("item", &id, None, 1000).await.unwrap().0;
    assert_eq!(
        history.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["create", "update", "update", "update", "delete"]
    );
    assert!(app.store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn secrets_never_reach_the_store() {
    let app = spawn_app().await;
    let (_, created) =
        call(&app, Method::POST, "/api/items/", json!({"name": "n", "password": "hunter2-created"})).await;
    let item = format!("/api/items/{}/", created["id"]);
    call(&app, Method::PATCH, &item, json!({"password": "hunter2-changed", "profile": {"api_key": "key-123"}})).await;
    let e = wait_entries(&app.store, 2).await;
    let patch = &e[1];
    assert!(
        patch
            .changes
            .iter()
            .any(|c| c.path == "/password" && c.old == json!("[REDACTED]") && c.new == json!("[REDACTED]"))
    );
    let rows = stored_entries(&app.store).await;
    for row in rows {
        for secret in ["hunter2", "key-123", "czNjcmV0"] {
            assert!(!row.contains(secret), "{secret} stored: {row}");
        }
    }
}

#[tokio::test]
async fn failures_and_unreachable_upstreams_are_recorded() {
    let app = spawn_app().await;
    assert_eq!(call(&app, Method::PATCH, "/api/items/999/", json!({"a": 1})).await.0, 404);
    let e = wait_entries(&app.store, 1).await;
    assert_eq!((e[0].outcome.as_str(), e[0].status), ("failure", 404));
    assert!(e[0].snapshot_error.as_deref().unwrap_or("").contains("404"), "{:?}", e[0].snapshot_error);

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let down = spawn_app_to(&format!("http://{closed}"), &[], None).await;
    let res = send(&client(), Request::delete(down.url("/api/items/3/")).body(Full::default()).unwrap()).await;
    assert_eq!(res.status(), 502);
    let e = wait_entries(&down.store, 1).await;
    assert_eq!((e[0].outcome.as_str(), e[0].status, e[0].action.as_str()), ("error", 502, "delete"));
}

#[tokio::test]
async fn duration_is_the_time_until_the_upstream_answered() {
    let app = spawn_app().await;
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"name": "slow"})).await;
    let req = Request::patch(app.url(&format!("/api/items/{}/", created["id"])))
        .header("content-type", "application/json")
        .header("cookie", "delay_write=1500")
        .body(Full::new(Bytes::from(json!({"name": "slower"}).to_string())))
        .unwrap();
    assert_eq!(send(&client(), req).await.status(), 200);
    let e = wait_entries(&app.store, 2).await;
    // The upstream slept 1.5 s before answering; the bound above is loose on purpose.
    assert!((1500.0..60_000.0).contains(&e[1].duration_ms), "{}", e[1].duration_ms);
    assert!(e[0].duration_ms < e[1].duration_ms);
}

#[tokio::test]
async fn a_form_method_field_decides_the_action_of_a_form_post_only() {
    let form = |app: &TestApp, method: Method, content_type: &str| {
        Request::builder()
            .method(method)
            .uri(app.url("/api/items/1/"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from_static(b"_method=DELETE")))
            .unwrap()
    };
    let urlencoded = " Application/X-WWW-Form-Urlencoded; charset=utf-8";
    for policy in ["honour", "strip"] {
        let app = spawn_app_with(&[("AUDITGATE_METHOD_OVERRIDE", policy)], None).await;
        send(&client(), form(&app, Method::POST, urlencoded)).await;
        send(&client(), form(&app, Method::PUT, urlencoded)).await;
        send(&client(), form(&app, Method::POST, "text/plain")).await;
        let e = wait_entries(&app.store, 3).await;
        let actions: Vec<_> = e.iter().map(|e| (e.method.as_str(), e.action.as_str())).collect();
        assert_eq!(actions, [("POST", "delete"), ("PUT", "update"), ("POST", "update")], "{policy}");
    }
    let app = spawn_app_with(&[("AUDITGATE_METHOD_OVERRIDE", "reject")], None).await;
    assert_eq!(send(&client(), form(&app, Method::POST, urlencoded)).await.status(), 400);
    assert_eq!(send(&client(), form(&app, Method::POST, "text/plain")).await.status(), 404);
}

/// `PATCH url` setting `counter` to `i`, named `writer-i` (its request id);
/// its snapshots are slowed by `delay_read` ms (the upstream honours the
/// cookie, and snapshots carry the client's cookies).
async fn patch_as_writer(url: String, i: u64, delay_read: u64) -> u16 {
    let body = Full::new(Bytes::from(json!({ "counter": i, "by": format!("writer-{i}") }).to_string()));
    let req = Request::patch(url)
        .header("content-type", "application/json")
        .header("x-request-id", format!("writer-{i}"))
        .header("cookie", format!("delay_read={delay_read}"))
        .body(body)
        .unwrap();
    send(&client(), req).await.status().as_u16()
}

/// The whole before/after chain of one resource's updates: in timestamp
/// order each before is the previous after, and each after holds what its
/// own request wrote.
fn assert_exact_chain(updates: &[&AuditEntry], first_before: &Value) {
    let mut ordered = updates.to_vec();
    ordered.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    assert_eq!(ordered[0].before.as_ref(), Some(first_before));
    for pair in ordered.windows(2) {
        assert_eq!(
            pair[1].before, pair[0].after,
            "a diff mixed two requests: {} and {}",
            pair[0].request_id, pair[1].request_id
        );
    }
    for e in &ordered {
        let after = e.after.as_ref().expect("an after-state");
        assert_eq!(after["by"], e.request_id, "{}'s after-state holds another request's write", e.request_id);
        assert_eq!(changes(e).iter().find(|c| c.0 == "/counter").map(|c| c.2.clone()), Some(after["counter"].clone()));
    }
}

#[tokio::test]
async fn concurrent_patches_of_one_resource_each_get_their_own_diff() {
    let app = spawn_app().await;
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"counter": 0})).await;
    let item = format!("/api/items/{}/", created["id"]);
    let mut tasks = Vec::new();
    // Slow snapshots for some writers, none for others: without the
    // per-resource turn held through the after-GET, a fast writer would
    // change the item while a slow one still reads its after-state.
    for i in 1..=16 {
        let delay = [0, 120, 0, 40][i as usize % 4];
        tasks.push(tokio::spawn(patch_as_writer(app.url(&item), i, delay)));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let entries = wait_entries(&app.store, 17).await;
    let updates: Vec<&AuditEntry> = entries.iter().filter(|e| e.action == "update").collect();
    assert_eq!(updates.len(), 16);
    assert_exact_chain(&updates, &created);
}

#[tokio::test]
async fn a_client_acting_on_a_new_resource_at_once_waits_for_its_after_state() {
    // The create's after-GET is slow; the client updates the new item the
    // moment it has the answer. The update must wait for the create's turn.
    let app = spawn_app().await;
    let req = Request::post(app.url("/api/items/"))
        .header("content-type", "application/json")
        .header("cookie", "delay_read=300")
        .header("x-request-id", "writer-0")
        .body(Full::new(Bytes::from(json!({"counter": 0, "by": "writer-0"}).to_string())))
        .unwrap();
    let created: Value = serde_json::from_slice(send(&client(), req).await.body()).unwrap();
    let item = format!("/api/items/{}/", created["id"]);
    assert_eq!(patch_as_writer(app.url(&item), 1, 0).await, 200);
    let e = wait_entries(&app.store, 2).await;
    assert_eq!(e[0].action, "create");
    assert_eq!(e[0].after.as_ref(), Some(&created), "the create's after-state is not what it created");
    assert_exact_chain(&[&e[1]], &created);

    // Sooner still: the update pipelined right behind the create on one
    // connection is read the moment the create's answer ends, before the
    // create's entry is even being completed. The create's turn must have
    // been taken before that end was sent.
    let app = spawn_app().await;
    let create = r#"{"counter": 0, "by": "writer-0"}"#;
    let update = r#"{"counter": 1, "by": "writer-1"}"#;
    let pipelined = format!(
        "POST /api/items/ HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncookie: delay_read=300\r\n\
         x-request-id: writer-0\r\ncontent-length: {}\r\n\r\n{create}\
         PATCH /api/items/1/ HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         x-request-id: writer-1\r\ncontent-length: {}\r\n\r\n{update}",
        create.len(),
        update.len()
    );
    let answers = raw(app.addr, pipelined.as_bytes()).await;
    assert_eq!(answers.matches("HTTP/1.1 20").count(), 2, "{answers}");
    let e = wait_entries(&app.store, 2).await;
    let created = json!({"id": 1, "counter": 0, "by": "writer-0"});
    assert_eq!(e[0].after.as_ref(), Some(&created), "the create's after-state is not what it created");
    assert_exact_chain(&[&e[1]], &created);
}

#[tokio::test]
async fn a_change_that_is_not_recorded_never_lands_in_another_entrys_diff() {
    // `svc-sync` (named by a trusted proxy, so verified) is excluded. Its
    // change arrives while a recorded update's after-GET is still running.
    let upstream = spawn_upstream();
    let exclude = "[[configuration]]\nname = \"Not the sync job\"\nexclude_users = [\"svc-sync\"]\n";
    let env = [("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")];
    let app = spawn_app_files(&upstream.url(), &env, &[("audit.toml", exclude)]).await;
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"counter": 0, "by": "writer-0"})).await;
    let item = format!("/api/items/{}/", created["id"]);
    assert_eq!(patch_as_writer(app.url(&item), 1, 300).await, 200);
    let sync = Request::patch(app.url(&item))
        .header("content-type", "application/json")
        .header("x-remote-user", "svc-sync")
        .body(Full::new(Bytes::from(json!({"counter": 2, "by": "svc-sync"}).to_string())))
        .unwrap();
    assert_eq!(send(&client(), sync).await.status(), 200);
    call(&app, Method::DELETE, &item, Value::Null).await;
    let e: Vec<AuditEntry> =
        wait_entries(&app.store, 4).await.into_iter().filter(|e| e.resource_type == "item").collect();
    assert_eq!(e.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["create", "update", "delete"]);
    assert_eq!(e[1].after.as_ref().unwrap()["by"], "writer-1", "the excluded change leaked into this diff");
    assert_eq!(e[2].before.as_ref().unwrap()["by"], "svc-sync");
}

#[tokio::test]
async fn every_hash_is_sha256_of_the_previous_hash_and_the_canonical_entry() {
    // Computed here, independently of the sealing code (docs/trail.md, chain
    // version 2): the content digest is SHA-256 over the JSON of the
    // personal fields; the hash SHA-256 over the previous hash's hex and
    // the entry's JSON without `hash` and the personal fields; keys sorted
    // at every depth (serde_json's map is ordered), no spaces.
    use sha2::{Digest, Sha256};
    let hex = |sha: Sha256| sha.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>();
    let personal_fields = [
        "actor",
        "client_ip",
        "peer_ip",
        "forwarded_for",
        "user_agent",
        "query",
        "before",
        "after",
        "changes",
        "unapplied",
        "request_body",
    ];
    let app = spawn_app().await;
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"z": 1, "a": {"y": [1, 2.5], "b": null}})).await;
    call(&app, Method::PATCH, &format!("/api/items/{}/", created["id"]), json!({"z": 2})).await;
    wait_entries(&app.store, 2).await;
    let rows = stored_entries(&app.store).await;
    let mut prev = "0".repeat(64);
    for text in rows {
        let mut entry: Value = serde_json::from_str(&text).unwrap();
        let fields = entry.as_object_mut().unwrap();
        let hash = fields.remove("hash").unwrap();
        let personal: serde_json::Map<String, Value> =
            personal_fields.iter().map(|k| (k.to_string(), fields.remove(*k).expect(k))).collect();
        let mut digest = Sha256::new();
        digest.update(serde_json::to_string(&personal).unwrap().as_bytes());
        assert_eq!(entry["content_digest"], hex(digest).as_str());
        assert_eq!(entry["chain_version"], 2);
        assert_eq!(entry["prev_hash"], prev.as_str(), "the chain links to the previous entry");
        let mut sha = Sha256::new();
        sha.update(prev.as_bytes());
        sha.update(serde_json::to_string(&entry).unwrap().as_bytes());
        let expected = hex(sha);
        assert_eq!(hash, expected.as_str());
        prev = expected;
    }
}

#[tokio::test]
async fn tampering_is_detected_and_entries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let app = spawn_app_with(&[("AUDITGATE_DATABASE", &database)], None).await;
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"v": 0})).await;
    let item = format!("/api/items/{}/", created["id"]);
    for v in 1..=3 {
        call(&app, Method::PATCH, &item, json!({ "v": v })).await;
    }
    let entries = wait_entries(&app.store, 4).await;
    let verdict = app.store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked, verdict.first_bad.clone()), (true, 4, None));

    // A restart on the same database keeps the entries and continues the chain.
    let mut app = app;
    let upstream = app.upstream.take().unwrap();
    app.stop().await;
    let again = spawn_app_to(&upstream.url(), &[("AUDITGATE_DATABASE", &database)], None).await;
    assert_eq!(wait_entries(&again.store, 4).await.len(), 4);
    call(&again, Method::PATCH, &item, json!({"v": 4})).await;
    wait_entries(&again.store, 5).await;
    assert!(again.store.verify().await.unwrap().ok);

    // Editing a stored entry is named by verify.
    let victim = &entries[2];
    let forged = serde_json::to_string(&AuditEntry { actor: "mallory".into(), ..victim.clone() }).unwrap();
    let sql = match again.store {
        Store::Sqlite(_) => "UPDATE audit_log SET entry = $1 WHERE id = $2",
        Store::Postgres(_) => "UPDATE audit_log SET entry = $1::json WHERE id = $2",
    };
    execute(&again.store, sql, &[&forged, &victim.id]).await;
    let verdict = again.store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.first_bad), (false, Some(victim.id.clone())));
}

#[tokio::test]
async fn snapshot_failures_are_written_into_the_entry_never_into_the_response() {
    // Each rule points its snapshot at a URL of the example upstream that
    // cannot give a usable state.
    let rules = r#"
[[resource]]
pattern = "/api/slowthings/{id}/"
type = "slowthing"
snapshot = "/slow?ms=3000"

[[resource]]
pattern = "/api/bigthings/{id}/"
type = "bigthing"
snapshot = "/big?bytes=70000"

[[resource]]
pattern = "/api/textthings/{id}/"
type = "textthing"
snapshot = "/"

[[resource]]
pattern = "/api/zipthings/{id}/"
type = "zipthing"
snapshot = "/gzipped"

[[resource]]
pattern = "/api/items/{id}/"
type = "item"
id_field = "/no/such/field"
"#;
    let env = [("AUDITGATE_SNAPSHOT__TIMEOUT", "300ms"), ("AUDITGATE_SNAPSHOT__MAX_BYTES", "65536")];
    let app = spawn_app_with(&env, Some(rules)).await;
    for path in ["/api/slowthings/1/", "/api/bigthings/1/", "/api/textthings/1/", "/api/zipthings/1/"] {
        // The sample app has no such collections: the client gets its 404, untouched.
        assert_eq!(call(&app, Method::PATCH, path, json!({"a": 1})).await.0, 404, "{path}");
    }
    let (status, created) = call(&app, Method::POST, "/api/items/", json!({"name": "via-location"})).await;
    assert_eq!(status, 201);
    assert_eq!(call(&app, Method::POST, &format!("/api/items/{}/activate/", created["id"]), Value::Null).await.0, 404);

    let e = wait_entries(&app.store, 6).await;
    let by_type = |t: &str| e.iter().find(|x| x.resource_type == t).unwrap();
    let error = |t: &str| by_type(t).snapshot_error.clone().unwrap_or_default();
    assert!(error("slowthing").contains("timed out"), "{}", error("slowthing"));
    assert!(error("bigthing").contains("larger than snapshot.max_bytes"), "{}", error("bigthing"));
    assert!(error("textthing").contains("not JSON"), "{}", error("textthing"));
    for t in ["slowthing", "bigthing", "textthing"] {
        assert_eq!((by_type(t).before.as_ref(), by_type(t).status), (None, 404));
    }
    // A gzip-encoded state is decoded before it is stored.
    assert_eq!(by_type("zipthing").before, Some(json!({"state": "compressed", "n": 7})));
    assert_eq!(by_type("zipthing").snapshot_error, None);
    // The id_field finds nothing, so the id comes from Location.
    let create = e.iter().find(|x| x.action == "create").unwrap();
    assert_eq!(create.resource_id.as_deref(), Some(created["id"].to_string().as_str()));
    assert_eq!(create.after.as_ref().unwrap()["name"], "via-location");
    // A custom action on the item: its before-state is the item.
    let custom = e.iter().find(|x| x.action == "activate").unwrap();
    assert_eq!((custom.resource_type.as_str(), custom.outcome.as_str()), ("item", "failure"));
    assert_eq!(custom.before.as_ref().unwrap()["name"], "via-location");
}

#[tokio::test]
async fn entries_name_the_real_client_and_ignore_forged_headers() {
    let patch = |app: &TestApp, headers: &[(&'static str, &'static str)]| {
        let mut b = Request::patch(app.url("/api/items/1/")).header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from_static(br#"{"v": 1}"#))).unwrap()
    };
    // Untrusted peer: forged X-Forwarded-For and X-Remote-User are ignored.
    let app = spawn_app().await;
    call(&app, Method::POST, "/api/items/", json!({"v": 0})).await;
    send(&client(), patch(&app, &[("x-forwarded-for", "6.6.6.6"), ("x-remote-user", "admin")])).await;
    let e = wait_entries(&app.store, 2).await;
    assert_eq!((e[1].client_ip.as_str(), e[1].peer_ip.as_str()), ("127.0.0.1", "127.0.0.1"));
    assert_eq!(e[1].forwarded_for, ["6.6.6.6"]);
    assert_eq!((e[1].actor.as_str(), e[1].actor_source), ("anonymous", auditgate::identity::ActorSource::Anonymous));

    // Behind trusted proxies: the rightmost untrusted address, and the proxy's actor header.
    let app = spawn_app_with(&[("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32,10.0.0.0/8")], None).await;
    call(&app, Method::POST, "/api/items/", json!({"v": 0})).await;
    send(&client(), patch(&app, &[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3"), ("x-remote-user", "carol")]))
        .await;
    let e = wait_entries(&app.store, 2).await;
    assert_eq!(e[1].client_ip, "203.0.113.9");
    assert_eq!((e[1].actor.as_str(), e[1].actor_verified), ("carol", true));
    // The same filter finds it by the client's network.
    let (found, _) = app
        .store
        .list(
            &{
                let mut f = auditgate::store::Filter::default();
                f.set("client_ip", "203.0.113.0/24").unwrap();
                f
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn a_create_with_a_streamed_answer_takes_its_id_from_location() {
    let app = spawn_app().await;
    let req = Request::post(app.url("/chunked-create/"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = send(&client(), req).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.body().as_ref(), br#"{"id": 77, "note": "chunked"}"#);
    let e = wait_entries(&app.store, 1).await;
    assert_eq!(
        (e[0].action.as_str(), e[0].resource_type.as_str(), e[0].resource_id.as_deref()),
        ("create", "chunked-create", Some("77"))
    );
    // The item URL does not exist on this upstream: the entry says so.
    assert!(e[0].snapshot_error.as_deref().unwrap_or("").contains("404"), "{:?}", e[0].snapshot_error);
}

#[tokio::test]
async fn ignore_fields_and_skip_unchanged_shape_the_trail() {
    let env = [("AUDITGATE_SNAPSHOT__IGNORE_FIELDS", "/updated_at"), ("AUDITGATE_SNAPSHOT__SKIP_UNCHANGED", "true")];
    let app = spawn_app_with(&env, None).await;
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"name": "a", "updated_at": 1})).await;
    let item = format!("/api/items/{}/", created["id"]);
    // Only the volatile field moves: no change left, so no entry.
    call(&app, Method::PATCH, &item, json!({"updated_at": 2})).await;
    // A real change alongside it: listed without the volatile field, which stays in the states.
    call(&app, Method::PATCH, &item, json!({"name": "b", "updated_at": 3})).await;
    call(&app, Method::DELETE, &item, Value::Null).await;
    let e = wait_entries(&app.store, 3).await;
    assert_eq!(e.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["create", "update", "delete"]);
    assert_eq!(changes(&e[1]), vec![("/name".into(), json!("a"), json!("b"))]);
    assert_eq!(e[1].after.as_ref().unwrap()["updated_at"], 3);
}

#[tokio::test]
async fn http2_mutations_are_recorded_like_http1() {
    let app = spawn_app().await;
    let h2 = h2_client();
    let body = |v: Value| Full::new(Bytes::from(v.to_string()));
    let create = Request::post(app.url("/api/items/"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/json")
        .body(body(json!({"n": 1})))
        .unwrap();
    let created: Value = serde_json::from_slice(send(&h2, create).await.body()).unwrap();
    let mut streams = Vec::new();
    for i in 2..=9 {
        let (h2, url) = (h2.clone(), app.url(&format!("/api/items/{}/", created["id"])));
        streams.push(tokio::spawn(async move {
            let req = Request::patch(url)
                .version(http::Version::HTTP_2)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(json!({"n": i}).to_string())))
                .unwrap();
            send(&h2, req).await.status()
        }));
    }
    for s in streams {
        assert_eq!(s.await.unwrap(), 200);
    }
    let mut e = wait_entries(&app.store, 9).await;
    e.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    assert_eq!(e[0].action, "create");
    for pair in e[1..].windows(2) {
        assert_eq!(pair[1].before, pair[0].after, "concurrent HTTP/2 streams shared a snapshot");
    }
}
