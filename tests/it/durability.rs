//! Nothing lost (docs/trail.md, docs/security.md D): a store that refuses writes sends
//! entries to the spool, which is replayed in order and exactly once when
//! the store takes them again (also by the next start); a torn spool tail
//! is cut and reported; the work in flight is bounded; `fail_mode =
//! "closed"` refuses changes it cannot record and keeps serving reads.

use std::time::Duration;

use auditgate::store::Store;
use http::Method;
use serde_json::json;

use crate::audit::{call, wait_entries};
use crate::helpers::*;

/// Makes the store refuse every new entry (a real database error on
/// insert), until `accept` is called.
pub async fn refuse(store: &Store) {
    match store {
        Store::Sqlite(_) => {
            execute(
                store,
                "CREATE TRIGGER refuse BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'store refuses'); END",
                &[],
            )
            .await
        }
        Store::Postgres(_) => {
            execute(
                store,
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'store refuses'; END $$",
                &[],
            )
            .await;
            execute(store, "CREATE TRIGGER refuse BEFORE INSERT ON audit_log EXECUTE FUNCTION refuse()", &[]).await
        }
    };
}

pub async fn accept(store: &Store) {
    match store {
        Store::Sqlite(_) => execute(store, "DROP TRIGGER refuse", &[]).await,
        Store::Postgres(_) => execute(store, "DROP TRIGGER refuse ON audit_log", &[]).await,
    };
    if let Store::Postgres(_) = store {
        execute(store, "DROP FUNCTION refuse()", &[]).await;
    }
}

/// The value of one metric on the query port.
pub(crate) async fn metric(app: &TestApp, name: &str) -> u64 {
    let res = get(&app.query("/metrics")).await;
    metric_in(&String::from_utf8_lossy(res.body()), name)
}

