//! The assembled service: `App::build` opens the store, loads the rules,
//! binds the listener (port 0 allowed) and exposes its address; `run` serves
//! until shutdown.
//!
//! Shutdown order: the signal resolves → `/readyz` answers 503 and the proxy
//! listener stops accepting → in-flight requests finish within
//! `shutdown_timeout` → the recorder's senders are dropped, so the writer
//! drains the queue → the query port stops → the store closes → `run` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::identity::ActorSource;
use crate::policy::{self, Change, Policy};
use crate::proxy::{self, Proxy};
use crate::recorder::{self, Writer};
use crate::resource::{Classifier, RulesError, RulesFile};
use crate::snapshot::ResourceLocks;
use crate::store::{SharedLock, Store, StoreError};

/// How often retention looks for entries past `retention_days`.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Rules(#[from] RulesError),
    #[error("no upstream: give --upstream URL, AUDITGATE_UPSTREAM or `upstream` in the config file")]
    NoUpstream,
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Spool(#[from] crate::spool::SpoolError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(
        "query port {0}: refusing a non-loopback address without [query] tokens; add tokens or listen on 127.0.0.1"
    )]
    QueryNotLoopback(SocketAddr),
    #[error("{0}")]
    Sink(#[from] crate::sink::SinkError),
}

impl From<recorder::RecorderError> for AppError {
    fn from(e: recorder::RecorderError) -> Self {
        match e {
            recorder::RecorderError::Store(e) => AppError::Store(e),
            recorder::RecorderError::Spool(e) => AppError::Spool(e),
        }
    }
}

impl AppError {
    /// Configuration mistakes exit 64 (EX_USAGE), like a bad config file.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AppError::Rules(_)
                | AppError::NoUpstream
                | AppError::QueryNotLoopback(_)
                | AppError::Tls(_)
                | AppError::Sink(_)
                | AppError::Store(StoreError::UnsupportedUrl(_) | StoreError::InstanceTaken(_))
        )
    }
}

/// A built, bound, not yet running auditgate.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    query_listener: TcpListener,
    api: Arc<ApiState>,
    proxy: Arc<Proxy>,
    writer: Writer,
    store: Store,
    /// This instance's name, held in a shared store until `run` ends.
    instance_claim: Option<SharedLock>,
    /// With `[tls]`: the pair both listeners serve.
    certificates: Option<Arc<crate::tls::Certificates>>,
    /// `[[sink]]`, started with the writer.
    sinks: Vec<crate::sink::Sink>,
    config: Config,
}

/// How long start-up waits to see whether the upstream takes connections.
const UPSTREAM_PROBE: std::time::Duration = std::time::Duration::from_secs(1);

/// Says so in the log when the upstream does not take a connection now;
/// serving starts anyway (requests get 502 until it does), as nginx does.
async fn warn_if_unreachable(upstream: &crate::config::Upstream) {
    let host = upstream.authority.host().trim_start_matches('[').trim_end_matches(']');
    let port =
        upstream.authority.port_u16().unwrap_or(if upstream.scheme == http::uri::Scheme::HTTPS { 443 } else { 80 });
    let connect = tokio::net::TcpStream::connect((host, port));
    let why = match tokio::time::timeout(UPSTREAM_PROBE, connect).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {UPSTREAM_PROBE:?}"),
    };
    tracing::warn!(
        upstream = %upstream.authority,
        error = %why,
        "the upstream does not take connections now; serving anyway (its requests get 502 until it does)"
    );
}

