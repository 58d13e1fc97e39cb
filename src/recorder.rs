//! The recorder (docs/trail.md): a bounded queue between the data path and the
//! store, and the writer that seals entries into the instance's hash chain
//! and commits them in batches, one transaction each. When the store
//! refuses a batch it goes to the spool (`crate::spool`), and everything
//! after it too, until the spool is replayed into the store, in order; the
//! chain is sealed once, so a replayed entry is stored exactly as spooled
//! (and a second replay of it, after a crash, is ignored by id).
//!
//! Audited requests hold a slot from their start until their entry is
//! queued (`max_pending`), so the work in flight is bounded; an entry waits
//! for room in the queue rather than being dropped, unless the writer can
//! neither store nor spool and `fail_mode` is `open`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

pub use crate::config::{Durability, FailMode, RecorderConfig};
use crate::entry::{AuditEntry, Chain, Sealed};
use crate::spool::{Check, Spool, SpoolError};
use crate::store::Store;

/// Counters and gauges of the recorder, for logs, `/metrics` and tests.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub queued: AtomicU64,
    /// Entries the writer has taken from the queue (queued − taken is its
    /// depth).
    pub taken: AtomicU64,
    pub written: AtomicU64,
    /// Entries given up: the writer could neither store nor spool them
    /// (`fail_mode = "open"`), or it had stopped.
    pub dropped: AtomicU64,
    /// Batches the store refused.
    pub write_errors: AtomicU64,
    pub batches: AtomicU64,
    /// Batches by size: how many had at most `BATCH_BUCKETS[i]` entries
    /// (cumulative, as a Prometheus histogram counts), and the entries in all.
    pub batch_sizes: [AtomicU64; BATCH_BUCKETS.len()],
    pub batch_entries: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    /// Appends the spool refused (with the store down: nowhere to write).
    pub spool_errors: AtomicU64,
    /// Entries in the spool, waiting for replay.
    pub spool_waiting: AtomicU64,
    /// Bytes of a torn spool tail cut off at start.
    pub spool_torn_bytes: AtomicU64,
    /// Spool lines refused at start (moved to `<spool>.rejected`).
    pub spool_rejected: AtomicU64,
    /// Entries added to the store's `q` search index, and the steps taken
    /// (each one short transaction while the recorder is idle).
    pub indexed: AtomicU64,
    pub index_steps: AtomicU64,
    /// Set while a batch can go neither to the store nor to the spool.
    pub stuck: AtomicBool,
    /// Woken after each batch reaches the store (audit streams read on).
    pub committed: tokio::sync::Notify,
}

/// An entry on its way to the writer, and whom to tell once it is durable.
#[derive(Debug)]
struct Queued {
    entry: AuditEntry,
    durable: Option<oneshot::Sender<()>>,
}

/// A queued entry's promise: with `durability = "sync"`, resolves once the
/// entry is committed or spooled.
#[derive(Debug)]
pub struct Receipt(Option<(oneshot::Receiver<()>, Arc<RecorderStats>, bool)>);

impl Receipt {
    /// Waits until the entry is durable (at once with `durability =
    /// "async"`); false if it never will be (the writer gave it up), or,
    /// when the entry need not be kept (see `Slot`), once the recorder is
    /// stuck: `fail_mode = "open"` serves the client then.
    pub async fn durable(self) -> bool {
        let Some((mut rx, stats, keep)) = self.0 else { return true };
        loop {
            match tokio::time::timeout(Duration::from_millis(100), &mut rx).await {
                Ok(done) => return done.is_ok(),
                Err(_) if !keep && stats.stuck.load(Ordering::Relaxed) => return false,
                Err(_) => {}
            }
        }
    }
}

/// Upper bounds of the batch-size histogram on `/metrics`.
pub const BATCH_BUCKETS: [u64; 7] = [1, 10, 50, 100, 500, 1000, 5000];

