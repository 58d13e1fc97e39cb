//! The store on real databases (SQLite files, or PostgreSQL when the suite
//! runs against it): schema upgrades keep existing trails, `verify`
//! catches edits beyond the entry text (filter columns, a deleted tail),
//! and several instances' chains interleave in one database.

use auditgate::diff::Change;
use auditgate::entry::{AuditEntry, Chain, Outcome, Sealed};
use auditgate::identity::ActorSource;
use auditgate::store::{Filter, Store};
use serde_json::json;

use crate::helpers::*;

pub(crate) fn entry(instance: &str, n: usize) -> AuditEntry {
    AuditEntry {
        id: String::new(),
        timestamp: format!("2026-11-23T11:02:{:02}.000000Z", n % 60),
        request_id: format!("req-{instance}-{n}"),
        action: if n.is_multiple_of(2) { "update" } else { "delete" }.into(),
        outcome: if n.is_multiple_of(3) { Outcome::Failure } else { Outcome::Success },
        method: "PATCH".into(),
        path: format!("/api/v1/users/{n}/"),
        query: String::new(),
        status: if n.is_multiple_of(3) { 409 } else { 200 },
        duration_ms: 1.5,
        resource_type: "user".into(),
        resource_id: Some(n.to_string()),
        path_resource_id: None,
        parents: Vec::new(),
        actor: format!("actor-{}", n % 4),
        actor_source: ActorSource::Header,
        actor_verified: false,
        client_ip: format!("10.0.0.{n}"),
        peer_ip: "127.0.0.1".into(),
        forwarded_for: Vec::new(),
        user_agent: None,
        configuration: None,
        before: Some(json!({"n": n})),
        after: Some(json!({"n": n + 1})),
        changes: vec![Change { path: "/n".into(), old: json!(n), new: json!(n + 1) }],
        unapplied: Some(None),
        request_body: None,
        snapshot_error: None,
        snapshot_format: None,
        instance: instance.into(),
        chain_version: None,
        content_digest: None,
        erased: false,
        erasure: None,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// `n` entries of `user/7` (instance `gw-other`), stored: a busy resource.
pub(crate) async fn busy_resource(store: &Store, n: usize) -> Vec<Sealed> {
    let mut chain = Chain::resume(None);
    let entries: Vec<Sealed> =
        (0..n).map(|i| chain.seal(AuditEntry { resource_id: Some("7".into()), ..entry("gw-other", i) })).collect();
    for batch in entries.chunks(500) {
        store.insert_batch(batch).await.unwrap();
    }
    entries
}

pub(crate) fn sealed(chain: &mut Chain, instance: &str, range: std::ops::Range<usize>) -> Vec<Sealed> {
    range.map(|n| chain.seal(entry(instance, n))).collect()
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("trail.db").display())
}

/// The test's store: see `test_database`.
async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&test_database(dir.path()).await, false).await.unwrap()
}

