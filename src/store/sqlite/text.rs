//! The `q` search's trigram index on SQLite (migration 0007): filling it
//! after entries are committed, reading a search's candidates from it, and
//! keeping it in step with retention.
//!
//! The index only narrows: every candidate is still checked with the LIKE
//! the search always used, so a search answers exactly what a scan would.
//! That holds because the trigram tokenizer folds case at least as widely
//! as LIKE does (ASCII), so an entry LIKE matches holds every trigram of the
//! search text.

use sqlx::SqlitePool;

use crate::store::StoreError;

/// A search with more candidates than this reads the entries newest first
/// instead: its text is common enough that a page of matches is found
/// sooner that way than by checking every candidate.
pub(super) const MAX_CANDIDATES: usize = 10_000;

/// The entries a search has to check: those the index names, and every
/// entry not indexed yet (`seq` past `upto`).
#[derive(Debug, Clone)]
pub(super) struct Candidates {
    /// The indexed candidates' `seq`s, as a JSON array (bound once, read
    /// with `json_each`).
    pub seqs: String,
    pub upto: i64,
}

/// How many of a search's trigrams its candidates must hold: the rarest.
/// Every trigram more would cut the candidates little and cost a walk of
/// its entries (a common trigram names millions: requiring all 17 of an
/// email address read 230 ms at 10M entries, its three rarest 2 ms).
const RAREST: usize = 3;

/// At most this many of a long text's trigrams are counted (spread over
/// it), so a long search costs a bounded number of counts.
const COUNTED: usize = 24;

/// Each of `text`'s trigrams once, quoted for an FTS5 query. Empty when it
/// has none (under three characters): no index can narrow such a search.
pub(super) fn trigrams(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut seen = std::collections::HashSet::new();
    chars
        .windows(3)
        // A NUL would end the query string early; leaving a trigram out
        // only widens the candidates.
        .filter(|w| !w.contains(&'\0'))
        .map(|w| w.iter().collect::<String>())
        .filter(|t| seen.insert(t.to_lowercase()))
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect()
}

/// At most `n` of `terms`, spread evenly from the first to the last.
fn spread(terms: &[String], n: usize) -> impl Iterator<Item = &String> {
    let len = terms.len();
    (0..len.min(n)).map(move |i| &terms[if len <= n { i } else { i * (len - 1) / (n - 1) }])
}

/// The candidates for searching `text`, or `None` when the index cannot
/// narrow it: too short, or more than `max` (`MAX_CANDIDATES`).
///
/// Each trigram's entries are counted up to five times `max` (a count
/// stops there: past it the trigram is common), and the candidates are the
/// entries holding the `RAREST` rarest of those not common. Every entry
/// matching holds them, so this only widens what all the text's trigrams
/// would name. When every trigram is common, the text is not narrowed:
/// naming its candidates could read millions of entries.
///
/// The watermark is read before the index: a concurrent indexing step only
/// adds to the index, so every entry up to the watermark read is in the
/// index read after it.
pub(super) async fn candidates(pool: &SqlitePool, text: &str, max: usize) -> Result<Option<Candidates>, StoreError> {
    let terms = trigrams(text);
    if terms.is_empty() {
        return Ok(None);
    }
    let mut conn = pool.acquire().await?;
    let upto: i64 = sqlx::query_scalar("SELECT upto FROM audit_text_upto").fetch_one(&mut *conn).await?;
    let common = 5 * max as i64;
    let mut counted = Vec::new();
    for term in spread(&terms, COUNTED) {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM audit_text WHERE audit_text MATCH ? LIMIT ?)")
                .bind(term)
                .bind(common + 1)
                .fetch_one(&mut *conn)
                .await?;
        counted.push((n, term));
    }
    counted.sort_by_key(|(n, _)| *n);
    if counted[0].0 > common {
        return Ok(None);
    }
    let rare = counted.iter().take(RAREST).filter(|(n, _)| *n <= common);
    let query = rare.map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(" AND ");
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT rowid FROM audit_text WHERE audit_text MATCH ? LIMIT ?")
        .bind(query)
        .bind(max as i64 + 1)
        .fetch_all(&mut *conn)
        .await?;
    if seqs.len() > max {
        return Ok(None);
    }
    let seqs = serde_json::to_string(&seqs).expect("integers serialise");
    Ok(Some(Candidates { seqs, upto }))
}

