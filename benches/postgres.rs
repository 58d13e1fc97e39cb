//! Recorder throughput into PostgreSQL, and the batching methods compared on
//! the same table: entries of about 1 KiB, `BATCH` rows a transaction, each
//! method on a fresh database. Prints one line per method: entries a
//! second, and the CPU time per entry of the server's processes and of this
//! one (the figures that hold up on a shared, noisy box):
//!
//! - `insert_batch (UNNEST)`: the store's own method (one parameter per
//!   column, whatever the batch size);
//! - `multi-row VALUES` and `COPY (text)`: the same rows written the other
//!   ways (COPY through a temporary table, which could skip entries already
//!   stored as a replay must, and straight into the table, which cannot);
//! - `recorder, 1 instance` and `recorder, 2 instances`: the real queue,
//!   chain and writer end to end, one instance or two on one database.
//!
//! Needs a server: `SERVER=postgres://…/postgres cargo bench --bench postgres`
//! (`scripts/bench-postgres.sh` starts one). Without `SERVER` it says so and
//! measures nothing. `ENTRIES` (default 100000), `BATCH` (1000).

mod common;

use std::time::Instant;

use auditgate::entry::{Chain, Sealed};
use auditgate::recorder::{RecorderConfig, recorder};
use auditgate::store::Store;
use common::entry;
use sqlx::Connection;

/// The columns the store writes, in order.
const COLUMNS: &str = "id, timestamp, instance, action, outcome, status, configuration, resource_type, resource_id, \
                       actor, client_ip_key, path, changes, unapplied, hash, entry";

fn main() {
    let Ok(server) = std::env::var("SERVER") else {
        println!("postgres bench: SERVER is not set (scripts/bench-postgres.sh sets it); nothing measured");
        return;
    };
    let smoke = !std::env::args().any(|a| a == "--bench");
    let total: usize =
        std::env::var("ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(if smoke { 2_000 } else { 100_000 });
    let batch: usize = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let size = serde_json::to_string(&entry(1)).unwrap().len();
        println!("{total} entries of {size} bytes, {batch} a batch");
        println!("{:<28} {:>8} {:>16} {:>16}", "method", "entries/s", "server µs/entry", "client µs/entry");
        let report = |what: &str, (started, server, client): (Instant, u64, u64)| {
            let per_entry = |ticks: u64| ticks as f64 * 1e6 / ticks_per_second() / total as f64;
            println!(
                "{what:<28} {:>8.0} {:>16.1} {:>16.1}",
                total as f64 / started.elapsed().as_secs_f64(),
                per_entry(server_ticks() - server),
                per_entry(own_ticks() - client)
            );
        };

        let entries = sealed(total, "bench");
        // Unmeasured: a new cluster creates its WAL files and fills its
        // caches on its first writes, which would count against the first
        // method.
        let warm = fresh(&server).await;
        for chunk in entries.chunks(batch) {
            warm.insert_batch(chunk).await.unwrap();
        }

        let store = fresh(&server).await;
        let started = clocks();
        for chunk in entries.chunks(batch) {
            store.insert_batch(chunk).await.unwrap();
        }
        report("insert_batch (UNNEST)", started);

        let store = fresh(&server).await;
        let Store::Postgres(pg) = &store else { unreachable!() };
        let started = clocks();
        // 16 columns: at most 4,095 rows fit PostgreSQL's 65,535 parameters.
        for chunk in entries.chunks(batch.min(4_095)) {
            let mut tx = pg.pool().begin().await.unwrap();
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!("INSERT INTO audit_log ({COLUMNS}) "));
            q.push_values(chunk, |mut b, Sealed { entry: e, json }| {
                b.push_bind(e.id.clone())
                    .push_bind(e.timestamp.clone())
                    .push_bind(e.instance.clone())
                    .push_bind(e.action.clone())
                    .push_bind(e.outcome.as_str())
                    .push_bind(i32::from(e.status))
                    .push_bind(e.configuration.clone())
                    .push_bind(e.resource_type.clone())
                    .push_bind(e.resource_id.clone())
                    .push_bind(e.actor.clone())
                    .push_bind(vec![0u8; 16])
                    .push_bind(e.path.clone())
                    .push_bind(serde_json::to_string(&e.changes).unwrap())
                    .push_bind(0i32)
                    .push_bind(e.hash.clone())
                    .push_bind(json.to_string());
            });
            q.build().execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        report("multi-row VALUES", started);

        for staged in [true, false] {
            let store = fresh(&server).await;
            let Store::Postgres(pg) = &store else { unreachable!() };
            let started = clocks();
            for chunk in entries.chunks(batch) {
                copy(pg.pool(), chunk, staged).await;
            }
            report(if staged { "COPY (text), via temp table" } else { "COPY (text), straight in" }, started);
        }

        for instances in [1usize, 2] {
            let store = fresh(&server).await;
            let dir = tempfile::tempdir().unwrap();
            let per = total / instances;
            // Built before the clock starts, as in benches/recorder.rs.
            let mut made: Vec<Vec<auditgate::entry::AuditEntry>> = (0..instances)
                .map(|n| {
                    (0..per)
                        .map(|i| {
                            let mut e = entry(n * per + i);
                            e.instance = format!("bench-{n}");
                            e
                        })
                        .collect()
                })
                .collect();
            let started = clocks();
            let runs = (0..instances).map(|n| {
                let (store, dir) = (store.clone(), dir.path().to_path_buf());
                let entries = std::mem::take(&mut made[n]);
                async move {
                    let config = RecorderConfig {
                        queue: per,
                        batch,
                        flush_interval: std::time::Duration::from_millis(50),
                        spool: dir.join(format!("bench-{n}.spool")),
                        max_pending: per,
                        fail_mode: auditgate::config::FailMode::Open,
                        durability: auditgate::recorder::Durability::Async,
                    };
                    let (rec, writer) = recorder(store, &format!("bench-{n}"), &config).await.unwrap();
                    let writing = tokio::spawn(writer.run());
                    for e in entries {
                        rec.record(e, None).await.expect("the queue holds every entry");
                    }
                    drop(rec);
                    writing.await.unwrap();
                }
            });
            futures_util::future::join_all(runs).await;
            report(&format!("recorder, {instances} instance(s)"), started);
            let verdict = store.verify().await.unwrap();
            assert!(verdict.ok && verdict.checked == (per * instances) as u64, "{verdict:?}");
        }
    });
}

