//! The `q` search on a real store: the same answers whether SQLite's
//! trigram index holds none, some or all of the entries (PostgreSQL has no
//! such index, and must answer the same); retention; the recorder filling
//! the index when it has nothing to write.

use auditgate::diff::Change;
use auditgate::entry::{Chain, Sealed};
use auditgate::store::{Filter, Store};
use serde_json::json;

use crate::audit::wait_entries;
use crate::durability::metric;
use crate::helpers::*;
use crate::store::entry;

/// Entries whose changes hold a mixed-case address, and some a non-ASCII
/// word, a quote, `%` and `_`.
fn searched(chain: &mut Chain, n: usize) -> Vec<Sealed> {
    (0..n)
        .map(|n| {
            let mut e = entry("gw", n);
            e.changes =
                vec![Change { path: "/email".into(), old: json!(null), new: json!(format!("Mail-{n}@Example.com")) }];
            if n.is_multiple_of(3) {
                e.changes.push(Change { path: "/name".into(), old: json!(null), new: json!("ŻÓŁW") });
            }
            if n.is_multiple_of(5) {
                e.changes.push(Change { path: "/note".into(), old: json!(null), new: json!("say \"hi\" 100% a_b") });
            }
            chain.seal(e)
        })
        .collect()
}

/// Searches and how many of `searched(30)` each finds.
const SEARCHES: [(&str, usize); 14] = [
    ("mail-7@example", 1),
    ("MAIL-1", 11),
    ("ail", 30),
    ("ŻÓŁW", 10),
    (r#"\"hi\""#, 6),
    ("100%", 6),
    ("0% a", 6),
    ("a_b", 6),
    ("a-b", 0),
    ("/email", 30),
    ("users/2", 11),
    ("Ex", 30),
    ("xy", 0),
    ("nowhere", 0),
];

fn q(text: &str) -> Filter {
    Filter { q: Some(text.into()), ..Filter::default() }
}

/// Every entry `text` finds, walking pages of `limit`.
async fn found(store: &Store, text: &str, limit: u32) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let (page, more) = store.list(&q(text), cursor.as_deref(), limit).await.unwrap();
        ids.extend(page.iter().map(|e| e.id.clone()));
        if !more {
            return ids;
        }
        cursor = ids.last().cloned();
    }
}

async fn index_all(store: &Store) {
    while store.index_text(1000).await.unwrap() > 0 {}
}

#[tokio::test]
async fn a_search_finds_the_same_entries_indexed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let entries = searched(&mut Chain::resume(None), 30);
    store.insert_batch(&entries).await.unwrap();
    let newest_first: Vec<String> = entries.iter().rev().map(|s| s.entry.id.clone()).collect();
    let mut answers = Vec::new();
    // Nothing indexed, 7 of 30 (the rest read past the watermark), all.
    for step in [0, 7, 1000] {
        if step > 0 {
            store.index_text(step).await.unwrap();
        }
        let mut answer = Vec::new();
        for (text, expected) in SEARCHES {
            let ids = found(&store, text, 4).await;
            assert_eq!(ids.len(), expected, "{text:?} after indexing {step}: {ids:?}");
            // Newest first, each once.
            let order: Vec<&String> = newest_first.iter().filter(|id| ids.contains(id)).collect();
            assert_eq!(ids.iter().collect::<Vec<_>>(), order, "{text:?}");
            answer.push(ids);
        }
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    // Filters combine with a search on either path.
    let filter = Filter { actor: Some("actor-1".into()), ..q("Example") };
    let (page, _) = store.list(&filter, None, 50).await.unwrap();
    assert_eq!(page.len(), 8, "n = 1, 5, 9, … 29");
    assert!(page.iter().all(|e| e.actor == "actor-1"));
}

#[tokio::test]
async fn entries_written_after_retention_emptied_the_trail_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    store.insert_batch(&searched(&mut Chain::resume(None), 5)).await.unwrap();
    index_all(&store).await;
    let past = ulid::Ulid::from_parts(chrono::Utc::now().timestamp_millis() as u64 + 1, 0).to_string();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(store.delete_before(&past, 100).await.unwrap().0, 5);
    assert!(found(&store, "ail", 50).await.is_empty());
    if let Store::Sqlite(s) = &store {
        // Their index rows went with them (else the index only grows).
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_text WHERE audit_text MATCH '\"ail\"'")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
    // SQLite hands the emptied table's row numbers out again: the index must
    // not count them as indexed, nor refuse to index them.
    let again = searched(&mut Chain::resume(None), 3);
    store.insert_batch(&again).await.unwrap();
    assert_eq!(found(&store, "ail", 50).await.len(), 3, "before indexing");
    index_all(&store).await;
    assert_eq!(found(&store, "ail", 50).await.len(), 3, "after indexing");
    assert_eq!(found(&store, "mail-1@", 50).await.len(), 1);
}

/// The recorder indexes what it wrote once it has nothing else to do.
#[tokio::test]
async fn the_recorder_indexes_entries_when_idle() {
    if test_postgres().is_some() {
        return; // no index there
    }
    let app = spawn_app().await;
    for i in 0..3 {
        as_user(&app, "alice", http::Method::POST, "/api/items/", Some(&json!({"name": format!("needle-{i}")}))).await;
    }
    wait_entries(&app.store, 3).await;
    let Store::Sqlite(s) = &app.store else { unreachable!() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (upto, last): (i64, i64) =
            sqlx::query_as("SELECT upto, (SELECT MAX(seq) FROM audit_log) FROM audit_text_upto")
                .fetch_one(s.pool())
                .await
                .unwrap();
        if upto == last {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "indexed {upto} of {last}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let indexed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_text WHERE audit_text MATCH '\"edl\"'")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(indexed, 3);
    // Once complete, an idle recorder leaves the index alone.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let steps = metric(&app, "auditgate_search_index_steps_total").await;
    assert!(steps > 0);
    assert!(metric(&app, "auditgate_search_indexed_total").await >= 3);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(metric(&app, "auditgate_search_index_steps_total").await, steps);
}
