//! The `q` search's trigram index on PostgreSQL (migration 0005): filling
//! it after entries are committed, one instance at a time, reading a
//! search's candidates from it, and keeping it in step with retention.
//!
//! The index only narrows: every candidate is still checked with the ILIKE
//! the search always used, and entries not indexed yet are read directly,
//! so a search answers exactly what a scan would. Each instance's entries
//! are indexed in id order up to a watermark of its own (`audit_text_upto`):
//! an instance commits its chain in id order and moves its chain head in
//! the same transaction, so every entry of it up to its head is committed,
//! and none is skipped by a watermark moving past it.

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use crate::store::StoreError;

/// A search with more candidates than this walks the entries newest first
/// instead (as on SQLite): its text is common enough that a page of
/// matches is found sooner that way.
pub(super) const MAX_CANDIDATES: usize = 3_000;

/// How many of the newest entries (matching the other filters) a search is
/// looked for in before its candidates are read (`PgStore::list`).
pub(super) const PROBE: i64 = 2_000;

/// The advisory lock indexing steps take turns on, across instances.
const TEXT_LOCK: i64 = 0x6175_6469_7467_0002;

/// Whether pg_trgm can narrow a search for `text`: it takes trigrams only
/// from runs of letters and digits, and a run must hold three for a
/// pattern open at both ends (`%text%`) to yield one. A search it cannot
/// narrow would read the whole index; it walks the entries instead.
pub(super) fn narrows(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_alphanumeric() { run + 1 } else { 0 };
        if run == 3 {
            return true;
        }
    }
    false
}

/// What a search reads: the indexed entries the index names, and the
/// entries not indexed when it began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidates {
    pub ids: Vec<String>,
    pub tail: Option<Tail>,
}

/// The entries past their instance's watermark: ids above `from` (the
/// lowest watermark of an instance with entries not indexed), each above
/// its own instance's watermark; an instance not listed has none, and all
/// its entries are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tail {
    pub from: String,
    pub instances: Vec<String>,
    pub uptos: Vec<String>,
}

/// Each instance's watermark (if any) and chain head.
type Mark = (String, Option<String>, String);

/// The tail of `marks` (read in one statement): `None` when every
/// instance is indexed up to its head.
fn tail(marks: Vec<Mark>) -> Option<Tail> {
    let from = marks
        .iter()
        .filter(|(_, upto, head)| upto.as_ref().is_none_or(|u| u < head))
        .map(|(_, upto, _)| upto.clone().unwrap_or_default())
        .min()?;
    let (instances, uptos) = marks.into_iter().filter_map(|(instance, upto, _)| Some((instance, upto?))).unzip();
    Some(Tail { from, instances, uptos })
}

/// How many of a search's trigrams its candidates are read by: the rarest
/// (a common trigram's list is a large part of the index: reading all
/// eleven of an e-mail address's inner trigrams took 200 ms at 10M
/// entries, its three rarest 25 ms).
const RAREST: usize = 3;

/// How many of the newest indexed entries a search's trigrams are counted
/// in, to tell the rare from the common.
const SAMPLE: i64 = 2_000;

/// The inner trigrams of `text` pg_trgm narrows a search by: each three
/// ASCII letters or digits in a row, once (ignoring case). A pattern
/// `%abc%` yields exactly the trigram `abc`, and an entry holding `text`
/// holds each of them, so requiring them only widens what the text names.
/// (Other letters are left out: whether pg_trgm takes them as letters
/// depends on the database's locale, and a pattern it takes no trigram
/// from would read the whole index.)
fn inner_trigrams(text: &str) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(2))
        .filter(|&i| bytes[i..i + 3].iter().all(u8::is_ascii_alphanumeric))
        .map(|i| &text[i..i + 3])
        .filter(|t| seen.insert(t.to_ascii_lowercase()))
        .collect()
}

/// The trigrams among `counted` (each with how many sampled entries hold
/// it) a search's candidates are read by: up to `RAREST` of the rarest
/// whose share of the sample, scaled to `entries`, is at most `common`.
/// Empty when even the rarest is more common than that: its candidates
/// would be many, and reading them costs more than a walk.
fn rarest(mut counted: Vec<(&str, i64)>, sampled: i64, entries: f64, common: usize) -> Vec<&str> {
    counted.sort_by_key(|&(_, n)| n);
    let scale = entries.max(sampled as f64) / (sampled.max(1) as f64);
    counted.into_iter().take(RAREST).filter(|&(_, n)| n as f64 * scale <= common as f64).map(|(t, _)| t).collect()
}

