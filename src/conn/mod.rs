//! Client connections, the same on both ports: the accept loop, HTTP/1.1
//! and HTTP/2 (prior knowledge) on one port, the cap on open connections
//! (at the cap, the connection idle the longest is closed to admit a new
//! one), the deadlines every connection lives by (`watch`), and graceful
//! shutdown.

mod lane;
mod watch;
mod write;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::sync::watch as signal;

pub use lane::Head;
pub use watch::Deadlines;
use watch::{Clock, Tracked, Verdict, Watched};

/// How connections on one port are set up and bounded.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    pub deadlines: Deadlines,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub shutdown_timeout: Duration,
    /// With `[tls]`: every connection begins with a handshake.
    pub tls: Option<crate::tls::Listening>,
}

impl ConnLimits {
    pub fn new(limits: &crate::config::Limits) -> ConnLimits {
        ConnLimits {
            deadlines: Deadlines {
                header_read: limits.header_read_timeout,
                idle: limits.idle_timeout,
                grace: limits.body_timeout,
                min_rate: limits.body_min_rate,
            },
            max_connections: limits.max_connections,
            max_header_bytes: limits.max_header_bytes,
            shutdown_timeout: limits.shutdown_timeout,
            tls: None,
        }
    }

    /// The same, over TLS.
    pub fn with_tls(self, tls: Option<crate::tls::Listening>) -> ConnLimits {
        ConnLimits { tls, ..self }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most unsent data a client socket holds before a write waits
/// (`TCP_NOTSENT_LOWAT`). Data in flight is not counted, so a fast client
/// far away still gets a full window; a client that stops reading holds
/// about this much in the kernel instead of an autotuned send buffer of
/// several MiB, which a slow-read attack multiplies by its connections.
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// What serves the requests of one connection (made per connection, so it
/// can hold what the connection shares between its requests).
pub trait Serve: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error: Into<BoxError> + Send> + Send + 'static;

    /// Serves a request hyper read: any version, any body.
    fn call(self: Arc<Self>, req: Request<Incoming>) -> impl Future<Output = Response<Self::Body>> + Send + 'static;

    /// Whether the lean lane reads this connection's HTTP/1.1 heads first.
    fn lean(&self) -> bool {
        false
    }

    /// Serves a bodiless HTTP/1.1 request the lean lane read, or `None`: the
    /// connection then goes to hyper, this request first.
    fn call_lean(&self, head: Head<'_>) -> impl Future<Output = Option<Response<Self::Body>>> + Send {
        let _ = head;
        std::future::ready(None)
    }
}

/// Accepts connections until `shutdown` resolves, then lets in-flight
/// requests finish for at most `shutdown_timeout`. `handler(peer)` makes
/// what serves the requests of a connection from `peer`.
pub async fn serve<M, S>(listener: TcpListener, limits: ConnLimits, handler: M, shutdown: impl Future<Output = ()>)
where
    M: Fn(SocketAddr) -> S,
    S: Serve,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The head's deadline is the watchdog's, for the first request (which
    // hyper's would miss while the version is sniffed) and later ones.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .max_pending_accept_reset_streams(64);
    let builder = Arc::new(builder);
    // Every connection holds a receiver; shutdown sets it and waits for all
    // of them to be dropped.
    let (stopping, stop) = signal::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Open::default());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // At the cap, the connection idle the longest makes room; while
        // every one is busy, the new one waits for the first to end.
        let permit = loop {
            if let Ok(permit) = slots.clone().try_acquire_owned() {
                break Some(permit);
            }
            open.evict_longest_idle();
            tokio::select! {
                permit = slots.clone().acquire_owned() => break Some(permit.expect("the semaphore is never closed")),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = &mut shutdown => break None,
            }
        };
        let Some(permit) = permit else { break };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT);
        let clock = Arc::new(Clock::new());
        let key = open.add(clock.clone());
        let conn = Conn {
            service: Arc::new(handler(peer)),
            clock,
            peer,
            deadlines: limits.deadlines,
            max_head: limits.max_header_bytes,
            builder: builder.clone(),
            stop: stop.clone(),
        };
        let (open, tls) = (open.clone(), limits.tls.clone());
        tokio::spawn(async move {
            let io = Watched::new(stream, conn.clock.clone());
            match tls {
                None => conn.run(io).await,
                Some(tls) => {
                    if let Some(io) = handshake(&tls, io, &conn.clock, conn.deadlines, conn.peer).await {
                        conn.run(io).await;
                    }
                }
            }
            open.remove(key);
            drop(permit);
        });
    }
    drop(listener);
    drop(stop);
    tracing::info!(connections = stopping.receiver_count(), "listener closed, draining");
    let _ = stopping.send(true);
    if tokio::time::timeout(limits.shutdown_timeout, stopping.closed()).await.is_err() {
        tracing::warn!(timeout = ?limits.shutdown_timeout, "connections still open after shutdown_timeout, closing them");
    }
}

/// One client connection and what it is served with.
struct Conn<S> {
    service: Arc<S>,
    clock: Arc<Clock>,
    peer: SocketAddr,
    deadlines: Deadlines,
    max_head: usize,
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// Set at shutdown; held until the connection ends.
    stop: signal::Receiver<bool>,
}

