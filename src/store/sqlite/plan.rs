//! How SQLite reads a page of the trail: the WHERE clause of the filters,
//! and which index each filter may use, decided by probing the index first.
//!
//! A page is the newest entries matching, so the id order is the one to
//! walk. SQLite, knowing nothing of how many entries a value holds, prefers
//! any index on an equality or a range, even one that names most of the
//! trail, and then reads and sorts all of it (a resource type: a twelfth of
//! every entry). So the indexes whose rows are not in id order (a resource
//! type alone, a client address range) are used only when a bounded count
//! finds them narrow; a wide one is left to the walk in id order, which
//! finds a page of a common value soon.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::text;
use crate::store::filter::id_floor;
use crate::store::{Filter, StoreError};

/// An index naming more entries than this is not used for a page.
const NARROW: i64 = 5_000;

/// What the probes decided for one query.
#[derive(Debug, Default, Clone)]
pub(super) struct Walk {
    /// The `q` search's candidates, when its index narrows it.
    candidates: Option<text::Candidates>,
    /// Not through `audit_log_resource`: the type alone names too many.
    wide_type: bool,
    /// Not through `audit_log_client_ip`: the range names too many.
    wide_client: bool,
    /// A time range read through `audit_log_timestamp` and sorted, rather
    /// than walked in id order from the newest entry.
    by_time: bool,
}

impl Walk {
    /// Whether the search's index narrows it to its candidates.
    pub(super) fn narrowed(&self) -> bool {
        self.candidates.is_some()
    }

    /// For counting every match (the statistics): no page to fill, so a
    /// time range is read through its index.
    pub(super) fn counting() -> Walk {
        Walk { by_time: true, ..Walk::default() }
    }

    /// Probes the indexes `filter` could use (each a count that stops past
    /// `NARROW`, read from the index alone).
    pub(super) async fn probe(pool: &SqlitePool, filter: &Filter) -> Result<Walk, StoreError> {
        let mut walk = Walk::default();
        if let Some(search) = &filter.q {
            walk.candidates = text::candidates(pool, search, text::MAX_CANDIDATES).await?;
        }
        if let (Some(kind), None) = (&filter.resource_type, &filter.resource_id) {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM audit_log INDEXED BY audit_log_resource \
                 WHERE resource_type = ? LIMIT ?)",
            )
            .bind(kind)
            .bind(NARROW + 1)
            .fetch_one(pool)
            .await?;
            walk.wide_type = n > NARROW;
        }
        if let Some((lo, hi)) = filter.client_ip {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM audit_log INDEXED BY audit_log_client_ip \
                 WHERE client_ip_key BETWEEN ? AND ? LIMIT ?)",
            )
            .bind(lo.to_vec())
            .bind(hi.to_vec())
            .bind(NARROW + 1)
            .fetch_one(pool)
            .await?;
            walk.wide_client = n > NARROW;
        }
        if let Some(until) = &filter.until {
            // Rows are numbered in the order they are written, which is the
            // id order: the numbers at the range's ends tell how many
            // entries each way reads.
            let at = |t: Option<&String>| {
                let id = t.and_then(|t| id_floor(t));
                async move {
                    let Some(id) = id else { return Ok::<i64, StoreError>(0) };
                    let seq = sqlx::query_scalar(
                        "SELECT COALESCE((SELECT seq FROM audit_log WHERE id >= ? ORDER BY id LIMIT 1), \
                         (SELECT MAX(seq) + 1 FROM audit_log), 0)",
                    )
                    .bind(id)
                    .fetch_one(pool)
                    .await?;
                    Ok(seq)
                }
            };
            let (from, to) = (at(filter.since.as_ref()).await?, at(Some(until)).await?);
            let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_log").fetch_one(pool).await?;
            walk.by_time = to - from < last - to;
        }
        Ok(walk)
    }
}

