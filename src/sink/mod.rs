//! Forwarding (docs/sinks.md): committed entries sent on to sinks, each with its
//! own task, batches, retries with back-off, and a cursor kept in the store.
//!
//! A sink's cursor is an id per instance: the newest entry of that
//! instance's chain it has delivered. An instance's ids grow in the order
//! its entries are committed (the recorder commits in order, the spool
//! replays before anything newer), so reading each chain on from its
//! cursor misses nothing, however late another instance commits. Each
//! round reads the chains whose head (`chain_head`) is past their cursor,
//! merges them by id and sends the oldest `batch`. Only what the sink
//! confirmed moves the cursor, stored at most once a second while entries
//! flow, at once when none wait, and when auditgate stops (at least once:
//! after a failure, what was sent but not confirmed is sent again; after a
//! crash, up to a second of delivered entries too; the entry `id` tells the
//! copies apart). On a shared store one instance forwards each sink at a
//! time ([`Store::claim_sink`]); the others wait to take over.
//!
//! A new sink starts at the newest entries committed when it first runs
//! (the trail before it is not sent); an instance its cursor does not name
//! yet is read from its first entry.

pub mod ocsf;
mod syslog;
pub mod webhook;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use crate::config::sink::{Format, MAX_BATCH, RawSink, SinkConfig, Target, validate as validate_sinks};

use crate::entry::AuditEntry;
use crate::recorder::RecorderStats;
use crate::store::{SinkClaim, Store, StoreError, StoredEntry};

/// How often an instance that does not forward a sink tries to take it over.
const CLAIM_EVERY: Duration = Duration::from_secs(5);
/// The longest wait between reads when no commit of this instance wakes
/// the sink (other instances' commits).
const POLL: Duration = Duration::from_secs(1);
/// Back-off after failures: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_LAST: Duration = Duration::from_secs(30);
/// How long a syslog connection must stay open after a write before what
/// was written counts as delivered.
const CONFIRM_AFTER: Duration = Duration::from_millis(250);
/// How often the delivered cursor is stored while entries flow (and at
/// once when none wait, or at a stop): a crash sends at most this much again.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// While the recorder is behind (a full batch or more waits in its queue,
/// or its spool replays), a sink sends at most one batch this often: the
/// trail is written first, forwarded after.
const DEFER: Duration = Duration::from_millis(250);
/// How long a stopping sink may take to store its cursor.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A batch stops growing past this many bytes of entries (it holds at
/// least one): entries carry whole snapshots, so `batch` of them can be
/// large.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// The cursor's row that marks a sink as started (no instance is unnamed).
const STARTED: &str = "";

/// A stream a sink writes to: TCP, or TLS over it.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("{0}")]
    Io(std::io::Error),
    #[error("HTTP: {0}")]
    Http(hyper::Error),
    #[error("answered {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
}

/// Why sinks cannot start (a configuration problem: exit 64).
#[derive(Debug, thiserror::Error)]
#[error("sink `{sink}`: {source}")]
pub struct SinkError {
    sink: String,
    source: crate::tls::TlsError,
}

/// How a sink's peer is reached: its host and port, with TLS or not.
#[derive(Clone)]
pub struct Connector {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", if self.tls.is_some() { "tls" } else { "tcp" }, self.host, self.port)
    }
}

impl Connector {
    fn new(host: &str, port: u16, tls: Option<Arc<ClientConfig>>) -> Connector {
        let tls = tls.map(|config| {
            let name = ServerName::try_from(host.to_string())
                .unwrap_or_else(|_| ServerName::try_from("invalid").expect("a DNS name"));
            (tokio_rustls::TlsConnector::from(config), name)
        });
        Connector { host: host.to_string(), port, tls }
    }