#[tokio::test]
async fn a_database_of_the_first_schema_is_upgraded_with_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    // The first schema only, filled the way the first release wrote it.
    let first = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/0001_audit_log.sql");
    std::fs::copy(&source, first.path().join("0001_audit_log.sql")).unwrap();
    let options = url(&dir).parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(first.path()).await.unwrap().run(&pool).await.unwrap();
    let mut chain = Chain::resume(None);
    let old = sealed(&mut chain, "gw-1", 0..6);
    for Sealed { entry: e, json } in &old {
        sqlx::query(
            "INSERT INTO audit_log (id, instance, timestamp, action, outcome, method, path, status, resource_type, \
             resource_id, actor, client_ip, client_ip_key, configuration, entry) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.id)
        .bind(&e.instance)
        .bind(&e.timestamp)
        .bind(&e.action)
        .bind(e.outcome.as_str())
        .bind(&e.method)
        .bind(&e.path)
        .bind(i64::from(e.status))
        .bind(&e.resource_type)
        .bind(&e.resource_id)
        .bind(&e.actor)
        .bind(&e.client_ip)
        .bind(auditgate::store::ip_key(e.client_ip.parse().unwrap()).to_vec())
        .bind(&e.configuration)
        .bind(json)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = Store::open(&url(&dir), false).await.unwrap();
    assert_eq!(store.last_hash("gw-1").await.unwrap().as_deref(), Some(old[5].entry.hash.as_str()));
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 6));
    let mut failures = Filter::default();
    failures.set("outcome", "failure").unwrap();
    let (found, _) = store.list(&failures, None, 50).await.unwrap();
    assert_eq!(
        found.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![old[3].entry.id.clone(), old[0].entry.id.clone()]
    );
    // The chain goes on from where the first schema left it.
    let mut chain = Chain::resume(store.last_hash("gw-1").await.unwrap());
    store.insert_batch(&sealed(&mut chain, "gw-1", 6..9)).await.unwrap();
    assert_eq!(store.verify().await.unwrap().checked, 9);
    assert!(store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn verify_names_an_edited_filter_column_and_a_deleted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut chain = Chain::resume(None);
    let entries = sealed(&mut chain, "gw-1", 0..10);
    store.insert_batch(&entries).await.unwrap();
    assert!(store.verify().await.unwrap().ok);

    // The entry text is intact, but the column the actor filter reads lies.
    execute(&store, "UPDATE audit_log SET actor = 'nobody' WHERE id = $1", &[&entries[3].entry.id]).await;
    assert_eq!(store.verify().await.unwrap().first_bad, Some(entries[3].entry.id.clone()));
    execute(&store, "UPDATE audit_log SET actor = $1 WHERE id = $2", &[&entries[3].entry.actor, &entries[3].entry.id])
        .await;
    assert!(store.verify().await.unwrap().ok);

    // Deleting the newest entries leaves a chain that links perfectly but
    // stops short of its recorded head.
    execute(&store, "DELETE FROM audit_log WHERE id >= $1", &[&entries[8].entry.id]).await;
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked, verdict.first_bad), (false, 8, Some(entries[9].entry.id.clone())));
}

#[tokio::test]
async fn chains_of_several_instances_interleave_in_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (mut a, mut b) = (Chain::resume(None), Chain::resume(None));
    let mut expected = 0;
    for round in 0..4 {
        let (one, two) =
            (sealed(&mut a, "gw-a", round * 5..round * 5 + 5), sealed(&mut b, "gw-b", round * 3..round * 3 + 3));
        expected += one.len() + two.len();
        store.insert_batch(&two).await.unwrap();
        store.insert_batch(&one).await.unwrap();
    }
    // One batch holding both chains (a spool replayed after a change of
    // instance name holds such): each chain's head moves to its newest.
    let mut mixed = sealed(&mut a, "gw-a", 20..22);
    mixed.insert(1, sealed(&mut b, "gw-b", 12..13).remove(0));
    expected += mixed.len();
    store.insert_batch(&mixed).await.unwrap();
    assert_eq!(store.last_hash("gw-a").await.unwrap().as_deref(), Some(mixed[2].entry.hash.as_str()));
    assert_eq!(store.last_hash("gw-b").await.unwrap().as_deref(), Some(mixed[1].entry.hash.as_str()));
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, expected as u64));
    let mut only_b = Filter::default();
    only_b.set("instance", "gw-b").unwrap();
    let (found, next) = store.list(&only_b, None, 100).await.unwrap();
    assert_eq!((found.len(), next), (13, None));
    assert!(found.iter().all(|e| e.instance == "gw-b"));
    // Each instance resumes its own chain.
    let mut only_a = Filter::default();
    only_a.set("instance", "gw-a").unwrap();
    let (newest_a, _) = store.list(&only_a, None, 1).await.unwrap();
    assert_eq!(store.last_hash("gw-a").await.unwrap(), Some(newest_a[0].hash.clone()));
}

/// A replayed spool can hold entries the store already has (stored, then
/// the process died before the spool was emptied) followed by new ones:
/// each is stored once, the new ones too, and the head moves to the newest.
#[tokio::test]
async fn a_batch_holding_stored_entries_stores_the_new_ones_and_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut chain = Chain::resume(None);
    let first = sealed(&mut chain, "gw", 0..3);
    store.insert_batch(&first).await.unwrap();
    let mut replayed = first[1..].to_vec();
    replayed.extend(sealed(&mut chain, "gw", 3..5));
    store.insert_batch(&replayed).await.unwrap();
    // Wholly stored already: nothing to do, and no error.
    store.insert_batch(&replayed).await.unwrap();
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 5));
    assert_eq!(store.last_hash("gw").await.unwrap().as_deref(), Some(replayed[3].entry.hash.as_str()));
}

