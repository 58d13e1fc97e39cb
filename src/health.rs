//! `auditgate health`: a probe of this configuration's own query port
//! (`GET /healthz`), for a container's `HEALTHCHECK` where no curl is
//! installed. Exit 0 when the port answers 200, 1 otherwise.
//!
//! With `[tls]` the port speaks HTTPS: the probe accepts exactly the
//! certificate `tls.cert` names (read when it runs, so a renewed pair is
//! followed), not any certificate, and checks the handshake's signatures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the whole probe may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error("{addr}: no answer within {}s", TIMEOUT.as_secs())]
    Timeout { addr: SocketAddr },
    #[error("{addr}: answered `{line}`, not 200")]
    Status { addr: SocketAddr, line: String },
    #[error("tls.cert {path}: {reason}")]
    Cert { path: String, reason: String },
}

/// Where to probe: the query port's address, a wildcard one turned into
/// the loopback address of its family (a listener on every address
/// listens there too).
pub fn probe_addr(query_listen: SocketAddr) -> SocketAddr {
    let ip = match query_listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, query_listen.port())
}

/// `GET /healthz` on `addr` (over TLS when `cert` names the listener's
/// certificate file); Ok when it answers 200.
pub async fn probe(addr: SocketAddr, cert: Option<&Path>) -> Result<(), ProbeError> {
    let verifier = match cert {
        Some(path) => Some(Arc::new(Pinned::read(path)?)),
        None => None,
    };
    let run = async {
        let tcp = TcpStream::connect(addr).await.map_err(|source| ProbeError::Io { addr, source })?;
        match verifier {
            None => exchange(tcp, addr).await,
            Some(verifier) => {
                let config = ClientConfig::builder_with_provider(verifier.provider.clone())
                    .with_safe_default_protocol_versions()
                    .expect("the ring provider supports the default versions")
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth();
                let name = ServerName::IpAddress(addr.ip().into());
                let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|source| ProbeError::Io { addr, source })?;
                exchange(tls, addr).await
            }
        }
    };
    tokio::time::timeout(TIMEOUT, run).await.map_err(|_| ProbeError::Timeout { addr })?
}

/// Sends the request and reads the status line.
async fn exchange(mut io: impl AsyncRead + AsyncWrite + Unpin, addr: SocketAddr) -> Result<(), ProbeError> {
    let io_error = |source| ProbeError::Io { addr, source };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    io.write_all(request.as_bytes()).await.map_err(io_error)?;
    io.flush().await.map_err(io_error)?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = io.read(&mut buf).await.map_err(io_error)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default()).trim_end().to_string();
    let mut parts = line.split(' ');
    let http = parts.next().is_some_and(|v| v.starts_with("HTTP/1."));
    if http && parts.next() == Some("200") { Ok(()) } else { Err(ProbeError::Status { addr, line }) }
}

/// Accepts the one certificate the listener is configured with.
#[derive(Debug)]
struct Pinned {
    own: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    fn read(path: &Path) -> Result<Pinned, ProbeError> {
        let cert_error = |reason: String| ProbeError::Cert { path: path.display().to_string(), reason };
        let own = CertificateDer::pem_file_iter(path)
            .map_err(|e| cert_error(e.to_string()))?
            .next()
            .ok_or_else(|| cert_error("holds no PEM certificate".into()))?
            .map_err(|e| cert_error(e.to_string()))?;
        Ok(Pinned { own, provider: Arc::new(rustls::crypto::ring::default_provider()) })
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.own.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the certificate tls.cert names".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_address_is_probed_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:9181".parse().unwrap();
        assert_eq!(probe_addr(v4), "127.0.0.1:9181".parse().unwrap());
        let v6: SocketAddr = "[::]:9181".parse().unwrap();
        assert_eq!(probe_addr(v6), "[::1]:9181".parse().unwrap());
        for own in ["10.1.2.3:9181", "[2001:db8::1]:9181"] {
            let own: SocketAddr = own.parse().unwrap();
            assert_eq!(probe_addr(own), own);
        }
    }

    /// A server that answers `answer` to the first request, then keeps the
    /// connection open for `held` before closing it.
    async fn answering_held(answer: &'static [u8], held: Duration) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(answer).await.unwrap();
            tokio::time::sleep(held).await;
        });
        addr
    }

    async fn answering(answer: &'static [u8]) -> SocketAddr {
        answering_held(answer, Duration::ZERO).await
    }

    /// The status line is enough: a server that keeps the connection open
    /// after it (ignoring `Connection: close`) is healthy at once, not
    /// after the probe's timeout.
    #[tokio::test]
    async fn a_200_counts_once_its_status_line_is_read() {
        let addr = answering_held(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Duration::from_secs(30)).await;
        let started = std::time::Instant::now();
        probe(addr, None).await.unwrap();
        assert!(started.elapsed() < TIMEOUT, "answered only at the timeout");
    }

    #[tokio::test]
    async fn only_a_200_is_healthy() {
        let ok = answering(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        probe(ok, None).await.unwrap();
        let down = answering(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let e = probe(down, None).await.unwrap_err();
        assert!(e.to_string().ends_with("answered `HTTP/1.1 503 Service Unavailable`, not 200"), "{e}");
        let garbage = answering(b"SSH-2.0-OpenSSH 200\r\n").await;
        assert!(matches!(probe(garbage, None).await, Err(ProbeError::Status { .. })));
        let closed = answering(b"").await;
        assert!(matches!(probe(closed, None).await, Err(ProbeError::Status { .. })));
    }
}