    /// A new connection, TLS verified against the sink's trust.
    async fn connect(&self) -> Result<Box<dyn Io>, SendError> {
        let addr = format!("{}:{}", self.host, self.port);
        let error = |source| SendError::Connect { addr: addr.clone(), source };
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(error)?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => Ok(Box::new(tcp) as Box<dyn Io>),
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), tcp).await.map_err(error)?;
                    Ok(Box::new(tls) as Box<dyn Io>)
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect).await.unwrap_or(Err(SendError::Timeout))
    }
}

/// A sink's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub name: String,
    /// Entries delivered (confirmed).
    pub sent: AtomicU64,
    /// Attempts that followed a failed one.
    pub retried: AtomicU64,
    /// Attempts that failed.
    pub failed: AtomicU64,
    /// Age in milliseconds of the oldest entry not yet delivered (0 when
    /// none waits); kept by the instance that forwards the sink.
    pub lag_ms: AtomicU64,
}

/// The running sinks.
#[derive(Debug)]
pub struct Sinks {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Sinks {
    /// Builds each sink's connector (TLS trust read now: a bad CA file is
    /// a configuration error) without starting anything.
    pub fn prepare(configs: &[SinkConfig], upstream_ca: Option<&Path>) -> Result<Vec<Sink>, SinkError> {
        configs
            .iter()
            .map(|c| {
                let trust = |tls: bool| {
                    let (ca, key) = match &c.ca {
                        Some(own) => (Some(own.as_path()), "ca"),
                        None => (upstream_ca, "tls.upstream_ca"),
                    };
                    tls.then(|| crate::tls::client_config(ca, key))
                        .transpose()
                        .map_err(|source| SinkError { sink: c.name.clone(), source })
                };
                let transport = match &c.target {
                    Target::Syslog { host, port, tls } => {
                        Transport::Syslog(syslog::Syslog::new(Connector::new(host, *port, trust(*tls)?)))
                    }
                    Target::Webhook { url, secret, headers } => {
                        let https = url.scheme() == Some(&http::uri::Scheme::HTTPS);
                        let host = url.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
                        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
                        let connector = Connector::new(host, port, trust(https)?);
                        let hook = webhook::Webhook::new(connector, url.clone(), secret.clone(), headers.clone());
                        Transport::Webhook(Box::new(hook))
                    }
                };
                let stats = Arc::new(SinkStats { name: c.name.clone(), ..SinkStats::default() });
                Ok(Sink { name: c.name.clone(), format: c.format, batch: c.batch, transport, stats })
            })
            .collect()
    }

    /// Starts a task for each sink. `behind` is the queue depth from which
    /// the recorder counts as behind (its batch size).
    pub fn start(sinks: Vec<Sink>, store: &Store, recorder: &Arc<RecorderStats>, behind: usize) -> Sinks {
        let (stop, stopping) = watch::channel(false);
        let tasks = sinks
            .into_iter()
            .map(|sink| tokio::spawn(run(sink, store.clone(), recorder.clone(), behind as u64, stopping.clone())))
            .collect();
        Sinks { tasks, stop }
    }