/// The candidates for searching `search` (a search that `narrows`;
/// `like` is its ILIKE pattern), or `None` when the index names more than
/// `max`, or the text's trigrams are too common to narrow it well.
///
/// The watermarks are read before the index: an indexing step commits its
/// rows and its watermark together, so every entry up to a watermark read
/// is in the index read after it.
pub(super) async fn candidates(
    pool: &PgPool,
    search: &str,
    like: &str,
    max: usize,
) -> Result<Option<Candidates>, StoreError> {
    let marks: Vec<Mark> = sqlx::query_as(
        "SELECT h.instance, u.upto, h.last_id FROM chain_head h LEFT JOIN audit_text_upto u USING (instance)",
    )
    .fetch_all(pool)
    .await?;
    let trigrams = inner_trigrams(search);
    let mut q = QueryBuilder::<Postgres>::new("SELECT id FROM audit_text WHERE ");
    if trigrams.is_empty() {
        // Letters pg_trgm may still take: the pattern names its trigrams.
        q.push("text ILIKE ").push_bind(like.to_string()).push(" ESCAPE '\\'");
    } else {
        let (counts, sampled, entries) = sample(pool, &trigrams).await?;
        let rare = rarest(trigrams.into_iter().zip(counts).collect(), sampled, entries, 5 * max);
        if rare.is_empty() {
            return Ok(None);
        }
        for t in rare {
            q.push("text ILIKE ").push_bind(format!("%{t}%")).push(" AND ");
        }
        // Checked on each row the rare trigrams name, not through the index
        // (which would read every trigram of the text).
        q.push("(text || '') ILIKE ").push_bind(like.to_string()).push(" ESCAPE '\\'");
    }
    q.push(" LIMIT ").push_bind(max as i64 + 1);
    let ids: Vec<String> = q.build_query_scalar().fetch_all(pool).await?;
    if ids.len() > max {
        return Ok(None);
    }
    Ok(Some(Candidates { ids, tail: tail(marks) }))
}

/// How many of the `SAMPLE` newest indexed entries hold each of
/// `trigrams` (ignoring case), how many were sampled, and how many
/// entries are indexed (the planner's estimate, or the statistics' count
/// of live rows when higher: a table not analysed yet has none).
async fn sample(pool: &PgPool, trigrams: &[&str]) -> Result<(Vec<i64>, i64, f64), StoreError> {
    let rows: Vec<(i64, i64, f64)> = sqlx::query_as(
        "WITH s AS MATERIALIZED (SELECT lower(text) AS t FROM audit_text ORDER BY id DESC LIMIT $2) \
         SELECT (SELECT COUNT(*) FROM s WHERE strpos(s.t, lower(u.tri)) > 0), (SELECT COUNT(*) FROM s), \
           GREATEST((SELECT reltuples FROM pg_class WHERE oid = 'audit_text'::regclass), \
             pg_stat_get_live_tuples('audit_text'::regclass))::float8 \
         FROM unnest($1::text[]) WITH ORDINALITY AS u(tri, n) ORDER BY u.n",
    )
    .bind(trigrams)
    .bind(SAMPLE)
    .fetch_all(pool)
    .await?;
    let (sampled, entries) = rows.first().map_or((0, 0.0), |&(_, s, e)| (s, e));
    Ok((rows.into_iter().map(|(n, _, _)| n).collect(), sampled, entries))
}

/// Indexes up to `limit` committed entries past the watermarks, each
/// instance's oldest first, and moves them; answers how many. One
/// transaction; while another instance's step runs, answers 0 at once.
pub(super) async fn index(pool: &PgPool, limit: u32) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    let ours: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(TEXT_LOCK).fetch_one(&mut *tx).await?;
    if !ours {
        return Ok(0);
    }
    let behind: Vec<Mark> = sqlx::query_as(
        "SELECT h.instance, u.upto, h.last_id FROM chain_head h LEFT JOIN audit_text_upto u USING (instance) \
         WHERE u.upto IS NULL OR u.upto < h.last_id ORDER BY h.instance",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut indexed = 0;
    for (instance, upto, head) in behind {
        let left = i64::from(limit) - indexed;
        if left <= 0 {
            break;
        }
        let (n, newest) = index_instance(&mut tx, &instance, upto.as_deref().unwrap_or(""), &head, left).await?;
        // Fewer than asked for: every entry up to the head is indexed (or
        // was deleted by retention).
        let upto = if n < left { head } else { newest.expect("rows were indexed") };
        sqlx::query(
            "INSERT INTO audit_text_upto (instance, upto) VALUES ($1, $2) \
             ON CONFLICT (instance) DO UPDATE SET upto = excluded.upto",
        )
        .bind(&instance)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        indexed += n;
    }
    tx.commit().await?;
    Ok(indexed as usize)
}