impl RecorderStats {
    fn batch_of(&self, n: usize) {
        let n = n as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_entries.fetch_add(n, Ordering::Relaxed);
        for (bound, count) in BATCH_BUCKETS.iter().zip(&self.batch_sizes) {
            if n <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The data path's handle.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

/// What every handle, strong or weak, shares besides the queue.
#[derive(Debug)]
struct Shared {
    stats: Arc<RecorderStats>,
    slots: Arc<Semaphore>,
    max_pending: usize,
    fail_mode: FailMode,
    durability: Durability,
}

impl Shared {
    /// Audited requests between their start and their entry being queued.
    fn pending(&self) -> usize {
        self.max_pending - self.slots.available_permits()
    }
}

/// An entry the recorder did not take.
#[derive(Debug, thiserror::Error)]
#[error("audit entry for {method} {path} not recorded: {why}")]
pub struct NotRecorded {
    pub method: String,
    pub path: String,
    pub why: &'static str,
}

/// An audited request's place among `max_pending`: held from its start
/// until its entry is queued. `keep` says whether its entry waits for the
/// writer however long it is stuck (a mutation under `fail_mode =
/// "closed"`) rather than being given up.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    keep: bool,
}

/// No slot: `fail_mode = "closed"` and the trail cannot take the mutation's
/// entry now (nothing can be recorded, or `max_pending` are in flight).
#[derive(Debug, thiserror::Error)]
#[error("the audit trail cannot take this change now (fail_mode = \"closed\")")]
pub struct Unrecordable;

impl Recorder {
    /// A slot for an audited request, waiting while `max_pending` are in
    /// flight; for a mutation under `fail_mode = "closed"`, refused at once
    /// instead of waiting, and while nothing can be recorded.
    pub async fn slot(&self, mutation: bool) -> Result<Slot, Unrecordable> {
        let keep = mutation && self.shared.fail_mode == FailMode::Closed;
        let permit = if keep {
            if self.shared.stats.stuck.load(Ordering::Relaxed) {
                return Err(Unrecordable);
            }
            self.shared.slots.clone().try_acquire_owned().map_err(|_| Unrecordable)?
        } else {
            self.shared.slots.clone().acquire_owned().await.map_err(|_| Unrecordable)?
        };
        Ok(Slot { _permit: permit, keep })
    }

    /// Audited requests between their start and their entry being queued.
    pub fn pending(&self) -> usize {
        self.shared.pending()
    }

    /// Queues an entry, waiting for room while the writer catches up, and
    /// then frees its slot. Given up (counted and logged) only when the
    /// writer has stopped, or when it can neither store nor spool and the
    /// entry need not be kept (see `Slot`; without a slot, kept under
    /// `fail_mode = "closed"`).
    pub async fn record(&self, entry: AuditEntry, slot: Option<Slot>) -> Result<Receipt, NotRecorded> {
        let keep = slot.as_ref().map_or(self.shared.fail_mode == FailMode::Closed, |s| s.keep);
        let (durable, receipt) = match self.shared.durability {
            Durability::Sync => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Receipt(Some((rx, self.shared.stats.clone(), keep))))
            }
            Durability::Async => (None, Receipt(None)),
        };
        let queued = match self.tx.try_send(Queued { entry, durable }) {
            Ok(()) => {
                self.queued();
                return Ok(receipt);
            }
            Err(mpsc::error::TrySendError::Closed(q)) => return Err(self.give_up(q.entry, "the recorder has stopped")),
            Err(mpsc::error::TrySendError::Full(q)) => q,
        };
        loop {
            match tokio::time::timeout(Duration::from_millis(100), self.tx.reserve()).await {
                Ok(Ok(permit)) => {
                    permit.send(queued);
                    self.queued();
                    return Ok(receipt);
                }
                Ok(Err(_)) => return Err(self.give_up(queued.entry, "the recorder has stopped")),
                Err(_) if !keep && self.shared.stats.stuck.load(Ordering::Relaxed) => {
                    return Err(self.give_up(queued.entry, "neither the store nor the spool takes entries"));
                }
                Err(_) => {}
            }
        }
    }

    fn queued(&self) {
        self.shared.stats.queued.fetch_add(1, Ordering::Relaxed);
    }

