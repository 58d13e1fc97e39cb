//! Statistics kept as entries are written (`GET /api/v1/stats`): how many
//! entries each action, resource type, actor and outcome has, by hour of
//! their `timestamp`, moved in each batch's transaction and by retention.
//! A time range sums its whole hours from these counts and counts only its
//! partial hours at each end from the entries themselves, so the answer is
//! exact and its cost is bounded by the hours and values, not the entries.

use std::collections::HashMap;

use super::rows::{Count, stats_answer};
use super::{Filter, StoreError};
use crate::entry::AuditEntry;

/// Microseconds in an hour.
const HOUR: i64 = 3_600_000_000;

/// Each group of the answer and the entry column it counts.
pub(super) const DIMENSIONS: [(&str, &str); 4] =
    [("by_action", "action"), ("by_resource_type", "resource_type"), ("by_actor", "actor"), ("by_outcome", "outcome")];

/// The most values a group of the answer lists.
pub(super) const MAX_VALUES: usize = 1000;

/// Microseconds since the epoch of an RFC 3339 time.
fn micros(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_micros())
}

fn format_micros(us: i64) -> String {
    crate::entry::format_time(chrono::DateTime::from_timestamp_micros(us).unwrap_or_default())
}

/// The hour since the epoch of an entry's timestamp (0 if it cannot be
/// read; every stored timestamp can).
pub(super) fn hour_of(timestamp: &str) -> i64 {
    micros(timestamp).map_or(0, |us| us.div_euclid(HOUR))
}

/// The counts a set of rows of (timestamp, `values_of`) adds or takes:
/// (dimension column, value, hour) → n.
pub(super) fn tally<'a>(
    rows: impl Iterator<Item = (&'a str, [&'a str; 4])>,
) -> HashMap<(&'static str, &'a str, i64), i64> {
    tally_rows(rows.map(|(timestamp, values)| (timestamp, values, "")), |column, value, hour, _| (column, value, hour))
}

/// The same by instance: rows of (timestamp, `values_of`, instance) →
/// (dimension column, value, hour, instance) → n.
pub(super) fn tally_by_instance<'a>(
    rows: impl Iterator<Item = (&'a str, [&'a str; 4], &'a str)>,
) -> HashMap<(&'static str, &'a str, i64, &'a str), i64> {
    tally_rows(rows, |column, value, hour, instance| (column, value, hour, instance))
}

/// The values an entry is counted under, in `DIMENSIONS` order.
pub(super) fn values_of(e: &AuditEntry) -> [&str; 4] {
    [e.action.as_str(), e.resource_type.as_str(), e.actor.as_str(), e.outcome.as_str()]
}

fn tally_rows<'a, K: std::hash::Hash + Eq>(
    rows: impl Iterator<Item = (&'a str, [&'a str; 4], &'a str)>,
    key: impl Fn(&'static str, &'a str, i64, &'a str) -> K,
) -> HashMap<K, i64> {
    let mut counts = HashMap::new();
    // A batch's entries share their hour, mostly: read each hour once.
    let mut last: Option<(&str, i64)> = None;
    for (timestamp, values, instance) in rows {
        let prefix = timestamp.get(..13).unwrap_or(timestamp);
        let hour = match last {
            Some((p, h)) if p == prefix => h,
            _ => {
                let h = hour_of(timestamp);
                last = Some((prefix, h));
                h
            }
        };
        for ((_, column), value) in DIMENSIONS.iter().zip(values) {
            *counts.entry(key(column, value, hour, instance)).or_insert(0) += 1;
        }
    }
    counts
}