#[tokio::test]
async fn verify_while_entries_are_being_written_sees_an_intact_chain() {
    let app =
        spawn_app_with(&[("AUDITGATE_RECORDER__FLUSH_INTERVAL", "1ms"), ("AUDITGATE_RECORDER__BATCH", "4")], None)
            .await;
    let writing = async {
        for round in 0..40 {
            let creates = (0..8).map(|i| {
                let app = &app;
                async move {
                    let body = serde_json::json!({"name": format!("{round}-{i}")}).to_string();
                    let req = http::Request::post(app.url("/api/items/"))
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                        .unwrap();
                    send(&client(), req).await
                }
            });
            futures_util::future::join_all(creates).await;
        }
    };
    let checking = async {
        let mut checks = Vec::new();
        for _ in 0..60 {
            checks.push(app.store.verify().await.unwrap());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        checks
    };
    let ((), checks) = tokio::join!(writing, checking);
    assert!(checks.iter().any(|v| v.checked > 0 && v.checked < 320), "verified while writing");
    for v in checks {
        assert!(v.ok, "an intact trail reported as broken while written to: {v:?}");
    }
}

/// Entries of `instance` sealed `days_ago`, chained on from `prev`: ids
/// made from that time, as if written then.
fn sealed_days_ago(instance: &str, days_ago: i64, prev: &str, n: usize) -> Vec<Sealed> {
    let start = (chrono::Utc::now() - chrono::Duration::days(days_ago)).timestamp_millis() as u64;
    sealed_at(instance, start, 1, prev, n)
}

/// Entries of `instance` chained on from `prev`, the `i`th with an id made
/// at millisecond `start + i * step`: chains sealed this way interleave in
/// a known id order.
fn sealed_at(instance: &str, start: u64, step: u64, prev: &str, n: usize) -> Vec<Sealed> {
    let mut prev = prev.to_string();
    (0..n)
        .map(|i| {
            let mut e = entry(instance, i);
            e.id = ulid::Ulid::from_parts(start + i as u64 * step, i as u128).to_string();
            e.prev_hash = std::mem::take(&mut prev);
            e.hash = e.compute_hash();
            prev.clone_from(&e.hash);
            Sealed { json: serde_json::to_string(&e).unwrap().into(), entry: e }
        })
        .collect()
}

#[tokio::test]
async fn deleting_the_oldest_entries_keeps_each_chain_verifiable_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let (mut a, mut b) = (Chain::resume(None), Chain::resume(None));
    let mut all = Vec::new();
    for round in 0..3 {
        let (one, two) = (sealed(&mut a, "gw-a", round * 4..round * 4 + 4), sealed(&mut b, "gw-b", round..round + 1));
        store.insert_batch(&one).await.unwrap();
        store.insert_batch(&two).await.unwrap();
        all.extend(one.into_iter().chain(two));
    }
    all.sort_by(|x, y| x.entry.id.cmp(&y.entry.id));
    // Everything before the seventh entry goes, in batches of two.
    let (deleted, through) = store.delete_before(&all[6].entry.id, 2).await.unwrap();
    assert_eq!((deleted, through.as_deref()), (6, Some(all[5].entry.id.as_str())));
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 9), "{verdict:?}");
    let heads: Vec<&str> = verdict.heads.iter().map(|h| h.instance.as_str()).collect();
    assert_eq!(heads, ["gw-a", "gw-b"]);
    // A head kept before the deletion was retired by it, not cut.
    let retired = auditgate::entry::Head {
        instance: all[0].entry.instance.clone(),
        id: all[0].entry.id.clone(),
        hash: all[0].entry.hash.clone(),
    };
    assert_eq!(store.missing_heads(&[retired]).await.unwrap(), Vec::<String>::new());

    // Deleting one more behind the checkpoint's back breaks the chain there.
    let next = &all[6].entry;
    execute(&store, "DELETE FROM audit_log WHERE id = $1", &[&next.id]).await;
    let verdict = store.verify().await.unwrap();
    assert!(!verdict.ok);
    let following = all[7..].iter().find(|s| s.entry.instance == next.instance).unwrap();
    assert_eq!(verdict.first_bad, Some(following.entry.id.clone()));
    // A head kept from then is cut, not retired: it is past the checkpoint.
    let cut = auditgate::entry::Head { instance: next.instance.clone(), id: next.id.clone(), hash: next.hash.clone() };
    let why =
        format!("instance {}: kept head {} is no longer in the trail (the chain was cut)", next.instance, next.id);
    assert_eq!(store.missing_heads(&[cut]).await.unwrap(), [why]);

    // Deleting a whole chain leaves its checkpoint equal to its head.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.insert_batch(&sealed(&mut Chain::resume(None), "gw-c", 0..3)).await.unwrap();
    assert_eq!(store.delete_before("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 1000).await.unwrap().0, 3);
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 0), "{verdict:?}");
}