/// Indexes up to `limit` entries past the watermark, oldest first, and
/// moves it; answers how many. One short write transaction, so the writer
/// waits for one step at most.
pub(super) async fn index(store: &super::SqliteStore, limit: u32) -> Result<usize, StoreError> {
    let mut tx = store.write_transaction().await?;
    let upto: i64 = sqlx::query_scalar("SELECT upto FROM audit_text_upto").fetch_one(&mut *tx).await?;
    let (n, last): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MAX(seq) FROM (SELECT seq FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?)")
            .bind(upto)
            .bind(limit)
            .fetch_one(&mut *tx)
            .await?;
    let Some(last) = last else { return Ok(0) };
    sqlx::query(
        "INSERT INTO audit_text (rowid, path, changes) \
         SELECT seq, json_extract(entry, '$.path'), json_extract(entry, '$.changes') \
         FROM audit_log WHERE seq > ? AND seq <= ?",
    )
    .bind(upto)
    .bind(last)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE audit_text_upto SET upto = ?").bind(last).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(n as usize)
}

/// An indexed entry whose personal content was erased (in the caller's
/// transaction): indexed again with its path alone, so no search finds
/// it by what it held.
pub(super) async fn reindex(tx: &mut sqlx::SqliteConnection, seq: i64, path: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM audit_text WHERE rowid = ?").bind(seq).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO audit_text (rowid, path, changes) VALUES (?, ?, NULL)")
        .bind(seq)
        .bind(path)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Before retention deletes the entries up to `last_id` (in the caller's
/// transaction): their index rows go too, and the watermark comes back to
/// the newest entry that stays. Emptied, the table hands out `seq`s again
/// from 1, and they must not count as indexed.
pub(super) async fn forget(tx: &mut sqlx::SqliteConnection, last_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM audit_text WHERE rowid IN \
         (SELECT seq FROM audit_log WHERE id <= ? AND seq <= (SELECT upto FROM audit_text_upto))",
    )
    .bind(last_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE audit_text_upto SET upto = MIN(upto, \
         COALESCE((SELECT MAX(seq) FROM audit_log WHERE id > ?), 0))",
    )
    .bind(last_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_needs_every_trigram_once_quoted() {
        let joined = |text: &str| trigrams(text).join(" AND ");
        assert_eq!(joined("abcd"), r#""abc" AND "bcd""#);
        // Repeats (also in another case: the index folds case) appear once.
        assert_eq!(joined("abcabc"), r#""abc" AND "bca" AND "cab""#);
        assert_eq!(joined("aaaAAA"), r#""aaa""#);
        // Quotes are doubled; operators and columns are just text.
        assert_eq!(joined(r#"a"b"#), r#""a""b""#);
        assert!(trigrams("OR").is_empty());
        assert!(trigrams("ab").is_empty());
        // Characters, not bytes.
        assert_eq!(joined("żółw"), r#""żół" AND "ółw""#);
        assert_eq!(joined("a\0bcd"), r#""bcd""#);
    }

    #[test]
    fn a_long_text_counts_trigrams_spread_from_its_first_to_its_last() {
        let terms: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let picked = |n| spread(&terms, n).map(String::as_str).collect::<Vec<_>>().join(",");
        assert_eq!(picked(4), "0,3,6,9");
        assert_eq!(picked(2), "0,9");
        assert_eq!(picked(10), "0,1,2,3,4,5,6,7,8,9");
        assert_eq!(picked(24), "0,1,2,3,4,5,6,7,8,9");
    }

    #[tokio::test]
    async fn a_search_with_more_candidates_than_the_limit_is_not_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            super::super::SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let pool = store.pool();
        for (i, text) in ["abcd", "xabcx", "abc", "zzz"].iter().enumerate() {
            sqlx::query("INSERT INTO audit_text (rowid, path, changes) VALUES (?, ?, '')")
                .bind(i as i64 + 1)
                .bind(text)
                .execute(pool)
                .await
                .unwrap();
        }
        sqlx::query("UPDATE audit_text_upto SET upto = 4").execute(pool).await.unwrap();
        let found = candidates(pool, "ABC", 3).await.unwrap().expect("three candidates");
        assert_eq!((found.seqs.as_str(), found.upto), ("[1,2,3]", 4));
        assert!(candidates(pool, "abc", 2).await.unwrap().is_none());
        assert!(candidates(pool, "ab", 10).await.unwrap().is_none());
        assert_eq!(candidates(pool, "zzz", 1).await.unwrap().unwrap().seqs, "[4]");
    }

    /// A text whose trigrams are common but for a few is narrowed to the
    /// entries holding its rarest three; one whose every trigram is common
    /// is not narrowed, whatever the whole text would name.
    #[tokio::test]
    async fn a_search_is_narrowed_by_its_rarest_trigrams() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            super::super::SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let pool = store.pool();
        // 60 of "common", 4 of "commonxyzw", 3 of "xyzw", 2 of "commonxy":
        // "onx" and "nxy" are in 6 entries, "xyz" and "yzw" in 7.
        let texts = [
            ("/common", 60),
            ("/commonxyzw", 4),
            ("/xyzw", 3),
            ("/commonxy", 2),
            ("/pqrs", 10),
            ("/qrst", 10),
            ("/pqrst", 3),
            ("/abcd", 25),
            ("/bcde", 25),
            ("/abcde", 2),
            ("/ghiz", 17),
            ("/zhij", 17),
            ("/ijkz", 17),
            ("/ghijk", 3),
        ];
        let mut seq = 0;
        for (text, n) in texts {
            for _ in 0..n {
                seq += 1;
                sqlx::query("INSERT INTO audit_text (rowid, path, changes) VALUES (?, ?, '')")
                    .bind(seq)
                    .bind(text)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
        // The limit 10 counts to 50: "com", "omm", "mmo", "mon" are common.
        let found = candidates(pool, "commonxyzw", 10).await.unwrap().expect("narrowed by its rare trigrams");
        assert_eq!(found.seqs, "[61,62,63,64]");
        // "xyz" and "yzw" (7 each) hold the "/xyzw" entries too.
        let found = candidates(pool, "xyzw", 10).await.unwrap().expect("narrowed");
        assert_eq!(found.seqs, "[61,62,63,64,65,66,67]");
        assert!(candidates(pool, "common", 10).await.unwrap().is_none(), "every trigram common");
        // Rare enough to count (7 ≤ 20), too many to name (> 4).
        assert!(candidates(pool, "xyzw", 4).await.unwrap().is_none());
        assert_eq!(candidates(pool, "qqqq", 10).await.unwrap().unwrap().seqs, "[]");
        // "pqr" and "rst" in 13 entries each, "qrs" in 23: with the limit 4
        // the first two count as rare (up to 20), and name the 3 "/pqrst".
        assert_eq!(candidates(pool, "pqrst", 4).await.unwrap().expect("narrowed").seqs, "[90,91,92]");
        // Every trigram of "abcde" is in over 20 entries: not narrowed,
        // though together they name only two.
        assert!(candidates(pool, "abcde", 4).await.unwrap().is_none());
        // Each of "ghijk"'s in exactly 20: still rare.
        assert_eq!(candidates(pool, "ghijk", 4).await.unwrap().expect("narrowed").seqs, "[196,197,198]");
    }
}
