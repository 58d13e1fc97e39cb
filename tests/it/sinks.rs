//! Forwarding (docs/sinks.md) to real receivers the tests start: an HTTPS
//! webhook collector (rustls, a CA the test makes) and a syslog receiver
//! on TCP and TLS reading octet-counted frames. Every entry arrives, in
//! order; a receiver that was down or refusing gets what it missed once
//! back; a restart resumes from the cursor kept in the store.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::audit::{call, wait_entries};
use crate::helpers::*;
use crate::tls::{KeyForm, Pki};

const SECRET: &str = "s3cret-hmac-key";

/// A TLS acceptor for `localhost`/127.0.0.1 with a pair of `pki`'s, and
/// the CA file that trusts it.
pub(crate) fn acceptor(pki: &Pki) -> (tokio_rustls::TlsAcceptor, String) {
    let (cert, key) = pki.server_pair("receiver", KeyForm::EcdsaPkcs8, false);
    let certs =
        rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let ca = pki.path("receiver-ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.display().to_string())
}

use rustls::pki_types::pem::PemObject;

/// What a webhook collector received: each request's signature header and
/// body, and whether it was accepted.
#[derive(Default)]
struct Received {
    requests: Vec<(Option<String>, Bytes, u16)>,
    /// Each request's `Authorization`.
    authorization: Vec<Option<String>>,
}

/// An HTTPS collector answering `status` (200 unless told otherwise).
pub(crate) struct Hook {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    _task: JoinHandle<()>,
}

impl Hook {
    pub(crate) async fn start(tls: tokio_rustls::TlsAcceptor) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let (r, st) = (received.clone(), status.clone());
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (tls, r, st) = (tls.clone(), r.clone(), st.clone());
                tokio::spawn(async move {
                    let Ok(stream) = tls.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (r, st) = (r.clone(), st.clone());
                        async move {
                            assert_eq!(req.uri().path(), "/ingest");
                            assert_eq!(req.method(), Method::POST);
                            assert_eq!(req.headers()["content-type"], "application/x-ndjson");
                            let header = |name| {
                                req.headers().get(name).map(|v: &http::HeaderValue| v.to_str().unwrap().to_string())
                            };
                            let (signature, authorization) = (header("x-auditgate-signature"), header("authorization"));
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status = st.load(std::sync::atomic::Ordering::SeqCst);
                            let mut r = r.lock().unwrap();
                            r.requests.push((signature, body, status));
                            r.authorization.push(authorization);
                            Ok::<_, std::convert::Infallible>(
                                Response::builder().status(status).body(Full::new(Bytes::new())).unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Hook { addr, received, status, _task: task }
    }

    pub(crate) fn answer(&self, status: u16) {
        self.status.store(status, std::sync::atomic::Ordering::SeqCst);
    }

    /// The entries of every accepted request, in the order they came.
    pub(crate) fn accepted(&self) -> Vec<Value> {
        let r = self.received.lock().unwrap();
        let mut out = Vec::new();
        for (_, body, status) in &r.requests {
            if *status == 200 {
                let text = std::str::from_utf8(body).unwrap();
                assert!(text.ends_with('\n'), "NDJSON ends each line: {text}");
                out.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
            }
        }
        out
    }

    fn refused(&self) -> usize {
        self.received.lock().unwrap().requests.iter().filter(|(_, _, s)| *s != 200).count()
    }

    /// Waits until `n` entries were accepted; returns them.
    pub(crate) async fn wait_accepted(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.accepted();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "the collector accepted {} of {n} entries", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A collector over TLS, the CA file that trusts it, and the PKI that
/// holds both (keep it alive).
pub(crate) async fn collector() -> (Hook, String, Pki) {
    let pki = Pki::new();
    let (tls, ca) = acceptor(&pki);
    (Hook::start(tls).await, ca, pki)
}

pub(crate) fn hook_sink(hook: &Hook, ca: &str, extra: &str) -> String {
    format!(
        r#"[{{ name = "hook", kind = "webhook", url = "https://localhost:{}/ingest", secret = "{SECRET}", batch = 3, ca = "{ca}"{extra} }}]"#,
        hook.addr.port()
    )
}

/// Makes `n` audited changes (a create, then updates of it).
pub(crate) async fn changes(app: &TestApp, n: usize) {
    let (status, created) = call(app, Method::POST, "/api/items/", json!({"v": 0})).await;
    assert_eq!(status, 201);
    let item = format!("/api/items/{}/", created["id"]);
    for v in 1..n {
        assert_eq!(call(app, Method::PATCH, &item, json!({ "v": v })).await.0, 200);
    }
}

pub(crate) fn ids(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect()
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = String::from_utf8(get(&app.query("/metrics")).await.body().to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

#[tokio::test]
async fn a_webhook_gets_every_entry_signed_in_order_and_what_it_missed_once_back() {
    let (hook, ca, _pki) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let sink = hook_sink(&hook, &ca, r#", headers = { Authorization = "Splunk t0ken" }"#);
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_SINK", sink.as_str())];
    let mut app = spawn_app_with(&env, None).await;

    changes(&app, 5).await;
    let stored = wait_entries(&app.store, 5).await;
    let got = hook.wait_accepted(5).await;
    // Every entry, as stored, oldest first; each body signed.
    assert_eq!(ids(&got), ids(&stored.iter().map(|e| serde_json::to_value(e).unwrap()).collect::<Vec<_>>()));
    assert_eq!(got[0]["hash"], stored[0].hash.as_str());
    for (signature, body, _) in &hook.received.lock().unwrap().requests {
        assert_eq!(signature.as_deref(), Some(auditgate::sink::webhook::signature(SECRET.as_bytes(), body).as_str()));
        assert!(std::str::from_utf8(body).unwrap().lines().count() <= 3, "batch = 3");
    }
    assert_eq!(metric(&app, "auditgate_sink_sent_total{sink=\"hook\"}").await, 5.0);
    let authorization = hook.received.lock().unwrap().authorization.clone();
    assert!(authorization.iter().all(|a| a.as_deref() == Some("Splunk t0ken")), "{authorization:?}");

    // The collector refuses for a while: nothing is lost, nothing doubled.
    hook.answer(503);
    changes(&app, 4).await;
    wait_entries(&app.store, 9).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&app, "auditgate_sink_failures_total{sink=\"hook\"}").await < 2.0 {
        assert!(tokio::time::Instant::now() < deadline, "the sink did not try again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hook.refused() >= 2);
    assert!(metric(&app, "auditgate_sink_retries_total{sink=\"hook\"}").await >= 1.0);
    assert!(metric(&app, "auditgate_sink_lag_seconds{sink=\"hook\"}").await > 0.0);
    hook.answer(200);
    let got = hook.wait_accepted(9).await;
    let all = wait_entries(&app.store, 9).await;
    let stored_ids: Vec<String> = all.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids(&got), stored_ids, "every entry once, in order");

    // Refused again, then stopped: a restart sends what is left from the
    // stored cursor, and nothing delivered before.
    hook.answer(503);
    changes(&app, 2).await;
    wait_entries(&app.store, 11).await;
    let upstream = app.upstream.take().unwrap();
    app.stop().await;
    hook.answer(200);
    let again = spawn_app_to(&upstream.url(), &env, None).await;
    let got = hook.wait_accepted(11).await;
    let all = wait_entries(&again.store, 11).await;
    assert_eq!(ids(&got), all.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    again.stop().await;
}

#[tokio::test]
async fn a_new_sink_starts_at_the_newest_entry_and_ocsf_is_api_activity() {
    let (hook, ca, _pki) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    // Entries from before the sink was configured are not sent.
    let mut app = spawn_app_with(&[("AUDITGATE_DATABASE", database.as_str())], None).await;
    changes(&app, 2).await;
    wait_entries(&app.store, 2).await;
    let upstream = app.upstream.take().unwrap();
    app.stop().await;
    let sink = hook_sink(&hook, &ca, r#", format = "ocsf""#);
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_SINK", sink.as_str())];
    let app = spawn_app_to(&upstream.url(), &env, None).await;
    changes(&app, 2).await;
    let all = wait_entries(&app.store, 4).await;
    let got = hook.wait_accepted(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_now = hook.accepted();
    assert_eq!(got_now.len(), 2, "only the entries made since the sink started");
    let uids: Vec<&str> = got.iter().map(|e| e["metadata"]["uid"].as_str().unwrap()).collect();
    assert_eq!(uids, [all[2].id.as_str(), all[3].id.as_str()]);
    assert_eq!(got[0]["class_uid"], 6003);
    assert_eq!(got[0]["activity_id"], 1, "a create");
    assert_eq!(got[1]["activity_id"], 3, "an update");
    assert_eq!(got[1]["actor"]["user"]["name"], "alice");
    assert_eq!(got[1]["unmapped"]["hash"], all[3].hash.as_str());
    app.stop().await;
}

/// A syslog receiver: octet-counted frames from each connection, until
/// stopped (its listener and connections closed).
struct Syslog {
    addr: SocketAddr,
    frames: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Syslog {
    async fn start(
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
        frames: Arc<Mutex<Vec<String>>>,
    ) -> Syslog {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let f = frames.clone();
        let task = tokio::spawn(async move {
            let mut readers = tokio::task::JoinSet::new();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (f, tls) = (f.clone(), tls.clone());
                readers.spawn(async move {
                    match tls {
                        None => read_frames(tcp, f).await,
                        Some(tls) => {
                            if let Ok(s) = tls.accept(tcp).await {
                                read_frames(s, f).await;
                            }
                        }
                    }
                });
            }
        });
        Syslog { addr, frames, task }
    }

    /// Stops listening and drops every connection.
    fn stop(self) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        self.task.abort();
        (self.addr, self.frames)
    }

    async fn wait_frames(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.frames.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "the receiver has {} of {n} messages", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads `LEN SP MSG` frames (RFC 6587 octet counting) to the end.
async fn read_frames(mut s: impl tokio::io::AsyncRead + Unpin, frames: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(space) = buf.iter().position(|&b| b == b' ') {
            let len: usize =
                std::str::from_utf8(&buf[..space]).unwrap().parse().expect("a frame starts with its length");
            if buf.len() < space + 1 + len {
                break;
            }
            let msg = String::from_utf8(buf[space + 1..space + 1 + len].to_vec()).unwrap();
            buf.drain(..space + 1 + len);
            frames.lock().unwrap().push(msg);
        }
    }
}

/// An RFC 5424 message's header fields and its JSON.
fn parse_message(msg: &str) -> (Vec<&str>, Value) {
    let mut parts = msg.splitn(8, ' ');
    let header: Vec<&str> = (0..7).map(|_| parts.next().unwrap()).collect();
    (header, serde_json::from_str(parts.next().unwrap()).unwrap())
}

async fn syslog_end_to_end(tls: bool) {
    let pki = Pki::new();
    let (acceptor, ca) = acceptor(&pki);
    let frames = Arc::new(Mutex::new(Vec::new()));
    let rx = Syslog::start("127.0.0.1:0".parse().unwrap(), tls.then(|| acceptor.clone()), frames.clone()).await;
    let scheme = if tls { "tls" } else { "tcp" };
    let sink = format!(
        r#"[{{ name = "siem", kind = "syslog", url = "{scheme}://localhost:{}", ca = "{ca}" }}]"#,
        rx.addr.port()
    );
    let app = spawn_app_with(&[("AUDITGATE_SINK", sink.as_str())], None).await;
    changes(&app, 3).await;
    let stored = wait_entries(&app.store, 3).await;
    let got = rx.wait_frames(3).await;
    for (msg, entry) in got.iter().zip(&stored) {
        let (header, json) = parse_message(msg);
        assert_eq!(header[0], "<110>1", "{msg}");
        assert_eq!(header[1], entry.timestamp);
        assert_eq!(header[2], entry.instance);
        assert_eq!(header[3], "auditgate");
        assert_eq!(header[5], entry.action);
        assert_eq!(header[6], "-", "no structured data");
        assert_eq!(json["id"], entry.id.as_str());
    }

    // Down for a while (refusing connections): everything it missed comes
    // once it is back, in order.
    let (addr, frames) = rx.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    changes(&app, 3).await;
    let stored = wait_entries(&app.store, 6).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rx = Syslog::start(addr, tls.then_some(acceptor), frames).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got: Vec<String> =
            rx.frames.lock().unwrap().iter().map(|m| parse_message(m).1["id"].as_str().unwrap().to_string()).collect();
        let unique: HashSet<&String> = got.iter().collect();
        if unique.len() >= 6 {
            // Each entry at least once; a copy only of what was written
            // while the receiver went away (sent again after that failure).
            let mut seen = Vec::new();
            for id in &got {
                if !seen.contains(id) {
                    seen.push(id.clone());
                }
            }
            assert_eq!(seen, stored.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
            assert!(got.len() <= 6 + 3, "only the batch in doubt goes twice: {got:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the receiver has {} of 6 entries", unique.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(metric(&app, "auditgate_sink_failures_total{sink=\"siem\"}").await >= 1.0);
    app.stop().await;
}

#[tokio::test]
async fn syslog_over_tcp_gets_rfc5424_frames_and_what_it_missed_while_down() {
    syslog_end_to_end(false).await;
}

#[tokio::test]
async fn syslog_over_tls_gets_rfc5424_frames_and_what_it_missed_while_down() {
    syslog_end_to_end(true).await;
}

#[tokio::test]
async fn a_sink_peer_of_an_unknown_ca_gets_nothing() {
    let pki = Pki::new();
    let (tls, _) = acceptor(&pki);
    let hook = Hook::start(tls).await;
    let stranger = Pki::new();
    let ca = stranger.path("ca.pem");
    std::fs::write(&ca, stranger.ca_pem()).unwrap();
    let sink = hook_sink(&hook, &ca.display().to_string(), "");
    let app = spawn_app_with(&[("AUDITGATE_SINK", sink.as_str())], None).await;
    changes(&app, 1).await;
    wait_entries(&app.store, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while metric(&app, "auditgate_sink_failures_total{sink=\"hook\"}").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "no failure counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(hook.received.lock().unwrap().requests.is_empty(), "nothing reached a peer the sink cannot verify");
    app.stop().await;
}

/// rsyslog (Debian's `rsyslogd`, installed by scripts/test.sh) listening
/// on `port` with imtcp, writing each message's MSGID, APP-NAME, HOSTNAME,
/// time and MSG to a file.
struct Rsyslog {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Rsyslog {
    fn start(dir: &std::path::Path, port: u16) -> Rsyslog {
        let out = dir.join("out.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" maxMessageSize="1m")
module(load="imtcp")
template(name="fields" type="string" string="%msgid%|%app-name%|%hostname%|%timereported:::date-rfc3339%|%msg%\n")
ruleset(name="audit") {{ action(type="omfile" file="{out}" template="fields" asyncWriting="off" flushOnTXEnd="on") }}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="audit")
"#,
                dir = dir.display(),
                out = out.display()
            ),
        )
        .unwrap();
        // Root's PATH has /usr/sbin; another's may not.
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].into_iter().find(|p| std::path::Path::new(p).exists());
        let child = std::process::Command::new(bin.unwrap_or("rsyslogd"))
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("rsyslogd runs (Debian rsyslog; scripts/test.sh installs it)");
        // Listening once a connection is taken.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "rsyslogd never listened on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Rsyslog { child, out }
    }

    /// Each message written: (MSGID, APP-NAME, HOSTNAME, time, the JSON).
    fn messages(&self) -> Vec<(String, String, String, String, Value)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(5, '|').collect();
                let json = serde_json::from_str(f[4].trim_start()).unwrap_or_else(|e| panic!("{e}: {l}"));
                (f[0].into(), f[1].into(), f[2].into(), f[3].into(), json)
            })
            .collect()
    }

    /// Waits until `n` distinct entries were written; every message.
    async fn wait_for(&self, n: usize) -> Vec<(String, String, String, String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.messages();
            let unique: HashSet<String> = got.iter().map(|m| m.4["id"].as_str().unwrap().to_string()).collect();
            if unique.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "rsyslog wrote {} of {n} entries", unique.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(mut self) {
        let _ = std::process::Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn rsyslog_takes_every_entry_as_rfc5424_and_what_it_missed_while_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rsyslog = Rsyslog::start(dir.path(), port);
    let sink = format!(r#"[{{ name = "rsyslog", kind = "syslog", url = "tcp://127.0.0.1:{port}" }}]"#);
    let env = [("AUDITGATE_SINK", sink.as_str()), ("AUDITGATE_INSTANCE", "gw-rsyslog")];
    let app = spawn_app_with(&env, None).await;
    changes(&app, 3).await;
    let stored = wait_entries(&app.store, 3).await;
    let got = rsyslog.wait_for(3).await;
    assert_eq!(got.len(), 3);
    for ((msgid, app_name, host, time, json), entry) in got.iter().zip(&stored) {
        assert_eq!(msgid, &entry.action);
        assert_eq!(app_name, "auditgate");
        assert_eq!(host, "gw-rsyslog");
        let parsed = chrono::DateTime::parse_from_rfc3339(time).unwrap();
        assert_eq!(parsed, chrono::DateTime::parse_from_rfc3339(&entry.timestamp).unwrap());
        assert_eq!(json["id"], entry.id.as_str());
        assert_eq!(json["hash"], entry.hash.as_str(), "the entry as sealed");
    }

    // Stopped for a while: what it missed comes once it is back, in order.
    rsyslog.stop();
    changes(&app, 2).await;
    let stored = wait_entries(&app.store, 5).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let rsyslog = Rsyslog::start(dir.path(), port);
    let got = rsyslog.wait_for(5).await;
    let mut seen: Vec<String> = Vec::new();
    for m in &got {
        let id = m.4["id"].as_str().unwrap().to_string();
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    assert_eq!(seen, stored.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    app.stop().await;
}