    fn give_up(&self, e: AuditEntry, why: &'static str) -> NotRecorded {
        self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        let err = NotRecorded { method: e.method, path: e.path, why };
        tracing::error!(error = %err, request_id = %e.request_id, "audit entry dropped");
        err
    }

    /// Waits, at most `within`, until every entry queued before the call
    /// is in the store: none still queued, none waiting in the spool
    /// (entries dropped were never queued). False when that did not happen
    /// in time (the store refuses, or a replay is under way).
    pub async fn settled(&self, within: Duration) -> bool {
        let stats = &self.shared.stats;
        let target = stats.queued.load(Ordering::Acquire);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let committed = stats.committed.notified();
            // Replayed entries count in `written` too (after `replayed`):
            // read in this order, an entry is never counted twice.
            let written = stats.written.load(Ordering::Acquire);
            let replayed = stats.replayed.load(Ordering::Acquire);
            let left_queue = written.saturating_sub(replayed) + stats.spooled.load(Ordering::Acquire);
            if left_queue >= target && stats.spool_waiting.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, committed).await.is_err() {
                return false;
            }
        }
    }

    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.shared.stats
    }

    /// A handle that does not keep the writer running at shutdown.
    pub fn downgrade(&self) -> WeakRecorder {
        WeakRecorder { tx: self.tx.downgrade(), shared: self.shared.clone() }
    }

    /// Whether answers wait for their entries (`durability = "sync"`).
    pub fn durability(&self) -> Durability {
        self.shared.durability
    }
}

/// A `Recorder` that lets the writer finish once every strong handle is gone
/// (the query port's: configuration changes stop being accepted at shutdown).
#[derive(Debug, Clone)]
pub struct WeakRecorder {
    tx: mpsc::WeakSender<Queued>,
    shared: Arc<Shared>,
}

impl WeakRecorder {
    /// A strong handle while the writer still runs.
    pub fn upgrade(&self) -> Option<Recorder> {
        Some(Recorder { tx: self.tx.upgrade()?, shared: self.shared.clone() })
    }

    pub fn stats(&self) -> &Arc<RecorderStats> {
        &self.shared.stats
    }

    /// Audited requests between their start and their entry being queued.
    pub fn pending(&self) -> usize {
        self.shared.pending()
    }
}

/// Seals queued entries and hands sealed batches to the committer.
#[derive(Debug)]
pub struct Writer {
    rx: mpsc::Receiver<Queued>,
    store: Store,
    /// Handed to the committer when `run` starts.
    spool: Option<Spool>,
    chain: Chain,
    batch: usize,
    flush_interval: Duration,
    /// How long a batch waits for the store before it is spooled (the
    /// store may still take it after).
    patience: Duration,
    stats: Arc<RecorderStats>,
}

/// The shortest wait for the store before a batch is spooled: a healthy
/// store takes a batch of 500 in a few milliseconds.
const MIN_PATIENCE: Duration = Duration::from_millis(50);

/// Why the recorder cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Makes the handle and the writer. The chain resumes from the newest
/// spooled entry when an earlier run left some (they reach the store
/// first), else from the store.
pub async fn recorder(
    store: Store,
    instance: &str,
    config: &RecorderConfig,
) -> Result<(Recorder, Writer), RecorderError> {
    let head = store.last_hash(instance).await?;
    let check = Check { instance, head: head.as_deref(), now: std::time::SystemTime::now() };
    let (spool, opened) = Spool::open(&config.spool, &check)?;
    let stats = Arc::new(RecorderStats::default());
    if let Some(rejected) = &opened.rejected {
        tracing::error!(
            spool = %config.spool.display(),
            line = rejected.line,
            lines = rejected.lines,
            reason = %rejected.reason,
            "spool line refused: it and every line after it were moved to the .rejected file, not replayed \
             (someone wrote to the spool, or it belongs to another trail)"
        );
        stats.spool_rejected.store(rejected.lines as u64, Ordering::Relaxed);
    }
    if opened.torn_bytes > 0 {
        tracing::error!(
            spool = %config.spool.display(),
            bytes = opened.torn_bytes,
            "the spool ended in a torn line (a crash mid-write): cut off and kept in the .torn file, not replayed"
        );
        stats.spool_torn_bytes.store(opened.torn_bytes as u64, Ordering::Relaxed);
    }
    if !spool.is_empty() {
        tracing::warn!(entries = spool.len(), spool = %config.spool.display(), "replaying the spool an earlier run left");
    }
    stats.spool_waiting.store(spool.len() as u64, Ordering::Relaxed);
    let last = spool.last_hash().map(str::to_string).or(head);
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let max_pending = config.max_pending.max(1);
    let writer = Writer {
        rx,
        store,
        spool: Some(spool),
        chain: Chain::resume(last),
        batch: config.batch.max(1),
        // Synchronous answers wait for their batch: commit what is there.
        flush_interval: if config.durability == Durability::Sync { Duration::ZERO } else { config.flush_interval },
        patience: config.flush_interval.max(MIN_PATIENCE),
        stats: stats.clone(),
    };
    let shared = Shared {
        stats,
        slots: Arc::new(Semaphore::new(max_pending)),
        max_pending,
        fail_mode: config.fail_mode,
        durability: config.durability,
    };
    Ok((Recorder { tx, shared: Arc::new(shared) }, writer))
}

