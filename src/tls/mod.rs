//! TLS material (`[tls]`): the listeners' certificate pair, loaded and
//! checked at start and swapped in when its files change or on SIGHUP, the
//! server configuration both listeners share, and the trust an HTTPS
//! upstream is verified against. rustls with the ring provider throughout.

mod der;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material was refused; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {path}: {reason}")]
    File { key: &'static str, path: PathBuf, reason: String },
    #[error("tls.key {key}: does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("tls.cert {path}: expired on {at}; renew it")]
    Expired { path: PathBuf, at: String },
}

fn file_error(key: &'static str, path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File { key, path: path.to_path_buf(), reason: reason.to_string() }
}

/// The crypto every TLS configuration here uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The files of the listeners' pair (`tls.cert`, `tls.key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PairFiles {
    /// Reads and checks the pair: the chain in `cert` (served whole, the
    /// server's own certificate first), a key in `key` (PKCS#8, PKCS#1 or
    /// SEC1; RSA, ECDSA or Ed25519) that belongs to it, and a certificate
    /// not expired.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| file_error("tls.cert", &self.cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error("tls.cert", &self.cert, e))?;
        let Some(own) = chain.first() else {
            return Err(file_error("tls.cert", &self.cert, "holds no PEM certificate"));
        };
        let not_after = der::not_after(own)
            .ok_or_else(|| file_error("tls.cert", &self.cert, "its first certificate is not X.509"))?;
        if not_after < chrono::Utc::now().timestamp() {
            let at =
                chrono::DateTime::from_timestamp(not_after, 0).map_or_else(|| not_after.to_string(), |t| t.to_string());
            return Err(TlsError::Expired { path: self.cert.clone(), at });
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| file_error("tls.key", &self.key, e))?;
        CertifiedKey::from_der(chain, key, &provider()).map(Arc::new).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch { cert: self.cert.clone(), key: self.key.clone() },
            other => file_error("tls.key", &self.key, other),
        })
    }

    /// When either file last changed (`None` when one cannot be read).
    fn stamp(&self) -> Option<(SystemTime, SystemTime, u64, u64)> {
        let (c, k) = (std::fs::metadata(&self.cert).ok()?, std::fs::metadata(&self.key).ok()?);
        Some((c.modified().ok()?, k.modified().ok()?, c.len(), k.len()))
    }
}

/// The pair new handshakes get: swapped whole on reload, so a connection
/// keeps the pair it started with.
#[derive(Debug)]
pub struct Certificates {
    files: PairFiles,
    current: ArcSwap<CertifiedKey>,
}

impl Certificates {
    /// Loads the pair; a bad one stops start-up.
    pub fn load(files: PairFiles) -> Result<Arc<Certificates>, TlsError> {
        let pair = files.load()?;
        Ok(Arc::new(Certificates { files, current: ArcSwap::new(pair) }))
    }

    /// Loads the files again: a good pair replaces the served one, a bad one
    /// is logged and the served one kept. Answers whether it was replaced.
    pub fn reload(&self) -> bool {
        match self.files.load() {
            Ok(pair) => {
                self.current.store(pair);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "new TLS certificate refused; still serving the previous one");
                false
            }
        }
    }

    /// The server configuration both listeners use: TLS 1.3 and 1.2 with
    /// rustls' default suites in the server's order of preference (not the
    /// client's), ALPN `h2` then `http/1.1`, this pair.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ignore_client_order = true;
        Arc::new(config)
    }

    /// Reloads whenever the files change (checked every `every`) or the
    /// process gets SIGHUP, until the returned task is aborted.
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut seen = this.files.stamp();
            loop {
                let signalled = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await.is_some(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    true = signalled => {
                        this.reload();
                        seen = this.files.stamp();
                    }
                    () = tokio::time::sleep(every) => {
                        let now = this.files.stamp();
                        if now.is_some() && now != seen {
                            seen = now;
                            this.reload();
                        }
                    }
                }
            }
        })
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The client configuration toward an HTTPS upstream: verified against the
/// system's roots, or against `upstream_ca` alone when given (a private
/// CA). There is no way to skip verification. No ALPN: the upstream client
/// offers `http/1.1` itself.
pub fn upstream_config(upstream_ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    client_config(upstream_ca, "tls.upstream_ca")
}

/// [`upstream_config`] for another peer, a CA file's errors naming it as
/// the configuration key `key`.
pub fn client_config(ca: Option<&Path>, key: &'static str) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| file_error(key, path, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error(key, path, e))?;
            if certs.is_empty() {
                return Err(file_error(key, path, "holds no PEM certificate"));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| file_error(key, path, e))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a system root certificate could not be read");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system root certificates found: an HTTPS upstream cannot be verified");
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Upper bounds of the handshake-time histogram, in seconds.
pub const HANDSHAKE_BUCKETS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

/// Handshakes on both listeners, for `/metrics`.
#[derive(Debug, Default)]
pub struct HandshakeStats {
    /// Completed handshakes within each of `HANDSHAKE_BUCKETS`.
    pub buckets: [std::sync::atomic::AtomicU64; HANDSHAKE_BUCKETS.len()],
    pub completed: std::sync::atomic::AtomicU64,
    pub micros: std::sync::atomic::AtomicU64,
    /// Refused: not TLS, no common version or suite, a bad record.
    pub failed: std::sync::atomic::AtomicU64,
    /// Closed by the deadlines (`header_read_timeout`) or an eviction.
    pub timed_out: std::sync::atomic::AtomicU64,
}

impl HandshakeStats {
    pub fn completed(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        for (bound, count) in HANDSHAKE_BUCKETS.iter().zip(&self.buckets) {
            if took.as_secs_f64() <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.completed.fetch_add(1, Relaxed);
        self.micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// What a TLS listener needs: the shared server configuration and where
/// handshakes are counted.
#[derive(Clone)]
pub struct Listening {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub stats: Arc<HandshakeStats>,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Listening {
    pub fn new(config: Arc<ServerConfig>, stats: Arc<HandshakeStats>) -> Listening {
        Listening { acceptor: tokio_rustls::TlsAcceptor::from(config), stats }
    }
}