#[tokio::test]
async fn retention_at_start_deletes_entries_past_retention_days_and_records_that_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let store = Store::open(&database, false).await.unwrap();
    let old = sealed_days_ago("gw-old", 40, auditgate::entry::GENESIS, 5);
    let recent = sealed_days_ago("gw-old", 10, &old[4].entry.hash, 2);
    store.insert_batch(&old).await.unwrap();
    store.insert_batch(&recent).await.unwrap();
    store.close().await;

    let spool = dir.path().join("audit.spool").display().to_string();
    let env = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_RECORDER__SPOOL", spool.as_str()),
        ("AUDITGATE_RETENTION_DAYS", "30"),
        ("AUDITGATE_INSTANCE", "gw-now"),
    ];
    let app = spawn_app_with(&env, None).await;
    let mut recorded = Filter::default();
    recorded.set("resource_type", "audit_log").unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.store.list(&recorded, None, 1).await.unwrap().0.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no retention pass was recorded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut entries = app.store.list(&Filter::default(), None, 100).await.unwrap().0;
    entries.reverse();
    assert_eq!(entries.len(), 3);
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids[..2], [recent[0].entry.id.as_str(), recent[1].entry.id.as_str()], "only the old ones went");
    let record = &entries[2];
    assert_eq!((record.action.as_str(), record.resource_type.as_str()), ("delete", "audit_log"));
    assert_eq!((record.actor.as_str(), record.instance.as_str()), ("auditgate", "gw-now"));
    let before = record.before.as_ref().unwrap();
    assert_eq!((&before["entries"], &before["through_id"]), (&json!(5), &json!(old[4].entry.id)));
    assert!(app.store.verify().await.unwrap().ok);
}

/// One deletion batch over two chains moves both checkpoints: ids made in a
/// known order (a0 < b0 < a1 < b1 < a2 < b2), the first four deleted in one
/// transaction, and what stays still verifies.
#[tokio::test]
async fn one_deletion_batch_over_two_chains_moves_both_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let start = (chrono::Utc::now() - chrono::Duration::days(40)).timestamp_millis() as u64;
    let a = sealed_at("gw-a", start, 2, auditgate::entry::GENESIS, 3);
    let b = sealed_at("gw-b", start + 1, 2, auditgate::entry::GENESIS, 3);
    store.insert_batch(&a).await.unwrap();
    store.insert_batch(&b).await.unwrap();
    let (deleted, through) = store.delete_before(&a[2].entry.id, 1_000).await.unwrap();
    assert_eq!((deleted, through.as_deref()), (4, Some(b[1].entry.id.as_str())));
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 2), "{verdict:?}");
}