impl Writer {
    /// Collects one batch (up to `batch` entries, or what arrived within
    /// `flush_interval` of the first) and seals it; `None` once every
    /// `Recorder` is dropped and the queue is empty.
    async fn next_batch(&mut self) -> Option<Batch> {
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
        self.stats.taken.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut sealed = Batch { entries: Vec::with_capacity(batch.len()), durable: Vec::new() };
        for Queued { entry, durable } in batch {
            sealed.entries.push(self.chain.seal(entry));
            sealed.durable.extend(durable);
        }
        Some(sealed)
    }

    /// Writes until every `Recorder` is dropped and the queue is drained.
    /// Sealing the next batch overlaps with committing the previous one; the
    /// committer takes batches in order (store, or spool while the store
    /// refuses or the spool is not yet replayed), so the chain is stored in
    /// order. Committed batches go back to this task to be freed, keeping
    /// the committer (the pipeline's slow stage) on inserts alone.
    pub async fn run(mut self) {
        let (tx, rx) = mpsc::channel::<Batch>(1);
        let (done_tx, mut done) = mpsc::unbounded_channel::<Vec<Sealed>>();
        let committer = Committer {
            store: self.store.clone(),
            spool: self.spool.take(),
            stats: self.stats.clone(),
            batch: self.batch,
            patience: self.patience,
            retry_at: tokio::time::Instant::now(),
            backoff: MIN_BACKOFF,
            // An earlier run (or an older version) may have left entries
            // out of the search index.
            text_due: Some(tokio::time::Instant::now()),
            text_failing: false,
            rx,
            closed: false,
            held: std::collections::VecDeque::new(),
            done: done_tx,
        };
        let committer = tokio::spawn(committer.run());
        while let Some(batch) = self.next_batch().await {
            while let Ok(committed) = done.try_recv() {
                drop(committed);
            }
            if tx.send(batch).await.is_err() {
                break;
            }
        }
        drop(tx);
        match committer.await {
            Ok(true) => tracing::warn!(
                spooled = self.stats.spool_waiting.load(Ordering::Relaxed),
                "recorder stopped with entries in the spool; the next start replays them"
            ),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "audit committer failed"),
        }
        tracing::info!(written = self.stats.written.load(Ordering::Relaxed), "recorder drained");
    }
}

/// How a batch's own store call ended.
enum Direct {
    /// Within `patience`, or with the spool refusing too.
    Answered(Result<(), crate::store::StoreError>),
    /// Later, the batch spooled first (ending at this offset).
    Spooled(u64, Result<(), crate::store::StoreError>),
}

/// A sealed batch, and the answers waiting for it to be durable.
struct Batch {
    entries: Vec<Sealed>,
    durable: Vec<oneshot::Sender<()>>,
}

