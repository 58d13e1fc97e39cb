//! Operations endpoints: health, readiness, verify, stats, metrics, and the
//! OpenAPI document.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::entry::Verification;
use crate::store::Filter;

/// `GET /healthz`: the process answers.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: not shutting down, and the store answers.
pub(super) async fn readyz(State(s): State<Arc<ApiState>>) -> (StatusCode, Json<Value>) {
    if s.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "shutting down"})))
    } else if s.store.ping().await {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "store unavailable"})))
    }
}

/// `GET /api/v1/verify`: every instance's hash chain.
pub(super) async fn verify(State(s): State<Arc<ApiState>>) -> Result<Json<Verification>, ApiError> {
    Ok(Json(s.store.verify().await?))
}

/// `GET /api/v1/stats?since=&until=`: counts by action, type, actor, outcome.
pub(super) async fn stats(
    State(s): State<Arc<ApiState>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut filter = Filter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "since" | "until" => filter.set(&k, &v)?,
            _ => {
                return Err(ApiError::BadField {
                    field: "query",
                    reason: format!("unknown parameter `{k}` (since, until)"),
                });
            }
        }
    }
    Ok(Json(s.store.stats(&filter).await?))
}

/// `GET /api/v1/openapi.json`.
pub(super) async fn openapi(State(s): State<Arc<ApiState>>) -> impl IntoResponse {
    let document = s.openapi.get_or_init(|| super::openapi::document(&s.actions));
    ([(header::CONTENT_TYPE, "application/json")], document.clone())
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(s): State<Arc<ApiState>>) -> impl IntoResponse {
    let r = s.recorder.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    let counters = [
        ("auditgate_entries_queued_total", "Audit entries accepted by the recorder queue.", load(&r.queued)),
        (
            "auditgate_entries_written_total",
            "Audit entries committed to the store (replayed ones included).",
            load(&r.written),
        ),
        (
            "auditgate_entries_dropped_total",
            "Audit entries given up: nowhere to write them (fail_mode open), or the recorder had stopped.",
            load(&r.dropped),
        ),
        (
            "auditgate_store_write_errors_total",
            "Batches the store refused (spooled, then replayed).",
            load(&r.write_errors),
        ),
        ("auditgate_batches_total", "Batches the recorder delivered.", load(&r.batches)),
        (
            "auditgate_entries_spooled_total",
            "Audit entries written to the spool because the store refused them.",
            load(&r.spooled),
        ),
        (
            "auditgate_entries_replayed_total",
            "Audit entries replayed from the spool into the store.",
            load(&r.replayed),
        ),
        ("auditgate_spool_write_errors_total", "Batches the spool refused.", load(&r.spool_errors)),
        ("auditgate_spool_torn_bytes_total", "Bytes of a torn spool tail cut off at start.", load(&r.spool_torn_bytes)),
        (
            "auditgate_spool_rejected_total",
            "Spool lines refused at start (forged, altered or not this chain's): moved to the .rejected file.",
            load(&r.spool_rejected),
        ),
        (
            "auditgate_search_indexed_total",
            "Audit entries added to the q search's index (SQLite), by the recorder while idle.",
            load(&r.indexed),
        ),
        (
            "auditgate_search_index_steps_total",
            "Steps the recorder took to fill the q search's index (one short transaction each).",
            load(&r.index_steps),
        ),
        (
            "auditgate_shared_lock_errors_total",
            "Resource turns taken without the store's lock across instances, because it failed.",
            load(&s.shared_lock_errors),
        ),
    ];
    for (name, help, value) in counters {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
    }
    let gauges = [
        (
            "auditgate_queue_depth",
            "Audit entries in the recorder queue.",
            load(&r.queued).saturating_sub(load(&r.taken)),
        ),
        ("auditgate_spool_entries", "Audit entries in the spool, waiting for replay.", load(&r.spool_waiting)),
        (
            "auditgate_audits_pending",
            "Audited requests between their start and their entry being queued (bounded by recorder.max_pending).",
            s.recorder.pending() as u64,
        ),
        (
            "auditgate_recorder_stuck",
            "1 while the recorder can write neither to the store nor to the spool.",
            u64::from(r.stuck.load(Ordering::Relaxed)),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
    }
    let sizes: Vec<u64> = r.batch_sizes.iter().map(load).collect();
    let histogram = Histogram { bounds: &crate::recorder::BATCH_BUCKETS.map(|b| b as f64), counts: &sizes };
    let batches = load(&r.batches);
    histogram.write(
        &mut out,
        "auditgate_batch_entries",
        "Entries a recorder batch held.",
        batches,
        load(&r.batch_entries),
    );
    if let Some(tls) = &s.tls_handshakes {
        write_handshakes(&mut out, tls);
    }
    write_sinks(&mut out, &s.sinks);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// Each sink's counters and lag, labelled by its name.
fn write_sinks(out: &mut String, sinks: &[Arc<crate::sink::SinkStats>]) {
    if sinks.is_empty() {
        return;
    }
    type Read = fn(&crate::sink::SinkStats) -> u64;
    let series: [(&str, &str, &str, Read); 4] = [
        ("auditgate_sink_sent_total", "counter", "Entries a sink confirmed delivered.", |s| {
            s.sent.load(Ordering::Relaxed)
        }),
        ("auditgate_sink_retries_total", "counter", "Delivery attempts that followed a failed one.", |s| {
            s.retried.load(Ordering::Relaxed)
        }),
        ("auditgate_sink_failures_total", "counter", "Delivery attempts that failed.", |s| {
            s.failed.load(Ordering::Relaxed)
        }),
        (
            "auditgate_sink_lag_seconds",
            "gauge",
            "Age of the oldest entry a sink has not yet delivered (0 when none waits; on the instance forwarding it).",
            |s| s.lag_ms.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, read) in series {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for sink in sinks {
            let value = read(sink);
            if name.ends_with("_seconds") {
                let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", sink.name, value as f64 / 1000.0);
            } else {
                let _ = writeln!(out, "{name}{{sink=\"{}\"}} {value}", sink.name);
            }
        }
    }
}

/// The TLS handshake metrics: time of the completed ones, and those that
/// failed (not TLS, nothing in common, a bad record) or ran out of time.
fn write_handshakes(out: &mut String, tls: &crate::tls::HandshakeStats) {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let buckets: Vec<u64> = tls.buckets.iter().map(load).collect();
    let histogram = Histogram { bounds: &crate::tls::HANDSHAKE_BUCKETS, counts: &buckets };
    let seconds = load(&tls.micros) as f64 / 1e6;
    let help = "Time of completed TLS handshakes, both ports.";
    histogram.write(out, "auditgate_tls_handshake_seconds", help, load(&tls.completed), seconds);
    let name = "auditgate_tls_handshake_failures_total";
    let _ = write!(
        out,
        "# HELP {name} TLS handshakes that did not complete, both ports: refused (not TLS, nothing in common, \
         a bad record) or out of time (header_read_timeout).\n# TYPE {name} counter\n\
         {name}{{reason=\"refused\"}} {}\n{name}{{reason=\"timeout\"}} {}\n",
        load(&tls.failed),
        load(&tls.timed_out)
    );
}

/// A Prometheus histogram: cumulative counts within each upper bound.
struct Histogram<'a> {
    bounds: &'a [f64],
    counts: &'a [u64],
}

impl Histogram<'_> {
    /// Writes it as `name`, with `count` observations summing to `sum`.
    fn write(&self, out: &mut String, name: &str, help: &str, count: u64, sum: impl std::fmt::Display) {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
        for (bound, n) in self.bounds.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = write!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}\n");
    }
}