/// How often the certificate files are checked for a new pair.
const CERTIFICATES_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl App {
    /// Opens the store, loads rules and binds the proxy listener; nothing is
    /// served yet.
    pub async fn build(config: Config) -> Result<App, AppError> {
        let classifier = Classifier::new(RulesFile::load_dir(&config.rules)?);
        let actions = policy::known_actions(classifier.custom_actions());
        let seeds = policy::load_seed_dir(&config.rules, &actions)?;
        if config.upstream.is_none() {
            return Err(AppError::NoUpstream);
        }
        if config.query_tokens.is_empty() && !config.query_listen.ip().is_loopback() {
            return Err(AppError::QueryNotLoopback(config.query_listen));
        }
        let certificates = config.tls.pair.clone().map(crate::tls::Certificates::load).transpose()?;
        // Both ports first: a start that cannot listen leaves no database.
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })
        };
        let listener = bind(config.listen).await?;
        let query_listener = bind(config.query_listen).await?;
        if !config.rules_given && !config.rules.is_dir() {
            tracing::warn!(
                rules = %config.rules.display(),
                "no rules directory: the built-in path rules apply and no configuration is seeded (give --rules DIR)"
            );
        }
        if let Some(upstream) = &config.upstream {
            warn_if_unreachable(upstream).await;
        }
        survive_file_size_limits();
        let power_safe = config.recorder.durability == recorder::Durability::Sync;
        let store = Store::open(&config.database, power_safe).await?;
        let instance_claim = store.claim_instance(&config.instance).await?;
        let (recorder, writer) = recorder::recorder(store.clone(), &config.instance, &config.recorder).await?;
        let seed_file = config.rules.join("audit.toml").display().to_string();
        for (before, after) in store.seed_configurations(&seeds).await? {
            let action = if before.is_some() { "update" } else { "create" };
            let change = Change {
                action,
                actor: "local",
                actor_source: ActorSource::Anonymous,
                client_ip: "127.0.0.1".into(),
                method: "SEED",
                path: &seed_file,
                status: 200,
                instance: &config.instance,
            };
            let _ = recorder.record(change.entry(before.as_ref(), Some(&after)), None).await;
        }
        let policy = Arc::new(Policy::empty());
        policy.reload(&store).await?;
        let tls_handshakes = Arc::new(crate::tls::HandshakeStats::default());
        let sinks = crate::sink::Sinks::prepare(&config.sinks, config.tls.upstream_ca.as_deref())?;
        let api = Arc::new(ApiState {
            store: store.clone(),
            recorder: recorder.downgrade(),
            policy: policy.clone(),
            actions,
            instance: config.instance.clone(),
            tokens: config.query_tokens.clone(),
            scheme: if certificates.is_some() { "https" } else { "http" },
            streams: Arc::new(api::Streams::new(config.query_max_streams)),
            draining: std::sync::atomic::AtomicBool::new(false),
            openapi: std::sync::OnceLock::new(),
            shared_lock_errors: Arc::default(),
            tls_handshakes: certificates.as_ref().map(|_| tls_handshakes),
            sinks: sinks.iter().map(crate::sink::Sink::stats).collect(),
        });
        let locks = ResourceLocks::new(store.clone(), api.shared_lock_errors.clone());
        let upstream_tls = match &config.upstream {
            Some(u) if u.scheme == http::uri::Scheme::HTTPS => {
                Some(crate::tls::upstream_config(config.tls.upstream_ca.as_deref())?)
            }
            _ => None,
        };
        let proxy =
            Proxy::new(&config, classifier, recorder, locks, policy, upstream_tls).ok_or(AppError::NoUpstream)?;
        Ok(App {
            listener,
            query_listener,
            api,
            proxy: Arc::new(proxy),
            writer,
            store,
            instance_claim,
            certificates,
            sinks,
            config,
        })
    }

    /// The address the proxy listens on (the real port when 0 was asked).
    pub fn proxy_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The address the query port listens on.
    pub fn query_addr(&self) -> SocketAddr {
        self.query_listener.local_addr().expect("a bound listener has an address")
    }

    /// Whether both ports speak HTTPS (`[tls]`).
    pub fn serves_tls(&self) -> bool {
        self.certificates.is_some()
    }

    /// The store the trail is written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` resolves, then drains connections and the
    /// recorder queue.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(addr = %self.proxy_addr(), query = %self.query_addr(), "proxy listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let writer = tokio::spawn(self.writer.run());
        let sinks =
            crate::sink::Sinks::start(self.sinks, &self.store, self.api.recorder.stats(), self.config.recorder.batch);
        tokio::spawn(self.api.policy.clone().watch(self.store.clone(), self.config.config_refresh));
        let retention = (self.config.retention_days > 0).then(|| {
            let (store, trail, instance) =
                (self.store.clone(), self.api.recorder.clone(), self.config.instance.clone());
            let days = self.config.retention_days;
            tokio::spawn(crate::retention::run(store, trail, instance, days, RETENTION_EVERY))
        });
        let tls = self
            .certificates
            .as_ref()
            .zip(self.api.tls_handshakes.clone())
            .map(|(certificates, stats)| crate::tls::Listening::new(certificates.server_config(), stats));
        let reloading = self.certificates.as_ref().map(|c| c.watch(CERTIFICATES_EVERY));
        let api = self.api.clone();
        let limits = crate::conn::ConnLimits::new(&self.config.limits).with_tls(tls.clone());
        let rate = crate::inbound::BodyRate::new(&self.config.limits);
        let query = tokio::spawn(api::serve(self.query_listener, self.api, limits, rate, stopped(stop_rx)));
        let signal = async move {
            shutdown.await;
            // Readiness fails first, so a load balancer stops sending.
            api.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        };
        proxy::serve(self.listener, self.proxy, tls, signal).await;
        for task in retention.into_iter().chain(reloading) {
            task.abort();
        }
        // The proxy (and with it the recorder's senders) is gone once the
        // last connection and after-snapshot task end; the writer then drains.
        if tokio::time::timeout(self.config.limits.shutdown_timeout, writer).await.is_err() {
            tracing::error!("recorder did not drain within shutdown_timeout");
        }
        // Each sink stores how far it delivered; the rest goes at the next start.
        sinks.stop().await;
        // The query port answers until the trail is complete.
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(self.config.limits.shutdown_timeout, query).await;
        drop(self.instance_claim);
        self.store.close().await;
        tracing::info!("stopped");
    }
}

/// A file that may not grow (`RLIMIT_FSIZE`) must fail the write, as a full
/// disk does, so that the entry is spooled or counted; by default the
/// kernel's SIGXFSZ kills the process and everything it holds in memory
/// (PostgreSQL ignores it for the same reason). Caught by a handler that
/// stays for the life of the process.
fn survive_file_size_limits() {
    let xfsz = tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ);
    if let Err(e) = tokio::signal::unix::signal(xfsz) {
        tracing::warn!(error = %e, "SIGXFSZ not caught: a file-size limit would end the process");
    }
}