/// Entries indexed for the `q` search per step while the recorder is idle:
/// a batch arriving meanwhile waits for one step (a few milliseconds).
const TEXT_STEP: u32 = 256;
/// How long committed entries may wait to be indexed, so that light traffic
/// does not pay an index transaction per batch.
const TEXT_DELAY: Duration = Duration::from_millis(200);

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The committer's state: the store, the spool, and when to try the store
/// again after it refused.
///
/// A batch is stored or spooled within `patience` of reaching it: while a
/// store call runs longer (a store that is down can take its pool's 5 s
/// to fail), the batch and every batch arriving meanwhile go to the spool,
/// so a SIGKILL then loses none of them.
struct Committer {
    store: Store,
    /// Taken out while a blocking spool call runs.
    spool: Option<Spool>,
    stats: Arc<RecorderStats>,
    batch: usize,
    patience: Duration,
    /// Batches from the writer, in order.
    rx: mpsc::Receiver<Batch>,
    /// The writer has stopped sending.
    closed: bool,
    /// Batches taken while a store call ran that the spool refused too:
    /// delivered, in order, before the next one.
    held: std::collections::VecDeque<Batch>,
    /// Delivered batches, back to the writer to be freed.
    done: mpsc::UnboundedSender<Vec<Sealed>>,
    retry_at: tokio::time::Instant,
    backoff: Duration,
    /// Committed entries may be missing from the search index: when to
    /// index them (if no batch waits then).
    text_due: Option<tokio::time::Instant>,
    /// The last indexing step failed (logged once; tried again after the
    /// next commit).
    text_failing: bool,
}

impl Committer {
    /// Takes batches until the writer stops; then tries once more to empty
    /// the spool. Answers whether entries stay in it.
    async fn run(mut self) -> bool {
        loop {
            if self.closed && self.held.is_empty() {
                break;
            }
            let waiting = self.waiting();
            let text_due = self.text_due.filter(|_| !waiting);
            // Batches first: the index is filled only while none waits.
            let batch = match self.held.pop_front() {
                Some(batch) => Some(batch),
                None => tokio::select! {
                    biased;
                    batch = self.rx.recv(), if !self.closed => batch,
                    () = tokio::time::sleep_until(self.retry_at), if waiting => {
                        self.replay().await;
                        self.text_due.get_or_insert_with(|| tokio::time::Instant::now() + TEXT_DELAY);
                        continue;
                    }
                    () = sleep_until_some(text_due), if text_due.is_some() => {
                        self.index_text().await;
                        continue;
                    }
                    else => None,
                },
            };
            let Some(batch) = batch else {
                self.closed = true;
                continue;
            };
            self.deliver(batch).await;
            self.text_due.get_or_insert_with(|| tokio::time::Instant::now() + TEXT_DELAY);
        }
        // Shutting down: one more try to empty the spool; what stays is
        // replayed at the next start.
        self.replay().await;
        self.waiting()
    }

    fn waiting(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// The store refused: wait longer before the next try.
    fn refused(&mut self, e: &crate::store::StoreError, entries: usize) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, entries, "audit batch not written to the store");
        self.retry_at = tokio::time::Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// One step of filling the search index. Searches are exact while it
    /// is behind (they read what is not indexed yet), only slower.
    async fn index_text(&mut self) {
        self.stats.index_steps.fetch_add(1, Ordering::Relaxed);
        let store = self.store.clone();
        match self.spooling_meanwhile(store.index_text(TEXT_STEP)).await {
            Ok(n) => {
                self.stats.indexed.fetch_add(n as u64, Ordering::Relaxed);
                self.text_due = (n == TEXT_STEP as usize).then(tokio::time::Instant::now);
                if std::mem::take(&mut self.text_failing) {
                    tracing::info!("search index updated again");
                }
            }
            Err(e) => {
                self.text_due = None;
                if !std::mem::replace(&mut self.text_failing, true) {
                    tracing::warn!(error = %e, "search index not updated; searches read the entries past it, retried after the next write");
                }
            }
        }
    }

