//! The upstream side of the data path. An HTTP/1.1 client connection gets an
//! upstream connection of its own (no pool lookup, no contention); HTTP/2
//! clients, whose streams run concurrently, share a keep-alive pool.

use std::sync::Mutex;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::body::UpstreamBody;
use crate::config::Upstream;

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
}

/// The upstream connection owned by one HTTP/1.1 client connection.
#[derive(Debug, Default)]
pub struct Affinity(Mutex<Option<SendRequest<UpstreamBody>>>);

impl Affinity {
    fn take(&self) -> Option<SendRequest<UpstreamBody>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, sender: SendRequest<UpstreamBody>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    }
}

/// Sends requests to the configured upstream.
#[derive(Debug)]
pub struct UpstreamClient {
    scheme: Scheme,
    authority: Authority,
    /// `host:port` to connect to.
    connect_to: String,
    connect_timeout: Duration,
    pool: Client<HttpConnector, UpstreamBody>,
}

impl UpstreamClient {
    pub fn new(upstream: &Upstream, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        let port = upstream.authority.port_u16().unwrap_or(80);
        UpstreamClient {
            scheme: upstream.scheme.clone(),
            authority: upstream.authority.clone(),
            connect_to: format!("{}:{port}", upstream.authority.host()),
            connect_timeout,
            pool,
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
            return Ok(self.pool.request(req).await?);
        };
        let mut sender = match affinity.take() {
            Some(mut s) => match s.ready().await {
                Ok(()) => s,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let response = match sender.try_send_request(req).await {
            Ok(res) => res,
            Err(mut e) => match e.take_message() {
                // Never written: the idle connection had closed. Once more on a new one.
                Some(req) => {
                    sender = self.connect().await?;
                    sender.send_request(req).await?
                }
                None => return Err(e.into_error().into()),
            },
        };
        affinity.put(sender);
        Ok(response)
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.connect_to))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout)?
            .map_err(UpstreamError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    fn absolute(&self, origin: &Uri) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(origin.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
        Uri::from_parts(parts).expect("scheme, authority and path make a URI")
    }
}
