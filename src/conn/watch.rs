//! What a connection's deadlines are measured from: whether a request is in
//! flight, since when it has been idle, when the next request's head began,
//! and how fast the client reads what is written to it. The socket reports reads and writes
//! (`Watched`), the service reports requests (`Busy`, held by the answer's
//! body until it ends).

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// "Not set" for the millisecond stamps.
const UNSET: u64 = u64::MAX;

/// Milliseconds since the first call, the unit of every stamp.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(UNSET - 1)
}

/// The deadlines a connection lives by.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// A whole request head, from accept (the first) or from its first byte.
    pub header_read: Duration,
    /// Between one request's end and the next one's first byte.
    pub idle: Duration,
    /// A client that makes a write wait must then read at least `min_rate`
    /// bytes a second after `grace` (0: no minimum), as it must send its body.
    pub grace: Duration,
    pub min_rate: u64,
}

/// One connection's state, shared by its socket, its requests and its
/// watchdog.
#[derive(Debug)]
pub struct Clock {
    /// Requests in flight (HTTP/2 may have several).
    busy: AtomicU32,
    /// Requests begun so far.
    served: AtomicU64,
    /// When the connection last became idle (accept, for the first request).
    idle_since: AtomicU64,
    /// The first byte read while idle: a request head has begun.
    head_since: AtomicU64,
    /// Bytes written to the client.
    written: AtomicU64,
    /// The first write of this request that had to wait for the client,
    /// and `written` then.
    slow_since: AtomicU64,
    written_at_slow: AtomicU64,
    /// Set when the accept loop wants this connection closed if idle.
    evict: AtomicBool,
    pub(super) evicted: Notify,
    /// Set when the connection is closed for reading too slowly: reset it.
    pub(super) abort: AtomicBool,
    /// Wakes the watchdog when a write had to wait (a head's first byte
    /// does not wake it: see `verdict`).
    pub(super) changed: Notify,
}

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Close: the named deadline passed.
    Close(&'static str),
    /// Close with a reset: the client reads too slowly, and what is
    /// still unsent must not linger in the kernel.
    Abort(&'static str),
    /// Look again after this long.
    Wait(Duration),
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            busy: AtomicU32::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(now_ms()),
            head_since: AtomicU64::new(UNSET),
            written: AtomicU64::new(0),
            slow_since: AtomicU64::new(UNSET),
            written_at_slow: AtomicU64::new(0),
            evict: AtomicBool::new(false),
            evicted: Notify::new(),
            abort: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// A clock idle since `ms` (tests).
    #[cfg(test)]
    pub fn idle_at(ms: u64) -> Clock {
        let clock = Clock::new();
        clock.idle_since.store(ms, Ordering::Relaxed);
        clock
    }

    /// A request has begun; the guard ends it when dropped.
    pub fn begin(self: &std::sync::Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.served.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn end(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.head_since.store(UNSET, Ordering::Relaxed);
            self.slow_since.store(UNSET, Ordering::Relaxed);
            self.idle_since.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Whether no request is in flight.
    pub fn idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
    }

    /// Since when the connection has been idle, if it is.
    pub fn idle_since(&self) -> Option<u64> {
        self.idle().then(|| self.idle_since.load(Ordering::Relaxed))
    }

    /// Asks the connection to close if it is idle when it looks.
    pub fn evict(&self) {
        self.evict.store(true, Ordering::Relaxed);
        self.evicted.notify_one();
    }

    /// Marks the connection for a reset when its socket closes.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    /// Whether an eviction was asked for and the connection is idle.
    pub fn evicted_now(&self) -> bool {
        self.evict.swap(false, Ordering::Relaxed) && self.idle()
    }

    fn read(&self) {
        if self.idle() && self.head_since.load(Ordering::Relaxed) == UNSET {
            let _ = self.head_since.compare_exchange(UNSET, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) => _ = self.written.fetch_add(*n as u64, Ordering::Relaxed),
            Poll::Pending if self.slow_since.load(Ordering::Relaxed) == UNSET && !self.idle() => {
                self.written_at_slow.store(self.written.load(Ordering::Relaxed), Ordering::Relaxed);
                self.slow_since.store(now_ms(), Ordering::Relaxed);
                self.changed.notify_one();
            }
            _ => {}
        }
    }

    /// The deadline in force and whether it has passed: a whole first
    /// head within `header_read` of accept; a later head within
    /// `header_read` of its first byte; the next request's first byte
    /// within `idle`; and, once a write of a request in flight had to wait,
    /// the client reads at `min_rate` after `grace`.
    pub fn verdict(&self, d: Deadlines) -> Verdict {
        self.verdict_at(d, now_ms())
    }

    fn verdict_at(&self, d: Deadlines, now: u64) -> Verdict {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(UNSET - 1);
        let (deadline, why) = if !self.idle() {
            match self.slow_since.load(Ordering::Relaxed) {
                since if since == UNSET || d.min_rate == 0 => return Verdict::Wait(d.idle.min(d.header_read)),
                since => {
                    let read = self.written.load(Ordering::Relaxed) - self.written_at_slow.load(Ordering::Relaxed);
                    let earned = read.saturating_mul(1000) / d.min_rate;
                    let due = since.saturating_add(ms(d.grace)).saturating_add(earned);
                    return match now.checked_sub(due) {
                        Some(_) => Verdict::Abort("the client reads too slowly"),
                        None => Verdict::Wait(Duration::from_millis(due - now)),
                    };
                }
            }
        } else if self.served.load(Ordering::Relaxed) == 0 {
            (self.idle_since.load(Ordering::Relaxed).saturating_add(ms(d.header_read)), "no request head")
        } else {
            match self.head_since.load(Ordering::Relaxed) {
                UNSET => (self.idle_since.load(Ordering::Relaxed).saturating_add(ms(d.idle)), "idle"),
                since => (since.saturating_add(ms(d.header_read)), "no whole request head"),
            }
        };
        if now >= deadline {
            return Verdict::Close(why);
        }
        // While idle, look at least every `header_read`: a head's first byte
        // wakes no one (that would cost every request a wake-up), so a
        // stalled later head is cut between one and two `header_read` after
        // it began.
        let wait = Duration::from_millis(deadline - now);
        Verdict::Wait(if why == "idle" { wait.min(d.header_read) } else { wait })
    }
}

/// A request in flight; dropping it ends the request.
#[derive(Debug)]
pub struct Busy(std::sync::Arc<Clock>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The socket, reporting reads and writes to its clock. Closed by a reset
/// when the clock says so (`abort`): a slow reader's unsent answer is not
/// left in the kernel to trickle out.
#[derive(Debug)]
pub struct Watched {
    inner: TcpStream,
    clock: std::sync::Arc<Clock>,
}

impl Watched {
    pub fn new(inner: TcpStream, clock: std::sync::Arc<Clock>) -> Watched {
        Watched { inner, clock }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.clock.abort.load(Ordering::Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.clock.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.clock.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pin_project_lite::pin_project! {
    /// An answer's body holding its request's `Busy` until it ends.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        busy: Option<Busy>,
    }
}

impl<B> Tracked<B> {
    pub fn new(inner: B, busy: Busy) -> Tracked<B> {
        Tracked { inner, busy: Some(busy) }
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.busy.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const D: Deadlines = Deadlines {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        grace: Duration::from_secs(10),
        min_rate: 500,
    };

    fn clock_at(start: u64) -> Arc<Clock> {
        let clock = Arc::new(Clock::new());
        clock.idle_since.store(start, Ordering::Relaxed);
        clock
    }

    #[test]
    fn the_first_head_is_due_header_read_after_accept_bytes_or_not() {
        let clock = clock_at(1000);
        assert_eq!(clock.verdict_at(D, 1000), Verdict::Wait(Duration::from_secs(10)));
        clock.head_since.store(9000, Ordering::Relaxed);
        assert_eq!(clock.verdict_at(D, 10_999), Verdict::Wait(Duration::from_millis(1)));
        assert_eq!(clock.verdict_at(D, 11_000), Verdict::Close("no request head"));
    }

    #[test]
    fn a_kept_alive_connection_waits_idle_then_header_read_from_the_first_byte() {
        let clock = clock_at(0);
        let busy = clock.begin();
        assert_eq!(clock.verdict_at(D, 500_000), Verdict::Wait(Duration::from_secs(10)));
        drop(busy);
        let since = clock.idle_since.load(Ordering::Relaxed);
        assert_eq!(clock.verdict_at(D, since), Verdict::Wait(Duration::from_secs(10)), "looks again after header_read");
        assert_eq!(clock.verdict_at(D, since + 59_999), Verdict::Wait(Duration::from_millis(1)));
        assert_eq!(clock.verdict_at(D, since + 60_000), Verdict::Close("idle"));
        clock.head_since.store(since + 55_000, Ordering::Relaxed);
        assert_eq!(clock.verdict_at(D, since + 60_000), Verdict::Wait(Duration::from_secs(5)));
        assert_eq!(clock.verdict_at(D, since + 65_000), Verdict::Close("no whole request head"));
    }

    #[test]
    fn a_busy_connection_is_closed_only_when_its_client_reads_too_slowly() {
        let clock = clock_at(0);
        let busy = clock.begin();
        clock.wrote(&Poll::Ready(Ok(1_000_000)));
        assert_eq!(clock.verdict_at(D, u64::MAX / 2), Verdict::Wait(Duration::from_secs(10)), "never had to wait");
        clock.wrote(&Poll::Pending);
        let since = clock.slow_since.load(Ordering::Relaxed);
        clock.wrote(&Poll::Pending);
        assert_eq!(clock.slow_since.load(Ordering::Relaxed), since, "the first wait counts");
        assert_eq!(clock.verdict_at(D, since + 10_000), Verdict::Abort("the client reads too slowly"));
        // 1000 bytes read since: two more seconds at 500 bytes a second.
        clock.wrote(&Poll::Ready(Ok(1000)));
        assert_eq!(clock.verdict_at(D, since + 10_000), Verdict::Wait(Duration::from_secs(2)));
        assert_eq!(clock.verdict_at(D, since + 12_000), Verdict::Abort("the client reads too slowly"));
        let off = Deadlines { min_rate: 0, ..D };
        assert_eq!(clock.verdict_at(off, since + 12_000), Verdict::Wait(Duration::from_secs(10)));
        // The next request starts afresh.
        drop(busy);
        let _next = clock.begin();
        assert_eq!(clock.verdict_at(D, since + 12_000), Verdict::Wait(Duration::from_secs(10)));
    }

    #[test]
    fn bytes_start_a_head_only_while_idle_and_requests_nest() {
        let clock = clock_at(0);
        let (a, b) = (clock.begin(), clock.begin());
        clock.read();
        assert_eq!(clock.head_since.load(Ordering::Relaxed), UNSET);
        drop(a);
        assert!(!clock.idle());
        drop(b);
        assert!(clock.idle() && clock.idle_since().is_some());
        clock.read();
        assert_ne!(clock.head_since.load(Ordering::Relaxed), UNSET);
        clock.evict();
        assert!(clock.evicted_now());
        assert!(!clock.evicted_now(), "an eviction is taken once");
    }
}