/// The statistics a store keeps as it writes answer what counting the
/// entries answers, on either store: ranges on and off hour and day
/// boundaries, two instances' entries, a batch written as two halves
/// (PostgreSQL, from 200), batches of a few entries and replays (their
/// stored entries not counted again)
/// and retention. On PostgreSQL the migration's backfill (SQL) also gives
/// the counts the writers kept (Rust).
#[tokio::test]
async fn kept_statistics_answer_what_counting_the_entries_answers() {
    const HOUR_MS: u64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let start = 1_764_500_400_000u64; // 2025-11-30T11:00:00Z, on the hour
    let batch = |instance: &str, from: u64, n: u64, prev: &str| -> Vec<Sealed> {
        let mut prev = prev.to_string();
        (from..from + n)
            .map(|i| {
                let mut e = entry(instance, usize::try_from(i).unwrap());
                e.actor = format!("actor{}", i % 7);
                e.action = ["create", "update", "delete"][usize::try_from(i % 3).unwrap()].into();
                e.outcome = if i % 5 == 0 { Outcome::Failure } else { Outcome::Success };
                // Over about three days, some on the hour exactly.
                let ms = start + i * (HOUR_MS / 4) + if i % 4 == 0 { 0 } else { 17 };
                let at = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap()).unwrap();
                e.timestamp = auditgate::entry::format_time(at);
                e.id = ulid::Ulid::from_parts(ms, u128::from(i)).to_string();
                e.prev_hash = std::mem::take(&mut prev);
                e.hash = e.compute_hash();
                prev.clone_from(&e.hash);
                Sealed { json: serde_json::to_string(&e).unwrap().into(), entry: e }
            })
            .collect()
    };
    let a = batch("gw-a", 0, 300, "");
    let b = batch("gw-b", 1000, 40, "");
    // Batches of a few entries (SQLite sends them at once) and larger ones.
    let mut written = 0;
    for n in [1, 5, 16, 17, 3, 100, 78] {
        store.insert_batch(&a[written..written + n]).await.unwrap();
        written += n;
    }
    assert_eq!(written, 220);
    store.insert_batch(&b).await.unwrap();
    // A replay: 120 stored already, 80 new; whole and in batches of 16, of
    // which one is half stored.
    for replayed in a[100..].chunks(16) {
        store.insert_batch(replayed).await.unwrap();
    }
    store.insert_batch(&a[100..]).await.unwrap();
    let time = |h: i64| {
        let ms = i64::try_from(start).unwrap() + h * i64::try_from(HOUR_MS).unwrap() / 60;
        auditgate::entry::format_time(chrono::DateTime::from_timestamp_millis(ms).unwrap())
    };
    // Edges in minutes from the start.
    let edges =
        [None, Some(-60), Some(0), Some(1), Some(60), Some(125), Some(13 * 60), Some(37 * 60 + 1), Some(80 * 60)];
    let filters: Vec<Filter> = edges
        .iter()
        .flat_map(|since| edges.iter().map(move |until| (since, until)))
        .map(|(since, until)| Filter { since: since.map(time), until: until.map(time), ..Filter::default() })
        .collect();
    let everything: Vec<&Sealed> = a.iter().chain(&b).collect();
    stats_match(&store, &everything, &filters).await;
    if let Store::Postgres(pg) = &store {
        let read = || async {
            let mut rows = Vec::new();
            for (table, unit) in [("audit_stats", "hour"), ("audit_stats_daily", "day")] {
                let sql =
                    format!("SELECT '{table}', dimension, {unit}, value, instance, n FROM {table} ORDER BY 2, 3, 4, 5");
                let all: Vec<(String, String, i64, String, String, i64)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pg.pool()).await.unwrap();
                rows.extend(all);
            }
            rows
        };
        let kept = read().await;
        assert!(kept.iter().any(|r| r.0 == "audit_stats_daily"));
        execute(&store, "DELETE FROM audit_stats", &[]).await;
        execute(&store, "DELETE FROM audit_stats_daily", &[]).await;
        let migration = include_str!("../../migrations/postgres/0003_audit_stats.sql");
        for statement in migration.split(';').filter(|s| s.contains("INSERT INTO")) {
            execute(&store, statement, &[]).await;
        }
        assert_eq!(read().await, kept);
    }
    // Retention: the deleted entries leave the counts.
    store.delete_before(&a[120].entry.id, 50).await.unwrap();
    let kept: Vec<&Sealed> = everything.into_iter().filter(|s| s.entry.id >= a[120].entry.id).collect();
    stats_match(&store, &kept, &filters).await;
    // Values no kept entry has are gone, not left at zero.
    for table in ["audit_stats", "audit_stats_daily"] {
        assert_eq!(execute(&store, &format!("DELETE FROM {table} WHERE n <= 0"), &[]).await, 0, "{table}");
    }
    // A range's whole hours and days are read from the kept counts, not
    // counted again: a count moved behind the store's back shows.
    for table in ["audit_stats", "audit_stats_daily"] {
        let sql = format!("UPDATE {table} SET n = n + 1000 WHERE dimension = 'outcome' AND value = 'success'");
        execute(&store, &sql, &[]).await;
    }
    let range = Filter { since: Some(time(-60)), until: Some(time(80 * 60)), ..Filter::default() };
    let counted = kept.iter().filter(|s| s.entry.outcome == Outcome::Success).count() as u64;
    let answer = store.stats(&range).await.unwrap();
    assert!(answer["by_outcome"]["success"].as_u64().unwrap() > counted + 1000, "{answer}");
}