    /// Runs `f` on the spool on a blocking thread (appends fsync).
    async fn with_spool<T: Send + 'static>(&mut self, f: impl FnOnce(&mut Spool) -> T + Send + 'static) -> T {
        let mut spool = self.spool.take().expect("the spool is back after each call");
        let (spool, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut spool);
            (spool, out)
        })
        .await
        .expect("a spool call does not panic");
        self.stats.spool_waiting.store(spool.len() as u64, Ordering::Relaxed);
        self.spool = Some(spool);
        out
    }

    /// The batch is durable: the answers waiting for it go, and its
    /// entries go back to the writer to be freed.
    fn durable(&self, batch: Batch) {
        for durable in batch.durable {
            let _ = durable.send(());
        }
        let _ = self.done.send(batch.entries);
    }

    /// Appends `entries` to the spool; answers where they end in the file,
    /// or `None` when the spool refuses them too.
    async fn append(&mut self, entries: &[Sealed]) -> Option<u64> {
        let owned = entries.to_vec();
        match self.with_spool(move |s| s.append(&owned)).await {
            Ok(end) => {
                self.stats.spooled.fetch_add(entries.len() as u64, Ordering::Relaxed);
                self.stats.stuck.store(false, Ordering::Relaxed);
                Some(end)
            }
            Err(e) => {
                self.stats.spool_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, entries = entries.len(), "audit batch neither stored nor spooled, retrying");
                None
            }
        }
    }

    /// Awaits a store call; once it has run `patience`, every batch that
    /// arrives is spooled meanwhile (behind what the spool holds: their
    /// order is kept), so none waits in memory for a store that is slow to
    /// fail.
    async fn spooling_meanwhile<T>(&mut self, call: impl Future<Output = T>) -> T {
        let mut call = std::pin::pin!(call);
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut late = false;
        loop {
            let batch = tokio::select! {
                biased;
                done = &mut call => return done,
                () = tokio::time::sleep_until(deadline), if !late => {
                    late = true;
                    continue;
                }
                batch = self.rx.recv(), if late && !self.closed && self.held.is_empty() => batch,
            };
            let Some(batch) = batch else {
                self.closed = true;
                continue;
            };
            self.stats.batch_of(batch.entries.len());
            match self.append(&batch.entries).await {
                Some(_) => self.durable(batch),
                None => self.held.push_back(batch),
            }
        }
    }

    /// Stores a batch, or spools it: straight to the spool while older
    /// entries wait there (order), else when the store refuses it or has
    /// not taken it within `patience` (it may still: the spooled copy is
    /// then marked replayed). While neither takes it, the recorder is
    /// stuck: it retries, the queue fills and the data path waits (or gives
    /// up, with `fail_mode = "open"`).
    async fn deliver(&mut self, mut batch: Batch) {
        let count = batch.entries.len();
        self.stats.batch_of(count);
        let mut pause = MIN_BACKOFF;
        loop {
            if !self.waiting() && tokio::time::Instant::now() >= self.retry_at {
                let store = self.store.clone();
                let direct = {
                    let mut insert = std::pin::pin!(store.insert_batch(&batch.entries));
                    match tokio::time::timeout(self.patience, &mut insert).await {
                        Ok(answer) => Direct::Answered(answer),
                        // Slow: durable in the spool first, then the store's answer.
                        Err(_) => match self.append(&batch.entries).await {
                            Some(end) => {
                                for durable in std::mem::take(&mut batch.durable) {
                                    let _ = durable.send(());
                                }
                                Direct::Spooled(end, self.spooling_meanwhile(insert).await)
                            }
                            // The spool refuses too: the store is the only way.
                            None => Direct::Answered(insert.await),
                        },
                    }
                };
                match direct {
                    Direct::Answered(Ok(())) => {
                        self.stored(count);
                        self.durable(batch);
                        return;
                    }
                    Direct::Answered(Err(e)) => self.refused(&e, count),
                    Direct::Spooled(end, Ok(())) => {
                        self.replayed_directly(count, end).await;
                        self.durable(batch);
                        return;
                    }
                    Direct::Spooled(_, Err(e)) => {
                        self.refused(&e, count);
                        self.durable(batch);
                        return;
                    }
                }
            }
            if self.append(&batch.entries).await.is_some() {
                self.durable(batch);
                if tokio::time::Instant::now() >= self.retry_at {
                    self.replay().await;
                }
                return;
            }
            self.stats.stuck.store(true, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
            self.retry_at = tokio::time::Instant::now();
        }
    }

    /// `count` entries reached the store.
    fn stored(&mut self, count: usize) {
        self.stats.written.fetch_add(count as u64, Ordering::Relaxed);
        self.stats.committed.notify_waiters();
        self.stats.stuck.store(false, Ordering::Relaxed);
        self.backoff = MIN_BACKOFF;
    }

    /// A batch spooled while its own insert ran was stored after all: it
    /// is the spool's oldest (the spool was empty), so it is marked
    /// replayed up to `end`, where it ends.
    async fn replayed_directly(&mut self, count: usize, end: u64) {
        if let Err(e) = self.with_spool(move |s| s.replayed(count, end)).await {
            tracing::error!(error = %e, "spool not emptied after a slow store took the batch (a restart replays it again, ignored by id)");
        }
        self.stats.replayed.fetch_add(count as u64, Ordering::Relaxed);
        self.stored(count);
    }

    /// Replays the spool into the store, oldest first, a batch at a time,
    /// until it is empty or the store refuses; batches arriving meanwhile
    /// are spooled behind.
    async fn replay(&mut self) {
        while self.waiting() {
            let n = self.batch;
            let chunk = match self.with_spool(move |s| s.next(n)).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "spool not readable; replay paused");
                    self.retry_at = tokio::time::Instant::now() + MAX_BACKOFF;
                    return;
                }
            };
            let (entries, to) = chunk;
            let store = self.store.clone();
            match self.spooling_meanwhile(store.insert_batch(&entries)).await {
                Ok(()) => {
                    let count = entries.len();
                    if let Err(e) = self.with_spool(move |s| s.replayed(count, to)).await {
                        tracing::error!(error = %e, "spool not emptied after replay (a restart replays it again, ignored by id)");
                    }
                    self.stats.replayed.fetch_add(count as u64, Ordering::Relaxed);
                    self.stored(count);
                }
                Err(e) => {
                    self.refused(&e, entries.len());
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::sample;

    /// A committer on a fresh SQLite store and spool in `dir`, due to try
    /// the store now.
    async fn committer(dir: &tempfile::TempDir) -> (Committer, mpsc::Sender<Batch>) {
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()), false).await.unwrap();
        let check = Check { instance: "test", head: None, now: std::time::SystemTime::now() };
        let (spool, _) = Spool::open(&dir.path().join("audit.spool"), &check).unwrap();
        let (tx, rx) = mpsc::channel(1);
        let (done, _) = mpsc::unbounded_channel();
        let committer = Committer {
            store,
            spool: Some(spool),
            stats: Arc::default(),
            batch: 10,
            patience: Duration::from_secs(5),
            rx,
            closed: false,
            held: std::collections::VecDeque::new(),
            done,
            retry_at: tokio::time::Instant::now(),
            backoff: MIN_BACKOFF,
            text_due: None,
            text_failing: false,
        };
        (committer, tx)
    }

    #[tokio::test]
    async fn a_batch_due_for_the_store_while_older_entries_are_spooled_goes_in_behind_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut committer, _tx) = committer(&dir).await;
        let mut chain = Chain::resume(None);
        let older: Vec<Sealed> = (1..=2).map(|n| chain.seal(sample(n))).collect();
        committer.spool.as_mut().unwrap().append(&older).unwrap();
        let newer = vec![chain.seal(sample(3))];
        let mut expected: Vec<String> = older.iter().chain(&newer).map(|s| s.entry.id.clone()).collect();
        expected.sort();

        // The store is due to be tried again: the spool is replayed first.
        committer.deliver(Batch { entries: newer, durable: Vec::new() }).await;
        assert!(!committer.waiting(), "the spool replayed first, the batch behind it");
        let (stored, _) = committer.store.list(&Default::default(), None, 10).await.unwrap();
        let mut ids: Vec<String> = stored.into_iter().map(|e| e.id).collect();
        ids.sort();
        assert_eq!(ids, expected, "every entry stored once");
    }
}
