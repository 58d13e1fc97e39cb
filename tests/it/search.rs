//! The `q` search on a real store: the same answers whether the trigram
//! index holds none, some or all of the entries (on PostgreSQL, of each of
//! two instances whose entries interleave); retention; the recorder filling
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
/// word, a quote, `%` and `_`; the odd ones of `chains[1]`'s instance when
/// there are two.
fn searched(chains: &mut [(&str, Chain)], n: usize) -> Vec<Sealed> {
    (0..n)
        .map(|n| {
            let (instance, chain) = &mut chains[n % chains.len()];
            let mut e = entry(instance, n);
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
        let (page, next) = store.list(&q(text), cursor.as_deref(), limit).await.unwrap();
        ids.extend(page.iter().map(|e| e.id.clone()));
        if next.is_none() {
            return ids;
        }
        cursor = next;
    }
}

async fn index_all(store: &Store) {
    while store.index_text(1000).await.unwrap() > 0 {}
}

fn one_chain() -> Vec<(&'static str, Chain)> {
    vec![("gw", Chain::resume(None))]
}

#[tokio::test]
async fn a_search_finds_the_same_entries_indexed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    // Two instances, their entries' ids interleaved, each chain written as
    // a batch of its own.
    let entries = searched(&mut [("gw", Chain::resume(None)), ("gx", Chain::resume(None))], 30);
    let (gw, gx): (Vec<Sealed>, Vec<Sealed>) = entries.iter().cloned().partition(|s| s.entry.instance == "gw");
    store.insert_batch(&gw).await.unwrap();
    store.insert_batch(&gx).await.unwrap();
    let mut newest_first: Vec<String> = entries.iter().map(|s| s.entry.id.clone()).collect();
    newest_first.sort_by(|a, b| b.cmp(a));
    let mut answers = Vec::new();
    // Nothing indexed; 7 of 30 (PostgreSQL: of the first instance; the rest
    // read past the watermarks); 10 more (its last 8, the other's first 2);
    // all.
    for step in [0, 7, 10, 1000] {
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
    assert_eq!(answers[0], answers[3]);
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
    store.insert_batch(&searched(&mut one_chain(), 5)).await.unwrap();
    index_all(&store).await;
    let past = ulid::Ulid::from_parts(chrono::Utc::now().timestamp_millis() as u64 + 1, 0).to_string();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(store.delete_before(&past, 100).await.unwrap().0, 5);
    assert!(found(&store, "ail", 50).await.is_empty());
    // Their index rows went with them (else the index only grows).
    assert_eq!(indexed_with(&store, "ail").await, 0);
    // SQLite hands the emptied table's row numbers out again: the index must
    // not count them as indexed, nor refuse to index them.
    let again = searched(&mut one_chain(), 3);
    store.insert_batch(&again).await.unwrap();
    assert_eq!(found(&store, "ail", 50).await.len(), 3, "before indexing");
    index_all(&store).await;
    assert_eq!(found(&store, "ail", 50).await.len(), 3, "after indexing");
    assert_eq!(found(&store, "mail-1@", 50).await.len(), 1);
}

/// How many index rows hold the trigram `trigram`.
async fn indexed_with(store: &Store, trigram: &str) -> i64 {
    match store {
        Store::Sqlite(s) => sqlx::query_scalar("SELECT COUNT(*) FROM audit_text WHERE audit_text MATCH ?")
            .bind(format!("\"{trigram}\""))
            .fetch_one(s.pool())
            .await
            .unwrap(),
        Store::Postgres(s) => sqlx::query_scalar("SELECT COUNT(*) FROM audit_text WHERE text ILIKE $1")
            .bind(format!("%{trigram}%"))
            .fetch_one(s.pool())
            .await
            .unwrap(),
    }
}

/// Whether every entry stored is indexed: the watermark at the newest.
async fn all_indexed(store: &Store) -> bool {
    match store {
        Store::Sqlite(s) => sqlx::query_scalar("SELECT upto = (SELECT MAX(seq) FROM audit_log) FROM audit_text_upto")
            .fetch_one(s.pool())
            .await
            .unwrap(),
        Store::Postgres(s) => sqlx::query_scalar(
            "SELECT bool_and(u.upto IS NOT NULL AND u.upto = h.last_id) \
             FROM chain_head h LEFT JOIN audit_text_upto u USING (instance)",
        )
        .fetch_one(s.pool())
        .await
        .unwrap(),
    }
}

/// The recorder indexes what it wrote once it has nothing else to do.
#[tokio::test]
async fn the_recorder_indexes_entries_when_idle() {
    let app = spawn_app().await;
    for i in 0..3 {
        as_user(&app, "alice", http::Method::POST, "/api/items/", Some(&json!({"name": format!("needle-{i}")}))).await;
    }
    wait_entries(&app.store, 3).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !all_indexed(&app.store).await {
        assert!(std::time::Instant::now() < deadline, "not indexed after 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(indexed_with(&app.store, "edl").await, 3);
    // Once complete, an idle recorder leaves the index alone.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let steps = metric(&app, "auditgate_search_index_steps_total").await;
    assert!(steps > 0);
    assert!(metric(&app, "auditgate_search_indexed_total").await >= 3);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(metric(&app, "auditgate_search_index_steps_total").await, steps);
}

/// On PostgreSQL, instances sharing the database index one step at a time:
/// while another holds the step's lock, a step indexes nothing and says so.
#[tokio::test]
async fn one_instance_indexes_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let Store::Postgres(pg) = &store else { return };
    store.insert_batch(&searched(&mut one_chain(), 5)).await.unwrap();
    let mut other = pg.pool().acquire().await.unwrap();
    // The key of `TEXT_LOCK` in store/postgres/text.rs.
    sqlx::query("SELECT pg_advisory_lock($1)").bind(0x6175_6469_7467_0002_i64).execute(&mut *other).await.unwrap();
    assert_eq!(store.index_text(100).await.unwrap(), 0);
    assert_eq!(indexed_with(&store, "ail").await, 0);
    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *other).await.unwrap();
    assert_eq!(store.index_text(100).await.unwrap(), 5);
    assert_eq!(indexed_with(&store, "ail").await, 5);
    assert!(all_indexed(&store).await);
    assert_eq!(store.index_text(100).await.unwrap(), 0);
}

/// A search whose text is in more entries than a page of candidates can
/// hold (3,003 of 9,009, too sparse for the newest entries to fill a page
/// of 1,000) finds every one through the index, or through the walk, never
/// a truncated list of candidates.
#[tokio::test]
async fn a_text_in_more_entries_than_the_candidates_hold_is_found_in_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let mut chain = Chain::resume(None);
    for start in (0..9_009).step_by(1_001) {
        let batch: Vec<Sealed> = (start..start + 1_001)
            .map(|n| {
                let mut e = entry("gw", n);
                let word = if n % 3 == 0 { "plentiful" } else { "other" };
                e.changes = vec![Change { path: "/w".into(), old: json!(null), new: json!(word) }];
                chain.seal(e)
            })
            .collect();
        store.insert_batch(&batch).await.unwrap();
    }
    index_all(&store).await;
    let ids = found(&store, "plentiful", 1000).await;
    assert_eq!(ids.len(), 3_003);
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 3_003);
}

