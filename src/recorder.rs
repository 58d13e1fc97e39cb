//! The recorder (SPEC 8): a bounded queue between the data path and the
//! store, and the writer that seals entries into the instance's hash chain
//! and commits them in batches, one transaction each. The proxy never waits
//! for a disk write; anything not recorded is counted and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::entry::{AuditEntry, Chain};
use crate::store::SqliteStore;

/// Counters of the recorder, for logs, `/metrics` and tests.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub queued: AtomicU64,
    pub written: AtomicU64,
    /// Entries refused because the queue was full.
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
}

/// The data path's handle: hands entries to the writer without waiting.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<AuditEntry>,
    stats: Arc<RecorderStats>,
}

/// An entry the recorder could not accept.
#[derive(Debug, thiserror::Error)]
#[error("audit queue full: entry for {method} {path} not recorded")]
pub struct QueueFull {
    pub method: String,
    pub path: String,
}

impl Recorder {
    /// Queues an entry; when the queue is full the entry is counted and logged.
    pub fn record(&self, entry: AuditEntry) -> Result<(), QueueFull> {
        match self.tx.try_send(entry) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                let err = QueueFull { method: e.method, path: e.path };
                tracing::error!(error = %err, request_id = %e.request_id, "audit entry dropped");
                Err(err)
            }
        }
    }

    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.stats
    }
}

/// What one `run_once` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This many entries were committed.
    Wrote(usize),
    /// The store refused the batch; it is kept and retried.
    Failed,
    /// Every sender is gone and the queue is empty.
    Closed,
}

/// Seals and writes queued entries.
#[derive(Debug)]
pub struct Writer {
    rx: mpsc::Receiver<AuditEntry>,
    store: SqliteStore,
    chain: Chain,
    batch: usize,
    flush_interval: Duration,
    /// A sealed batch the store refused, written before anything newer.
    pending: Vec<AuditEntry>,
    stats: Arc<RecorderStats>,
}

/// Settings of the recorder (`[recorder]`).
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub queue: usize,
    pub batch: usize,
    pub flush_interval: Duration,
}

/// Makes the handle and the writer; the chain resumes from the store.
pub async fn recorder(
    store: SqliteStore,
    instance: &str,
    config: &RecorderConfig,
) -> Result<(Recorder, Writer), crate::store::StoreError> {
    let last = store.last_hash(instance).await?;
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let stats = Arc::new(RecorderStats::default());
    let writer = Writer {
        rx,
        store,
        chain: Chain::resume(last),
        batch: config.batch.max(1),
        flush_interval: config.flush_interval,
        pending: Vec::new(),
        stats: stats.clone(),
    };
    Ok((Recorder { tx, stats }, writer))
}

impl Writer {
    /// Collects one batch (up to `batch` entries, or what arrived within
    /// `flush_interval` of the first) and commits it.
    pub async fn run_once(&mut self) -> Outcome {
        if self.pending.is_empty() {
            let Some(first) = self.rx.recv().await else { return Outcome::Closed };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.flush_interval;
            while batch.len() < self.batch {
                let room = self.batch - batch.len();
                match tokio::time::timeout_at(deadline, self.rx.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            for entry in &mut batch {
                self.chain.seal(entry);
            }
            self.pending = batch;
        }
        match self.store.insert_batch(&self.pending).await {
            Ok(()) => {
                let n = self.pending.len();
                self.pending.clear();
                self.stats.written.fetch_add(n as u64, Ordering::Relaxed);
                Outcome::Wrote(n)
            }
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, entries = self.pending.len(), "audit batch not written, retrying");
                Outcome::Failed
            }
        }
    }

    /// Writes until every `Recorder` is dropped and the queue is drained.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.run_once().await {
                Outcome::Wrote(_) => backoff = Duration::from_millis(50),
                Outcome::Failed => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Outcome::Closed => break,
            }
        }
        tracing::info!(written = self.stats.written.load(Ordering::Relaxed), "recorder drained");
    }
}