impl<S: Serve> Conn<S> {
    /// Serves the connection (the lean lane first, when the service takes
    /// it, then hyper) under its deadlines. Generic over the stream: each
    /// kind gets its own copy of hyper's connection, so cleartext pays
    /// nothing for TLS.
    async fn run<IO>(mut self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = if self.service.lean() {
            let lane = lane::serve(io, &*self.service, &self.clock, self.max_head, &mut self.stop);
            match under_deadlines(&self.clock, self.deadlines, self.peer, lane).await {
                Some(lane::End::HandOver(io)) => io,
                Some(lane::End::Closed) | None => return,
            }
        } else {
            lane::Replay::new(Bytes::new(), io)
        };
        let (service, requests) = (self.service.clone(), self.clock.clone());
        let service = service_fn(move |req| {
            let busy = requests.begin();
            // Boxed once: hyper moves the request's future into its own
            // state, a copy of every byte of it without the box.
            let answer = Box::pin(service.clone().call(req));
            async move { Ok::<_, Infallible>(answer.await.map(|body| Tracked::new(body, busy))) }
        });
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        let mut stop = self.stop;
        let connection = async move {
            tokio::pin!(connection);
            let mut asked = false;
            loop {
                tokio::select! {
                    done = connection.as_mut() => return done,
                    _ = stop.wait_for(|stopping| *stopping), if !asked => {
                        connection.as_mut().graceful_shutdown();
                        asked = true;
                    }
                }
            }
        };
        if let Some(Err(e)) = under_deadlines(&self.clock, self.deadlines, self.peer, connection).await {
            tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
        }
    }
}

/// Runs `work` (a handshake, then the connection) under the connection's
/// deadlines; `None` when they, or an eviction, closed it first.
async fn under_deadlines<T>(
    clock: &Clock,
    deadlines: Deadlines,
    peer: SocketAddr,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        let wait = match clock.verdict(deadlines) {
            Verdict::Wait(wait) => wait,
            Verdict::Close(why) => {
                tracing::debug!(%peer, reason = why, "closing the connection");
                return None;
            }
            Verdict::Abort(why) => {
                tracing::debug!(%peer, reason = why, "resetting the connection");
                clock.abort();
                return None;
            }
        };
        tokio::select! {
            done = &mut work => return Some(done),
            () = tokio::time::sleep(wait) => {}
            () = clock.changed.notified() => {}
            () = clock.evicted.notified() => if clock.evicted_now() {
                tracing::debug!(%peer, "closing an idle connection to admit a new one");
                return None;
            },
        }
    }
}

/// The TLS handshake, within the first head's deadline (a silent or slow
/// handshake is closed like a silent connection), counted for `/metrics`.
async fn handshake(
    tls: &crate::tls::Listening,
    io: Watched,
    clock: &Clock,
    deadlines: Deadlines,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<Watched>> {
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    match under_deadlines(clock, deadlines, peer, tls.acceptor.accept(io)).await {
        Some(Ok(stream)) => {
            tls.stats.completed(started.elapsed());
            Some(stream)
        }
        Some(Err(e)) => {
            tls.stats.failed.fetch_add(1, Relaxed);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        None => {
            tls.stats.timed_out.fetch_add(1, Relaxed);
            None
        }
    }
}

/// The open connections' clocks, for choosing one to close at the cap.
#[derive(Debug, Default)]
struct Open {
    clocks: Mutex<(u64, HashMap<u64, Arc<Clock>>)>,
}

impl Open {
    fn add(&self, clock: Arc<Clock>) -> u64 {
        let mut guard = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        let (next, clocks) = &mut *guard;
        *next += 1;
        clocks.insert(*next, clock);
        *next
    }

    fn remove(&self, key: u64) {
        self.clocks.lock().unwrap_or_else(|e| e.into_inner()).1.remove(&key);
    }

    /// Asks the connection idle the longest to close; none when all are busy.
    /// Idle times are in milliseconds, and a burst of connections is accepted
    /// within one: among equals the one accepted first goes.
    fn evict_longest_idle(&self) {
        let guard = self.clocks.lock().unwrap_or_else(|e| e.into_inner());
        let longest =
            guard.1.iter().filter_map(|(key, c)| Some(((c.idle_since()?, *key), c))).min_by_key(|(at, _)| *at);
        if let Some((_, clock)) = longest {
            clock.evict();
        }
    }
}

/// Accept errors: a reset before accept is the client's business; running out
/// of descriptors is ours, so back off instead of spinning.
async fn accept_error(e: io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted => {}
        _ => {
            tracing::warn!(error = %e, "accept failed, backing off");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_connection_idle_the_longest_is_asked_to_close() {
        let open = Open::default();
        let recent = Arc::new(Clock::idle_at(2000));
        let busy = Arc::new(Clock::idle_at(0));
        let _request = busy.begin();
        let oldest = Arc::new(Clock::idle_at(1000));
        let keys: Vec<u64> = [&recent, &busy, &oldest].into_iter().map(|c| open.add(c.clone())).collect();
        open.evict_longest_idle();
        assert!(oldest.evicted_now());
        assert!(!recent.evicted_now() && !busy.evicted_now());
        // Once it is gone, the next idle one; a busy one never.
        open.remove(keys[2]);
        open.evict_longest_idle();
        assert!(recent.evicted_now());
        open.remove(keys[0]);
        open.evict_longest_idle();
        assert!(!busy.evicted_now());
    }

    #[test]
    fn among_connections_idle_since_the_same_millisecond_the_first_accepted_goes() {
        let open = Open::default();
        let clocks: Vec<Arc<Clock>> = (0..64).map(|_| Arc::new(Clock::idle_at(5000))).collect();
        let keys: Vec<u64> = clocks.iter().map(|c| open.add(c.clone())).collect();
        for (key, clock) in keys.iter().zip(&clocks) {
            open.evict_longest_idle();
            assert!(clock.evicted_now(), "connection {key} was not the one asked");
            assert!(clocks.iter().all(|c| !c.evicted_now()), "another was asked too");
            open.remove(*key);
        }
    }
}
