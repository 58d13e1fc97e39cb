//! The client toward the upstream, shared by the proxy, the snapshots and
//! whoami. An HTTP/1.1 client connection gets an upstream connection of its
//! own (no pool lookup, no contention); HTTP/2 clients, whose streams run
//! concurrently, share a keep-alive pool. An `https://` upstream is always
//! verified (the system's roots, or `tls.upstream_ca`), its host name sent
//! as SNI; a cleartext upstream's connections are plain sockets, with no
//! TLS layer in their types.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::config::Upstream;

mod body;
mod raw;

pub use body::UpstreamBody;
use raw::RawConn;
pub use raw::{RawBody, RawBodyError, RawError, RequestHead, content_length};

/// Why the upstream gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("connect: timed out")]
    ConnectTimeout,
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Pool(#[from] hyper_util::client::legacy::Error),
    #[error("TLS with the upstream: {0}")]
    Tls(#[source] std::io::Error),
    #[error(transparent)]
    Raw(#[from] RawError),
}

/// The keep-alive pool of HTTP/2 clients' requests.
#[derive(Debug)]
enum Pool {
    Plain(Client<HttpConnector, UpstreamBody>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, UpstreamBody>),
}

/// What an `https://` upstream's connections need.
#[derive(Clone)]
struct UpstreamTls {
    connector: tokio_rustls::TlsConnector,
    name: rustls_pki_types::ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The upstream connections owned by one HTTP/1.1 client connection: one
/// for bodiless requests passed through (`send_raw`), one for the rest.
#[derive(Debug, Default)]
pub struct Affinity {
    hyper: Mutex<Option<SendRequest<UpstreamBody>>>,
    raw: raw::Home,
}

impl Affinity {
    fn take(&self) -> Option<SendRequest<UpstreamBody>> {
        self.hyper.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, sender: SendRequest<UpstreamBody>) {
        *self.hyper.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    }
}

/// The most idle lean connections kept for auditgate's own requests.
const MAX_IDLE_OWN: usize = 64;

/// Idle lean connections shared by auditgate's own requests.
type IdleOwn = Arc<Mutex<Vec<RawConn>>>;

/// Sends requests to the configured upstream.
#[derive(Debug)]
pub struct UpstreamClient {
    scheme: Scheme,
    authority: Authority,
    /// `host:port` to connect to.
    connect_to: String,
    /// Connect and TLS handshake together.
    connect_timeout: Duration,
    pool: Pool,
    tls: Option<UpstreamTls>,
    /// Lean connections of snapshots and who-am-I requests (cleartext).
    idle_own: IdleOwn,
}

impl UpstreamClient {
    /// A client of `upstream`; `tls`, an `https://` upstream's client
    /// configuration, is required for one (an `https://` upstream is never
    /// spoken to in cleartext) and unused otherwise.
    pub fn new(
        upstream: &Upstream,
        connect_timeout: Duration,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let builder = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .clone();
        let https = upstream.scheme == Scheme::HTTPS;
        let (pool, tls) = match (https, tls) {
            (true, None) => panic!("an https:// upstream needs its TLS client configuration"),
            (true, Some(config)) => {
                connector.enforce_http(false);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*config).clone())
                    .https_only()
                    .enable_http1()
                    .wrap_connector(connector);
                let host = upstream.authority.host().trim_start_matches('[').trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .expect("an upstream host parsed as a URI authority is a server name");
                let mut direct = (*config).clone();
                direct.alpn_protocols = vec![b"http/1.1".to_vec()];
                let tls =
                    UpstreamTls { connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(direct)), name };
                (Pool::Tls(builder.build(https)), Some(tls))
            }
            (false, _) => (Pool::Plain(builder.build(connector)), None),
        };
        let port = upstream.authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        UpstreamClient {
            scheme: upstream.scheme.clone(),
            authority: upstream.authority.clone(),
            connect_to: format!("{}:{port}", upstream.authority.host()),
            connect_timeout,
            pool,
            tls,
            idle_own: IdleOwn::default(),
        }
    }

    /// Sends a request whose URI is in origin form (`/path?query`). With an
    /// `affinity`, the client connection's own upstream connection is used
    /// (made on first use, remade once if the upstream closed it while idle).
    pub async fn send(
        &self,
        affinity: Option<&Affinity>,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let Some(affinity) = affinity else {
            *req.uri_mut() = self.absolute(req.uri());
            return Ok(match &self.pool {
                Pool::Plain(pool) => pool.request(req).await?,
                Pool::Tls(pool) => pool.request(req).await?,
            });
        };
        // Connecting is boxed: rare, and its state (a TLS handshake's) would
        // otherwise be carried inline by every request's future.
        let mut sender = match affinity.take() {
            Some(mut s) => match s.ready().await {
                Ok(()) => s,
                Err(_) => Box::pin(self.connect()).await?,
            },
            None => Box::pin(self.connect()).await?,
        };
        let response = match sender.try_send_request(req).await {
            Ok(res) => res,
            Err(mut e) => match e.take_message() {
                // Never written: the idle connection had closed. Once more on a new one.
                Some(req) => {
                    sender = Box::pin(self.connect()).await?;
                    sender.send_request(req).await?
                }
                None => return Err(e.into_error().into()),
            },
        };
        affinity.put(sender);
        Ok(response)
    }

    /// Whether `send_raw` can reach this upstream (cleartext only).
    pub fn speaks_raw(&self) -> bool {
        self.tls.is_none()
    }

    /// Sends a request (its head already as the upstream receives it, and
    /// `body` whole, as that head's `Content-Length` says) on the client
    /// connection's own lean connection, made on first use and made again
    /// when the upstream closed it while idle (looked at before anything is
    /// written: a request is never sent twice).
    pub async fn send_raw(
        &self,
        affinity: &Affinity,
        head: &(impl RequestHead + ?Sized),
        body: &[u8],
        read_timeout: Duration,
    ) -> Result<Response<RawBody>, UpstreamError> {
        let conn = match raw::take_home(&affinity.raw).filter(|c| !c.closed_while_idle()) {
            Some(conn) => conn,
            None => RawConn::new(Box::pin(self.tcp_within()).await?),
        };
        Ok(conn.exchange(head, body, &affinity.raw, read_timeout).await?)
    }

    /// Sends a request of auditgate's own (a snapshot, a who-am-I; its body
    /// is not sent) on an idle lean connection of the shared set, or a new
    /// one; `Host` is the upstream's when the request names none. The
    /// connection rejoins the set when the answer's body, read to its end,
    /// is dropped. Cleartext upstreams only (`speaks_raw`).
    pub async fn send_own(&self, req: Request<UpstreamBody>) -> Result<Response<OwnBody>, UpstreamError> {
        let (mut parts, _) = req.into_parts();
        if !parts.headers.contains_key(http::header::HOST)
            && let Ok(host) = http::HeaderValue::from_str(self.authority.as_str())
        {
            parts.headers.insert(http::header::HOST, host);
        }
        let idle = loop {
            let popped = self.idle_own.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match popped {
                Some(conn) if conn.closed_while_idle() => continue,
                other => break other,
            }
        };
        let conn = match idle {
            Some(conn) => conn,
            None => RawConn::new(Box::pin(self.tcp_within()).await?),
        };
        let home = raw::Home::default();
        let response = conn.exchange(&parts, b"", &home, self.connect_timeout).await?;
        Ok(response.map(|body| OwnBody { body, home, idle: self.idle_own.clone() }))
    }

    async fn tcp_within(&self) -> Result<TcpStream, UpstreamError> {
        tokio::time::timeout(self.connect_timeout, self.tcp()).await.map_err(|_| UpstreamError::ConnectTimeout)?
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let Some(tls) = &self.tls else {
            return handshake(self.tcp_within().await?).await;
        };
        let stream = tokio::time::timeout(self.connect_timeout, async {
            let tcp = self.tcp().await?;
            tls.connector.connect(tls.name.clone(), tcp).await.map_err(UpstreamError::Tls)
        })
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)??;
        handshake(stream).await
    }

    async fn tcp(&self) -> Result<TcpStream, UpstreamError> {
        let stream = TcpStream::connect(&self.connect_to).await.map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// The absolute URI the pool needs.
    fn absolute(&self, origin: &Uri) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(origin.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
        Uri::from_parts(parts).expect("scheme, authority and path make a URI")
    }
}

/// HTTP/1.1 over a new upstream connection, served by a task of its own.
async fn handshake<S>(stream: S) -> Result<SendRequest<UpstreamBody>, UpstreamError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended");
        }
    });
    Ok(sender)
}

pin_project_lite::pin_project! {
    /// The answer to a request of auditgate's own; dropped once read to its
    /// end, its connection rejoins the shared set.
    pub struct OwnBody {
        #[pin]
        body: RawBody,
        home: raw::Home,
        idle: IdleOwn,
    }

    impl PinnedDrop for OwnBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(conn) = raw::take_home(this.home) {
                let mut idle = this.idle.lock().unwrap_or_else(|e| e.into_inner());
                if idle.len() < MAX_IDLE_OWN {
                    idle.push(conn);
                }
            }
        }
    }
}

impl std::fmt::Debug for OwnBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnBody").finish_non_exhaustive()
    }
}

impl http_body::Body for OwnBody {
    type Data = bytes::Bytes;
    type Error = RawBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, RawBodyError>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
