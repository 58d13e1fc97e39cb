//! TLS on both listeners (docs/configuration.md, docs/security.md F): real handshakes with
//! certificates the tests make (rcgen), HTTP/1.1 and HTTP/2 chosen by
//! ALPN, the same audited entries as in cleartext, cleartext and TLS 1.1
//! refused, the pair reloaded when its files change, bad pairs refused at
//! start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A development CA and what it signs, in a directory of their own.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A server key as a certificate manager might hand it over.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyForm {
    /// ECDSA P-256, PKCS#8.
    EcdsaPkcs8,
    /// ECDSA P-384 in SEC1 form (`EC PRIVATE KEY`).
    EcdsaSec1,
    /// Ed25519, PKCS#8.
    Ed25519,
    /// RSA 2048 in PKCS#1 form (`RSA PRIVATE KEY`).
    RsaPkcs1,
}

/// Runs openssl on `input` (PEM), answering its output.
fn openssl(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/test.sh installs it)");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

impl KeyForm {
    /// A new key, and its PEM in this form.
    fn generate(self) -> (rcgen::KeyPair, String) {
        match self {
            KeyForm::EcdsaPkcs8 | KeyForm::Ed25519 => {
                let alg = match self {
                    KeyForm::Ed25519 => &rcgen::PKCS_ED25519,
                    _ => &rcgen::PKCS_ECDSA_P256_SHA256,
                };
                let key = rcgen::KeyPair::generate_for(alg).unwrap();
                let pem = key.serialize_pem();
                (key, pem)
            }
            KeyForm::EcdsaSec1 => {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
                let sec1 = openssl(&["ec"], &key.serialize_pem());
                assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{sec1}");
                (key, sec1)
            }
            KeyForm::RsaPkcs1 => {
                let pkcs8 = openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "");
                let key = rcgen::KeyPair::from_pem(&pkcs8).unwrap();
                let pkcs1 = openssl(&["rsa", "-traditional"], &pkcs8);
                assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{pkcs1}");
                (key, pkcs1)
            }
        }
    }
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "auditgate test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
        Pki { dir: tempfile::tempdir().unwrap(), ca }
    }

    /// The CA's certificate, as PEM.
    pub(crate) fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A server pair for `localhost` and 127.0.0.1 named `cn`: the chain
    /// (server, then CA) and the key, as PEM.
    pub(crate) fn make_pair(&self, cn: &str, form: KeyForm, expired: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let (key, key_pem) = form.generate();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (format!("{}{}", cert.pem(), self.ca.pem()), key_pem)
    }

    /// `make_pair`, written to `cert.pem` and `key.pem`.
    pub(crate) fn server_pair(&self, cn: &str, form: KeyForm, expired: bool) -> (PathBuf, PathBuf) {
        let (chain, key) = self.make_pair(cn, form, expired);
        let (cert_path, key_path) = (self.path("cert.pem"), self.path("key.pem"));
        write_replacing(&cert_path, chain.as_bytes());
        write_replacing(&key_path, key.as_bytes());
        (cert_path, key_path)
    }

    /// A client trusting this CA only, offering `alpn`.
    fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        client_trusting(self.ca.der().clone(), alpn)
    }
}

