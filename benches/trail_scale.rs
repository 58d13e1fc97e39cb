//! The trail at scale (issue 13): fills a store with a realistic trail
//! (skewed actors and resources, every action and outcome, 90 days of
//! timestamps, ids sealed at their entry's time) and times what an auditor
//! asks: every filter alone and some combined, deep paging, a resource's
//! history and state, the stats, an NDJSON export and verify.
//!
//! `cargo bench --bench trail_scale` with `ENTRIES` (default 1,000,000),
//! `DATABASE` (default a SQLite file under target/scale, kept between runs:
//! a store that already holds `ENTRIES` is not filled again; a
//! `postgres://…` URL works too). `cargo test --benches` runs it once on
//! 3,000 entries. Prints one line a query: p50 and p95 of its runs in ms.
//! `ONLY=since,stats` times only what is named with one of those words;
//! `INDEX_STEP` sets the entries a search-index step takes (default 4,096;
//! the recorder takes 256).

use std::time::{Duration, Instant, SystemTime};

use auditgate::entry::{AuditEntry, Chain, Outcome};
use auditgate::identity::ActorSource;
use auditgate::store::{Filter, Store};
use serde_json::json;

const BATCH: usize = 1_000;
const DAYS: u64 = 90;

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let total: usize =
        std::env::var("ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(if smoke { 3_000 } else { 1_000_000 });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scale");
    std::fs::create_dir_all(&dir).unwrap();
    let url = std::env::var("DATABASE")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.join(format!("trail-{total}.db")).display()));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        if smoke {
            let _ = std::fs::remove_file(dir.join(format!("trail-{total}.db")));
        }
        let store = Store::open(&url, false).await.unwrap();
        let (have, _) = store.list(&Filter::default(), None, 1).await.unwrap();
        let end = SystemTime::now() - Duration::from_secs(3600);
        if have.is_empty() {
            fill(&store, total, end).await;
        } else {
            println!("trail_scale: {url} already filled; timing it");
        }
        index_text(&store).await;
        measure(&store, smoke, end).await;
        store.close().await;
    });
}

