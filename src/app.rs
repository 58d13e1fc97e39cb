//! The assembled service: `App::build` loads the rules, binds the listener
//! (port 0 allowed) and exposes its address; `run` serves until shutdown.
//!
//! Shutdown order: the signal resolves → the listener stops accepting →
//! in-flight requests finish within `shutdown_timeout` → `run` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::proxy::{self, Proxy};
use crate::resource::{Classifier, RulesError, RulesFile};

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Rules(#[from] RulesError),
    #[error("no upstream: give --upstream URL, AUDITGATE_UPSTREAM or `upstream` in the config file")]
    NoUpstream,
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

impl AppError {
    /// Configuration mistakes exit 64 (EX_USAGE), like a bad config file.
    pub fn is_usage(&self) -> bool {
        matches!(self, AppError::Rules(_) | AppError::NoUpstream)
    }
}

/// A built, bound, not yet running auditgate.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    proxy: Arc<Proxy>,
}

impl App {
    /// Loads rules and binds the proxy listener; nothing is served yet.
    pub async fn build(config: Config) -> Result<App, AppError> {
        let rules = RulesFile::load_dir(&config.rules)?;
        let proxy = Proxy::new(&config, Classifier::new(rules)).ok_or(AppError::NoUpstream)?;
        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| AppError::Bind { addr: config.listen, source })?;
        Ok(App { listener, proxy: Arc::new(proxy) })
    }

    /// The address the proxy listens on (the real port when 0 was asked).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(addr = %self.proxy_addr(), "proxy listening");
        proxy::serve(self.listener, self.proxy, shutdown).await;
        tracing::info!("stopped");
    }
}