    /// Stops every sink where it is, each storing how far it delivered
    /// (given up after `STOP_WAIT`): what was not delivered goes at the
    /// next start.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_WAIT, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Sinks {
    /// Sinks dropped without `stop` (a runtime shutting down) end at once.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether the sinks were told to stop, or whoever could tell them is gone.
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// One sink: where it sends, and how.
#[derive(Debug)]
pub struct Sink {
    name: String,
    format: Format,
    batch: usize,
    transport: Transport,
    stats: Arc<SinkStats>,
}

#[derive(Debug)]
enum Transport {
    Syslog(syslog::Syslog),
    Webhook(Box<webhook::Webhook>),
}

/// Takes the sink whenever no other instance has it, and forwards until
/// stopped; `behind` is the recorder's queue depth it yields from.
async fn run(mut sink: Sink, store: Store, recorder: Arc<RecorderStats>, behind: u64, mut stop: watch::Receiver<bool>) {
    while !stopping(&stop) {
        let claim = match store.claim_sink(&sink.name).await {
            Ok(SinkClaim::Held(claim)) => claim,
            Ok(SinkClaim::Elsewhere) => {
                let _ = tokio::time::timeout(CLAIM_EVERY, stop.wait_for(|s| *s)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(sink = %sink.name, error = %e, "sink: store unavailable");
                let _ = tokio::time::timeout(CLAIM_EVERY, stop.wait_for(|s| *s)).await;
                continue;
            }
        };
        match forward(&mut sink, &store, &recorder, behind, &mut stop).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(sink = %sink.name, error = %e, "sink: store unavailable, forwarding paused"),
        }
        drop(claim);
        let _ = tokio::time::timeout(BACKOFF_FIRST, stop.wait_for(|s| *s)).await;
    }
}

/// An id per instance.
type Cursor = BTreeMap<String, String>;

/// Where a sink's delivery stands.
#[derive(Debug, Default)]
struct Progress {
    /// In the store.
    saved: Cursor,
    /// Delivered (confirmed); stored at most every `SAVE_EVERY`, when idle,
    /// and when stopped.
    delivered: Cursor,
    /// Handed to the sink: delivered, or (syslog) written and awaiting
    /// confirmation.
    sent: Cursor,
    /// Written batches awaiting confirmation: when, and the cursor each
    /// one reaches.
    unconfirmed: VecDeque<(Instant, Cursor)>,
    /// Attempts failed in a row.
    failures: u32,
    saved_at: Option<Instant>,
    /// When the last batch went out.
    sent_at: Option<Instant>,
}

/// Forwards until stopped (Ok, what was delivered stored) or the store
/// fails.
async fn forward(
    sink: &mut Sink,
    store: &Store,
    recorder: &RecorderStats,
    behind: u64,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut saved: Cursor = store.sink_cursor(&sink.name).await?.into_iter().collect();
    if !saved.contains_key(STARTED) {
        let mut start = store.heads().await?;
        start.push((STARTED.to_string(), STARTED.to_string()));
        store.save_sink_cursor(&sink.name, &start).await?;
        saved = start.into_iter().collect();
    }
    saved.remove(STARTED);
    let mut p = Progress { delivered: saved.clone(), sent: saved.clone(), saved, ..Progress::default() };
    loop {
        let woken = recorder.committed.notified();
        let mut woken = std::pin::pin!(woken);
        woken.as_mut().enable();
        if stopping(stop) {
            return save(sink, store, &mut p).await;
        }
        // What a syslog receiver kept long enough counts as delivered.
        if p.unconfirmed.front().is_some_and(|(at, _)| at.elapsed() >= CONFIRM_AFTER) {
            if sink.alive() {
                while p.unconfirmed.front().is_some_and(|(at, _)| at.elapsed() >= CONFIRM_AFTER) {
                    if let Some((_, c)) = p.unconfirmed.pop_front() {
                        p.delivered = c;
                    }
                }
            } else {
                sink.failed(&mut p, "the receiver closed the connection", stop).await;
                continue;
            }
        }
        if p.saved_at.is_none_or(|at| at.elapsed() >= SAVE_EVERY) {
            save(sink, store, &mut p).await?;
        }
        if let Some(at) = p.sent_at
            && at.elapsed() < DEFER
            && recorder_behind(recorder, behind)
        {
            tokio::select! {
                () = tokio::time::sleep(DEFER - at.elapsed()) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let batch = next_batch(store, &p.sent, sink.batch).await?;
        let Some(oldest) = batch.first().map(|o| &o.stored) else {
            sink.stats.lag_ms.store(0, Ordering::Relaxed);
            save(sink, store, &mut p).await?;
            let wait = match p.unconfirmed.front() {
                Some((at, _)) => CONFIRM_AFTER.saturating_sub(at.elapsed()),
                None => POLL,
            };
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        sink.stats.lag_ms.store(age_ms(&oldest.id), Ordering::Relaxed);
        if p.failures > 0 {
            sink.stats.retried.fetch_add(1, Ordering::Relaxed);
        }
        // Where the batch takes each chain, before its entries are given up.
        let mut reached: Vec<(Arc<str>, String)> = Vec::new();
        for o in batch.iter().rev() {
            if !reached.iter().any(|(i, _)| *i == o.instance) {
                reached.push((o.instance.clone(), o.stored.id.clone()));
            }
        }
        let count = batch.len();
        let lines: Vec<Vec<u8>> = batch.into_iter().map(|o| line(o.stored, sink.format)).collect();
        let sending = async {
            match &mut sink.transport {
                Transport::Syslog(s) => s.send(&lines).await.map(|()| false),
                Transport::Webhook(w) => w.send(&lines).await.map(|()| true),
            }
        };
        let result = tokio::select! {
            r = sending => r,
            _ = stop.changed() => continue,
        };
        p.sent_at = Some(Instant::now());
        match result {
            Ok(confirmed) => {
                if p.failures > 0 {
                    tracing::info!(sink = %sink.name, "sink: delivering again");
                }
                p.failures = 0;
                for (instance, id) in reached {
                    p.sent.insert(instance.to_string(), id);
                }
                sink.stats.sent.fetch_add(count as u64, Ordering::Relaxed);
                if confirmed {
                    p.delivered.clone_from(&p.sent);
                } else {
                    p.unconfirmed.push_back((Instant::now(), p.sent.clone()));
                }
            }
            Err(e) => sink.failed(&mut p, &e.to_string(), stop).await,
        }
    }
}

impl Sink {
    /// Its counters.
    pub fn stats(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }

    /// Whether what was written can still reach the receiver.
    fn alive(&mut self) -> bool {
        match &mut self.transport {
            Transport::Syslog(s) => s.alive(),
            Transport::Webhook(_) => true,
        }
    }

    /// A failed attempt: what was not delivered goes again, after a pause
    /// that doubles with each failure in a row (cut short by a stop).
    async fn failed(&mut self, p: &mut Progress, reason: &str, stop: &mut watch::Receiver<bool>) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        if p.failures == 0 {
            tracing::warn!(sink = %self.name, error = reason, "sink: delivery failed, retrying with back-off");
        }
        p.unconfirmed.clear();
        p.sent.clone_from(&p.delivered);
        let pause = BACKOFF_FIRST.saturating_mul(1 << p.failures.min(8)).min(BACKOFF_LAST);
        p.failures = p.failures.saturating_add(1);
        let _ = tokio::time::timeout(pause, stop.wait_for(|s| *s)).await;
    }
}

/// Whether the recorder is behind: `behind` entries or more wait in its
/// queue, or its spool replays.
fn recorder_behind(recorder: &RecorderStats, behind: u64) -> bool {
    let depth = recorder.queued.load(Ordering::Relaxed).saturating_sub(recorder.taken.load(Ordering::Relaxed));
    depth >= behind || recorder.spool_waiting.load(Ordering::Relaxed) > 0
}

/// Stores the delivered cursor (the instances it moved for).
async fn save(sink: &Sink, store: &Store, p: &mut Progress) -> Result<(), StoreError> {
    let moved: Vec<(String, String)> = p
        .delivered
        .iter()
        .filter(|(i, id)| p.saved.get(*i) != Some(id))
        .map(|(i, id)| (i.clone(), id.clone()))
        .collect();
    if !moved.is_empty() {
        store.save_sink_cursor(&sink.name, &moved).await?;
        p.saved.clone_from(&p.delivered);
    }
    p.saved_at = Some(Instant::now());
    Ok(())
}

/// An entry to forward, and the chain it belongs to.
#[derive(Debug)]
struct Outgoing {
    instance: Arc<str>,
    stored: StoredEntry,
}

/// The oldest `limit` entries past the cursor, across every instance's
/// chain (one read when the store holds one chain).
async fn next_batch(store: &Store, cursor: &Cursor, limit: usize) -> Result<Vec<Outgoing>, StoreError> {
    let heads = store.heads().await?;
    let only = heads.len() == 1;
    let mut batch = Vec::new();
    for (instance, head) in heads {
        let after = cursor.get(&instance);
        if after.is_some_and(|a| *a >= head) {
            continue;
        }
        let filter = (!only).then_some(instance.as_str());
        let rows = store.entries_after(filter, after.map(String::as_str), limit as u32).await?;
        let instance: Arc<str> = instance.into();
        batch.extend(rows.into_iter().map(|stored| Outgoing { instance: instance.clone(), stored }));
    }
    batch.sort_unstable_by(|a, b| a.stored.id.cmp(&b.stored.id));
    batch.truncate(within_bytes(&batch, limit));
    Ok(batch)
}

/// How many of the batch's first entries to send: at most `limit`, and no
/// more than `MAX_BATCH_BYTES` of them unless the first alone is.
fn within_bytes(batch: &[Outgoing], limit: usize) -> usize {
    let mut bytes = 0;
    for (n, o) in batch.iter().take(limit).enumerate() {
        bytes += o.stored.entry.len();
        if bytes > MAX_BATCH_BYTES {
            return n.max(1);
        }
    }
    batch.len().min(limit)
}

/// The entry in the sink's format, as one line of JSON: the sealed text
/// as stored, or its OCSF event.
fn line(e: StoredEntry, format: Format) -> Vec<u8> {
    match format {
        Format::Native => e.entry.into_bytes(),
        Format::Ocsf => {
            let event = match serde_json::from_str::<AuditEntry>(&e.entry) {
                Ok(entry) => ocsf::event(&entry),
                Err(error) => {
                    tracing::warn!(id = %e.id, %error, "sink: a stored entry does not decode; sent as raw_data");
                    ocsf::undecoded(&e.id, &e.entry)
                }
            };
            serde_json::to_vec(&event).expect("a JSON value serialises")
        }
    }
}

/// Milliseconds since the entry with this id was sealed.
fn age_ms(id: &str) -> u64 {
    let sealed = ulid::Ulid::from_string(id).map_or(0, |u| u.timestamp_ms());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorder_is_behind_from_a_full_batch_waiting_or_a_spool_replaying() {
        let r = RecorderStats::default();
        r.queued.store(1_499, Ordering::Relaxed);
        r.taken.store(1_000, Ordering::Relaxed);
        assert!(!recorder_behind(&r, 500), "499 waiting");
        r.queued.store(1_500, Ordering::Relaxed);
        assert!(recorder_behind(&r, 500), "500 waiting");
        r.taken.store(1_500, Ordering::Relaxed);
        assert!(!recorder_behind(&r, 500));
        r.spool_waiting.store(1, Ordering::Relaxed);
        assert!(recorder_behind(&r, 500), "the spool replays");
    }

    #[test]
    fn a_native_line_is_the_stored_text_and_an_undecodable_one_is_raw_ocsf() {
        let stored = |entry: &str| StoredEntry { id: "01KB0000000000000000000000".into(), entry: entry.into() };
        assert_eq!(line(stored(r#"{"id":"x"}"#), Format::Native), br#"{"id":"x"}"#);
        let raw: serde_json::Value = serde_json::from_slice(&line(stored("not json"), Format::Ocsf)).unwrap();
        assert_eq!(raw["raw_data"], "not json");
        assert_eq!(raw["class_uid"], 6003);
        assert_eq!(raw["metadata"]["uid"], "01KB0000000000000000000000");
        let mut e = crate::entry::tests::sample(1);
        e.id = "01KB0000000000000000000001".into();
        let event: serde_json::Value =
            serde_json::from_slice(&line(stored(&serde_json::to_string(&e).unwrap()), Format::Ocsf)).unwrap();
        assert_eq!(event["metadata"]["uid"], e.id.as_str());
        assert_eq!(event["activity_id"], 3);
    }

    #[test]
    fn a_batch_holds_its_limit_and_no_more_bytes_than_the_bound_but_always_one() {
        let of = |sizes: &[usize]| -> Vec<Outgoing> {
            sizes
                .iter()
                .map(|&n| Outgoing {
                    instance: "gw".into(),
                    stored: StoredEntry { id: String::new(), entry: "x".repeat(n) },
                })
                .collect()
        };
        assert_eq!(within_bytes(&of(&[10, 10, 10]), 2), 2);
        assert_eq!(within_bytes(&of(&[10, 10, 10]), 5), 3);
        assert_eq!(within_bytes(&of(&[]), 5), 0);
        let half = MAX_BATCH_BYTES / 2;
        assert_eq!(within_bytes(&of(&[half, half, 1]), 5), 2, "exactly the bound fits");
        assert_eq!(within_bytes(&of(&[half, half + 1, 1]), 5), 1);
        assert_eq!(within_bytes(&of(&[MAX_BATCH_BYTES + 1, 1]), 5), 1, "a large entry goes alone");
    }

    #[test]
    fn a_ca_file_that_cannot_be_read_is_named_with_its_sink_at_start() {
        let raw = RawSink {
            name: "hec".into(),
            kind: "webhook".into(),
            url: "https://collector.example/ingest".into(),
            format: "native".into(),
            secret: None,
            batch: 10,
            ca: Some("/nonexistent/ca.pem".into()),
            headers: Default::default(),
        };
        let configs = validate_sinks(std::slice::from_ref(&raw)).unwrap();
        let e = Sinks::prepare(&configs, None).unwrap_err().to_string();
        assert!(e.starts_with("sink `hec`: ca /nonexistent/ca.pem:"), "{e}");
        // Without its own, the upstream's CA file is named as such.
        let theirs = RawSink { ca: None, ..raw.clone() };
        let e = Sinks::prepare(&validate_sinks(&[theirs]).unwrap(), Some(Path::new("/nonexistent/up.pem")));
        assert!(e.unwrap_err().to_string().starts_with("sink `hec`: tls.upstream_ca /nonexistent/up.pem:"));
        // Cleartext needs no trust: nothing is read.
        let plain = RawSink { url: "http://collector.example/ingest".into(), ..raw };
        assert_eq!(Sinks::prepare(&validate_sinks(&[plain]).unwrap(), None).unwrap().len(), 1);
    }

    #[test]
    fn a_prepared_webhook_shows_neither_its_secret_nor_its_header_values() {
        let raw = RawSink {
            name: "hec".into(),
            kind: "webhook".into(),
            url: "http://collector.example/ingest".into(),
            format: "native".into(),
            secret: Some("s3cret-key".into()),
            batch: 10,
            ca: None,
            headers: [("Authorization".to_string(), "Splunk t0ken".to_string())].into(),
        };
        let shown = format!("{:?}", Sinks::prepare(&validate_sinks(&[raw]).unwrap(), None).unwrap());
        assert!(!shown.contains("s3cret-key") && !shown.contains("t0ken"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn a_sink_stops_when_told_or_when_no_one_can_tell_it_any_more() {
        let (tx, rx) = watch::channel(false);
        assert!(!stopping(&rx));
        tx.send(true).unwrap();
        assert!(stopping(&rx));
        let (tx, rx) = watch::channel(false);
        drop(tx);
        assert!(stopping(&rx), "a dropped sender would make every wait return at once");
    }

    #[test]
    fn an_entrys_age_is_counted_from_its_id() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let id = ulid::Ulid::from_parts(now - 5_000, 1).to_string();
        assert!((5_000..6_000).contains(&age_ms(&id)), "{}", age_ms(&id));
        // An id that does not parse counts from the epoch: a lag no one misses.
        assert!(age_ms("not an id") >= now);
    }
}