/// Writes `total` entries, evenly spread over the DAYS before `end`.
async fn fill(store: &Store, total: usize, end: SystemTime) {
    let started = Instant::now();
    let span = Duration::from_secs(DAYS * 86_400);
    let step = span / u32::try_from(total).unwrap();
    let first = end - span;
    let mut dice = Dice::new(7);
    let mut chain = Chain::resume(None);
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..total {
        let at = first + step * u32::try_from(i).unwrap();
        let stamp = auditgate::entry::format_time(at.into());
        batch.push(chain.seal_at(realistic(&mut dice, stamp), at));
        if batch.len() == BATCH || i + 1 == total {
            store.insert_batch(&batch).await.unwrap();
            batch.clear();
        }
        if (i + 1) % 500_000 == 0 {
            println!(
                "trail_scale: {} entries written, {:.0}/s",
                i + 1,
                (i + 1) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    println!("trail_scale: filled {total} entries in {:.1} s", started.elapsed().as_secs_f64());
}

/// Brings the `q` search's index up to date (a trail written before it
/// existed, or by `fill` faster than the recorder's idle time would index).
async fn index_text(store: &Store) {
    let size = std::env::var("INDEX_STEP").ok().and_then(|v| v.parse().ok()).unwrap_or(4096);
    let started = Instant::now();
    let mut n = 0;
    loop {
        let step = store.index_text(size).await.unwrap();
        if step == 0 {
            break;
        }
        n += step;
    }
    if n > 0 {
        let secs = started.elapsed().as_secs_f64();
        println!("trail_scale: indexed {n} entries for search in {secs:.1} s ({:.0}/s)", n as f64 / secs);
    }
}

/// Times each query `runs` times (a query of seconds three times); prints
/// p50 and p95 in ms.
async fn measure(store: &Store, smoke: bool, end: SystemTime) {
    let runs = if smoke { 2 } else { 21 };
    let day = |back: u64| auditgate::entry::format_time((end - Duration::from_secs(back * 86_400)).into());
    let (yesterday, week_ago, today) = (day(1), day(7), day(0));
    let filters: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no filter", vec![]),
        ("action=delete", vec![("action", "delete".into())]),
        ("action=approve (custom, 3%)", vec![("action", "approve".into())]),
        ("resource_type=payment", vec![("resource_type", "payment".into())]),
        ("resource_type+resource_id", vec![("resource_type", "user".into()), ("resource_id", "17".into())]),
        ("actor (busy)", vec![("actor", "user000".into())]),
        ("actor (rare)", vec![("actor", "user431".into())]),
        ("client_ip address", vec![("client_ip", "10.1.3.77".into())]),
        ("client_ip /24", vec![("client_ip", "10.2.5.0/24".into())]),
        ("outcome=failure", vec![("outcome", "failure".into())]),
        ("outcome=error", vec![("outcome", "error".into())]),
        ("status=403", vec![("status", "403".into())]),
        ("since+until (one day)", vec![("since", week_ago.clone()), ("until", day(6))]),
        ("q (rare: an email)", vec![("q", "user431@example.com".into())]),
        ("q (common: closed)", vec![("q", "closed".into())]),
        ("q (some: invoices/29)", vec![("q", "invoices/29".into())]),
        ("q (nothing matches)", vec![("q", "no such text".into())]),
        ("q (two characters)", vec![("q", "zq".into())]),
        ("configuration", vec![("configuration", "Configuration 3".into())]),
        ("instance", vec![("instance", "scale-1".into())]),
        ("actor+outcome=error", vec![("actor", "user007".into()), ("outcome", "error".into())]),
        (
            "type+action+since",
            vec![("resource_type", "invoice".into()), ("action", "delete".into()), ("since", yesterday.clone())],
        ),
        ("actor+q", vec![("actor", "user002".into()), ("q", "open".into())]),
        (
            "outcome+status+since",
            vec![("outcome", "failure".into()), ("status", "422".into()), ("since", week_ago.clone())],
        ),
    ];
    let only = std::env::var("ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|w| name.contains(w));
    println!("{:<34} {:>9} {:>9} {:>7}", "query (a page of 50)", "p50 ms", "p95 ms", "found");
    for (name, pairs) in filters.iter().filter(|(name, _)| wanted(name)) {
        let mut f = Filter::default();
        for (k, v) in pairs {
            f.set(k, v).unwrap();
        }
        let (times, found) = timed(runs, || async { store.list(&f, None, 50).await.unwrap().0.len() }).await;
        report(name, &times, Some(found));
    }
    if wanted("q (two characters), pages") {
        // A search no index narrows, every page (each reads a bounded
        // stretch of the trail) to the end.
        let mut two = Filter::default();
        two.set("q", "zq").unwrap();
        let (times, pages) = timed(runs.min(3), || async {
            let (mut cursor, mut pages) = (None::<String>, 0);
            loop {
                pages += 1;
                let (_, next) = store.list(&two, cursor.as_deref(), 50).await.unwrap();
                let Some(next) = next else { return pages };
                cursor = Some(next);
            }
        })
        .await;
        report(&format!("q (two characters), {pages} pages"), &times, None);
    }
    if wanted("20 pages deep") {
        // Twenty pages deep, following the cursor.
        let times = timed(runs.min(5), || async {
            let mut cursor: Option<String> = None;
            for _ in 0..20 {
                let (page, _) = store.list(&Filter::default(), cursor.as_deref(), 50).await.unwrap();
                cursor = page.last().map(|e| e.id.clone());
            }
        })
        .await
        .0;
        report("20 pages deep (whole walk)", &times, None);
    }
    if wanted("history") {
        let times = timed(runs, || async {
            store.history("user", "3", None, 1000).await.unwrap();
        })
        .await
        .0;
        report("history of a busy resource (a page of 1,000)", &times, None);
    }
    if wanted("state as of") {
        let times = timed(runs, || async {
            store.state_at("user", "3", &yesterday).await.unwrap();
        })
        .await
        .0;
        report("state as of yesterday", &times, None);
    }
    if wanted("stats") {
        for (name, since) in [("stats (all time)", None), ("stats (last 7 days)", Some(week_ago.clone()))] {
            let mut f = Filter::default();
            if let Some(s) = since {
                f.set("since", &s).unwrap();
                f.set("until", &today).unwrap();
            }
            let times = timed(runs.min(5), || async {
                store.stats(&f).await.unwrap();
            })
            .await
            .0;
            report(name, &times, None);
        }
    }
    if wanted("export") {
        // Export: every entry as NDJSON, page by page, as the API does.
        let started = Instant::now();
        let (mut bytes, mut cursor) = (0usize, None::<String>);
        loop {
            let (page, next) = store.list(&Filter::default(), cursor.as_deref(), 500).await.unwrap();
            for e in &page {
                bytes += serde_json::to_vec(e).unwrap().len() + 1;
            }
            if next.is_none() {
                break;
            }
            cursor = next;
        }
        let secs = started.elapsed().as_secs_f64();
        println!("{:<34} {:>9.0} ms, {:.0} MB/s", "export NDJSON (all)", secs * 1e3, bytes as f64 / secs / 1e6);
    }
    if wanted("verify") {
        let started = Instant::now();
        let v = store.verify().await.unwrap();
        assert!(v.ok, "the filled trail verifies");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:<34} {:>9.0} ms, {} entries, {:.0} entries/ms",
            "verify",
            secs * 1e3,
            v.checked,
            v.checked as f64 / secs / 1e3
        );
    }
}

/// Runs `f` `runs` times: the sorted times in ms, and what the last run answered.
async fn timed<F, Fut, T>(runs: usize, mut f: F) -> (Vec<f64>, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(f().await);
        times.push(started.elapsed().as_secs_f64() * 1e3);
        // A query of seconds (a scan) is timed three times, not 21.
        if times.len() == 3 && times.iter().all(|ms| *ms > 1000.0) {
            break;
        }
    }
    times.sort_by(f64::total_cmp);
    (times, last.expect("at least one run"))
}

