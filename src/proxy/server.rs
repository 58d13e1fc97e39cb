//! The proxy port: one `ConnInfo` per client connection, served by the
//! shared accept loop (`crate::conn`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::{Affinity, Proxy, ResponseBody};
use crate::conn::{self, ConnLimits};

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

/// What serves one client connection of the proxy port.
#[derive(Debug)]
struct ProxyConn {
    proxy: Arc<Proxy>,
    info: ConnInfo,
}

impl conn::Serve for ProxyConn {
    type Body = ResponseBody;

    async fn call(self: Arc<Self>, req: Request<Incoming>) -> Response<ResponseBody> {
        self.proxy.handle(&self.info, req).await
    }

    fn lean(&self) -> bool {
        self.proxy.serves_lean()
    }

    fn call_lean(&self, head: conn::Head<'_>) -> impl Future<Output = Option<Response<ResponseBody>>> + Send {
        self.proxy.handle_lean(&self.info, head)
    }
}

/// Serves the proxy port (over TLS with `tls`) until `shutdown` resolves,
/// then drains.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    tls: Option<crate::tls::Listening>,
    shutdown: impl Future<Output = ()>,
) {
    let proto = if tls.is_some() { "https" } else { "http" };
    let limits = ConnLimits::new(&proxy.limits).with_tls(tls);
    let handler = |peer: SocketAddr| ProxyConn {
        info: ConnInfo {
            peer,
            peer_value: HeaderValue::from_str(&peer.ip().to_canonical().to_string())
                .expect("an IP address is a header value"),
            peer_trusted: proxy.trusts(peer),
            proto,
            affinity: Affinity::default(),
        },
        proxy: proxy.clone(),
    };
    conn::serve(listener, limits, handler, shutdown).await;
}