/// A client trusting `ca` only, offering `alpn`.
fn client_trusting(ca: rustls::pki_types::CertificateDer<'static>, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Replaces a file whole (written beside it, then renamed), as a
/// certificate manager does.
fn write_replacing(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// auditgate over TLS with this pair.
async fn spawn_tls_app(cert: &Path, key: &Path, env: &[(&str, &str)]) -> TestApp {
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut all = vec![("AUDITGATE_TLS__CERT", cert.as_str()), ("AUDITGATE_TLS__KEY", key.as_str())];
    all.extend_from_slice(env);
    spawn_app_with(&all, None).await
}

/// A TLS connection to `addr` as `localhost`; the protocol ALPN chose.
async fn connect(
    pki: &Pki,
    addr: std::net::SocketAddr,
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = pki.client(alpn).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let chosen = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (tls, chosen)
}

/// Sends `req` over a new TLS connection with `alpn` (HTTP/2 when it
/// chose `h2`), and reads the whole answer.
async fn send_tls(
    pki: &Pki,
    addr: std::net::SocketAddr,
    alpn: &[&[u8]],
    req: Request<Full<Bytes>>,
) -> (Response<Bytes>, Option<Vec<u8>>) {
    let (tls, chosen) = connect(pki, addr, alpn).await;
    let io = TokioIo::new(tls);
    let res = if chosen.as_deref() == Some(b"h2") {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    } else {
        // Origin form and a Host header, as an HTTP/1.1 client sends.
        let (mut parts, body) = req.into_parts();
        parts.headers.insert(http::header::HOST, http::HeaderValue::from_static("localhost"));
        parts.uri = parts.uri.path_and_query().unwrap().as_str().parse().unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(Request::from_parts(parts, body)).await.unwrap()
    };
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (Response::from_parts(parts, body), chosen)
}

fn get_req(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("https://localhost{path}")).body(Full::default()).unwrap()
}

/// The common name of the certificate a new handshake with `addr` gets.
async fn served_name(pki: &Pki, addr: std::net::SocketAddr) -> String {
    let (tls, _) = connect(pki, addr, &[b"http/1.1"]).await;
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    // The test names are ASCII and unique: find which one the DER holds.
    ["first", "second", "renew"]
        .into_iter()
        .find(|n| der.windows(n.len()).any(|w| w == n.as_bytes()))
        .unwrap_or("neither")
        .to_string()
}

#[tokio::test]
async fn f26_http1_and_http2_over_tls_on_both_ports_with_the_same_entries() {
    let pki = Pki::new();
    let (cert, key) = pki.server_pair("first", KeyForm::EcdsaPkcs8, false);
    let app = spawn_tls_app(&cert, &key, &[]).await;
    // The chain in the file is served whole: the server's certificate, then the CA.
    let (tls, _) = connect(&pki, app.addr, &[b"http/1.1"]).await;
    let served = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(served.len(), 2);
    assert_eq!(served[1], *pki.ca.der());
    drop(tls);
    // HTTP/1.1 by ALPN; the upstream is told the client spoke https.
    let (res, chosen) = send_tls(&pki, app.addr, &[b"http/1.1"], get_req("/inspect")).await;
    assert_eq!((res.status().as_u16(), chosen.as_deref()), (200, Some(&b"http/1.1"[..])));
    let seen = inspected(&res);
    let proto = seen["headers"].as_array().unwrap().iter().find(|h| h[0] == "x-forwarded-proto").cloned();
    assert_eq!(proto, Some(serde_json::json!(["x-forwarded-proto", "https"])), "{seen}");
    // HTTP/2 by ALPN, and an audited change over it is recorded as over HTTP/1.1.
    let create = Request::post("https://localhost/api/items/")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"name": "over h2"}"#)))
        .unwrap();
    let (res, chosen) = send_tls(&pki, app.addr, &[b"h2", b"http/1.1"], create).await;
    assert_eq!((res.status().as_u16(), chosen.as_deref()), (201, Some(&b"h2"[..])));
    let id = serde_json::from_slice::<serde_json::Value>(res.body()).unwrap()["id"].to_string();
    let patch = Request::patch(format!("https://localhost/api/items/{id}/"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"name": "renamed over h2"}"#)))
        .unwrap();
    let (res, _) = send_tls(&pki, app.addr, &[b"h2"], patch).await;
    assert_eq!(res.status(), 200);
    let entries = crate::audit::wait_entries(&app.store, 2).await;
    let update = entries.iter().find(|e| e.action == "update").expect("the PATCH is recorded");
    assert_eq!(update.resource_id.as_deref(), Some(id.as_str()));
    assert_eq!(update.changes.len(), 1, "{:?}", update.changes);
    assert_eq!(update.changes[0].new, serde_json::json!("renamed over h2"));
    // The query port speaks TLS too, and counts the handshakes.
    let (res, chosen) = send_tls(&pki, app.query_addr, &[b"h2"], get_req("/healthz")).await;
    assert_eq!((res.status().as_u16(), chosen.as_deref()), (200, Some(&b"h2"[..])));
    // The server's order of suites wins over the client's.
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(app.query_addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    drop(tls);
    let (res, _) = send_tls(&pki, app.query_addr, &[b"http/1.1"], get_req("/metrics")).await;
    let metrics = String::from_utf8_lossy(res.body());
    // Seven connections so far, this one included, each well within 2.5 s.
    assert_eq!(crate::durability::metric_in(&metrics, "auditgate_tls_handshake_seconds_count"), 7);
    assert_eq!(crate::durability::metric_in(&metrics, "auditgate_tls_handshake_seconds_bucket{le=\"2.5\"}"), 7);
}

#[tokio::test]
async fn f26_cleartext_and_tls_1_1_are_refused_and_the_listener_keeps_serving() {
    let pki = Pki::new();
    let (cert, key) = pki.server_pair("first", KeyForm::RsaPkcs1, false);
    let app = spawn_tls_app(&cert, &key, &[("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "500ms")]).await;
    for addr in [app.addr, app.query_addr] {
        // A connection that never starts its handshake is closed at
        // header_read_timeout, as a silent cleartext one is.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "{addr}: a silent TLS connection stayed");
        let answer = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(!answer.starts_with("HTTP/"), "{addr}: the app answered cleartext: {answer:?}");
        // A TLS 1.1 ClientHello (no supported_versions extension): the
        // answer is an alert record, never a ServerHello.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&tls11_client_hello()).await.unwrap();
        let mut first = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut first)).await.unwrap().unwrap_or(0);
        assert!(n == 0 || first[0] == 0x15, "{addr}: record type {} answered TLS 1.1", first[0]);
        let path = if addr == app.addr { "/" } else { "/healthz" };
        let (res, _) = send_tls(&pki, addr, &[b"http/1.1"], get_req(path)).await;
        assert_eq!(res.status(), 200);
    }
    let (res, _) = send_tls(&pki, app.query_addr, &[b"http/1.1"], get_req("/metrics")).await;
    let metrics = String::from_utf8_lossy(res.body());
    // Cleartext and TLS 1.1, on each port.
    let refused = crate::durability::metric_in(&metrics, "auditgate_tls_handshake_failures_total{reason=\"refused\"}");
    assert_eq!(refused, 4);
    let timed_out =
        crate::durability::metric_in(&metrics, "auditgate_tls_handshake_failures_total{reason=\"timeout\"}");
    assert_eq!(timed_out, 2);
}

/// A ClientHello offering TLS 1.1 and nothing newer: version 3.2, two
/// TLS 1.0/1.1 suites, no extensions.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend([7u8; 32]); // random
    body.push(0); // session id
    body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, AES128-SHA
    body.extend([0x01, 0x00]); // no compression
    let mut handshake = vec![0x01, 0, 0, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[tokio::test]
async fn f26_a_changed_pair_is_served_to_new_handshakes_and_a_broken_one_is_not() {
    let pki = Pki::new();
    let (cert, key) = pki.server_pair("first", KeyForm::Ed25519, false);
    let app = spawn_tls_app(&cert, &key, &[]).await;
    assert_eq!(served_name(&pki, app.addr).await, "first");
    // A connection open before the change keeps working after it.
    let (open, _) = connect(&pki, app.addr, &[b"http/1.1"]).await;
    pki.server_pair("second", KeyForm::EcdsaSec1, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while served_name(&pki, app.addr).await != "second" {
        assert!(tokio::time::Instant::now() < deadline, "the new pair was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(open)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("/").header("host", "localhost").body(Full::<Bytes>::default()).unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    // A key that does not fit: logged, and the served pair kept.
    let other = rcgen::KeyPair::generate().unwrap();
    write_replacing(&key, other.serialize_pem().as_bytes());
    // Two looks at the files later.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(served_name(&pki, app.query_addr).await, "second");
}

#[tokio::test]
async fn f27_a_missing_mismatched_or_expired_pair_stops_start_up_naming_the_file() {
    let pki = Pki::new();
    let (cert, key) = pki.server_pair("first", KeyForm::EcdsaPkcs8, false);
    let upstream = spawn_upstream();
    let start = |cert: PathBuf, key: PathBuf| {
        let upstream = upstream.url();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let (cert, key) = (cert.display().to_string(), key.display().to_string());
            let flags = vec![
                ("upstream", upstream),
                ("listen", "127.0.0.1:0".to_string()),
                ("query_listen", "127.0.0.1:0".to_string()),
                ("rules", dir.path().display().to_string()),
                ("database", format!("sqlite://{}", dir.path().join("a.db").display())),
            ];
            let env = [("AUDITGATE_TLS__CERT".to_string(), cert), ("AUDITGATE_TLS__KEY".to_string(), key)];
            let config = auditgate::config::Config::load(None, env, &flags).unwrap();
            let e = auditgate::App::build(config).await.expect_err("a bad pair is refused");
            assert!(e.is_usage(), "{e}");
            e.to_string()
        }
    };
    let missing = pki.path("missing.pem");
    // The upstream's CA file, for an https:// upstream.
    let dir = tempfile::tempdir().unwrap();
    let flags = vec![
        ("upstream", "https://localhost:9".to_string()),
        ("listen", "127.0.0.1:0".to_string()),
        ("query_listen", "127.0.0.1:0".to_string()),
        ("rules", dir.path().display().to_string()),
        ("database", format!("sqlite://{}", dir.path().join("a.db").display())),
    ];
    let env = [("AUDITGATE_TLS__UPSTREAM_CA".to_string(), missing.display().to_string())];
    let config = auditgate::config::Config::load(None, env, &flags).unwrap();
    let e = auditgate::App::build(config).await.expect_err("a missing CA file is refused");
    assert!(e.is_usage() && e.to_string().contains(&format!("tls.upstream_ca {}", missing.display())), "{e}");
    let e = start(missing.clone(), key.clone()).await;
    assert!(e.contains(&format!("tls.cert {}", missing.display())), "{e}");
    let e = start(cert.clone(), missing.clone()).await;
    assert!(e.contains(&format!("tls.key {}", missing.display())), "{e}");
    // Not PEM at all.
    let junk = pki.path("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let e = start(junk.clone(), key.clone()).await;
    assert!(e.contains(&format!("tls.cert {}", junk.display())) && e.contains("no PEM certificate"), "{e}");
    // A key of another pair.
    let other = pki.path("other-key.pem");
    std::fs::write(&other, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = start(cert.clone(), other.clone()).await;
    assert!(e.contains(&format!("tls.key {}: does not belong", other.display())), "{e}");
    // Expired.
    let (cert, key) = pki.server_pair("old", KeyForm::EcdsaPkcs8, true);
    let e = start(cert.clone(), key).await;
    assert!(e.contains(&format!("tls.cert {}: expired on 2021-01-01", cert.display())), "{e}");
}

#[test]
fn f27_a_cert_without_a_key_is_a_configuration_error() {
    let env = [("AUDITGATE_TLS__CERT".to_string(), "cert.pem".to_string())];
    let e = auditgate::config::Config::load(None, env, &vec![("upstream", "http://127.0.0.1:9".to_string())])
        .expect_err("half a pair is refused");
    assert!(e.to_string().contains("tls.cert and tls.key: give both"), "{e}");
    // A CA for a cleartext upstream would verify nothing.
    let env = [("AUDITGATE_TLS__UPSTREAM_CA".to_string(), "ca.pem".to_string())];
    let e = auditgate::config::Config::load(None, env, &vec![("upstream", "http://127.0.0.1:9".to_string())])
        .expect_err("a CA for an http:// upstream is refused");
    assert!(e.to_string().contains("tls.upstream_ca: set, but the upstream is http://"), "{e}");
}

/// SIGHUP reloads the pair even when the files look unchanged (same length,
/// same modification time: only the signal can explain the new pair); and
/// the binary exits 64 naming the file for a bad pair at start.
#[tokio::test]
async fn f26_sighup_reloads_the_pair_and_a_bad_pair_exits_64() {
    let pki = Pki::new();
    let (cert, key) = pki.server_pair("first", KeyForm::EcdsaPkcs8, false);
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("audit.db").display());
    let serve = |cert: &Path, key: &Path| {
        let mut cmd = crate::binary::auditgate();
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--query-listen",
            "127.0.0.1:0",
            "--rules",
            dir.path().to_str().unwrap(),
        ])
        .args(["--upstream", &upstream.url(), "--database", &database])
        .env("RUST_LOG", "info")
        .env("AUDITGATE_TLS__CERT", cert)
        .env("AUDITGATE_TLS__KEY", key)
        .stderr(std::process::Stdio::piped());
        cmd
    };
    let mut child = KillOnDrop(serve(&cert, &key).spawn().unwrap());
    let (addr, _log) = crate::binary::logged_addr(&mut child.0);
    assert_eq!(served_name(&pki, addr).await, "first");
    let stamp = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.len(), m.modified().unwrap())
    };
    let (old_cert, old_key) = (stamp(&cert), stamp(&key));
    let (chain, key_pem) = (0..100)
        .map(|_| pki.make_pair("renew", KeyForm::EcdsaPkcs8, false))
        .find(|(c, k)| c.len() as u64 == old_cert.0 && k.len() as u64 == old_key.0)
        .expect("a pair of the same length");
    for (path, text, (_, modified)) in [(&cert, &chain, old_cert), (&key, &key_pem, old_key)] {
        std::fs::write(path, text).unwrap();
        std::fs::File::options().write(true).open(path).unwrap().set_modified(modified).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served_name(&pki, addr).await, "first", "the files look the same: no reload without SIGHUP");
    let _ = std::process::Command::new("kill").args(["-HUP", &child.0.id().to_string()]).status();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while served_name(&pki, addr).await != "renew" {
        assert!(tokio::time::Instant::now() < deadline, "SIGHUP did not reload the pair");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::process::Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    assert_eq!(child.0.wait().unwrap().code(), Some(0));

    let (expired, key) = pki.server_pair("old", KeyForm::EcdsaPkcs8, true);
    let out = serve(&expired, &key).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains(&format!("tls.cert {}: expired", expired.display())), "{err}");
}

/// A child process killed when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example upstream over HTTPS with a pair of `pki` (for `localhost`
/// and 127.0.0.1), and the file holding `pki`'s CA.
fn https_upstream(pki: &Pki) -> (Upstream, PathBuf) {
    let (chain, key) = pki.make_pair("upstream", KeyForm::EcdsaPkcs8, false);
    let (cert_path, key_path, ca) = (pki.path("up.pem"), pki.path("up-key.pem"), pki.path("ca.pem"));
    std::fs::write(&cert_path, chain).unwrap();
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&ca, pki.ca.pem()).unwrap();
    let upstream = spawn_upstream_with(&[("UPSTREAM_TLS_CERT", &cert_path), ("UPSTREAM_TLS_KEY", &key_path)]);
    (upstream, ca)
}

/// auditgate (cleartext listener) in front of `upstream` over HTTPS, by
/// `host`, trusting `ca` when given.
async fn spawn_app_to_https(upstream: &Upstream, host: &str, ca: Option<&Path>) -> TestApp {
    let url = format!("https://{host}:{}", upstream.addr.port());
    let ca = ca.map(|c| c.display().to_string());
    let env: Vec<(&str, &str)> = ca.iter().map(|c| ("AUDITGATE_TLS__UPSTREAM_CA", c.as_str())).collect();
    spawn_app_to(&url, &env, None).await
}

#[tokio::test]
async fn f26_an_https_upstream_of_a_private_ca_is_served_snapshotted_and_audited() {
    let pki = Pki::new();
    let (upstream, ca) = https_upstream(&pki);
    // By name (SNI `localhost`) and by address (an IP SAN).
    for host in ["localhost", "127.0.0.1"] {
        let app = spawn_app_to_https(&upstream, host, Some(&ca)).await;
        let res = get(&app.url("/inspect")).await;
        assert_eq!(res.status(), 200, "{host}");
        // HTTP/2 clients' requests go through the pool: the same TLS there.
        let res = send(&h2_client(), Request::get(app.url("/")).body(Full::default()).unwrap()).await;
        assert_eq!(res.status(), 200, "{host}: h2 through the pool");
        // A create and an update: their snapshots are taken over TLS too.
        let create = Request::post(app.url("/api/items/"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"name": "over https"}"#)))
            .unwrap();
        let res = send(&client(), create).await;
        assert_eq!(res.status(), 201, "{host}");
        let id = serde_json::from_slice::<serde_json::Value>(res.body()).unwrap()["id"].to_string();
        let patch = Request::patch(app.url(&format!("/api/items/{id}/")))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"name": "renamed"}"#)))
            .unwrap();
        assert_eq!(send(&client(), patch).await.status(), 200, "{host}");
        let entries = crate::audit::wait_entries(&app.store, 2).await;
        let update = entries.iter().find(|e| e.action == "update").expect("the PATCH is recorded");
        assert_eq!(update.snapshot_error, None, "{host}");
        assert_eq!(update.before.as_ref().map(|b| b["name"].clone()), Some(serde_json::json!("over https")));
        assert_eq!(update.changes.len(), 1, "{host}: {:?}", update.changes);
    }
}

#[tokio::test]
async fn f26_an_https_upstream_of_an_unknown_ca_is_502_and_never_reached() {
    let pki = Pki::new();
    let (upstream, _) = https_upstream(&pki);
    let stranger = Pki::new();
    let other_ca = stranger.path("ca.pem");
    std::fs::write(&other_ca, stranger.ca.pem()).unwrap();
    // Another CA given, and none (the system's roots do not know the test CA).
    for ca in [Some(other_ca.as_path()), None] {
        let app = spawn_app_to_https(&upstream, "localhost", ca).await;
        let create = Request::post(app.url("/api/items/"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"name": "must not arrive"}"#)))
            .unwrap();
        let res = send(&client(), create).await;
        assert_eq!(res.status(), 502, "{ca:?}");
        let res = send(&h2_client(), Request::get(app.url("/")).body(Full::default()).unwrap()).await;
        assert_eq!(res.status(), 502, "{ca:?}: h2 through the pool");
    }
    // Straight to the upstream, trusting its CA: nothing was created.
    let (res, _) = send_tls(&pki, upstream.addr, &[b"http/1.1"], get_req("/api/items/")).await;
    assert_eq!(res.status(), 200);
    assert!(!String::from_utf8_lossy(res.body()).contains("must not arrive"));
}

/// `certs/make-dev-cert.sh` makes a CA and a pair it signs; `demo --tls`
/// serves both ports with that pair and tells curl to trust the CA; without
/// the pair it says how to make one.
#[tokio::test]
async fn the_dev_certificate_script_and_demo_over_tls() {
    use rustls::pki_types::pem::PemObject;
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let missing = crate::binary::auditgate().arg("demo").arg("--tls").current_dir(dir.path()).output().unwrap();
    assert_eq!(missing.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("run certs/make-dev-cert.sh first"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/make-dev-cert.sh");
    let made = std::process::Command::new(&script).env("OUT", dir.path().join("certs")).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let database = format!("sqlite://{}", dir.path().join("demo.db").display());
    let child = crate::binary::auditgate()
        .args(["demo", "--tls", "--listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0", "--database", &database])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let (mut proxy, mut curl) = (None, None);
    let mut line = String::new();
    while curl.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
        if line.trim_start().starts_with("proxy") {
            proxy = line.split_whitespace().nth(1).map(str::to_string);
        } else if line.trim_start().starts_with("curl") {
            curl = Some(line.clone());
        }
        line.clear();
    }
    let proxy = proxy.expect("demo prints the proxy");
    assert!(curl.unwrap().contains("--cacert certs/dev-ca.pem"));
    let addr: std::net::SocketAddr = proxy.strip_prefix("https://").expect("an https proxy").parse().unwrap();
    let ca = rustls::pki_types::CertificateDer::from_pem_file(dir.path().join("certs/dev-ca.pem")).unwrap();
    for name in ["localhost", "127.0.0.1"] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = client_trusting(ca.clone(), &[b"http/1.1"])
            .connect(ServerName::try_from(name).unwrap().to_owned(), tcp)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let req = Request::get("/api/v1/users/").header("host", name).body(Full::<Bytes>::default()).unwrap();
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200, "{name}");
    }
}

/// `auditgate health` (the container's HEALTHCHECK) against a query port
/// over TLS: it accepts exactly the certificate `tls.cert` names.
#[tokio::test]
async fn health_probes_a_tls_query_port_trusting_only_its_own_certificate() {
    let pki = Pki::new();
    let (cert, key) = pki.server_pair("probe", KeyForm::EcdsaPkcs8, false);
    let app = spawn_tls_app(&cert, &key, &[]).await;
    let health = |cert: &Path| {
        let mut cmd = crate::binary::auditgate();
        cmd.env("AUDITGATE_TLS__CERT", cert).env("AUDITGATE_TLS__KEY", &key);
        cmd.args(["health", "--query-listen", &app.query_addr.to_string()]);
        // Run beside the test's runtime, which serves the app.
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = health(&cert).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Another certificate of the same CA (valid for 127.0.0.1) is not the
    // listener's: the probe refuses it.
    let other = pki.path("other.pem");
    std::fs::write(&other, pki.make_pair("other", KeyForm::EcdsaPkcs8, false).0).unwrap();
    let out = health(&other).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not the certificate tls.cert names"), "{err}");
    app.stop().await;
}
