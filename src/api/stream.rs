//! `GET /api/v1/audit-logs/stream`: Server-Sent Events of newly committed
//! entries matching the list's filters, resumable with `Last-Event-ID`.
//!
//! The stream reads the store on from the last id it sent, woken by this
//! instance's commits and at least every second (other instances' commits).
//! One instance's ids grow in commit order, so with one writer (SQLite)
//! reading on from the last id misses nothing. Several instances commit
//! independently: an entry of one may be committed after a newer id of
//! another was sent, so on a shared store each read looks back
//! [`LATENESS`] before the last id and skips what it already sent.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::body::ChannelBody;
use super::{ApiError, ApiState, Caller};
use crate::entry::AuditEntry;
use crate::store::{Filter, Store, StoreError};

/// How far back a read on a shared store looks for entries another
/// instance committed late.
pub const LATENESS: Duration = Duration::from_secs(2);
/// The longest wait between reads when no commit of this instance wakes
/// the stream.
const POLL: Duration = Duration::from_secs(1);
/// A comment line this often keeps idle proxies from closing the stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Entries read at a time.
const PAGE: u32 = 500;
/// Stored entries one read examines at most, matching or not: a stream
/// whose filter matches nothing moves on by windows of this many, so it
/// never reads the same stretch of the trail twice.
const WINDOW: u32 = 5000;

/// The open streams of each caller, held to a cap.
#[derive(Debug)]
pub struct Streams {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Streams {
    pub fn new(max: usize) -> Streams {
        Streams { max, open: Default::default() }
    }

    /// A place for one more stream of `caller`, given back when dropped;
    /// refused when the caller holds `max` already.
    fn take(self: &Arc<Self>, caller: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().expect("never held across a panic");
        let held = open.entry(caller.to_string()).or_default();
        if *held >= self.max {
            return Err(ApiError::TooManyStreams(self.max));
        }
        *held += 1;
        Ok(StreamSlot { streams: self.clone(), caller: caller.to_string() })
    }
}

/// One open stream's place among its caller's.
#[derive(Debug)]
struct StreamSlot {
    streams: Arc<Streams>,
    caller: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().expect("never held across a panic");
        if let Some(held) = open.get_mut(&self.caller) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// `GET /api/v1/audit-logs/stream?…filters`.
pub(super) async fn stream(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let mut filter = Filter::default();
    for (k, v) in pairs {
        filter.set(&k, &v)?;
    }
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => {
            let id = v.to_str().ok().and_then(|v| ulid::Ulid::from_string(v.trim()).ok()).ok_or_else(|| {
                ApiError::BadField { field: "Last-Event-ID", reason: "not the id of an entry".into() }
            })?;
            Some(id.to_string())
        }
    };
    let shared = s.store.is_shared();
    // Without a resume point the stream starts after the newest entry
    // stored now (on a shared store, LATENESS before it).
    let start = match resume {
        Some(id) => Cursor::resumed(id, shared),
        None => {
            let (newest, _) = s.store.list(&Filter::default(), None, 1).await?;
            let mut cursor = Cursor::starting(newest.first().map(|e| e.id.clone()), shared);
            if shared {
                // What the look-back window holds now is older than the stream.
                read_on(&s.store, &filter, &mut cursor, None).await?;
            }
            cursor
        }
    };
    let slot = s.streams.take(&caller.name)?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        feed(s, filter, start, tx).await;
        drop(slot);
    });
    let mut res = Body::new(ChannelBody(rx)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Where the stream reads on from, and what it sent lately.
#[derive(Debug)]
struct Cursor {
    /// The newest id sent (or the start point).
    last: Option<String>,
    /// Shared store: ids sent within LATENESS of `last`.
    sent: Option<BTreeSet<String>>,
}

impl Cursor {
    fn starting(last: Option<String>, shared: bool) -> Cursor {
        Cursor { last, sent: shared.then(BTreeSet::new) }
    }

    fn resumed(id: String, shared: bool) -> Cursor {
        // Knowing only the last id the client holds, a shared store's
        // resumed stream repeats what it may hold from the LATENESS before,
        // rather than lose what another instance committed late.
        Cursor { last: Some(id.clone()), sent: shared.then(|| BTreeSet::from([id])) }
    }

    /// The id to read on from: `last`, or LATENESS before it on a shared store.
    fn read_from(&self) -> Option<String> {
        let last = self.last.as_deref()?;
        if self.sent.is_none() {
            return Some(last.to_string());
        }
        let ms = ulid::Ulid::from_string(last).map_or(0, |u| u.timestamp_ms());
        let back = ms.saturating_sub(LATENESS.as_millis() as u64);
        Some(ulid::Ulid::from_parts(back, 0).to_string())
    }

    /// Every stored entry up to `id` was examined (sent or not matching):
    /// the next read starts after it.
    fn examined(&mut self, id: &str) {
        if self.last.as_deref().is_none_or(|l| id > l) {
            self.last = Some(id.to_string());
        }
    }

    /// Whether `id` goes out now; notes it as sent.
    fn admit(&mut self, id: &str) -> bool {
        let newer = self.last.as_deref().is_none_or(|l| id > l);
        let admitted = match &mut self.sent {
            Some(sent) => sent.insert(id.to_string()),
            None => newer,
        };
        if newer {
            self.last = Some(id.to_string());
        }
        admitted
    }

    /// Forgets ids older than the look-back window.
    fn prune(&mut self) {
        let Some(from) = self.read_from() else { return };
        if let Some(sent) = &mut self.sent {
            *sent = sent.split_off(&from);
        }
    }
}

/// Reads and sends until the client goes or the query port drains.
async fn feed(s: Arc<ApiState>, filter: Filter, mut cursor: Cursor, tx: mpsc::Sender<Result<Bytes, std::io::Error>>) {
    let stats = s.recorder.stats().clone();
    let mut quiet_since = tokio::time::Instant::now();
    let mut failing = false;
    if tx.send(Ok(Bytes::from_static(b"retry: 1000\n\n"))).await.is_err() {
        return;
    }
    loop {
        let draining = s.draining.load(Ordering::Relaxed);
        // Armed before reading: a commit during the read wakes the next wait.
        let mut woken = std::pin::pin!(stats.committed.notified());
        let sent_any = match read_on(&s.store, &filter, &mut cursor, Some(&tx)).await {
            Ok(Read::Sent(any)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("audit stream: store available again");
                }
                any
            }
            Ok(Read::Gone) => return,
            Err(e) => {
                // Once per outage, not once a second per stream.
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "audit stream: store unavailable, retrying every second");
                }
                false
            }
        };
        cursor.prune();
        if draining {
            return;
        }
        if sent_any {
            quiet_since = tokio::time::Instant::now();
        } else if quiet_since.elapsed() >= KEEP_ALIVE {
            if tx.send(Ok(Bytes::from_static(b": keep-alive\n\n"))).await.is_err() {
                return;
            }
            quiet_since = tokio::time::Instant::now();
        }
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(POLL) => {}
            () = tx.closed() => return,
        }
    }
}