fn report(name: &str, sorted: &[f64], found: Option<usize>) {
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let found = found.map_or(String::new(), |n| n.to_string());
    println!("{name:<34} {:>9.1} {:>9.1} {found:>7}", pick(0.5), pick(0.95));
}

/// A small deterministic generator (xorshift64*): the same trail each run.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(seed.max(1))
    }

    pub fn roll(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 0..n
    pub fn below(&mut self, n: u64) -> u64 {
        self.roll() % n
    }

    /// 0..n, small values far more often (about Zipf's law): a few actors
    /// and resources do most of the work, as in a real trail.
    pub fn skewed(&mut self, n: u64) -> u64 {
        let r = (self.roll() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(r) - 1.0) as u64 % n
    }
}

/// The resource types of the realistic trail.
pub const TYPES: [&str; 12] = [
    "user", "order", "invoice", "product", "customer", "ticket", "project", "task", "comment", "payment", "role",
    "session",
];

/// A realistic entry: skewed actors (of 500) and resources, a mix of
/// actions and outcomes, addresses from a few networks, 1 in 5 under a
/// named configuration, with the snapshots its action takes (no after for
/// a delete, no before for a create, none for a read or login).
pub fn realistic(dice: &mut Dice, timestamp: String) -> AuditEntry {
    let kind = TYPES[dice.skewed(TYPES.len() as u64) as usize];
    let id = dice.skewed(200_000);
    let actor = format!("user{:03}", dice.skewed(500));
    let (action, method) = match dice.below(100) {
        0..=19 => ("create", "POST"),
        20..=74 => ("update", "PATCH"),
        75..=84 => ("delete", "DELETE"),
        85..=92 => ("read", "GET"),
        93..=96 => ("login", "POST"),
        _ => ("approve", "POST"),
    };
    let (outcome, status) = match dice.below(100) {
        0..=89 => (
            Outcome::Success,
            if action == "create" {
                201
            } else if action == "delete" {
                204
            } else {
                200
            },
        ),
        90..=93 => (Outcome::Failure, 404),
        94..=96 => (Outcome::Failure, 403),
        97..=98 => (Outcome::Failure, 422),
        _ => (Outcome::Error, 502),
    };
    let client = format!("10.{}.{}.{}", dice.below(4), dice.below(8), 1 + dice.below(250));
    let state = |v: u64| {
        let status = ["new", "open", "closed"][(v % 3) as usize];
        json!({"id": id, "name": format!("{kind} {id}"), "email": format!("{actor}@example.com"), "status": status,
               "total": v % 10_000, "tags": ["a", "b"], "note": "lorem ipsum dolor sit amet ".repeat(1 + (v % 4) as usize)})
    };
    let v = dice.roll();
    let (before, after) = match action {
        "create" => (None, Some(state(v))),
        "delete" => (Some(state(v)), None),
        "read" | "login" => (None, None),
        _ => (Some(state(v)), Some(state(v.wrapping_add(1 + dice.below(2))))),
    };
    let changes = auditgate::diff::diff(before.as_ref(), after.as_ref());
    let configuration = (dice.below(5) == 0).then(|| format!("Configuration {}", dice.below(6)));
    let path = if action == "create" { format!("/api/v1/{kind}s/") } else { format!("/api/v1/{kind}s/{id}/") };
    AuditEntry {
        id: String::new(),
        timestamp,
        request_id: format!("{:016x}", dice.roll()),
        action: action.into(),
        outcome,
        method: method.into(),
        path,
        query: String::new(),
        status,
        duration_ms: (dice.below(5000) as f64) / 100.0,
        resource_type: kind.into(),
        resource_id: Some(id.to_string()),
        path_resource_id: None,
        parents: Vec::new(),
        actor,
        actor_source: ActorSource::Jwt,
        actor_verified: true,
        client_ip: client.clone(),
        peer_ip: "127.0.0.1".into(),
        forwarded_for: vec![client],
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
        configuration,
        before,
        after,
        changes,
        unapplied: Some(None),
        request_body: None,
        snapshot_error: None,
        snapshot_format: None,
        instance: "scale-1".into(),
        chain_version: None,
        content_digest: None,
        erased: false,
        erasure: None,
        prev_hash: String::new(),
        hash: String::new(),
    }
}
