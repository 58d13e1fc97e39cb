//! The `q` search's trigram index on SQLite (migration 0007): filling it
//! after entries are committed, reading a search's candidates from it, and
//! keeping it in step with retention.
//!
//! The index only narrows: every candidate is still checked with the LIKE
//! the search always used, so a search answers exactly what a scan would.
//! That holds because the trigram tokenizer folds case at least as widely
//! as LIKE does (ASCII), so an entry LIKE matches holds every trigram of the
//! search text.

use sqlx::{Sqlite, SqlitePool};

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

/// The FTS5 query for `text`: each of its trigrams, quoted, all required.
/// `None` when it has none (under three characters): no index can narrow
/// such a search.
pub(super) fn trigrams(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut seen = std::collections::HashSet::new();
    let terms: Vec<String> = chars
        .windows(3)
        // A NUL would end the query string early; leaving a trigram out
        // only widens the candidates.
        .filter(|w| !w.contains(&'\0'))
        .map(|w| w.iter().collect::<String>())
        .filter(|t| seen.insert(t.to_lowercase()))
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The candidates for searching `text`, or `None` when the index cannot
/// narrow it (too short, or more than `max`: `MAX_CANDIDATES`).
///
/// The watermark is read before the index: a concurrent indexing step only
/// adds to the index, so every entry up to the watermark read is in the
/// index read after it.
pub(super) async fn candidates(pool: &SqlitePool, text: &str, max: usize) -> Result<Option<Candidates>, StoreError> {
    let Some(query) = trigrams(text) else { return Ok(None) };
    let upto: i64 = sqlx::query_scalar("SELECT upto FROM audit_text_upto").fetch_one(pool).await?;
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT rowid FROM audit_text WHERE audit_text MATCH ? LIMIT ?")
        .bind(query)
        .bind(max as i64 + 1)
        .fetch_all(pool)
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
pub(super) async fn index(pool: &SqlitePool, limit: u32) -> Result<usize, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
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

/// Before retention deletes the entries up to `last_id` (in the caller's
/// transaction): their index rows go too, and the watermark comes back to
/// the newest entry that stays. Emptied, the table hands out `seq`s again
/// from 1, and they must not count as indexed.
pub(super) async fn forget(tx: &mut sqlx::Transaction<'_, Sqlite>, last_id: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM audit_text WHERE rowid IN \
         (SELECT seq FROM audit_log WHERE id <= ? AND seq <= (SELECT upto FROM audit_text_upto))",
    )
    .bind(last_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE audit_text_upto SET upto = MIN(upto, \
         COALESCE((SELECT MAX(seq) FROM audit_log WHERE id > ?), 0))",
    )
    .bind(last_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_needs_every_trigram_once_quoted() {
        assert_eq!(trigrams("abcd").as_deref(), Some(r#""abc" AND "bcd""#));
        // Repeats (also in another case: the index folds case) appear once.
        assert_eq!(trigrams("abcabc").as_deref(), Some(r#""abc" AND "bca" AND "cab""#));
        assert_eq!(trigrams("aaaAAA").as_deref(), Some(r#""aaa""#));
        // Quotes are doubled; operators and columns are just text.
        assert_eq!(trigrams(r#"a"b"#).as_deref(), Some(r#""a""b""#));
        assert_eq!(trigrams("OR").as_deref(), None);
        assert_eq!(trigrams("ab").as_deref(), None);
        // Characters, not bytes.
        assert_eq!(trigrams("żółw").as_deref(), Some(r#""żół" AND "ółw""#));
        assert_eq!(trigrams("a\0bcd").as_deref(), Some(r#""bcd""#));
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
}