/// How a read ended.
enum Read {
    /// Whether it sent anything.
    Sent(bool),
    /// The client went away.
    Gone,
}

/// Reads on from the cursor's read point to the newest stored entry, a
/// window of at most `WINDOW` stored entries at a time (matching or not),
/// sending (to `tx`, or nowhere) the entries not sent before; the cursor
/// then stands at the end of what was examined, so a filter that matches
/// nothing reads each entry once, not the whole trail at every wake.
async fn read_on(
    store: &Store,
    filter: &Filter,
    cursor: &mut Cursor,
    tx: Option<&mpsc::Sender<Result<Bytes, std::io::Error>>>,
) -> Result<Read, StoreError> {
    let mut sent = false;
    let mut window_from = cursor.read_from();
    loop {
        let Some((upto, full)) = store.id_window(window_from.as_deref(), WINDOW).await? else {
            return Ok(Read::Sent(sent));
        };
        let bounded = Filter { ids_upto: Some(upto.clone()), ..filter.clone() };
        // Pages follow each other by their own last id: the cursor's
        // look-back would read a busy window's first page again and again.
        let mut from = window_from.clone();
        loop {
            let (page, more) = store.newer(&bounded, from.as_deref(), PAGE).await?;
            from = page.last().map(|e| e.id.clone()).or(from);
            let chunk = events(&page, cursor);
            if let Some(tx) = tx
                && !chunk.is_empty()
            {
                sent = true;
                if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                    return Ok(Read::Gone);
                }
            }
            if !more {
                break;
            }
        }
        cursor.examined(&upto);
        if !full {
            return Ok(Read::Sent(sent));
        }
        window_from = Some(upto);
    }
}

