//! The hardening catalogue (docs/security.md), one test per case, named after
//! it: a raw client, the recording upstream, and the entries written.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

#[tokio::test]
async fn b10_silent_and_partial_connections_are_closed_after_header_read_timeout_on_both_ports() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "500ms")], None).await;
    for addr in [app.addr, app.query_addr] {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // A head trickled a byte at a time is no better.
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        let trickling = tokio::spawn(async move {
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n" {
                if trickle.write_all(&[*b]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            closed_within(&mut trickle, Duration::from_secs(5)).await
        });
        assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "{addr}: a silent connection stayed open");
        assert!(closed_within(&mut partial, Duration::from_secs(5)).await, "{addr}: a partial head stayed open");
        assert!(trickling.await.unwrap(), "{addr}: a trickled head stayed open");
    }
    assert_still_serving(&app).await;
    assert_eq!(get(&app.query("/healthz")).await.status(), 200);
}

#[tokio::test]
async fn b12_silent_connections_beyond_max_connections_do_not_keep_a_client_out() {
    let app = spawn_app_with(
        &[("AUDITGATE_LIMITS__MAX_CONNECTIONS", "50"), ("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "60s")],
        None,
    )
    .await;
    for addr in [app.addr, app.query_addr] {
        let mut silent = Vec::new();
        for _ in 0..60 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let path = if addr == app.addr { "/" } else { "/healthz" };
        let res = tokio::time::timeout(Duration::from_secs(5), get(&format!("http://{addr}{path}")))
            .await
            .unwrap_or_else(|_| panic!("{addr}: a client waited behind silent connections"));
        assert_eq!(res.status(), 200);
        // The ones idle the longest made room: the first are closed.
        assert!(closed_within(&mut silent[0], Duration::from_secs(2)).await, "{addr}");
        assert!(!closed_within(&mut silent[59], Duration::from_millis(200)).await, "{addr}: the newest was closed");
    }
}

/// Sends `head` then `body` in `pieces` writes `pause` apart; the answer's
/// status line (empty when the connection closed without one).
async fn send_slowly(addr: std::net::SocketAddr, head: &str, body: &[u8], pieces: usize, pause: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let size = body.len().div_ceil(pieces);
    for piece in body.chunks(size) {
        tokio::time::sleep(pause).await;
        if stream.write_all(piece).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn b11_a_trickled_body_is_cut_with_408_and_a_slow_real_upload_succeeds() {
    let app = spawn_app_with(
        &[
            ("AUDITGATE_LIMITS__BODY_TIMEOUT", "1s"),
            ("AUDITGATE_LIMITS__BODY_MIN_RATE", "500"),
            ("AUDITGATE_LIMITS__UPSTREAM_TIMEOUT", "1s"),
        ],
        None,
    )
    .await;
    // A byte every 150 ms: far under 500 bytes a second once the second of grace is gone.
    let trickle = vec![b'x'; 40];
    // Streamed (a GET with a body is not audited; /inspect answers once it
    // has the whole body), read whole (an audited create of an `echo`), and
    // an audited update.
    for (method, path) in [("GET", "/inspect"), ("POST", "/echo"), ("PATCH", "/api/items/1/")] {
        let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n");
        let status = send_slowly(app.addr, &head, &trickle, 40, Duration::from_millis(150)).await;
        assert!(status.starts_with("HTTP/1.1 408"), "{path}: {status}");
    }
    // The query port holds bodies to the same rate.
    let head = "POST /api/v1/audit-configurations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Content-Length: 40\r\n\r\n";
    let status = send_slowly(app.query_addr, head, &trickle, 40, Duration::from_millis(150)).await;
    assert!(status.starts_with("HTTP/1.1 408"), "query port: {status}");
    // 240 KB at about 80 KB/s: three times upstream_timeout, far above the rate.
    let upload = vec![b'y'; 240_000];
    // Streamed (a GET is not audited), so upstream_timeout counts from its last byte.
    let head = "GET /inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 240000\r\n\r\n";
    let status = send_slowly(app.addr, head, &upload, 30, Duration::from_millis(100)).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // Read whole (audited), then sent at once.
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 240000\r\n\r\n";
    let status = send_slowly(app.addr, head, &upload, 30, Duration::from_millis(100)).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a4_a_broken_chunked_body_is_the_clients_fault() {
    let app = spawn_app().await;
    // Read whole (an audited create of an `echo`). Streamed, the upstream
    // sees the body fail: it is never handed the part as a whole body.
    for (method, path) in [("POST", "/echo"), ("GET", "/inspect")] {
        let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        let body = b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n";
        if method == "GET" {
            let answer = raw(app.addr, format!("{head}5\r\nhello\r\nzz\r\n").as_bytes()).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
            assert!(!answer.contains("\"body_len\":5"), "the part was forwarded as a whole body: {answer}");
            continue;
        }
        let status = send_slowly(app.addr, &head, body, 2, Duration::from_millis(50)).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{method} {path}: {status}");
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a4_a_streamed_body_that_breaks_before_the_upstream_answers_is_400() {
    let app = spawn_app().await;
    // The upstream reads nothing and answers after 700 ms: the body breaks
    // while the proxy is still waiting for its answer.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "GET /slow?ms=700 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn b13_an_answer_that_stalls_is_cut_after_upstream_read_timeout() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__UPSTREAM_READ_TIMEOUT", "500ms")], None).await;
    let req = http::Request::post(app.url("/framed/trickle/items/"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{\"name\": \"stalled\"}")))
        .unwrap();
    let res = client().request(req).await.unwrap();
    assert_eq!(res.status(), 201);
    // The upstream holds the last chunk until released: the client's body breaks off.
    let body = tokio::time::timeout(Duration::from_secs(5), http_body_util::BodyExt::collect(res.into_body()))
        .await
        .expect("the stalled answer was cut");
    assert!(body.is_err());
    // The create happened: it is recorded, without the id it never saw.
    let e = crate::audit::wait_entries(&app.store, 1).await;
    assert_eq!((e[0].action.as_str(), e[0].status), ("create", 201));
    assert_still_serving(&app).await;
}

/// The status line and, for a 200 from `/inspect`, what the upstream saw.
async fn raw_inspect(app: &TestApp, request: &str) -> (String, Option<serde_json::Value>) {
    let answer = raw(app.addr, request.as_bytes()).await;
    let status = answer.lines().next().unwrap_or("").to_string();
    let seen = answer.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok());
    (status, seen)
}

#[tokio::test]
async fn a5_host_must_be_there_once_and_connect_is_refused() {
    let app = spawn_app().await;
    for (request, want) in [
        ("GET /inspect HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"),
        ("GET /inspect HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        ("CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", "HTTP/1.1 405"),
        ("GET /inspect HTTP/1.0\r\n\r\n", "HTTP/1.0 200"),
    ] {
        let answer = raw(app.addr, request.as_bytes()).await;
        assert!(answer.starts_with(want), "{request:?}: {answer}");
        // The proxy's own answers are framed by their length.
        assert!(answer.to_ascii_lowercase().contains("\r\ncontent-length: "), "{answer}");
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a2_a3_only_chunked_is_accepted_and_content_length_goes_on_canonical() {
    let app = spawn_app().await;
    let post = |framing: &str, body: &str| format!("POST /inspect HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n{body}");
    for (framing, want) in [
        ("Transfer-Encoding: gzip, chunked", "HTTP/1.1 501"),
        ("Transfer-Encoding: identity, chunked", "HTTP/1.1 501"),
        ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "HTTP/1.1 400"),
    ] {
        let (status, _) = raw_inspect(&app, &post(framing, "5\r\nhello\r\n0\r\n\r\n")).await;
        assert!(status.starts_with(want), "{framing:?}: {status}");
    }
    // Empty list elements are allowed (RFC 9110 §5.6.1): `, chunked` is chunked.
    let (status, seen) = raw_inspect(&app, &post("Transfer-Encoding: , chunked", "5\r\nhello\r\n0\r\n\r\n")).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(seen.unwrap()["body_len"], 5);
    for framing in ["Content-Length: 00000000000000000005", "Content-Length: 5\r\nContent-Length: 5"] {
        let (status, seen) = raw_inspect(&app, &post(framing, "hello")).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{framing:?}: {status}");
        let seen = seen.unwrap();
        assert_eq!(seen_header(&seen, "content-length"), ["5"], "{framing:?}");
        assert_eq!(seen["body_len"], 5);
    }
    assert_still_serving(&app).await;
}

/// What the upstream is sent carries framing of our making only where it
/// must: an audited body the client sent chunked was read whole, so it goes
/// on with its length (an old upstream that cannot read chunked requests
/// still gets it), and a snapshot GET has no body framing at all.
#[tokio::test]
async fn a2_an_audited_chunked_body_goes_on_with_its_length_and_a_snapshot_get_with_no_framing() {
    let rules = r#"
[[resource]]
pattern = "/api/probed/{id}/"
type = "probe"
snapshot = "/inspect"
"#;
    let app = spawn_app_with(&[], Some(rules)).await;
    let chunked =
        "POST /inspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
    let (status, seen) = raw_inspect(&app, chunked).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let seen = seen.unwrap();
    assert_eq!(seen_header(&seen, "content-length"), ["5"]);
    assert!(seen_header(&seen, "transfer-encoding").is_empty(), "{seen}");
    assert_eq!(seen["body_len"], 5);

    // A pass-through GET without a body goes on without body framing too.
    let (_, seen) = raw_inspect(&app, "GET /inspect HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let seen = seen.unwrap();
    for framing in ["content-length", "transfer-encoding"] {
        assert!(seen_header(&seen, framing).is_empty(), "{framing} on a plain GET: {seen}");
    }

    let patch = "PATCH /api/probed/1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    raw(app.addr, patch.as_bytes()).await;
    let entries = crate::audit::wait_entries(&app.store, 2).await;
    // The POST was audited (so its body was the one read whole)...
    assert!(entries.iter().any(|e| e.resource_type == "inspect" && e.action == "create"), "{entries:?}");
    // ...and the PATCH's snapshot is what the upstream saw of its GET.
    let probe = entries.iter().find(|e| e.resource_type == "probe").unwrap();
    let before = probe.before.as_ref().expect("the snapshot is /inspect's JSON");
    assert_eq!(before["method"], "GET");
    for framing in ["content-length", "transfer-encoding"] {
        assert!(seen_header(before, framing).is_empty(), "{framing} on a snapshot GET: {before}");
    }
}

#[tokio::test]
async fn e23_hostile_filters_are_400_naming_the_field_never_5xx() {
    let app = spawn_app().await;
    let long = "%25_".repeat(15_000);
    for (query, field) in [
        (format!("q={long}"), "q"),
        (format!("actor={}", "a".repeat(2000)), "actor"),
        ("client_ip=%27%20OR%201%3D1%20--".to_string(), "client_ip"),
        ("status=200%20OR%201%3D1".to_string(), "status"),
        ("limit=100000000000".to_string(), "limit"),
        ("limit=-1".to_string(), "limit"),
        ("cursor=%27%3B%20DROP%20TABLE%20audit_log%3B--".to_string(), "cursor"),
        ("since=2026-02-30T00:00:00Z".to_string(), "since"),
        ("until=tomorrow".to_string(), "until"),
    ] {
        let res = get(&app.query(&format!("/api/v1/audit-logs?{query}"))).await;
        assert_eq!(res.status(), 400, "{field}: {:?}", res.body());
        let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(body["field"], field, "{body}");
    }
    // A quote in a plain filter is data, not SQL: the one entry is not matched.
    let patch = http::Request::patch(app.url("/api/items/1/")).body(http_body_util::Full::default()).unwrap();
    send(&client(), patch).await;
    crate::audit::wait_entries(&app.store, 1).await;
    let res = get(&app.query("/api/v1/audit-logs?actor=%27%20OR%20%271%27%3D%271")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(res.body()).unwrap()["items"], serde_json::json!([]));
}

#[tokio::test]
async fn b11_a_client_that_reads_too_slowly_is_disconnected() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__BODY_TIMEOUT", "1s")], None).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /big?bytes=50000000 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // Not reading: the socket buffers fill, the proxy's writes wait.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0)) => break None,
            Ok(Err(e)) => break Some(e.kind()),
            Ok(Ok(n)) => got += n,
            Err(_) => panic!("the slow reader was never disconnected"),
        }
    };
    assert!(got < 50_000_000, "the whole answer was delivered");
    // Reset, not closed: what was still unsent is dropped, not left to trickle.
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a7_connection_cannot_drop_what_the_proxy_adds_or_relies_on() {
    let app = spawn_app().await;
    let (status, seen) = raw_inspect(
        &app,
        "GET /inspect HTTP/1.1\r\nHost: x\r\nConnection: X-Forwarded-For, Authorization, X-Request-Id\r\n\
         Authorization: Basic YWxpY2U6cHc=\r\nX-Request-Id: mine\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let seen = seen.unwrap();
    assert_eq!(seen_header(&seen, "authorization"), ["Basic YWxpY2U6cHc="]);
    assert_eq!(seen_header(&seen, "x-request-id"), ["mine"]);
    // The proxy's own forwarding header, with the real peer, not the client's claim.
    assert_eq!(seen_header(&seen, "x-forwarded-for"), ["127.0.0.1"]);
}

/// A switch of protocols needs both `Upgrade` and `Connection: upgrade`
/// (RFC 9110 §7.8); either alone is a hop-by-hop leftover, stripped, and
/// the request is forwarded as a plain one.
#[tokio::test]
async fn a8_half_an_upgrade_request_is_forwarded_as_a_plain_request() {
    let app = spawn_app().await;
    for half in ["Upgrade: websocket", "Connection: upgrade"] {
        let (status, seen) = raw_inspect(&app, &format!("GET /inspect HTTP/1.1\r\nHost: x\r\n{half}\r\n\r\n")).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{half}: {status}");
        let seen = seen.unwrap();
        for name in ["upgrade", "connection"] {
            assert!(seen_header(&seen, name).is_empty(), "{half}: {name} forwarded: {seen}");
        }
    }
}

#[tokio::test]
async fn a8_expect_100_continue_on_an_audited_create_keeps_its_id() {
    let app = spawn_app().await;
    for path in ["/echo", "/api/items/"] {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 13\r\nExpect: 100-continue\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("100 Continue before the body")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"), "{path}");
        stream.write_all(b"{\"name\":\"e\"}\n").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 20"), "{path}: {answer}");
    }
    // The audited create is recorded with its id.
    let e = crate::audit::wait_entries(&app.store, 2).await;
    let item = e.iter().find(|e| e.path == "/api/items/").unwrap();
    assert_eq!((item.action.as_str(), item.resource_id.as_deref()), ("create", Some("1")), "{:?}", item.snapshot_error);
}

/// The entry of the request to `path`, once written.
async fn entry_for(app: &TestApp, path: &str) -> auditgate::entry::AuditEntry {
    for _ in 0..200 {
        let (entries, _) = app.store.list(&Default::default(), None, 100).await.unwrap();
        if let Some(e) = entries.into_iter().find(|e| e.path == path) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no entry for {path}");
}

#[tokio::test]
async fn c15_a_path_spelled_differently_never_names_another_resource() {
    let app = spawn_app().await;
    let upstream = app.upstream.as_ref().unwrap().url();
    for name in ["one", "two"] {
        let req = http::Request::post(format!("{upstream}/api/items/"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"name\": \"{name}\"}}"))))
            .unwrap();
        assert_eq!(send(&client(), req).await.status(), 201);
    }
    let variants = [
        "/api/items/1/",
        "/api/items/%31/",
        "/api//items/1/",
        "/api/items//1/",
        "/api/items/1;x=2/",
        "/api/items/./1/",
        "/api/items/2/../1/",
        "/api/items/%2e%2e/items/1/",
        "/api/items/1%2F/",
        "/API/items/1/",
        "/api/items/1./",
        "/api/items/01/",
    ];
    for (i, path) in variants.iter().enumerate() {
        let req = http::Request::patch(app.url(path))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"tag\": {i}}}"))))
            .unwrap();
        let status = send(&client(), req).await.status();
        if status == 400 {
            assert_eq!(*path, "/api/items/1%2F/", "only the encoded slash is refused");
        }
        // What the upstream changed, read back directly.
        let one: serde_json::Value =
            serde_json::from_slice(get(&format!("{upstream}/api/items/1/")).await.body()).unwrap();
        let two: serde_json::Value =
            serde_json::from_slice(get(&format!("{upstream}/api/items/2/")).await.body()).unwrap();
        let changed = [("1", &one), ("2", &two)].into_iter().find(|(_, v)| v["tag"] == i).map(|(id, _)| id);
        match changed {
            Some(id) => {
                assert!(status.is_success(), "{path}");
                let entry = entry_for(&app, path).await;
                assert_eq!(
                    (entry.resource_type.as_str(), entry.resource_id.as_deref()),
                    ("item", Some(id)),
                    "{path}: the upstream changed item {id}"
                );
                assert_eq!(entry.after.as_ref().map(|a| &a["tag"]), Some(&serde_json::json!(i)), "{path}");
            }
            None => assert!(!status.is_success(), "{path}: {status} but nothing changed"),
        }
    }
}

/// An HTTP/2 frame: length, type, flags, stream, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HPACK: `:method GET`, `:scheme http`, `:path /` (static table indices).
const GET_ROOT: [u8; 3] = [0x82, 0x86, 0x84];

/// Writes `frames` on a new h2c connection while reading what comes back;
/// true when the server ended the connection (GOAWAY or close) in time.
async fn h2_flood(addr: std::net::SocketAddr, frames: impl Iterator<Item = Vec<u8>>) -> bool {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => {
                    seen.extend_from_slice(&buf[..n]);
                    if has_goaway(&seen) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    });
    let mut head = H2_PREFACE.to_vec();
    head.extend(h2_frame(4, 0, 0, &[]));
    let _ = wr.write_all(&head).await;
    for frame in frames {
        if wr.write_all(&frame).await.is_err() {
            break;
        }
    }
    reader.await.unwrap()
}

/// Whether the server's frames (after its preface-less start) hold a GOAWAY.
fn has_goaway(mut bytes: &[u8]) -> bool {
    while bytes.len() >= 9 {
        let len = (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        if bytes[3] == 7 {
            return true;
        }
        if bytes.len() < 9 + len {
            return false;
        }
        bytes = &bytes[9 + len..];
    }
    false
}

/// A frame as read: type, flags, stream, payload.
type H2Frame = (u8, u8, u32, Vec<u8>);

/// Sends `frames` after the preface and an empty SETTINGS on a new h2c
/// connection, and reads the frames of stream 1 until one ends it.
async fn h2_stream_one(addr: std::net::SocketAddr, frames: &[Vec<u8>]) -> Vec<H2Frame> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut out = H2_PREFACE.to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    frames.iter().for_each(|f| out.extend_from_slice(f));
    stream.write_all(&out).await.unwrap();
    let (mut seen, mut buf, mut at) = (Vec::new(), vec![0u8; 65536], 0);
    let mut ones = Vec::new();
    loop {
        while seen.len() >= at + 9 {
            let h = &seen[at..at + 9];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            if seen.len() < at + 9 + len {
                break;
            }
            let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
            let frame = (h[3], h[4], id, seen[at + 9..at + 9 + len].to_vec());
            at += 9 + len;
            // HEADERS or DATA with END_STREAM ends stream 1.
            let ends = id == 1 && (frame.0 == 0 || frame.0 == 1) && frame.1 & 0x1 == 0x1;
            if id == 1 {
                ones.push(frame);
            }
            if ends {
                return ones;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before stream 1 ended: {ones:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// HPACK for a request on the example upstream: `method` (GET from the
/// static table, else a literal), `:scheme http`, `:path`, `:authority x`
/// and, for a body, `content-type: application/json`.
fn h2_request_head(method: &str, path: &str, json: bool) -> Vec<u8> {
    let literal = |index: u8, value: &str| [&[index, value.len() as u8], value.as_bytes()].concat();
    let mut block = if method == "GET" { vec![0x82] } else { literal(0x02, method) };
    block.push(0x86);
    block.extend(literal(0x04, path));
    block.extend(literal(0x01, "x"));
    if json {
        // content-type is entry 31 of the static table: 4-bit prefix 15, then 16.
        block.extend([&[0x0f, 0x10, 16][..], b"application/json"].concat());
    }
    block
}

/// A GET (or HEAD) whose body has no declared length (chunked over
/// HTTP/1.1, DATA frames without `content-length` over HTTP/2) reaches the
/// upstream with its body; the upstream's client would otherwise send the
/// method as bodiless and the body would be lost.
#[tokio::test]
async fn a9_a_get_with_a_body_of_unknown_length_reaches_the_upstream_on_both_protocols() {
    let app = spawn_app().await;
    let chunked =
        "GET /inspect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (status, seen) = raw_inspect(&app, chunked).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(seen.as_ref().map(|s| s["body_len"].clone()), Some(serde_json::json!(11)), "{seen:?}");
    let frames = h2_stream_one(
        app.addr,
        &[h2_frame(1, 0x4, 1, &h2_request_head("GET", "/inspect", false)), h2_frame(0, 0x1, 1, b"hello world")],
    )
    .await;
    let body: Vec<u8> = frames.iter().filter(|f| f.0 == 0).flat_map(|f| f.3.clone()).collect();
    let seen: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{frames:?}"));
    assert_eq!(seen["body_len"], 11, "{seen}");
}

/// An answer with no body ends its HTTP/2 stream on its HEADERS frame
/// (END_STREAM), as the upstream's did, instead of with an empty DATA frame
/// after it: the proxy's body says it is at its end before it is polled.
#[tokio::test]
async fn a9_an_empty_answer_over_http2_ends_its_stream_on_its_headers() {
    let app = spawn_app().await;
    let frames = h2_stream_one(app.addr, &[h2_frame(1, 0x5, 1, &h2_request_head("GET", "/status/204", false))]).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!((frames[0].0, frames[0].1 & 0x1), (1, 0x1), "END_STREAM on the answer's HEADERS: {frames:?}");
}

/// A create's answer streams through the tee (its body names the new id):
/// over HTTP/2 its last DATA frame ends the stream, with no empty frame
/// after it, and the entry has the id.
#[tokio::test]
async fn a9_a_teed_answer_over_http2_ends_its_stream_on_its_last_data() {
    let app = spawn_app().await;
    let head = h2_frame(1, 0x4, 1, &h2_request_head("POST", "/api/items/", true));
    let frames = h2_stream_one(app.addr, &[head, h2_frame(0, 0x1, 1, br#"{"name": "over h2"}"#)]).await;
    let data: Vec<&H2Frame> = frames.iter().filter(|f| f.0 == 0).collect();
    assert!(!data.is_empty(), "{frames:?}");
    assert!(data.iter().all(|f| !f.3.is_empty()), "an empty DATA frame: {frames:?}");
    assert_eq!(data.last().unwrap().1 & 0x1, 0x1, "END_STREAM on the last DATA: {frames:?}");
    let body: serde_json::Value =
        serde_json::from_slice(&data.iter().flat_map(|f| f.3.clone()).collect::<Vec<_>>()).unwrap();
    let entries = crate::audit::wait_entries(&app.store, 1).await;
    assert_eq!(entries[0].resource_id, Some(body["id"].to_string()));
}

#[tokio::test]
async fn a9_an_http2_rapid_reset_burst_and_a_continuation_flood_are_cut() {
    let app = spawn_app().await;
    // Rapid reset (CVE-2023-44487): open a stream and cancel it, 20,000 times.
    let resets = (0..20_000u32).flat_map(|i| {
        let id = 2 * i + 1;
        [h2_frame(1, 0x5, id, &GET_ROOT), h2_frame(3, 0, id, &8u32.to_be_bytes())]
    });
    assert!(h2_flood(app.addr, resets).await, "a rapid-reset burst was not cut");
    assert_still_serving(&app).await;
    // CONTINUATION flood (CVE-2024-27316 family): a head that never ends.
    let mut first = GET_ROOT.to_vec();
    first.extend_from_slice(&[0x40, 0x01, b'x', 0x01, b'y']);
    let endless = std::iter::once(h2_frame(1, 0x1, 1, &first)).chain((0..2_000).map(|_| {
        let mut block = Vec::new();
        for _ in 0..1000 {
            block.extend_from_slice(&[0x40, 0x03, b'a', b'b', b'c', 0x03, b'd', b'e', b'f']);
        }
        h2_frame(9, 0, 1, &block)
    }));
    assert!(h2_flood(app.addr, endless).await, "a CONTINUATION flood was not cut");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a9_h2load_with_many_streams_loses_no_entry() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("item.json");
    std::fs::write(&body, br#"{"name": "h2load"}"#).unwrap();
    // 4 connections with 50 concurrent streams each: 600 audited creates.
    let mut h2load = std::process::Command::new("h2load");
    h2load
        .args(["-n", "600", "-c", "4", "-m", "50", "-H", "content-type: application/json", "-d"])
        .arg(&body)
        .arg(app.url("/api/items/"));
    let out = tokio::task::spawn_blocking(move || h2load.output())
        .await
        .unwrap()
        .expect("h2load is installed by scripts/test.sh (nghttp2-client)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("600 succeeded, 0 failed, 0 errored"), "{report}");
    assert!(report.contains("status codes: 600 2xx"), "{report}");
    let e = crate::audit::wait_entries(&app.store, 600).await;
    assert_eq!(e.len(), 600);
    let mut ids: Vec<u64> = e.iter().map(|e| e.resource_id.as_deref().unwrap().parse().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=600).collect::<Vec<_>>(), "every create has its own id");
    assert!(e.iter().all(|e| e.after.as_ref().is_some_and(|a| a["name"] == "h2load")));
    assert!(app.store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn b10_a_later_head_must_arrive_within_header_read_timeout_of_its_first_byte() {
    let app = spawn_app_with(
        &[("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "500ms"), ("AUDITGATE_LIMITS__IDLE_TIMEOUT", "10s")],
        None,
    )
    .await;
    let mut stream = kept_alive(app.addr).await;
    // Kept alive, then a second head that stops halfway: cut long before idle_timeout.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(3)).await, "a stalled second head waited for idle_timeout");
}

#[tokio::test]
async fn b13_an_upstream_that_dies_mid_request_is_502_and_recorded_as_an_error() {
    // Reads the request head, then drops the connection without a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        }
    });
    let app = spawn_app_to(&format!("http://{upstream}"), &[("AUDITGATE_SNAPSHOT__TIMEOUT", "300ms")], None).await;
    for method in [http::Method::GET, http::Method::PATCH] {
        let req = http::Request::builder()
            .method(method.clone())
            .uri(app.url("/api/items/1/"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{\"name\": \"x\"}")))
            .unwrap();
        let res = tokio::time::timeout(Duration::from_secs(10), send(&client(), req)).await.expect("no hang");
        assert_eq!(res.status(), 502, "{method}");
    }
    let e = crate::audit::wait_entries(&app.store, 1).await;
    assert_eq!((e[0].action.as_str(), e[0].outcome.as_str(), e[0].status), ("update", "error", 502));
    // The GET was not recorded (no configuration names reads).
    assert_eq!(e.len(), 1);
}

#[tokio::test]
async fn b13_an_answer_that_keeps_coming_is_never_cut_by_upstream_read_timeout() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__UPSTREAM_READ_TIMEOUT", "300ms")], None).await;
    let upstream = app.upstream.as_ref().unwrap().url();
    // About 330 bytes in 5-byte chunks 10 ms apart: 0.65 s of steady
    // streaming, twice the timeout, with no gap near it.
    let name = "n".repeat(300);
    let req = http::Request::post(app.url("/framed/trickle/items/"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(serde_json::json!({ "name": name }).to_string())))
        .unwrap();
    let res = client().request(req).await.unwrap();
    assert_eq!(res.status(), 201);
    let whole = serde_json::json!({"id": 1, "name": name}).to_string().len();
    let mut body = res.into_body();
    let mut got = 0;
    let mut released = false;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.expect("a steady answer was cut");
        got += frame.data_ref().map_or(0, |d| d.len());
        // The upstream holds its last chunk until released.
        if !released && got + 5 >= whole {
            released = true;
            let release = http::Request::post(format!("{upstream}/framed/release"))
                .body(http_body_util::Full::default())
                .unwrap();
            send(&client(), release).await;
        }
    }
    assert_eq!(got, whole);
}

/// The send queue (unsent and unacknowledged bytes) of the local TCP socket
/// from `local` to `remote`, from `/proc/net/tcp`.
fn send_queue(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let hex = |a: std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) => format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), a.port()),
        std::net::IpAddr::V6(_) => unreachable!("the tests listen on IPv4"),
    };
    let (local, remote) = (hex(local), hex(remote));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[1] == local && fields[2] == remote)
            .then(|| u64::from_str_radix(fields[4].split(':').next().unwrap(), 16).unwrap())
    })
}

#[tokio::test]
async fn b11_a_client_that_stops_reading_holds_little_in_the_proxys_socket() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /big?bytes=50000000 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // Reads a little, then stops: the client's window closes and what the
    // proxy writes stays in its own socket.
    let mut buf = vec![0u8; 65536];
    stream.read_exact(&mut buf).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued = send_queue(app.addr, stream.local_addr().unwrap()).expect("the proxy's end of the connection");
    // Autotuned, it grows to several MiB; bounded, it stays near the
    // 128 KiB low mark plus one write.
    assert!(queued < 1024 * 1024, "the proxy's socket holds {queued} bytes for a client that does not read");
}
