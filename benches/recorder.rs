//! Recorder throughput into SQLite: entries of about 1 KiB pushed through the
//! real queue, sealed into the chain, written in batches; prints entries/s.
//!
//! `cargo bench --bench recorder` (ENTRIES=100000 BATCH=500 to change).
//! Diagnostic modes, to see where the time goes: `SEAL_ONLY=1` (sealing and
//! serialising, no database), `INSERT_ONLY=1` (`insert_batch` of sealed
//! entries, no queue), `RAW=1` (the same JSON into a bare two-column table:
//! what SQLite itself manages here), `DROP_INDEXES=name,...` (drop these
//! secondary indexes first; combines with the others). `SINK=webhook`:
//! the same run with a webhook sink forwarding every entry to a receiver in
//! this process (plain HTTP on 127.0.0.1, answering 200); prints the
//! recorder's rate and when the sink had delivered the last entry.

use std::time::Instant;

mod common;

use auditgate::entry::AuditEntry;
use auditgate::recorder::{RecorderConfig, recorder};
use auditgate::store::SqliteStore;
use common::entry;

fn main() {
    // `cargo test --benches` runs benches as smoke tests: keep that quick.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let total: usize =
        std::env::var("ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(if smoke { 2_000 } else { 100_000 });
    let batch: usize = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("bench.db").display())).await.unwrap();
        if let Ok(names) = std::env::var("DROP_INDEXES") {
            for ix in names.split(',') {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {ix}"))).execute(store.pool()).await.unwrap();
            }
        }
        let size = serde_json::to_string(&entry(1)).unwrap().len();
        let config = RecorderConfig {
            queue: total,
            batch,
            flush_interval: std::time::Duration::from_millis(50),
            spool: dir.path().join("bench.spool"),
            max_pending: total,
            fail_mode: auditgate::config::FailMode::Open,
            durability: auditgate::recorder::Durability::Async,
        };
        let (rec, writer) = recorder(auditgate::store::Store::Sqlite(store.clone()), "bench", &config).await.unwrap();
        if std::env::var_os("INSERT_ONLY").is_some() {
            let mut chain = auditgate::entry::Chain::resume(None);
            let entries: Vec<_> = (0..total).map(|i| chain.seal(entry(i))).collect();
            let started = Instant::now();
            for chunk in entries.chunks(batch) {
                store.insert_batch(chunk).await.unwrap();
            }
            println!("insert_batch only: {:.0} entries/s", total as f64 / started.elapsed().as_secs_f64());
            return;
        }
        if std::env::var_os("RAW").is_some() {
            let pool = store.pool();
            sqlx::query("CREATE TABLE raw (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, entry TEXT NOT NULL)")
                .execute(pool)
                .await
                .unwrap();
            let mut chain = auditgate::entry::Chain::resume(None);
            let rows: Vec<(String, std::sync::Arc<str>)> = (0..total)
                .map(|i| {
                    let sealed = chain.seal(entry(i));
                    (sealed.entry.id, sealed.json)
                })
                .collect();
            let started = Instant::now();
            for chunk in rows.chunks(batch) {
                let mut tx = pool.begin().await.unwrap();
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO raw (id, entry) ");
                q.push_values(chunk, |mut b, (id, json)| {
                    b.push_bind(id.clone()).push_bind(json.clone());
                });
                q.build().execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }
            let secs = started.elapsed().as_secs_f64();
            println!("raw two-column inserts: {:.0} rows/s", total as f64 / secs);
            return;
        }
        if std::env::var_os("SEAL_ONLY").is_some() {
            let mut chain = auditgate::entry::Chain::resume(None);
            let entries: Vec<AuditEntry> = (0..total).map(entry).collect();
            let started = Instant::now();
            let bytes: usize = entries.into_iter().map(|e| chain.seal(e).json.len()).sum();
            let sealed = started.elapsed().as_secs_f64();
            println!("seal (hash and stored text) {:.1} µs/entry ({bytes} bytes)", sealed * 1e6 / total as f64);
            return;
        }
        let entries: Vec<AuditEntry> = (0..total).map(entry).collect();
        let delivered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sinks = match std::env::var("SINK").as_deref() {
            Ok("webhook") => {
                let addr = receiver(delivered.clone()).await;
                let raw = auditgate::sink::RawSink {
                    name: "bench".into(),
                    kind: "webhook".into(),
                    url: format!("http://{addr}/ingest"),
                    format: "native".into(),
                    secret: Some("bench-secret".into()),
                    batch: 100,
                    ca: None,
                    headers: Default::default(),
                };
                let configs = auditgate::sink::validate_sinks(&[raw]).unwrap();
                let prepared = auditgate::sink::Sinks::prepare(&configs, None).unwrap();
                let store = auditgate::store::Store::Sqlite(store.clone());
                Some(auditgate::sink::Sinks::start(prepared, &store, rec.stats(), batch))
            }
            Ok(other) => panic!("SINK={other}: only `webhook`"),
            Err(_) => None,
        };
        let started = Instant::now();
        let writing = tokio::spawn(writer.run());
        for e in entries {
            rec.record(e, None).await.expect("the queue holds every entry");
        }
        drop(rec);
        writing.await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let (stored, _) =
            auditgate::store::Store::Sqlite(store.clone()).list(&Default::default(), None, 1).await.unwrap();
        assert!(!stored.is_empty());
        let wal = std::fs::metadata(dir.path().join("bench.db-wal")).map_or(0, |m| m.len());
        let db = std::fs::metadata(dir.path().join("bench.db")).map_or(0, |m| m.len());
        println!(
            "recorder → SQLite: {total} entries of {size} bytes, batch {batch}: {secs:.2} s, {:.0} entries/s \
             (database {} MiB, WAL {} MiB)",
            total as f64 / secs,
            db >> 20,
            wal >> 20
        );
        if let Some(sinks) = sinks {
            let at_end = delivered.load(std::sync::atomic::Ordering::Relaxed);
            while delivered.load(std::sync::atomic::Ordering::Relaxed) < total as u64 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            println!(
                "webhook sink: {at_end} delivered when the recorder finished, all {total} after {:.2} s",
                started.elapsed().as_secs_f64()
            );
            sinks.stop().await;
        }
    });
}

/// A webhook receiver counting the NDJSON lines it is sent.
async fn receiver(lines: std::sync::Arc<std::sync::atomic::AtomicU64>) -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let lines = lines.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let lines = lines.clone();
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let n = body.iter().filter(|&&b| b == b'\n').count() as u64;
                        lines.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    addr
}