/// A search whose matches among the newest entries exactly fill a page,
/// with more matches older than those (on PostgreSQL the newest 2,000 are
/// read first): the page still names the next, and the older matches are
/// found after it.
#[tokio::test]
async fn a_page_the_newest_entries_exactly_fill_names_the_older_matches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let mut chain = Chain::resume(None);
    let rare = |n: usize| !(3..2_495).contains(&n);
    let batch: Vec<Sealed> = (0..2_500)
        .map(|n| {
            let mut e = entry("gw", n);
            let word = if rare(n) { "quixotic" } else { "other" };
            e.changes = vec![Change { path: "/w".into(), old: json!(null), new: json!(word) }];
            chain.seal(e)
        })
        .collect();
    let mut expected: Vec<String> =
        batch.iter().enumerate().filter(|(n, _)| rare(*n)).map(|(_, s)| s.entry.id.clone()).collect();
    expected.reverse();
    store.insert_batch(&batch).await.unwrap();
    index_all(&store).await;
    let (page, next) = store.list(&q("quixotic"), None, 5).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), expected[..5]);
    assert_eq!(next.as_ref(), Some(&expected[4]), "three older matches follow");
    assert_eq!(found(&store, "quixotic", 5).await, expected);
}

/// A search no index narrows (two characters) reads a window of entries a
/// page: a page may hold fewer entries than asked for, or none, and still
/// name the next; following the cursors finds every match once, newest
/// first. 60,001 entries: more than one window on either store.
#[tokio::test]
async fn a_search_no_index_narrows_reads_a_window_a_page_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let mut chain = Chain::resume(None);
    let marked = [0, 5, 6, 30_000, 59_990];
    let mut expected = Vec::new();
    for start in (0..60_001).step_by(1_000) {
        let batch: Vec<Sealed> = (start..(start + 1_000).min(60_001))
            .map(|n| {
                let mut e = entry("gw", n);
                // "alpha" and "omega" are each in one entry of 15 or 16,
                // both together in one of 240.
                let word = match (marked.contains(&n), n % 15 == 0, n % 16 == 1) {
                    (true, _, _) => "zq xkcdw",
                    (false, true, true) => "alpha omega",
                    (false, true, false) => "alpha",
                    (false, false, true) => "omega",
                    _ => "other",
                };
                e.changes = vec![Change { path: "/w".into(), old: json!(null), new: json!(word) }];
                chain.seal(e)
            })
            .collect();
        expected.extend(batch.iter().filter(|s| s.entry.changes[0].new == "zq xkcdw").map(|s| s.entry.id.clone()));
        store.insert_batch(&batch).await.unwrap();
    }
    index_all(&store).await;
    expected.reverse();
    let (mut ids, mut cursor, mut short_with_next) = (Vec::new(), None::<String>, 0);
    loop {
        let (page, next) = store.list(&q("zq"), cursor.as_deref(), 3).await.unwrap();
        ids.extend(page.iter().map(|e| e.id.clone()));
        let Some(next) = next else { break };
        if page.len() < 3 {
            short_with_next += 1;
        }
        cursor = Some(next);
    }
    assert_eq!(ids, expected);
    assert!(short_with_next >= 1, "no page stopped at its window");
    // A full page still ends at its last entry, and a search the index
    // narrows is not windowed.
    let (page, next) = store.list(&q("other"), None, 3).await.unwrap();
    assert_eq!(next.as_ref(), Some(&page[2].id));
    let (page, next) = store.list(&q("zq"), None, 100).await.unwrap();
    assert!(page.len() < marked.len() && next.is_some(), "the first window does not reach the oldest matches");
    assert_eq!(page[0].id, expected[0]);
    // Three letters in a row the index names: every match on one page,
    // the oldest 60,000 entries back.
    let (page, next) = store.list(&q("XKCDW"), None, 100).await.unwrap();
    assert_eq!(page.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), expected);
    assert_eq!(next, None);
    // Each of its trigrams in one entry of 16 (more than a search walks
    // past), but the text in 250 entries: the three rarest name them, and
    // they too come on one page.
    if matches!(store, Store::Postgres(_)) {
        // The planner's count of the index (autovacuum's ANALYZE would
        // make it in time): how many entries the sample stands for.
        execute(&store, "ANALYZE audit_text", &[]).await;
    }
    let (page, next) = store.list(&q("alpha omega"), None, 300).await.unwrap();
    assert_eq!((page.len(), next), (250, None));
}

