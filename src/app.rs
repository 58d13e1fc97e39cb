//! The assembled service: `App::build` opens the store, loads the rules,
//! binds the listener (port 0 allowed) and exposes its address; `run` serves
//! until shutdown.
//!
//! Shutdown order: the signal resolves → the listener stops accepting →
//! in-flight requests finish within `shutdown_timeout` → the recorder's
//! senders are dropped, so the writer drains the queue → `run` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::proxy::{self, Proxy};
use crate::recorder::{self, Writer};
use crate::resource::{Classifier, RulesError, RulesFile};
use crate::store::{SqliteStore, StoreError};

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Rules(#[from] RulesError),
    #[error("no upstream: give --upstream URL, AUDITGATE_UPSTREAM or `upstream` in the config file")]
    NoUpstream,
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl AppError {
    /// Configuration mistakes exit 64 (EX_USAGE), like a bad config file.
    pub fn is_usage(&self) -> bool {
        matches!(self, AppError::Rules(_) | AppError::NoUpstream | AppError::Store(StoreError::UnsupportedUrl(_)))
    }
}

/// A built, bound, not yet running auditgate.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    proxy: Arc<Proxy>,
    writer: Writer,
    store: SqliteStore,
    config: Config,
}

impl App {
    /// Opens the store, loads rules and binds the proxy listener; nothing is
    /// served yet.
    pub async fn build(config: Config) -> Result<App, AppError> {
        let rules = RulesFile::load_dir(&config.rules)?;
        if config.upstream.is_none() {
            return Err(AppError::NoUpstream);
        }
        let store = SqliteStore::open(&config.database).await?;
        let (recorder, writer) = recorder::recorder(store.clone(), &config.instance, &config.recorder).await?;
        let proxy = Proxy::new(&config, Classifier::new(rules), recorder).ok_or(AppError::NoUpstream)?;
        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| AppError::Bind { addr: config.listen, source })?;
        Ok(App { listener, proxy: Arc::new(proxy), writer, store, config })
    }

    /// The address the proxy listens on (the real port when 0 was asked).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The store the trail is written to.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Serves until `shutdown` resolves, then drains connections and the
    /// recorder queue.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(addr = %self.proxy_addr(), "proxy listening");
        let writer = tokio::spawn(self.writer.run());
        proxy::serve(self.listener, self.proxy, shutdown).await;
        // The proxy (and with it the recorder's senders) is gone once the
        // last connection and after-snapshot task end; the writer then drains.
        if tokio::time::timeout(self.config.limits.shutdown_timeout, writer).await.is_err() {
            tracing::error!("recorder did not drain within shutdown_timeout");
        }
        self.store.close().await;
        tracing::info!("stopped");
    }
}