/// Appends `filter` as ` AND …` terms. Columns come before the JSON
/// fields, so an entry is parsed only once the cheap terms pass. A unary
/// `+` keeps SQLite off an index the walk decided against.
pub(super) fn push_filter(q: &mut QueryBuilder<Sqlite>, f: &Filter, walk: Walk) {
    // Every filter named: a new one does not compile until this backend
    // reads it (never a filter silently ignored).
    let Filter {
        action,
        resource_type,
        resource_id,
        actor,
        client_ip,
        outcome,
        status,
        since,
        until,
        q: search,
        configuration,
        instance,
        unapplied,
        ids_upto,
    } = f;
    let eq = |q: &mut QueryBuilder<Sqlite>, column: &str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {column} = ")).push_bind(v.clone());
        }
    };
    eq(q, if walk.wide_type { "+resource_type" } else { "resource_type" }, resource_type);
    eq(q, "resource_id", resource_id);
    eq(q, "actor", actor);
    if let Some((lo, hi)) = *client_ip {
        let column = if walk.wide_client { "+client_ip_key" } else { "client_ip_key" };
        q.push(format!(" AND {column} BETWEEN ")).push_bind(lo.to_vec()).push(" AND ").push_bind(hi.to_vec());
    }
    if let Some(s) = since {
        // Entries answered since then were sealed since then (less an
        // hour's slack): the walk in id order stops there.
        if let Some(floor) = id_floor(s).filter(|_| !walk.by_time) {
            q.push(" AND id >= ").push_bind(floor);
        }
    }
    let timestamp = if walk.by_time { "timestamp" } else { "+timestamp" };
    if let Some(s) = since {
        q.push(format!(" AND {timestamp} >= ")).push_bind(s.clone());
    }
    if let Some(u) = until {
        q.push(format!(" AND {timestamp} <= ")).push_bind(u.clone());
    }
    if let Some(upto) = ids_upto {
        q.push(" AND id <= ").push_bind(upto.clone());
    }
    if let Some(c) = walk.candidates {
        q.push(" AND seq IN (SELECT value FROM json_each(")
            .push_bind(c.seqs)
            .push(") UNION ALL SELECT seq FROM audit_log WHERE seq > ")
            .push_bind(c.upto)
            .push(")");
    }
    eq(q, "json_extract(entry, '$.action')", action);
    eq(q, "json_extract(entry, '$.outcome')", outcome);
    eq(q, "json_extract(entry, '$.configuration')", configuration);
    eq(q, "json_extract(entry, '$.instance')", instance);
    match *unapplied {
        Some(true) => _ = q.push(" AND json_array_length(entry, '$.unapplied') > 0"),
        Some(false) => _ = q.push(" AND COALESCE(json_array_length(entry, '$.unapplied'), 0) = 0"),
        None => {}
    }
    if let Some(s) = *status {
        q.push(" AND json_extract(entry, '$.status') = ").push_bind(i64::from(s));
    }
    if let Some(text) = search {
        let like = crate::store::filter::like(text);
        q.push(" AND (json_extract(entry, '$.path') LIKE ")
            .push_bind(like.clone())
            .push(" ESCAPE '\\' OR json_extract(entry, '$.changes') LIKE ");
        q.push_bind(like).push(" ESCAPE '\\')");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Chain;
    use crate::entry::tests::sample;
    use crate::store::sqlite::SqliteStore;

    /// SQLite's plan for a page of `filter` as the probes decide, and the
    /// page's ids.
    async fn page(store: &SqliteStore, filter: &Filter) -> (String, Vec<String>) {
        let walk = Walk::probe(store.pool(), filter).await.unwrap();
        let query = |prefix: &str| {
            let mut q = QueryBuilder::<Sqlite>::new(format!("{prefix}SELECT id FROM audit_log WHERE 1 = 1"));
            push_filter(&mut q, filter, walk.clone());
            q.push(" ORDER BY id DESC LIMIT 20");
            q
        };
        let plan: Vec<(i64, i64, i64, String)> =
            query("EXPLAIN QUERY PLAN ").build_query_as().fetch_all(store.pool()).await.unwrap();
        let plan = plan.into_iter().map(|(_, _, _, step)| step).collect::<Vec<_>>().join("; ");
        let ids = query("").build_query_scalar().fetch_all(store.pool()).await.unwrap();
        (plan, ids)
    }

    /// A type or address range holding more than `NARROW` entries is walked
    /// in id order; a narrow one is read through its index; the answers are
    /// the newest matches either way.
    #[tokio::test]
    async fn an_index_naming_too_many_entries_is_left_for_the_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let mut chain = Chain::resume(None);
        let common = NARROW as usize + 100;
        // Exactly NARROW refunds from one address first: still narrow.
        let edge = NARROW as usize;
        let entries: Vec<_> = (0..edge + common + 30)
            .map(|i| {
                let mut e = sample(1);
                if i < edge {
                    (e.resource_type, e.client_ip) = ("refund".into(), "192.0.2.1".into());
                } else if i % 100 == 7 {
                    (e.resource_type, e.client_ip) = ("order".into(), "198.51.100.7".into());
                }
                e.resource_id = Some(i.to_string());
                chain.seal(e)
            })
            .collect();
        store.insert_batch(&entries).await.unwrap();
        let newest = |kind: &str| -> Vec<String> {
            entries
                .iter()
                .rev()
                .filter(|s| s.entry.resource_type == kind)
                .take(20)
                .map(|s| s.entry.id.clone())
                .collect()
        };
        let of_type = |kind: &str| Filter { resource_type: Some(kind.into()), ..Filter::default() };
        let (plan, ids) = page(&store, &of_type("user")).await;
        assert!(!plan.contains("audit_log_resource") && !plan.contains("TEMP B-TREE"), "{plan}");
        assert_eq!(ids, newest("user"));
        let (plan, ids) = page(&store, &of_type("order")).await;
        assert!(plan.contains("audit_log_resource"), "{plan}");
        assert_eq!(ids, newest("order"));

        let range = |cidr: &str| {
            let mut f = Filter::default();
            f.set("client_ip", cidr).unwrap();
            f
        };
        let (plan, ids) = page(&store, &range("203.0.113.0/24")).await;
        assert!(!plan.contains("audit_log_client_ip") && !plan.contains("TEMP B-TREE"), "{plan}");
        assert_eq!(ids, newest("user"));
        let (plan, ids) = page(&store, &range("198.51.100.0/24")).await;
        assert!(plan.contains("audit_log_client_ip"), "{plan}");
        assert_eq!(ids, newest("order"));
        let (plan, ids) = page(&store, &of_type("refund")).await;
        assert!(plan.contains("audit_log_resource"), "{plan}");
        assert_eq!(ids, newest("refund"));
        let (plan, ids) = page(&store, &range("192.0.2.0/24")).await;
        assert!(plan.contains("audit_log_client_ip"), "{plan}");
        assert_eq!(ids, newest("refund"));
    }

    /// A time range is read through the timestamp index when fewer entries
    /// lie in it than after it, else walked in id order from the newest
    /// (down to the id floor when it has a start); the answers agree.
    #[tokio::test]
    async fn a_time_range_is_read_the_way_that_reads_fewer_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap();
        let start = std::time::SystemTime::now() - std::time::Duration::from_secs(60 * 86_400);
        let day = |d: u64| start + std::time::Duration::from_secs(d * 86_400);
        let mut chain = Chain::resume(None);
        let entries: Vec<_> = (0..600u64)
            .map(|i| {
                let at = day(i / 10) + std::time::Duration::from_secs(i % 10 * 60);
                let mut e = sample(1);
                e.timestamp = crate::entry::format_time(at.into());
                chain.seal_at(e, at)
            })
            .collect();
        store.insert_batch(&entries).await.unwrap();
        let time = |d: u64| crate::entry::format_time(day(d).into());
        let between = |since: Option<u64>, until: Option<u64>| -> Vec<String> {
            let (lo, hi) = (since.map(time), until.map(time));
            entries
                .iter()
                .rev()
                .filter(|s| lo.as_ref().is_none_or(|lo| &s.entry.timestamp >= lo))
                .filter(|s| hi.as_ref().is_none_or(|hi| &s.entry.timestamp <= hi))
                .take(20)
                .map(|s| s.entry.id.clone())
                .collect()
        };
        let filter = |since: Option<u64>, until: Option<u64>| Filter {
            since: since.map(time),
            until: until.map(time),
            ..Filter::default()
        };
        // One day, long ago: ten entries in it, hundreds after it.
        let (plan, ids) = page(&store, &filter(Some(10), Some(11))).await;
        assert!(plan.contains("audit_log_timestamp"), "{plan}");
        assert_eq!((ids.len(), ids), (11, between(Some(10), Some(11))), "day 10, and the first of day 11");
        // A day nearer the end: still fewer in it than after it.
        let (plan, ids) = page(&store, &filter(Some(40), Some(41))).await;
        assert!(plan.contains("audit_log_timestamp"), "{plan}");
        assert_eq!(ids, between(Some(40), Some(41)));
        // The last days: walked from the newest, down to the floor.
        let (plan, ids) = page(&store, &filter(Some(55), None)).await;
        assert!(plan.contains("(id>?)") && !plan.contains("TEMP B-TREE"), "{plan}");
        assert_eq!(ids, between(Some(55), None));
        // Everything up to two days ago: most of the trail is in the range.
        let (plan, ids) = page(&store, &filter(None, Some(58))).await;
        assert!(!plan.contains("audit_log_timestamp") && !plan.contains("TEMP B-TREE"), "{plan}");
        assert_eq!(ids, between(None, Some(58)));
        let (plan, ids) = page(&store, &filter(Some(1), Some(58))).await;
        assert!(!plan.contains("audit_log_timestamp"), "{plan}");
        assert_eq!(ids, between(Some(1), Some(58)));
        // A count has no page to fill: an hour long ago is read through
        // the time index, not walked from the newest entry.
        let mut q = QueryBuilder::<Sqlite>::new("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM audit_log WHERE 1 = 1");
        push_filter(&mut q, &filter(Some(10), Some(11)), Walk::counting());
        let plan: Vec<(i64, i64, i64, String)> = q.build_query_as().fetch_all(store.pool()).await.unwrap();
        assert!(plan.iter().any(|(_, _, _, step)| step.contains("audit_log_timestamp")), "{plan:?}");
    }
}
