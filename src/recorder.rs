//! The recorder (SPEC 8): a bounded queue between the data path and the
//! store, and the writer that seals entries into the instance's hash chain
//! and commits them in batches, one transaction each. The proxy never waits
//! for a disk write; anything not recorded is counted and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::entry::{AuditEntry, Chain, Sealed};
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

    /// A handle that does not keep the writer running at shutdown.
    pub fn downgrade(&self) -> WeakRecorder {
        WeakRecorder { tx: self.tx.downgrade(), stats: self.stats.clone() }
    }
}

/// A `Recorder` that lets the writer finish once every strong handle is gone
/// (the query port's: configuration changes stop being accepted at shutdown).
#[derive(Debug, Clone)]
pub struct WeakRecorder {
    tx: mpsc::WeakSender<AuditEntry>,
    stats: Arc<RecorderStats>,
}

impl WeakRecorder {
    /// A strong handle while the writer still runs.
    pub fn upgrade(&self) -> Option<Recorder> {
        Some(Recorder { tx: self.tx.upgrade()?, stats: self.stats.clone() })
    }

    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.stats
    }
}

/// Seals queued entries and hands sealed batches to the committer.
#[derive(Debug)]
pub struct Writer {
    rx: mpsc::Receiver<AuditEntry>,
    store: SqliteStore,
    chain: Chain,
    batch: usize,
    flush_interval: Duration,
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
        stats: stats.clone(),
    };
    Ok((Recorder { tx, stats }, writer))
}

impl Writer {
    /// Collects one batch (up to `batch` entries, or what arrived within
    /// `flush_interval` of the first) and seals it; `None` once every
    /// `Recorder` is dropped and the queue is empty.
    async fn next_batch(&mut self) -> Option<Vec<Sealed>> {
        let first = self.rx.recv().await?;
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.flush_interval;
        while batch.len() < self.batch {
            let room = self.batch - batch.len();
            match tokio::time::timeout_at(deadline, self.rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Some(batch.into_iter().map(|e| self.chain.seal(e)).collect())
    }

    /// Writes until every `Recorder` is dropped and the queue is drained.
    /// Sealing the next batch overlaps with committing the previous one; the
    /// committer takes batches in order and retries a refused batch (with
    /// back-off) before anything newer, so the chain is stored in order.
    /// Committed batches go back to this task to be freed, keeping the
    /// committer (the pipeline's slow stage) on inserts alone.
    pub async fn run(mut self) {
        let (tx, mut rx) = mpsc::channel::<Vec<Sealed>>(1);
        let (done_tx, mut done) = mpsc::unbounded_channel::<Vec<Sealed>>();
        let (store, stats) = (self.store.clone(), self.stats.clone());
        let committer = tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                commit(&store, &stats, &batch).await;
                let _ = done_tx.send(batch);
            }
        });
        while let Some(batch) = self.next_batch().await {
            while let Ok(committed) = done.try_recv() {
                drop(committed);
            }
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        drop(tx);
        if let Err(e) = committer.await {
            tracing::error!(error = %e, "audit committer failed");
        }
        tracing::info!(written = self.stats.written.load(Ordering::Relaxed), "recorder drained");
    }
}

/// Commits one sealed batch, retrying until the store takes it.
async fn commit(store: &SqliteStore, stats: &RecorderStats, batch: &[Sealed]) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.insert_batch(batch).await {
            Ok(()) => {
                stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, entries = batch.len(), "audit batch not written, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