/// An index step takes at most its limit, however many instances' entries
/// wait, and steps past entries retention deleted before they were
/// indexed; what is written after is indexed, and found, next.
#[tokio::test]
async fn an_index_step_takes_at_most_its_limit_and_passes_deleted_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let (mut a, mut b) = (Chain::resume(None), Chain::resume(None));
    store.insert_batch(&crate::store::sealed(&mut a, "gw-a", 0..6)).await.unwrap();
    store.insert_batch(&crate::store::sealed(&mut b, "gw-b", 0..4)).await.unwrap();
    let mut steps = Vec::new();
    loop {
        match store.index_text(3).await.unwrap() {
            0 => break,
            n => steps.push(n),
        }
    }
    assert_eq!(steps, [3, 3, 3, 1]);
    // Written and deleted before the index reached them.
    store.insert_batch(&crate::store::sealed(&mut a, "gw-a", 6..9)).await.unwrap();
    assert_eq!(store.delete_before("2100-01-01T00:00:00Z", 1_000).await.unwrap().0, 13);
    assert_eq!(store.index_text(100).await.unwrap(), 0);
    let later = crate::store::sealed(&mut a, "gw-a", 20..22);
    store.insert_batch(&later).await.unwrap();
    assert_eq!(store.index_text(100).await.unwrap(), 2);
    assert_eq!(store.index_text(100).await.unwrap(), 0);
    let mut ids = found(&store, "users/2", 10).await;
    ids.sort();
    assert_eq!(ids, later.iter().map(|s| s.entry.id.clone()).collect::<Vec<_>>());
}
