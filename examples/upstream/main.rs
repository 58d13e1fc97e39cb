//! A small upstream app for tests and benchmarks, run as its own process.
//! Prints `listening on ADDR` once bound (port 0 by default), then serves:
//! - `GET /` a short text; `/inspect` the request as JSON;
//! - `* /echo` the request body back, streamed;
//! - `GET /big?bytes=N` N bytes of a known pattern, streamed in 64 KiB chunks;
//! - `POST /chunked-create/` a 201 with a chunked body and `Location`;
//! - `GET /gzipped` a JSON body sent gzip-encoded regardless of `Accept-Encoding`;
//! - `GET /close` answers with `Connection: close`, naming the connection;
//! - `GET /slow?ms=N` answers after N ms; `/status/N` answers N with headers
//!   that include hop-by-hop ones; `GET /ws` a WebSocket echo;
//! - `GET /me` who is logged in (`Cookie: session=<user>`), `/me/calls` how
//!   often `/me` was asked;
//! - `/framed/…` creates answered in every framing and coding (`framed.rs`);
//! - `/accounts/…` an app that ignores, normalises and hides fields (`accounts.rs`);
//! - `/api/…` the sample REST app of `auditgate demo`, which waits first when
//!   the request carries `Cookie: delay_read=<ms>` (a GET) or
//!   `delay_write=<ms>` (anything else): snapshot GETs carry the client's
//!   cookies, so a test can slow one request's snapshots and let concurrent
//!   requests really interleave.
//!
//! Usage: `upstream [ADDR] [THREADS]`. With `UPSTREAM_TLS_CERT` and
//! `UPSTREAM_TLS_KEY` (PEM files) it serves HTTPS instead, as an app behind
//! its own certificate does.

mod accounts;
mod framed;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

fn query_num(req: &Request<Incoming>, key: &str) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A body sent chunk by chunk with no declared length.
struct Chunks(Vec<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = if self.0.is_empty() { None } else { Some(Ok(Frame::data(self.0.remove(0)))) };
        std::task::Poll::Ready(next)
    }
}