/// One batch by COPY in text format, in one transaction: `staged`, through
/// a temporary table and `INSERT … ON CONFLICT DO NOTHING` (skips stored
/// entries, as a replay needs); else straight into `audit_log` (fails on
/// one already stored).
async fn copy(pool: &sqlx::PgPool, chunk: &[Sealed], staged: bool) {
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let table = if staged { "incoming" } else { "audit_log" };
    if staged {
        sqlx::query("CREATE TEMPORARY TABLE incoming (LIKE audit_log) ON COMMIT DROP").execute(&mut *tx).await.unwrap();
    }
    let mut copy = tx.copy_in_raw(&format!("COPY {table} ({COLUMNS}) FROM STDIN")).await.unwrap();
    let mut text = String::with_capacity(chunk.len() * 1_600);
    for Sealed { entry: e, json } in chunk {
        let fields = [
            e.id.as_str(),
            &e.timestamp,
            &e.instance,
            &e.action,
            e.outcome.as_str(),
            &e.status.to_string(),
            "\\N",
            &e.resource_type,
            e.resource_id.as_deref().unwrap_or("\\N"),
            &e.actor,
            "\\\\x00000000000000000000000000000000",
            &e.path,
            &copy_escape(&serde_json::to_string(&e.changes).unwrap()),
            "0",
            &e.hash,
            &copy_escape(json),
        ];
        text.push_str(&fields.join("\t"));
        text.push('\n');
    }
    copy.send(text.as_bytes()).await.unwrap();
    copy.finish().await.unwrap();
    if staged {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_log ({COLUMNS}) SELECT {COLUMNS} FROM incoming ON CONFLICT (id) DO NOTHING"
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// The wall clock, and the CPU time so far of the server's processes and
/// of this one (the box is shared and noisy: CPU per entry holds up where
/// entries per second swing).
fn clocks() -> (Instant, u64, u64) {
    (Instant::now(), server_ticks(), own_ticks())
}

/// CPU ticks (user + system) of one process from its `/proc/PID/stat`.
fn ticks_of(stat: &str) -> u64 {
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    fields.get(11).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU ticks of every `postgres` process on this machine (the server the
/// bench scripts start here; its backends come and go, their time is
/// counted while they run).
fn server_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .map(|stat| ticks_of(&stat))
        .sum()
}

fn own_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat").map_or(0, |s| ticks_of(&s))
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// `n` entries of one chain.
fn sealed(n: usize, instance: &str) -> Vec<Sealed> {
    let mut chain = Chain::resume(None);
    (0..n)
        .map(|i| {
            let mut e = entry(i);
            e.instance = instance.into();
            chain.seal(e)
        })
        .collect()
}

/// A store on a new, empty database of `server`, after a checkpoint: the
/// writes of the method measured before do not land in this one's time.
async fn fresh(server: &str) -> Store {
    let name = format!("bench_{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    sqlx::query("CHECKPOINT").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    Store::open(&format!("{base}/{name}"), false).await.unwrap()
}

/// A value for COPY's text format: backslash, tab and newlines escaped.
fn copy_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r")
}