/// A store's two sources of counts.
pub(super) trait Counts {
    /// `dimension`'s kept counts by value over the `unit`s in `span`, from
    /// `table` (`audit_stats` by hour or `audit_stats_daily` by day).
    async fn kept(&self, table: &str, unit: &str, dimension: &str, span: Span) -> Result<Vec<Count>, StoreError>;
    /// Every dimension's counts read from the entries `filter` matches.
    async fn counted(&self, filter: &Filter) -> Result<Vec<(&'static str, Vec<Count>)>, StoreError>;
}

/// Counts by action, resource type, actor and outcome within the filter's
/// `since`/`until`: whole days from the daily counts, whole hours at their
/// ends from the hourly ones, the partial hours from the entries (any
/// other filter: all from the entries).
pub(super) async fn answer(store: &impl Counts, filter: &Filter) -> Result<serde_json::Value, StoreError> {
    let timed = Filter { since: filter.since.clone(), until: filter.until.clone(), ..Filter::default() };
    if *filter != timed {
        return Ok(merge(vec![store.counted(filter).await?]));
    }
    let split = split(filter.since.as_deref(), filter.until.as_deref());
    let mut parts = Vec::new();
    if let Some(hours) = split.hours {
        let (days, hours) = days_of(hours);
        let spans = days.map(|d| ("audit_stats_daily", "day", d)).into_iter();
        for (table, unit, span) in spans.chain(hours.into_iter().map(|h| ("audit_stats", "hour", h))) {
            let mut groups = Vec::new();
            for (group, column) in DIMENSIONS {
                groups.push((group, store.kept(table, unit, column, span).await?));
            }
            parts.push(groups);
        }
    }
    for (since, until) in split.scans {
        parts.push(store.counted(&Filter { since, until, ..Filter::default() }).await?);
    }
    Ok(merge(parts))
}

/// How a range is answered: the whole hours `[from, to)` from the kept
/// counts (`None` bounds are open), and the partial ends, as inclusive
/// timestamp ranges, counted from the entries.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Split {
    pub hours: Option<(Option<i64>, Option<i64>)>,
    pub scans: Vec<(Option<String>, Option<String>)>,
}

/// Splits `[since, until]` (inclusive, entries' time format, either open).
pub(super) fn split(since: Option<&str>, until: Option<&str>) -> Split {
    let (s, u) = (since.and_then(micros), until.and_then(micros));
    // Hour h holds [h·HOUR, (h+1)·HOUR − 1µs]: whole within the range
    // from the first hour starting at or after `since` to the last ending
    // at or before `until`.
    let from = s.map(|s| s.div_euclid(HOUR) + i64::from(s.rem_euclid(HOUR) != 0));
    let to = u.map(|u| (u + 1).div_euclid(HOUR));
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Split { hours: None, scans: vec![(since.map(str::to_string), until.map(str::to_string))] };
    }
    let mut scans = Vec::new();
    if let (Some(s), Some(f)) = (s, from)
        && s < f * HOUR
    {
        scans.push((since.map(str::to_string), Some(format_micros(f * HOUR - 1))));
    }
    if let (Some(u), Some(t)) = (u, to)
        && t * HOUR <= u
    {
        scans.push((Some(format_micros(t * HOUR)), until.map(str::to_string)));
    }
    Split { hours: Some((from, to)), scans }
}

/// A range of hours or days, `[from, to)`, `None` bounds open.
pub(super) type Span = (Option<i64>, Option<i64>);

/// Whole hours as the whole days among them (from the daily counts) and
/// the hours left at either end.
pub(super) fn days_of((from, to): Span) -> (Option<Span>, Vec<Span>) {
    let first = from.map(|f| f.div_euclid(24) + i64::from(f.rem_euclid(24) != 0));
    let end = to.map(|t| t.div_euclid(24));
    if let (Some(a), Some(b)) = (first, end)
        && a >= b
    {
        return (None, vec![(from, to)]);
    }
    let mut hours = Vec::new();
    if let (Some(f), Some(a)) = (from, first)
        && f < a * 24
    {
        hours.push((Some(f), Some(a * 24)));
    }
    if let (Some(t), Some(b)) = (to, end)
        && b * 24 < t
    {
        hours.push((Some(b * 24), Some(t)));
    }
    (Some((first, end)), hours)
}