/// The events for the entries of `page` not sent before.
fn events(page: &[AuditEntry], cursor: &mut Cursor) -> Vec<u8> {
    let mut out = Vec::new();
    for e in page {
        if !cursor.admit(&e.id) {
            continue;
        }
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(e.id.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        serde_json::to_writer(&mut out, e).expect("an entry serialises");
        out.extend_from_slice(b"\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, n: u128) -> String {
        ulid::Ulid::from_parts(ms, n).to_string()
    }

    #[test]
    fn each_caller_holds_at_most_its_streams_and_gets_each_back() {
        let streams = Arc::new(Streams::new(2));
        let a = streams.take("ops").unwrap();
        let b = streams.take("ops").unwrap();
        assert!(matches!(streams.take("ops"), Err(ApiError::TooManyStreams(2))));
        let other = streams.take("siem").unwrap();
        drop(a);
        let c = streams.take("ops").unwrap();
        assert!(streams.take("ops").is_err());
        drop((b, c, other));
        assert!(streams.open.lock().unwrap().is_empty(), "a caller with none open is forgotten");
    }

    /// A filter that matches nothing still moves the cursor to the end of
    /// what it examined: the next read starts there, not at the resume
    /// point again (the probe's 20 streams rescanned the trail every wake).
    #[tokio::test]
    async fn a_filter_that_matches_nothing_moves_on_past_what_it_examined() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()), false).await.unwrap();
        let mut chain = crate::entry::Chain::resume(None);
        let n = WINDOW as usize * 2 + 7;
        let sealed: Vec<_> = (0..n).map(|i| chain.seal(crate::entry::tests::sample(i as u32))).collect();
        store.insert_batch(&sealed).await.unwrap();
        let mut failures = Filter::default();
        failures.set("outcome", "error").unwrap();
        let mut cursor = Cursor::resumed(ulid::Ulid::nil().to_string(), false);
        let (tx, mut rx) = mpsc::channel(4);
        assert!(matches!(read_on(&store, &failures, &mut cursor, Some(&tx)).await.unwrap(), Read::Sent(false)));
        assert_eq!(cursor.last.as_deref(), Some(sealed[n - 1].entry.id.as_str()), "it stands at the newest");
        assert_eq!(store.id_window(cursor.last.as_deref(), WINDOW).await.unwrap(), None, "nothing left to examine");
        // The next matching entry is sent, and only it.
        let failed =
            crate::entry::AuditEntry { outcome: crate::entry::Outcome::Error, ..crate::entry::tests::sample(9) };
        let more = [chain.seal(crate::entry::tests::sample(8)), chain.seal(failed)];
        store.insert_batch(&more).await.unwrap();
        assert!(matches!(read_on(&store, &failures, &mut cursor, Some(&tx)).await.unwrap(), Read::Sent(true)));
        let text = String::from_utf8(rx.recv().await.unwrap().unwrap().to_vec()).unwrap();
        assert_eq!(text.matches("id: ").count(), 1);
        assert!(text.starts_with(&format!("id: {}", more[1].entry.id)), "{text}");
        // Windows end where they should: the n-th id, else the newest.
        let all: Vec<&str> = sealed.iter().chain(&more).map(|s| s.entry.id.as_str()).collect();
        let window = |after: Option<&str>, n| {
            let store = store.clone();
            let after = after.map(str::to_string);
            async move { store.id_window(after.as_deref(), n).await.unwrap() }
        };
        assert_eq!(window(None, 3).await, Some((all[2].to_string(), true)));
        assert_eq!(window(Some(all[0]), 1).await, Some((all[1].to_string(), true)));
        assert_eq!(window(Some(all[all.len() - 3]), 5).await, Some((all[all.len() - 1].to_string(), false)));
        store.close().await;
    }

    #[test]
    fn one_writer_reads_on_from_the_last_id_sent() {
        let mut c = Cursor::starting(Some(id(10_000, 5)), false);
        assert_eq!(c.read_from(), Some(id(10_000, 5)));
        assert!(c.admit(&id(10_001, 1)));
        assert_eq!(c.read_from(), Some(id(10_001, 1)));
        // Nothing at or before the last id goes out, and the cursor never
        // moves back.
        assert!(!c.admit(&id(10_000, 9)));
        assert!(!c.admit(&id(10_001, 1)));
        assert_eq!(c.read_from(), Some(id(10_001, 1)));
        assert_eq!(Cursor::starting(None, false).read_from(), None);
    }

    #[test]
    fn a_shared_store_looks_back_and_sends_each_entry_once() {
        let mut c = Cursor::starting(Some(id(10_000, 5)), true);
        assert_eq!(c.read_from(), Some(id(8_000, 0)));
        assert!(c.admit(&id(10_500, 1)));
        assert!(!c.admit(&id(10_500, 1)), "sent already");
        // Another instance's entry committed late, older than the newest sent.
        assert!(c.admit(&id(9_000, 1)));
        assert_eq!(c.read_from(), Some(id(8_500, 0)));
        c.prune();
        assert_eq!(c.sent.as_ref().unwrap().len(), 2);
        assert!(c.admit(&id(13_000, 1)));
        c.prune();
        assert_eq!(c.sent.as_ref().unwrap().iter().collect::<Vec<_>>(), [&id(13_000, 1)]);
    }

    #[test]
    fn a_resumed_stream_starts_after_the_given_id() {
        let mut one = Cursor::resumed(id(10_000, 5), false);
        assert!(!one.admit(&id(10_000, 5)));
        assert!(!one.admit(&id(10_000, 4)));
        assert!(one.admit(&id(10_000, 6)));
        let mut shared = Cursor::resumed(id(10_000, 5), true);
        assert_eq!(shared.read_from(), Some(id(8_000, 0)));
        assert!(!shared.admit(&id(10_000, 5)), "the resume point itself is not repeated");
        assert!(shared.admit(&id(9_999, 1)), "an entry committed late by another instance is not lost");
    }

    /// A look-back window holding more than a page is read through once,
    /// each entry sent once, and the read ends.
    #[tokio::test]
    async fn a_busy_window_is_read_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()), false).await.unwrap();
        let mut chain = crate::entry::Chain::resume(None);
        let n = PAGE as usize * 2 + 10;
        let sealed: Vec<_> = (0..n).map(|i| chain.seal(crate::entry::tests::sample(i as u32))).collect();
        store.insert_batch(&sealed).await.unwrap();
        let mut cursor = Cursor::starting(Some(sealed[0].entry.id.clone()), true);
        let (tx, mut rx) = mpsc::channel(n);
        let read = read_on(&store, &Filter::default(), &mut cursor, Some(&tx)).await.unwrap();
        assert!(matches!(read, Read::Sent(true)));
        drop(tx);
        let mut text = String::new();
        while let Some(chunk) = rx.recv().await {
            text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
        let ids: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
        // The look-back window reaches before the start: every entry, once, in order.
        let expected: Vec<&str> = sealed.iter().map(|s| s.entry.id.as_str()).collect();
        assert_eq!(ids.len(), expected.len());
        assert!(ids == expected, "every entry once, in order");
        let (tx, _rx) = mpsc::channel(1);
        let again = read_on(&store, &Filter::default(), &mut cursor, Some(&tx)).await.unwrap();
        assert!(matches!(again, Read::Sent(false)), "nothing is sent twice");
        // Not sending, a read notes what it passed as sent.
        let mut quiet = Cursor::starting(Some(sealed[0].entry.id.clone()), true);
        assert!(matches!(read_on(&store, &Filter::default(), &mut quiet, None).await.unwrap(), Read::Sent(false)));
        assert_eq!(quiet.last.as_deref(), Some(sealed[n - 1].entry.id.as_str()));
        store.close().await;
    }

    #[test]
    fn events_carry_the_id_and_the_entry_on_one_line() {
        let mut e = crate::entry::tests::sample(1);
        e.id = id(10_000, 1);
        e.path = "/a\nb".into();
        let mut c = Cursor::starting(None, false);
        let out = String::from_utf8(events(std::slice::from_ref(&e), &mut c)).unwrap();
        let (head, rest) = out.split_once('\n').unwrap();
        assert_eq!(head, format!("id: {}", e.id));
        let data = rest.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap();
        assert!(!data.contains('\n'));
        assert_eq!(serde_json::from_str::<AuditEntry>(data).unwrap().path, "/a\nb");
        assert!(events(&[e], &mut c).is_empty(), "not sent twice");
    }
}