/// Each filter's statistics are what counting `kept` answers.
async fn stats_match(store: &Store, kept: &[&Sealed], filters: &[Filter]) {
    for f in filters {
        let inside: Vec<&AuditEntry> = kept
            .iter()
            .map(|s| &s.entry)
            .filter(|e| f.since.as_ref().is_none_or(|s| &e.timestamp >= s))
            .filter(|e| f.until.as_ref().is_none_or(|u| &e.timestamp <= u))
            .collect();
        let mut expected = serde_json::Map::new();
        for (group, value) in [
            ("by_action", (|e: &AuditEntry| e.action.clone()) as fn(&AuditEntry) -> String),
            ("by_resource_type", |e| e.resource_type.clone()),
            ("by_actor", |e| e.actor.clone()),
            ("by_outcome", |e| e.outcome.as_str().to_string()),
        ] {
            let mut counts = std::collections::BTreeMap::<String, u64>::new();
            for e in &inside {
                *counts.entry(value(e)).or_default() += 1;
            }
            expected.insert(group.into(), json!(counts));
        }
        expected.insert("total".into(), json!(inside.len()));
        let answer = store.stats(f).await.unwrap();
        assert_eq!(answer, serde_json::Value::Object(expected), "since {:?} until {:?}", f.since, f.until);
    }
}

/// SQLite: a batch written while another connection holds the write lock
/// (retention, a configuration change) waits for it and is stored. Begun
/// deferred, the batch read a snapshot first, and its upgrade to a writer
/// failed at once ("database is locked") when the other committed; a
/// RESTART checkpoint waiting for readers deadlocked it the same way.
#[tokio::test]
async fn a_batch_waits_for_the_write_lock_another_connection_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&url(&dir), false).await.unwrap();
    let Store::Sqlite(s) = &store else { unreachable!() };
    store.insert_batch(&sealed(&mut Chain::resume(None), "gw-a", 0..3)).await.unwrap();
    let mut other = s.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("INSERT INTO chain_checkpoint (instance, last_id, last_hash) VALUES ('elsewhere', '0', 'x')")
        .execute(&mut *other)
        .await
        .unwrap();
    let batch = sealed(&mut Chain::resume(None), "gw-b", 0..2);
    let writer = store.clone();
    let writing = tokio::spawn(async move { writer.insert_batch(&batch).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    other.commit().await.unwrap();
    writing.await.unwrap().expect("the batch waited for the lock and was stored");
    assert_eq!(store.list(&Filter::default(), None, 10).await.unwrap().0.len(), 5);
}

/// The state as of a moment is the resource's entry answered last by then,
/// by `timestamp`, whatever its id says: one answered later but sealed with
/// an older id (a clock stepped back, another instance), one sealed two
/// hours after its answer, and one whose only entry was sealed late.
#[tokio::test]
async fn the_state_as_of_a_moment_follows_timestamps_not_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
    let minutes = |m: u64| t0 + std::time::Duration::from_secs(m * 60);
    let stamp = |m: u64| auditgate::entry::format_time(minutes(m).into());
    // (instance, answered at, sealed at, resource) in minutes after t0.
    let written = [
        ("gw-a", 0, 0, "1"),
        ("gw-a", 10, 10, "1"),
        ("gw-a", 180, 180, "1"),
        ("gw-a", 240, 360, "1"),
        ("gw-b", 20, 5, "1"),
        ("gw-b", 30, 150, "2"),
    ];
    let mut chains = [Chain::resume(None), Chain::resume(None)];
    let mut ids = Vec::new();
    for (instance, answered, sealed_at, resource) in written {
        let mut e = entry(instance, 1);
        (e.timestamp, e.resource_id) = (stamp(answered), Some(resource.into()));
        let chain = &mut chains[usize::from(instance == "gw-b")];
        let sealed = chain.seal_at(e, minutes(sealed_at));
        ids.push(sealed.entry.id.clone());
        store.insert_batch(&[sealed]).await.unwrap();
    }
    let state = |resource: &'static str, at: u64| {
        let store = store.clone();
        async move { store.state_at("user", resource, &stamp(at)).await.unwrap().map(|e| e.id) }
    };
    assert_eq!(state("1", 25).await.as_ref(), Some(&ids[4]), "answered at 20, its id from 5");
    assert_eq!(state("1", 15).await.as_ref(), Some(&ids[1]));
    assert_eq!(state("1", 120).await.as_ref(), Some(&ids[4]));
    assert_eq!(state("1", 200).await.as_ref(), Some(&ids[2]));
    assert_eq!(state("1", 241).await.as_ref(), Some(&ids[3]), "answered at 240, sealed two hours later");
    assert_eq!(state("2", 31).await.as_ref(), Some(&ids[5]), "its only entry sealed two hours late");
    assert_eq!(state("2", 29).await, None);
    assert_eq!(state("1", 0).await.as_ref(), Some(&ids[0]));
}