/// The value of the metric `name` (labels included) in a `/metrics` text.
pub(crate) fn metric_in(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("no {name}: {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

pub(crate) async fn wait_metric(app: &TestApp, name: &str, value: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(app, name).await != value {
        if tokio::time::Instant::now() > deadline {
            let all = String::from_utf8_lossy(get(&app.query("/metrics")).await.body()).into_owned();
            let values: Vec<&str> = all.lines().filter(|l| !l.starts_with('#')).collect();
            panic!("{name} never reached {value}: {values:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A spool in a directory of its own under `dir`, to be removed once the
/// app has started (a spool then takes nothing): the directory and the
/// spool's path.
pub(crate) fn vanishing_spool(dir: &tempfile::TempDir) -> (std::path::PathBuf, String) {
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let spool = gone.join("audit.spool").display().to_string();
    (gone, spool)
}

async fn stored(store: &Store) -> usize {
    store.list(&Default::default(), None, 1000).await.unwrap().0.len()
}

#[tokio::test]
async fn d19_a_store_that_refuses_writes_spools_and_replays_every_entry_once() {
    let app = spawn_app().await;
    refuse(&app.store).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, item) = call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
        assert_eq!(status, 201, "served while the store refuses");
        ids.push(item["id"].to_string());
    }
    wait_metric(&app, "auditgate_entries_spooled_total", 20).await;
    assert_eq!(metric(&app, "auditgate_spool_entries").await, 20);
    assert!(metric(&app, "auditgate_store_write_errors_total").await >= 1);
    assert_eq!(stored(&app.store).await, 0);
    assert_eq!(std::fs::read_to_string(&app.spool).unwrap().lines().count(), 20, "fsync'ed lines, one an entry");

    accept(&app.store).await;
    let entries = wait_entries(&app.store, 20).await;
    wait_metric(&app, "auditgate_spool_entries", 0).await;
    assert_eq!(metric(&app, "auditgate_entries_replayed_total").await, 20);
    assert_eq!(metric(&app, "auditgate_entries_dropped_total").await, 0);
    // Each once (in the order their after-states completed), the chain whole.
    let mut got: Vec<String> = entries.iter().map(|e| e.resource_id.clone().unwrap()).collect();
    got.sort_by_key(|id| id.parse::<u64>().unwrap());
    assert_eq!(got, ids);
    assert!(app.store.verify().await.unwrap().ok);
    assert_eq!(std::fs::metadata(&app.spool).unwrap().len(), 0, "emptied once replayed");

    // Back to the store directly; the chain goes on from the replayed entries.
    call(&app, Method::POST, "/api/items/", json!({"name": "after"})).await;
    wait_entries(&app.store, 21).await;
    assert!(app.store.verify().await.unwrap().ok);
    assert_eq!(metric(&app, "auditgate_entries_spooled_total").await, 20);
    // Every delivered entry is in one batch of the histogram.
    wait_metric(&app, "auditgate_batch_entries_sum", 21).await;
    assert_eq!(metric(&app, "auditgate_batch_entries_count").await, metric(&app, "auditgate_batches_total").await);
    assert_eq!(
        metric(&app, "auditgate_batch_entries_bucket{le=\"+Inf\"}").await,
        metric(&app, "auditgate_batch_entries_count").await
    );
}

/// Stored ids in the order the store took them (SQLite's `seq`;
/// PostgreSQL's inserting transaction, then id within one batch).
async fn ids_as_inserted(store: &Store) -> Vec<String> {
    match store {
        Store::Sqlite(s) => {
            sqlx::query_scalar("SELECT id FROM audit_log ORDER BY seq").fetch_all(s.pool()).await.unwrap()
        }
        Store::Postgres(s) => sqlx::query_scalar("SELECT id FROM audit_log ORDER BY xmin::text::bigint, id")
            .fetch_all(s.pool())
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn d19_entries_changed_while_the_spool_replays_are_stored_behind_it_in_id_order() {
    // A sink or stream follows the trail by id: an entry stored ahead of
    // older ones still in the spool would have it step past them.
    let app = std::sync::Arc::new(spawn_app().await);
    refuse(&app.store).await;
    for i in 0..20 {
        let (status, _) = call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
        assert_eq!(status, 201);
    }
    wait_metric(&app, "auditgate_entries_spooled_total", 20).await;
    accept(&app.store).await;
    // Changes keep coming, from more clients than a batch waits for, until
    // after the next retry is due (the backoff is at most 2 s): some arrive
    // just as the spool is replayed.
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    let mut writers = Vec::new();
    for w in 0..32 {
        let app = app.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while tokio::time::Instant::now() < until {
                let (status, _) = call(&app, Method::POST, "/api/items/", json!({"name": format!("w{w}-{n}")})).await;
                assert_eq!(status, 201);
                n += 1;
            }
            n
        }));
    }
    let mut total = 20;
    for w in writers {
        total += w.await.unwrap();
    }
    wait_metric(&app, "auditgate_spool_entries", 0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let inserted = loop {
        let ids = ids_as_inserted(&app.store).await;
        if ids.len() >= total || tokio::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut by_id = inserted.clone();
    by_id.sort();
    assert_eq!(inserted.len(), total);
    assert!(inserted == by_id, "the store took entries out of id order");
    let spooled = metric(&app, "auditgate_entries_spooled_total").await;
    assert_eq!(metric(&app, "auditgate_entries_replayed_total").await, spooled, "every spooled entry replayed");
    assert!(app.store.verify().await.unwrap().ok);
}

/// An app on its own database and spool in `dir`, so that it can be
/// started again on the same files.
async fn app_in(dir: &std::path::Path, upstream: &str, extra: &[(&str, &str)]) -> TestApp {
    let db = test_database(dir).await;
    let spool = dir.join("audit.spool").display().to_string();
    let mut env = vec![("AUDITGATE_DATABASE", db.as_str()), ("AUDITGATE_RECORDER__SPOOL", spool.as_str())];
    env.extend_from_slice(extra);
    spawn_app_to(upstream, &env, None).await
}

#[tokio::test]
async fn d18_a_spool_left_by_an_earlier_run_is_replayed_at_start_once_even_if_partly_stored() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = spawn_upstream();
    let app = app_in(dir.path(), &upstream.url(), &[]).await;
    refuse(&app.store).await;
    for i in 0..6 {
        call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
    }
    wait_metric(&app, "auditgate_spool_entries", 6).await;
    let spooled = std::fs::read(&app.spool).unwrap();
    // The store comes back and the spool is replayed; then, as if the
    // process had died between storing and emptying the spool, its old
    // text is put back, with a torn half line after it.
    accept(&app.store).await;
    wait_entries(&app.store, 6).await;
    let spool = app.spool.clone();
    app.stop().await;
    let torn = b"{\"action\":\"create\",\"id\":\"01J";
    std::fs::write(&spool, [spooled.as_slice(), torn].concat()).unwrap();

    let app = app_in(dir.path(), &upstream.url(), &[]).await;
    wait_metric(&app, "auditgate_spool_entries", 0).await;
    assert_eq!(metric(&app, "auditgate_spool_torn_bytes_total").await, torn.len() as u64);
    assert_eq!(std::fs::read(dir.path().join("audit.spool.torn")).unwrap(), torn, "kept aside");
    assert_eq!(stored(&app.store).await, 6, "each entry once");
    call(&app, Method::POST, "/api/items/", json!({"name": "later"})).await;
    wait_entries(&app.store, 7).await;
    assert!(app.store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn fail_closed_refuses_changes_it_cannot_record_and_keeps_serving_reads() {
    let dir = tempfile::tempdir().unwrap();
    // A spool in a directory removed once started: it can take nothing.
    let (gone, spool) = vanishing_spool(&dir);
    let env = [("AUDITGATE_FAIL_MODE", "closed"), ("AUDITGATE_RECORDER__SPOOL", spool.as_str())];
    let app = spawn_app_with(&env, None).await;
    std::fs::remove_dir_all(gone).unwrap();
    refuse(&app.store).await;
    // The first change is forwarded; its entry then has nowhere to go.
    let (status, _) = call(&app, Method::POST, "/api/items/", json!({"name": "first"})).await;
    assert_eq!(status, 201);
    wait_metric(&app, "auditgate_recorder_stuck", 1).await;
    let (before, listed) = call(&app, Method::GET, "/api/items/", serde_json::Value::Null).await;
    assert_eq!(before, 200, "reads keep working");
    let (status, body) = call(&app, Method::POST, "/api/items/", json!({"name": "refused"})).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("the audit trail cannot record this change now")));
    let (_, after) = call(&app, Method::GET, "/api/items/", serde_json::Value::Null).await;
    assert_eq!(after, listed, "the upstream never saw the refused change");

    // The store takes entries again: the stuck one is written, changes flow.
    accept(&app.store).await;
    wait_metric(&app, "auditgate_recorder_stuck", 0).await;
    let (status, _) = call(&app, Method::POST, "/api/items/", json!({"name": "second"})).await;
    assert_eq!(status, 201);
    let entries = wait_entries(&app.store, 2).await;
    assert_eq!(entries.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["create", "create"]);
    assert_eq!(metric(&app, "auditgate_entries_dropped_total").await, 0);
}

#[tokio::test]
async fn fail_open_serves_changes_and_counts_entries_it_cannot_record() {
    let dir = tempfile::tempdir().unwrap();
    let (gone, spool) = vanishing_spool(&dir);
    let env = [
        ("AUDITGATE_RECORDER__SPOOL", spool.as_str()),
        ("AUDITGATE_RECORDER__QUEUE", "1"),
        ("AUDITGATE_RECORDER__BATCH", "1"),
    ];
    let app = spawn_app_with(&env, None).await;
    std::fs::remove_dir_all(gone).unwrap();
    refuse(&app.store).await;
    for i in 0..6 {
        let (status, _) = call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
        assert_eq!(status, 201, "served although nothing can be recorded");
    }
    // Batches of one. Held in memory: the batch being retried, one handed on behind it, one
    // sealed and waiting to be handed on, one in the queue (of 1). The rest
    // are given up once the recorder is stuck, and counted.
    wait_metric(&app, "auditgate_recorder_stuck", 1).await;
    wait_metric(&app, "auditgate_entries_dropped_total", 2).await;
    // When the store is back, what was held is written: every change
    // answered 2xx is either in the trail or counted as dropped.
    accept(&app.store).await;
    wait_entries(&app.store, 4).await;
    wait_metric(&app, "auditgate_recorder_stuck", 0).await;
    assert_eq!(stored(&app.store).await + metric(&app, "auditgate_entries_dropped_total").await as usize, 6);
    // Batches of one: all in the first bucket, none above.
    let batches = metric(&app, "auditgate_batch_entries_count").await;
    assert!(batches >= 4);
    assert_eq!(metric(&app, "auditgate_batch_entries_bucket{le=\"1\"}").await, batches);
    assert_eq!(metric(&app, "auditgate_batch_entries_sum").await, batches);
    assert!(app.store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn max_pending_bounds_the_audited_requests_in_flight() {
    let app = spawn_app_with(&[("AUDITGATE_RECORDER__MAX_PENDING", "2")], None).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await.1["id"].clone());
    }
    wait_entries(&app.store, 6).await;
    // Six slow changes at once (each holds its slot through a 300 ms
    // before-snapshot): never more than two are in flight.
    let changes = ids.iter().map(|id| {
        let app = &app;
        async move {
            let url = format!("/api/items/{id}/");
            let req = http::Request::builder()
                .method(Method::PATCH)
                .uri(app.url(&url))
                .header("content-type", "application/json")
                .header("cookie", "delay_read=300")
                .body(http_body_util::Full::new(bytes::Bytes::from(json!({"name": "x"}).to_string())))
                .unwrap();
            send(&client(), req).await.status()
        }
    });
    let watch = async {
        let mut most = 0;
        for _ in 0..40 {
            most = most.max(metric(&app, "auditgate_audits_pending").await);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        most
    };
    let (statuses, most) = tokio::join!(futures_util::future::join_all(changes), watch);
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    assert_eq!(most, 2, "at most max_pending in flight, and the bound reached");
    wait_entries(&app.store, 12).await;
    assert_eq!(metric(&app, "auditgate_audits_pending").await, 0);
}

#[tokio::test]
async fn with_durability_sync_an_answer_is_only_seen_once_its_entry_is_stored() {
    // A long flush interval: with `async` the entries would lag the answers.
    let env = [("AUDITGATE_RECORDER__DURABILITY", "sync"), ("AUDITGATE_RECORDER__FLUSH_INTERVAL", "2s")];
    let app = spawn_app_with(&env, None).await;
    for i in 0..5 {
        // A create, whose id is read from its answer as it streams by.
        let (status, item) = call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
        assert_eq!(status, 201);
        let entries = app.store.list(&Default::default(), None, 1).await.unwrap().0;
        assert_eq!(stored(&app.store).await, 2 * i + 1, "the create's entry is stored before its answer ends");
        assert_eq!(entries[0].resource_id, Some(item["id"].to_string()));
        assert_eq!(entries[0].after.as_ref().unwrap()["name"], format!("n{i}"), "after-state included");
        // An update, answered without reading its body.
        let (status, _) = call(&app, Method::PATCH, &format!("/api/items/{}/", item["id"]), json!({"name": "x"})).await;
        assert_eq!(status, 200);
        assert_eq!(stored(&app.store).await, 2 * i + 2, "the update's entry is stored before its answer");
    }
    assert!(app.store.verify().await.unwrap().ok);
}

/// Whether the app's own store waits for each commit to reach the disk:
/// SQLite's `synchronous` is FULL (2), PostgreSQL's `synchronous_commit` on.
async fn fsyncs_each_commit(app: &TestApp) -> bool {
    match &app.store {
        Store::Sqlite(s) => sqlx::query_scalar::<_, i64>("PRAGMA synchronous").fetch_one(s.pool()).await.unwrap() == 2,
        Store::Postgres(p) => {
            sqlx::query_scalar::<_, String>("SHOW synchronous_commit").fetch_one(p.pool()).await.unwrap() == "on"
        }
    }
}

#[tokio::test]
async fn with_durability_sync_the_store_fsyncs_every_commit() {
    let sync = spawn_app_with(&[("AUDITGATE_RECORDER__DURABILITY", "sync")], None).await;
    assert!(fsyncs_each_commit(&sync).await);
    // Without it SQLite commits without waiting (a power cut may lose the
    // last commits, never corrupt); PostgreSQL keeps its server's default,
    // which postgres::a_power_safe_store_commits_… sets off to tell apart.
    let quick = spawn_app_with(&[], None).await;
    if let Store::Sqlite(_) = &quick.store {
        assert!(!fsyncs_each_commit(&quick).await);
    }
}

#[tokio::test]
async fn with_durability_async_entries_wait_the_flush_interval_to_share_a_batch() {
    // What `sync` gives up: its answers never wait out the interval.
    let env = [("AUDITGATE_RECORDER__FLUSH_INTERVAL", "3s"), ("AUDITGATE_RECORDER__BATCH", "100")];
    let app = spawn_app_with(&env, None).await;
    for i in 0..3 {
        let (status, _) = call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
        assert_eq!(status, 201);
    }
    wait_entries(&app.store, 3).await;
    assert_eq!(
        metric(&app, "auditgate_batches_total").await,
        1,
        "three entries answered within the interval, one batch"
    );
}

#[tokio::test]
async fn with_durability_sync_and_fail_open_a_stuck_recorder_still_lets_answers_out() {
    let dir = tempfile::tempdir().unwrap();
    let (gone, spool) = vanishing_spool(&dir);
    let env = [("AUDITGATE_RECORDER__DURABILITY", "sync"), ("AUDITGATE_RECORDER__SPOOL", spool.as_str())];
    let app = spawn_app_with(&env, None).await;
    std::fs::remove_dir_all(gone).unwrap();
    refuse(&app.store).await;
    // Neither store nor spool: the answer cannot wait for a durable entry,
    // and `fail_mode = "open"` serves it anyway once the recorder is stuck.
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        call(&app, Method::POST, "/api/items/", json!({"name": "served"})),
    )
    .await
    .expect("the answer was held while nothing could be recorded");
    assert_eq!(answered.0, 201);
    assert_eq!(metric(&app, "auditgate_recorder_stuck").await, 1);
    // Once the store is back the held entry is written after all.
    accept(&app.store).await;
    wait_entries(&app.store, 1).await;
}

#[tokio::test]
async fn forged_spool_lines_are_refused_at_start_kept_aside_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = spawn_upstream();
    let app = app_in(dir.path(), &upstream.url(), &[]).await;
    for i in 0..2 {
        call(&app, Method::POST, "/api/items/", json!({"name": format!("n{i}")})).await;
    }
    let genuine = wait_entries(&app.store, 2).await;
    let instance = genuine[0].instance.clone();
    let spool = app.spool.clone();
    let rejected = dir.path().join("audit.spool.rejected");
    app.stop().await;

    // The probe's line: a stored entry made over, with a bad hash and the
    // greatest id there is (it would sort first in every list for ever).
    let mut forged: serde_json::Value = serde_json::to_value(&genuine[1]).unwrap();
    forged["id"] = json!("7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    forged["actor"] = json!("mallory");
    forged["prev_hash"] = json!(genuine[1].hash);
    let forged = format!("{forged}\n");
    std::fs::write(&spool, &forged).unwrap();
    let app = app_in(dir.path(), &upstream.url(), &[]).await;
    assert_eq!(metric(&app, "auditgate_spool_rejected_total").await, 1);
    assert_eq!(metric(&app, "auditgate_spool_entries").await, 0);
    assert_eq!(std::fs::read_to_string(&rejected).unwrap(), forged, "kept aside as it was");
    assert_eq!(std::fs::read(&spool).unwrap(), b"", "and gone from the spool");
    let (status, _) =
        crate::erasure::query(&app, Method::GET, "/api/v1/audit-logs/7ZZZZZZZZZZZZZZZZZZZZZZZZZ", None).await;
    assert_eq!(status, 404);
    // New entries chain onto the store's head, and a stream sees them.
    let mut events = crate::live::Events::open(&app, "", None).await;
    call(&app, Method::POST, "/api/items/", json!({"name": "later"})).await;
    let (_, streamed) = events.next(Duration::from_secs(10)).await.expect("the new entry is streamed");
    assert_eq!(streamed["after"]["name"], "later");
    let all = wait_entries(&app.store, 3).await;
    assert_eq!(all[2].prev_hash, genuine[1].hash);
    assert!(all.iter().all(|e| e.actor != "mallory"));
    assert!(app.store.verify().await.unwrap().ok);
    let head = all[2].hash.clone();
    app.stop().await;

    // Lines with hashes that hold, but of a chain the store never had
    // (another trail's, or made up): none of them links to its head.
    let mut chain = auditgate::entry::Chain::resume(None);
    let mut made_up = String::new();
    for e in &genuine {
        let e = auditgate::entry::AuditEntry { actor: "mallory".into(), ..e.clone() };
        made_up.push_str(&format!("{}\n", chain.seal(e).json));
    }
    std::fs::write(&spool, &made_up).unwrap();
    let app = app_in(dir.path(), &upstream.url(), &[]).await;
    assert_eq!(metric(&app, "auditgate_spool_rejected_total").await, 2);
    assert_eq!(std::fs::read_to_string(&rejected).unwrap(), format!("{forged}{made_up}"));
    call(&app, Method::POST, "/api/items/", json!({"name": "after"})).await;
    let all = wait_entries(&app.store, 4).await;
    assert_eq!((all.len(), all[3].prev_hash.as_str(), all[3].instance.as_str()), (4, head.as_str(), instance.as_str()));
    assert!(all.iter().all(|e| e.actor != "mallory"));
    assert!(app.store.verify().await.unwrap().ok);
    app.stop().await;
}