/// Adds up parts of an answer (each a list of groups) into the answer:
/// each group's values most frequent first (ties by value), at most
/// MAX_VALUES of them.
pub(super) fn merge(parts: Vec<Vec<(&'static str, Vec<Count>)>>) -> serde_json::Value {
    let mut sums: HashMap<&str, HashMap<Option<String>, i64>> = HashMap::new();
    for part in parts {
        for (group, counts) in part {
            let sum = sums.entry(group).or_default();
            for (value, n) in counts {
                *sum.entry(value).or_insert(0) += n;
            }
        }
    }
    let groups = DIMENSIONS
        .iter()
        .map(|(group, _)| {
            let mut counts: Vec<Count> =
                sums.remove(group).unwrap_or_default().into_iter().filter(|(_, n)| *n > 0).collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            counts.truncate(MAX_VALUES);
            (*group, counts)
        })
        .collect();
    stats_answer(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-23T11:00:00.000000Z";

    fn at(us: i64) -> String {
        format_micros(micros(T).unwrap() + us)
    }

    #[test]
    fn hours_of_timestamps() {
        assert_eq!(hour_of("1970-01-01T00:59:59.999999Z"), 0);
        assert_eq!(hour_of("1970-01-01T01:00:00.000000Z"), 1);
        assert_eq!(hour_of(T), micros(T).unwrap() / HOUR);
        assert_eq!(hour_of("not a time"), 0);
    }

    #[test]
    fn a_range_splits_into_whole_hours_and_its_partial_ends() {
        let h = micros(T).unwrap() / HOUR;
        // Open both ways: every hour, nothing scanned.
        assert_eq!(split(None, None), Split { hours: Some((None, None)), scans: vec![] });
        // On hour boundaries: whole hours only, up to the one `until` opens
        // (its first microsecond is counted from the entries).
        let (from, to) = (at(0), at(3 * HOUR));
        assert_eq!(
            split(Some(&from), Some(&to)),
            Split { hours: Some((Some(h), Some(h + 3))), scans: vec![(Some(at(3 * HOUR)), Some(to.clone()))] }
        );
        // An hour's last microsecond as `until` closes it.
        let to = at(3 * HOUR - 1);
        assert_eq!(split(Some(&from), Some(&to)), Split { hours: Some((Some(h), Some(h + 3))), scans: vec![] });
        // Inside hours: the ends are scanned up to and from the whole hours.
        let (from, to) = (at(10), at(3 * HOUR + 20));
        assert_eq!(
            split(Some(&from), Some(&to)),
            Split {
                hours: Some((Some(h + 1), Some(h + 3))),
                scans: vec![(Some(from.clone()), Some(at(HOUR - 1))), (Some(at(3 * HOUR)), Some(to.clone()))]
            }
        );
        // Within one hour, or spanning no whole one: one scan.
        for (a, b) in [(at(10), at(20)), (at(10), at(HOUR + 20))] {
            assert_eq!(
                split(Some(&a), Some(&b)),
                Split { hours: None, scans: vec![(Some(a.clone()), Some(b.clone()))] }
            );
        }
        // Open on one side.
        assert_eq!(
            split(Some(&at(10)), None),
            Split { hours: Some((Some(h + 1), None)), scans: vec![(Some(at(10)), Some(at(HOUR - 1)))] }
        );
        assert_eq!(
            split(None, Some(&at(20))),
            Split { hours: Some((None, Some(h))), scans: vec![(Some(at(0)), Some(at(20)))] }
        );
    }

    #[test]
    fn whole_hours_split_into_whole_days_and_the_hours_at_the_ends() {
        assert_eq!(days_of((None, None)), (Some((None, None)), vec![]));
        assert_eq!(days_of((Some(48), Some(96))), (Some((Some(2), Some(4))), vec![]));
        assert_eq!(
            days_of((Some(47), Some(97))),
            (Some((Some(2), Some(4))), vec![(Some(47), Some(48)), (Some(96), Some(97))])
        );
        assert_eq!(days_of((Some(49), Some(70))), (None, vec![(Some(49), Some(70))]));
        assert_eq!(days_of((Some(49), Some(72))), (None, vec![(Some(49), Some(72))]));
        assert_eq!(days_of((Some(49), None)), (Some((Some(3), None)), vec![(Some(49), Some(72))]));
        assert_eq!(days_of((None, Some(50))), (Some((None, Some(2))), vec![(Some(48), Some(50))]));
    }

    #[test]
    fn parts_add_up_most_frequent_first() {
        let v = |s: &str| Some(s.to_string());
        let answer = merge(vec![
            vec![("by_actor", vec![(v("bob"), 2), (v("alice"), 1)]), ("by_outcome", vec![(v("success"), 3)])],
            vec![("by_actor", vec![(v("alice"), 2), (v("carol"), 0)]), ("by_outcome", vec![(v("failure"), 1)])],
        ]);
        assert_eq!(answer["by_actor"], serde_json::json!({"alice": 3, "bob": 2}));
        assert_eq!(answer["total"], 4);
        assert_eq!(answer["by_action"], serde_json::json!({}));
    }

    /// The kept counts answer exactly what counting the entries answers,
    /// for ranges on and off hour boundaries, after a replayed batch (its
    /// stored entries not counted twice) and after retention.
    #[tokio::test]
    async fn kept_counts_answer_as_counting_the_entries_does() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::Store::open(&url, false).await.unwrap();
        let crate::store::Store::Sqlite(sqlite) = &store else { unreachable!() };
        let start = micros(T).unwrap();
        let mut chain = crate::entry::Chain::resume(None);
        let sealed: Vec<_> = (0..300i64)
            .map(|i| {
                let mut e = crate::entry::tests::sample(u32::try_from(i).unwrap());
                e.actor = format!("actor{}", i % 7);
                e.action = ["create", "update", "delete"][usize::try_from(i % 3).unwrap()].into();
                if i % 5 == 0 {
                    e.outcome = crate::entry::Outcome::Failure;
                }
                // 300 entries over about 3 days (from 11:00), some on the hour exactly.
                let us = start + i * (HOUR / 4) + if i % 4 == 0 { 0 } else { 17 };
                e.timestamp = format_micros(us);
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(u64::try_from(us).unwrap());
                chain.seal_at(e, at)
            })
            .collect();
        store.insert_batch(&sealed[..200]).await.unwrap();
        // A replay: 100 stored already, 100 new.
        store.insert_batch(&sealed[100..]).await.unwrap();
        let check = |store: &crate::store::Store| {
            let store = store.clone();
            async move {
                let crate::store::Store::Sqlite(sqlite) = &store else { unreachable!() };
                let edges = [
                    None,
                    Some(-HOUR),
                    Some(0),
                    Some(1),
                    Some(HOUR - 1),
                    Some(HOUR),
                    Some(2 * HOUR + 5),
                    Some(13 * HOUR - 1),
                    Some(13 * HOUR),
                    Some(37 * HOUR),
                    Some(37 * HOUR + 1),
                    Some(61 * HOUR + 7),
                    Some(80 * HOUR),
                ];
                for since in edges {
                    for until in edges {
                        let f = Filter {
                            since: since.map(|d| format_micros(start + d)),
                            until: until.map(|d| format_micros(start + d)),
                            ..Filter::default()
                        };
                        let kept = store.stats(&f).await.unwrap();
                        let counted = merge(vec![sqlite.counted(&f).await.unwrap()]);
                        assert_eq!(kept, counted, "since {since:?} until {until:?}");
                    }
                }
            }
        };
        check(&store).await;
        // The migration's backfill (SQL) gives the counts the writer kept (Rust).
        let read = || async {
            let mut rows = Vec::new();
            for (table, unit) in [("audit_stats", "hour"), ("audit_stats_daily", "day")] {
                let sql = format!("SELECT '{table}', dimension, {unit}, value, n FROM {table} ORDER BY 2, 3, 4");
                let all: Vec<(String, String, i64, String, i64)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(sqlite.pool()).await.unwrap();
                rows.extend(all);
            }
            rows
        };
        let kept = read().await;
        assert!(kept.iter().any(|r| r.0 == "audit_stats_daily"));
        sqlx::query("DELETE FROM audit_stats").execute(sqlite.pool()).await.unwrap();
        sqlx::query("DELETE FROM audit_stats_daily").execute(sqlite.pool()).await.unwrap();
        let migrations = [
            include_str!("../../migrations/sqlite/0005_audit_stats.sql"),
            include_str!("../../migrations/sqlite/0006_audit_stats_daily.sql"),
        ];
        for statement in migrations.iter().flat_map(|m| m.split(';')).filter(|s| s.contains("INSERT INTO")) {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string())).execute(sqlite.pool()).await.unwrap();
        }
        assert_eq!(read().await, kept);
        let all = store.stats(&Filter::default()).await.unwrap();
        assert_eq!(all["total"], 300);
        assert_eq!(all["by_outcome"]["failure"], 60);
        // Retention: the deleted entries leave the counts.
        store.delete_before(&sealed[120].entry.id, 50).await.unwrap();
        check(&store).await;
        // Values no kept entry has are gone, not left at zero.
        for table in ["audit_stats", "audit_stats_daily"] {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE n <= 0");
            let zero: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(sqlite.pool()).await.unwrap();
            assert_eq!(zero, 0, "{table}");
        }
        assert_eq!(store.stats(&Filter::default()).await.unwrap()["total"], 180);
        let _ = sqlite;
        store.close().await;
    }

    #[test]
    fn a_batch_is_tallied_by_value_and_hour() {
        let mut a = crate::entry::tests::sample(1);
        a.timestamp = T.into();
        let mut b = a.clone();
        b.timestamp = at(HOUR);
        let counts = tally([&a, &a, &b].into_iter().map(|e| (e.timestamp.as_str(), values_of(e))));
        let h = hour_of(T);
        assert_eq!(counts[&("actor", a.actor.as_str(), h)], 2);
        assert_eq!(counts[&("outcome", a.outcome.as_str(), h + 1)], 1);
        assert_eq!(counts.len(), 8);
    }
}