/// A page up to a moment holds every entry answered by then, also those
/// sealed over an hour later (a spool replayed after an outage), whose ids
/// lie past where a walk bounded by `until` begins; in id order, across
/// pages; and retention takes them away with the rest.
#[tokio::test]
async fn a_page_up_to_a_moment_holds_the_entries_sealed_late() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
    let minutes = |m: u64| t0 + std::time::Duration::from_secs(m * 60);
    let stamp = |m: u64| auditgate::entry::format_time(minutes(m).into());
    // (answered at, sealed at) in minutes after t0; C and F sealed late.
    let written = [(0, 0), (60, 60), (70, 300), (200, 200), (400, 400), (80, 500)];
    let mut chain = Chain::resume(None);
    let mut ids = Vec::new();
    for (n, (answered, sealed_at)) in written.into_iter().enumerate() {
        let mut e = entry("gw-a", n);
        e.timestamp = stamp(answered);
        let sealed = chain.seal_at(e, minutes(sealed_at));
        ids.push(sealed.entry.id.clone());
        store.insert_batch(&[sealed]).await.unwrap();
    }
    let (a, b, c, d, e, f) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);
    let page = |since: Option<u64>, until: u64, cursor: Option<String>, limit: u32| {
        let store = store.clone();
        let filter = Filter { since: since.map(stamp), until: Some(stamp(until)), ..Filter::default() };
        async move {
            let (entries, next) = store.list(&filter, cursor.as_deref(), limit).await.unwrap();
            (entries.into_iter().map(|e| e.id).collect::<Vec<_>>(), next)
        }
    };
    assert_eq!(page(None, 100, None, 10).await.0, [f, c, b, a].map(String::clone));
    assert_eq!(page(Some(50), 100, None, 10).await.0, [f, c, b].map(String::clone));
    assert_eq!(page(Some(75), 100, None, 10).await.0, [f].map(String::clone));
    assert_eq!(page(None, 65, None, 10).await.0, [b, a].map(String::clone), "answered after the moment");
    // D, sealed after C, has the higher id (a chain's ids only grow).
    assert_eq!(page(None, 250, None, 10).await.0, [f, d, c, b, a].map(String::clone));
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let (ids, next) = page(None, 100, cursor, 1).await;
        walked.extend(ids);
        let Some(next) = next else { break };
        cursor = Some(next);
    }
    assert_eq!(walked, [f, c, b, a].map(String::clone), "page by page");
    if matches!(store, Store::Postgres(_)) {
        // The migration's backfill finds the late entries the writers noted:
        // C, F, and D (its id follows C's).
        assert_eq!(execute(&store, "DELETE FROM audit_late", &[]).await, 3);
        let migration = include_str!("../../migrations/postgres/0006_audit_late.sql");
        let backfill = migration.split(';').find(|s| s.contains("INSERT INTO")).unwrap();
        assert_eq!(execute(&store, backfill, &[]).await, 3);
        assert_eq!(page(None, 100, None, 10).await.0, [f, c, b, a].map(String::clone));
    }
    // Retention deletes by id: first those before C, then before E.
    store.delete_before(c, 10).await.unwrap();
    assert_eq!(page(None, 100, None, 10).await.0, [f, c].map(String::clone));
    store.delete_before(e, 10).await.unwrap();
    assert_eq!(page(None, 100, None, 10).await.0, [f].map(String::clone));
    if matches!(store, Store::Postgres(_)) {
        assert_eq!(execute(&store, "DELETE FROM audit_late WHERE id = $1", &[c]).await, 0, "C left behind");
        assert_eq!(execute(&store, "DELETE FROM audit_late WHERE id = $1", &[f]).await, 1, "F not kept");
    }
}