/// Indexes up to `limit` of `instance`'s entries after `upto` and up to its
/// `head`, oldest first: how many, and the newest.
async fn index_instance(
    tx: &mut PgConnection,
    instance: &str,
    upto: &str,
    head: &str,
    limit: i64,
) -> Result<(i64, Option<String>), StoreError> {
    let indexed = sqlx::query_as(
        "WITH picked AS (SELECT id, path, changes FROM audit_log \
             WHERE id > $2 AND id <= $3 AND instance = $1 ORDER BY id LIMIT $4), \
         added AS (INSERT INTO audit_text (id, text) SELECT id, path || E'\\n' || changes FROM picked RETURNING id) \
         SELECT COUNT(*), MAX(id) FROM added",
    )
    .bind(instance)
    .bind(upto)
    .bind(head)
    .bind(limit)
    .fetch_one(tx)
    .await?;
    Ok(indexed)
}

/// Before retention deletes `ids` (in the caller's transaction): their
/// index rows go too. Watermarks stay: ids are never handed out again.
pub(super) async fn forget(tx: &mut PgConnection, ids: &[&str]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM audit_text WHERE id = ANY($1)").bind(ids).execute(tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_of_three_letters_or_digits_narrows() {
        assert!(narrows("abc"));
        assert!(narrows("/invoices/29"));
        assert!(narrows("a-b-c-def"));
        assert!(narrows("żół"));
        assert!(!narrows("ab"));
        assert!(!narrows("a/b/c/d"));
        assert!(!narrows("29/04"));
        assert!(!narrows("@@@"));
        assert!(!narrows(""));
    }

    #[test]
    fn inner_trigrams_are_ascii_letters_and_digits_once_ignoring_case() {
        assert_eq!(inner_trigrams("user431@Ex"), ["use", "ser", "er4", "r43", "431"]);
        assert_eq!(inner_trigrams("/invoices/29"), ["inv", "nvo", "voi", "oic", "ice", "ces"]);
        assert_eq!(inner_trigrams("abcABCabc"), ["abc", "bcA", "cAB"]);
        assert!(inner_trigrams("żółw").is_empty());
        assert_eq!(inner_trigrams("żabcd"), ["abc", "bcd"]);
        assert!(inner_trigrams("ab").is_empty());
        assert!(inner_trigrams("").is_empty());
    }

    #[test]
    fn the_rarest_trigrams_under_the_common_share_are_read() {
        let counted = vec![("use", 985), ("r43", 2), ("431", 9), ("er4", 17), ("ser", 985)];
        // 10M entries, a sample of 2,000: r43 stands for 10,000, 431 for
        // 45,000, er4 for 85,000.
        assert_eq!(rarest(counted.clone(), 2_000, 1e7, 15_000), ["r43"]);
        assert_eq!(rarest(counted.clone(), 2_000, 1e7, 50_000), ["r43", "431"]);
        assert_eq!(rarest(counted.clone(), 2_000, 1e7, 100_000), ["r43", "431", "er4"]);
        // Too common even at its rarest: nothing narrows it.
        assert!(rarest(counted.clone(), 2_000, 1e7, 9_999).is_empty());
        // A small trail (the planner's estimate below the sample, or none
        // yet): the counts are the entries.
        assert_eq!(rarest(counted.clone(), 2_000, -1.0, 15), ["r43", "431"]);
        assert_eq!(rarest(counted.clone(), 2_000, 500.0, 9), ["r43", "431"]);
        // Nothing sampled (an empty index): every trigram is read by.
        assert_eq!(rarest(vec![("abc", 0), ("bcd", 0)], 0, -1.0, 0), ["abc", "bcd"]);
    }

    fn mark(instance: &str, upto: Option<&str>, head: &str) -> Mark {
        (instance.into(), upto.map(Into::into), head.into())
    }

    #[test]
    fn the_tail_starts_at_the_lowest_watermark_of_an_instance_behind() {
        // Every instance indexed up to its head: nothing to read directly.
        assert_eq!(tail(vec![mark("a", Some("05"), "05"), mark("b", Some("09"), "09")]), None);
        assert_eq!(tail(vec![]), None);
        // An instance indexed long ago up to its head does not pull the
        // tail back; the one behind sets it.
        let t = tail(vec![mark("old", Some("01"), "01"), mark("a", Some("05"), "07"), mark("b", Some("06"), "06")])
            .unwrap();
        assert_eq!(t.from, "05");
        assert_eq!(t.instances, ["old", "a", "b"]);
        assert_eq!(t.uptos, ["01", "05", "06"]);
        // An instance never indexed: read from the start, and not listed.
        let t = tail(vec![mark("a", Some("05"), "07"), mark("new", None, "03")]).unwrap();
        assert_eq!((t.from.as_str(), t.instances, t.uptos), ("", vec!["a".to_string()], vec!["05".to_string()]));
    }
}
