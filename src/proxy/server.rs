//! The client-facing accept loop: HTTP/1.1 and HTTP/2 (prior knowledge) on
//! one port, a connection cap, header-read timeout, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{Affinity, Proxy};

/// Facts about one client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer address as a header value, for `X-Forwarded-For`.
    pub peer_value: HeaderValue,
    pub peer_trusted: bool,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// The upstream connection of an HTTP/1.x client connection (unused by
    /// HTTP/2, whose concurrent streams share the pool).
    pub affinity: Affinity,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight
/// requests finish for at most `shutdown_timeout`.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    let limits = proxy.limits.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .max_pending_accept_reset_streams(64);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
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
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnInfo {
            peer,
            peer_value: HeaderValue::from_str(&peer.ip().to_canonical().to_string())
                .expect("an IP address is a header value"),
            peer_trusted: proxy.trusts(peer),
            proto: "http",
            affinity: Affinity::default(),
        });
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(proxy.handle(&conn, req).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "listener closed, draining");
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?limits.shutdown_timeout, "connections still open after shutdown_timeout, closing them");
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