/// A closed store (shutdown) answers nothing more, and on PostgreSQL
/// leaves no session of its own on the server, the resource locks' pool's
/// included.
#[tokio::test]
async fn a_closed_store_gives_its_connections_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = test_database(dir.path()).await;
    let store = Store::open(&url, false).await.unwrap();
    store.insert_batch(&sealed(&mut Chain::resume(None), "gw", 0..2)).await.unwrap();
    drop(store.lock_resource("user", "1").await.unwrap());
    assert!(store.ping().await && !store.is_closed());
    store.close().await;
    assert!(store.is_closed());
    assert!(!store.ping().await, "a closed store still answers");
    if matches!(store, Store::Postgres(_)) {
        let mut other = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
        let sessions =
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
        let mut left = -1;
        for _ in 0..50 {
            left = sqlx::query_scalar::<_, i64>(sessions).fetch_one(&mut other).await.unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(left, 0, "sessions of the closed store are left on the server");
    }
}

/// Each configuration write moves the version by exactly one (a policy
/// reloads when it moved, and only then) and stamps the times itself:
/// whatever times or id the caller's copy holds, an insert is created and
/// updated now, and an update keeps the stored creation time.
#[tokio::test]
async fn each_configuration_write_moves_the_version_once_and_stamps_its_times() {
    use auditgate::policy::{AuditConfiguration, Policy};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let policy = Policy::empty();
    policy.reload(&store).await.unwrap();
    assert!(!policy.refresh(&store).await.unwrap(), "a policy reloaded with nothing changed");
    let start = store.configuration_version().await.unwrap();
    assert_eq!(store.configurations().await.unwrap().0, start);
    let claimed = "1999-01-01T00:00:00.000000Z";
    let mut config = AuditConfiguration::new();
    config.name = "users".into();
    (config.id, config.created_at, config.updated_at) = (77, claimed.into(), claimed.into());

    let created = store.insert_configuration(&config).await.unwrap();
    assert_eq!(store.configuration_version().await.unwrap(), start + 1);
    assert!(created.created_at.as_str() > "2026" && created.created_at == created.updated_at, "{created:?}");
    assert_eq!(store.configuration(created.id).await.unwrap().as_ref(), Some(&created));
    assert!(policy.refresh(&store).await.unwrap() && !policy.refresh(&store).await.unwrap());

    let mut changed = created.clone();
    (changed.priority, changed.created_at, changed.updated_at) = (3, claimed.into(), claimed.into());
    let updated = store.update_configuration(&changed).await.unwrap().unwrap();
    assert_eq!(store.configuration_version().await.unwrap(), start + 2);
    assert_eq!((updated.priority, &updated.created_at), (3, &created.created_at));
    assert!(updated.updated_at >= created.updated_at, "{updated:?}");
    assert_eq!(store.configuration(created.id).await.unwrap().as_ref(), Some(&updated));

    assert_eq!(store.delete_configuration(created.id).await.unwrap(), Some(updated));
    assert_eq!(store.configuration_version().await.unwrap(), start + 3);
    assert_eq!(store.configurations().await.unwrap(), (start + 3, Vec::new()));
}

/// A read bounded by `ids_upto` (the event stream's windows) holds no
/// entry past it, on either store.
#[tokio::test]
async fn a_read_bounded_by_an_id_holds_nothing_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let entries = sealed(&mut Chain::resume(None), "gw-1", 0..20);
    store.insert_batch(&entries).await.unwrap();
    let upto = entries[11].entry.id.clone();
    let bounded = Filter { ids_upto: Some(upto.clone()), ..Filter::default() };
    let (read, more) = store.newer(&bounded, Some(&entries[4].entry.id), 100).await.unwrap();
    let ids: Vec<&str> = read.iter().map(|e| e.id.as_str()).collect();
    let expected: Vec<&str> = entries[5..12].iter().map(|s| s.entry.id.as_str()).collect();
    assert_eq!((ids, more), (expected, false));
    let (newest_first, _) = store.list(&bounded, None, 3).await.unwrap();
    assert_eq!(newest_first[0].id, upto);
    store.close().await;
}