/// Calls of `/me`, to see the whoami cache work.
static WHOAMI_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Snapshot GETs seen (`X-Auditgate-Snapshot: 1`), with the credentials they carried.
fn snapshots() -> &'static std::sync::Mutex<Vec<serde_json::Value>> {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<Vec<serde_json::Value>>> = std::sync::OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// The milliseconds a `Cookie: name=<ms>` asks for.
fn cookie_ms(req: &Request<Incoming>, name: &str) -> u64 {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

/// The sample REST app from the library, one instance for the process.
async fn sample_app(req: Request<Incoming>) -> Response<Body> {
    use tower::ServiceExt;
    static APP: std::sync::OnceLock<axum::Router> = std::sync::OnceLock::new();
    let delay = if req.method() == http::Method::GET { "delay_read" } else { "delay_write" };
    let ms = cookie_ms(&req, delay);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if req.headers().get("x-auditgate-snapshot").is_some() {
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        snapshots().lock().unwrap().push(serde_json::json!({ "path": req.uri().to_string(), "authorization": auth }));
    }
    let app = APP.get_or_init(auditgate::demo::router).clone();
    let res = app.oneshot(req.map(axum::body::Body::new)).await.unwrap_or_else(|e| match e {});
    res.map(|b| b.map_err(|e| -> BoxError { e.into() }).boxed_unsync())
}

/// The `/big` pattern's period: byte `i` is `i % PERIOD`.
const PERIOD: u64 = 251;

/// Byte `i` of the `/big` pattern.
fn pattern(i: u64) -> u8 {
    (i % PERIOD) as u8
}

async fn handle(req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let res = match path.as_str() {
        "/" => Response::new(full("hello from upstream\n")),
        "/inspect" => {
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let (method, uri, version) =
                (req.method().to_string(), req.uri().to_string(), format!("{:?}", req.version()));
            let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let json = serde_json::json!({
                "method": method, "uri": uri, "version": version, "headers": headers,
                "body_len": body.len(), "peer": peer.to_string(),
            });
            Response::new(full(json.to_string()))
        }
        "/echo" => {
            let mut res = Response::new(req.into_body().map_err(|e| -> BoxError { e.into() }).boxed_unsync());
            res.headers_mut().insert("x-echo", "1".parse().unwrap());
            res
        }
        "/big" => Response::new(
            Pattern { sent: 0, total: query_num(&req, "bytes") }.map_err(|e| -> BoxError { e.into() }).boxed_unsync(),
        ),
        "/close" => {
            let mut res = Response::new(full(peer.to_string()));
            res.headers_mut().insert(header::CONNECTION, "close".parse().unwrap());
            res
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_num(&req, "ms"))).await;
            Response::new(full("slow"))
        }
        p if p.starts_with("/status/") => {
            let code =
                p["/status/".len()..].parse().ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::OK);
            let mut res = Response::new(full(format!("status {code}")));
            *res.status_mut() = code;
            let h = res.headers_mut();
            h.insert(header::CONNECTION, "x-upstream-private".parse().unwrap());
            h.insert("x-upstream-private", "secret".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            // Every other hop-by-hop header of RFC 9110 7.6.1 a response can carry.
            h.insert("proxy-connection", "keep-alive".parse().unwrap());
            h.insert(header::TRAILER, "x-checksum".parse().unwrap());
            h.insert(header::UPGRADE, "h2c".parse().unwrap());
            h.insert(header::PROXY_AUTHENTICATE, "Basic realm=\"upstream\"".parse().unwrap());
            h.insert("x-custom", "kept".parse().unwrap());
            h.append(header::SET_COOKIE, "a=1".parse().unwrap());
            h.append(header::SET_COOKIE, "b=2".parse().unwrap());
            res
        }
        "/ws" => websocket(req),
        "/chunked-create/" => {
            // A 201 whose body has no declared length, naming the new item in Location.
            let chunks = vec![Bytes::from_static(b"{\"id\": "), Bytes::from_static(b"77, \"note\": \"chunked\"}")];
            let mut res =
                Response::new(Chunks(chunks).map_err(|e: Infallible| -> BoxError { match e {} }).boxed_unsync());
            *res.status_mut() = StatusCode::CREATED;
            res.headers_mut().insert(header::LOCATION, "/chunked-create/77/".parse().unwrap());
            res
        }
        "/gzipped" => {
            // A JSON state sent gzip-encoded whatever the client asked for.
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(br#"{"state": "compressed", "n": 7}"#).unwrap();
            let mut res = Response::new(full(e.finish().unwrap()));
            res.headers_mut().insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
            res
        }
        // A session app's who-am-I: `Cookie: session=<user>` → {"user": {"name": …}}.
        "/me" => {
            WHOAMI_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let user = req
                .headers()
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|c| c.trim().strip_prefix("session=").map(str::to_string));
            match user {
                Some(name) => Response::new(full(serde_json::json!({"user": {"name": name}}).to_string())),
                None => {
                    let mut res = Response::new(full(r#"{"detail": "not logged in"}"#));
                    *res.status_mut() = StatusCode::UNAUTHORIZED;
                    res
                }
            }
        }
        "/me/calls" => Response::new(full(WHOAMI_CALLS.load(std::sync::atomic::Ordering::Relaxed).to_string())),
        "/snapshots" => {
            let seen = snapshots().lock().unwrap().clone();
            Response::new(full(serde_json::to_string(&seen).unwrap()))
        }
        p if p.starts_with("/api/") => sample_app(req).await,
        p if p.starts_with("/framed/") => framed::handle(req).await,
        p if p.starts_with("/accounts") => accounts::handle(req).await,
        _ => {
            let mut res = Response::new(full(format!("not found: {}", req.uri())));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
    };
    Ok(res)
}

/// The size of each `/big` chunk.
const CHUNK: u64 = 65536;

/// `total` bytes of the known pattern, produced 64 KiB at a time.
struct Pattern {
    sent: u64,
    total: u64,
}

impl http_body::Body for Pattern {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.sent >= self.total {
            return std::task::Poll::Ready(None);
        }
        // The pattern repeats every PERIOD bytes, so each chunk is a slice of
        // one buffer made once: serving it costs what a static file does.
        static CHUNKS: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
        let chunks = CHUNKS.get_or_init(|| (0..CHUNK + PERIOD).map(pattern).collect::<Vec<u8>>().into());
        let len = (self.total - self.sent).min(CHUNK);
        let start = (self.sent % PERIOD) as usize;
        self.sent += len;
        std::task::Poll::Ready(Some(Ok(Frame::data(chunks.slice(start..start + len as usize)))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.total - self.sent)
    }
}

/// Answers the handshake, then echoes every frame back unmasked.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut res = Response::new(full("not a websocket request"));
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return res;
    };
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut io = TokioIo::new(upgraded);
        loop {
            let mut head = [0u8; 2];
            if io.read_exact(&mut head).await.is_err() {
                return;
            }
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                len = u64::from(io.read_u16().await.unwrap_or(0));
            } else if len == 127 {
                len = io.read_u64().await.unwrap_or(0);
            }
            let mut mask = [0u8; 4];
            if masked && io.read_exact(&mut mask).await.is_err() {
                return;
            }
            let mut payload = vec![0u8; len as usize];
            if io.read_exact(&mut payload).await.is_err() {
                return;
            }
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= if masked { mask[i % 4] } else { 0 };
            }
            let mut frame = vec![0x80 | opcode];
            if payload.len() < 126 {
                frame.push(payload.len() as u8);
            } else {
                frame.push(126);
                frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            }
            frame.extend_from_slice(&payload);
            if io.write_all(&frame).await.is_err() || opcode == 8 {
                return;
            }
        }
    });
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, "websocket".parse().unwrap());
    h.insert(header::CONNECTION, "Upgrade".parse().unwrap());
    h.insert("sec-websocket-accept", accept.parse().unwrap());
    res
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:0".into()).parse().expect("ADDR like 127.0.0.1:0");
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        println!("listening on {}", listener.local_addr().unwrap());
        let tls = match (std::env::var_os("UPSTREAM_TLS_CERT"), std::env::var_os("UPSTREAM_TLS_KEY")) {
            (Some(cert), Some(key)) => {
                let files = auditgate::tls::PairFiles { cert: cert.into(), key: key.into() };
                let certificates = auditgate::tls::Certificates::load(files).expect("a usable TLS pair");
                Some(tokio_rustls::TlsAcceptor::from(certificates.server_config()))
            }
            _ => None,
        };
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let service = service_fn(move |req| handle(req, peer));
                let _ = match tls {
                    None => builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await,
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
}
