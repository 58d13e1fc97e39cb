//! The lean lane of an HTTP/1.1 client connection: the requests it serves
//! itself are framed as hyper frames them, and a connection leaves it for
//! hyper at its first request the lane does not serve, with nothing lost.

use std::time::Duration;

use http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::answers::raw_get_upstream;
use crate::audit::{call, wait_entries};
use crate::helpers::*;

const ALICE: &str = "Authorization: Basic YWxpY2U6czNjcmV0\r\n";

/// Reads until the server closes the connection (at most 5 s).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open: {}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one answer's head and a body of `Content-Length` bytes.
async fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut one = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut one).await.unwrap(), 1, "the connection ended inside a head");
        bytes.push(one[0]);
    }
    let head = String::from_utf8(bytes).unwrap().to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |n| n.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (head, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn a_connection_leaves_the_lane_at_its_first_recorded_change_and_answers_every_request_in_order() {
    let app = spawn_app().await;
    let (status, created) = call(&app, Method::POST, "/api/items/", json!({"name": "a", "email": "a@x.io"})).await;
    assert_eq!(status, 201);
    let item = format!("/api/items/{}/", created["id"]);
    let patch = r#"{"email": "b@x.io"}"#;
    // Pipelined in one write: a read the lane serves, a change it hands to
    // hyper (the bytes after it already read), and a read after that.
    let requests = format!(
        "GET {item} HTTP/1.1\r\nHost: x\r\n{ALICE}\r\n\
         PATCH {item} HTTP/1.1\r\nHost: x\r\n{ALICE}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{patch}\
         GET {item} HTTP/1.1\r\nHost: x\r\n{ALICE}Connection: close\r\n\r\n",
        patch.len()
    );
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(requests.as_bytes()).await.unwrap();
    let (head, before) = read_answer(&mut stream).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(before.contains("a@x.io"), "{before}");
    let (head, patched) = read_answer(&mut stream).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(patched.contains("b@x.io"), "{patched}");
    let (head, after) = read_answer(&mut stream).await;
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert!(after.contains("b@x.io"), "{after}");
    assert_eq!(read_to_close(&mut stream).await, "");

    let entries = wait_entries(&app.store, 2).await;
    assert_eq!(entries[1].action.to_string(), "update");
    assert_eq!(entries[1].changes.len(), 1, "{:?}", entries[1].changes);
    assert_eq!(entries[1].changes[0].new, json!("b@x.io"));
}

#[tokio::test]
async fn connection_close_is_answered_in_kind_and_the_connection_closed() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello from upstream\n"), "{answer}");
}

#[tokio::test]
async fn a_head_request_gets_the_length_of_the_get_and_no_body() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    let mut one = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut one).await.unwrap(), 1);
        head.push(one[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.contains("\r\ncontent-length: 20\r\n"), "{head}");
    // The next bytes are the GET's answer: the HEAD's had no body.
    let (get, body) = read_answer(&mut stream).await;
    assert!(get.starts_with("http/1.1 200 ok\r\n"), "{get}");
    assert_eq!(body, "hello from upstream\n");
}

#[tokio::test]
async fn an_answer_of_unknown_length_goes_chunked_and_one_without_a_date_gets_one() {
    let upstream = raw_get_upstream(b"HTTP/1.1 203 Whatever\r\nx-kept: 1\r\n\r\nhello, close-delimited").await;
    let app = spawn_app_to(&format!("http://{upstream}"), &[], None).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let answer = read_to_close(&mut stream).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    // The upstream's own reason phrase, as hyper's server keeps it.
    assert!(head.starts_with("HTTP/1.1 203 Whatever\r\n"), "{head}");
    assert!(head.contains("\r\nx-kept: 1"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(head.contains("\r\ntransfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let mut decoded = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            assert_eq!(after, "\r\n");
            break;
        }
        decoded.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap();
    }
    assert_eq!(decoded, "hello, close-delimited");
}

#[tokio::test]
async fn shutdown_closes_an_idle_connection_of_the_lane_at_once() {
    let mut app = spawn_app().await;
    let mut idle = kept_alive(app.addr).await;
    let started = std::time::Instant::now();
    app.signal_shutdown();
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await, "the idle connection stayed open");
    tokio::time::timeout(Duration::from_secs(5), app.task.take().unwrap()).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "shutdown waited for the idle connection");
}

#[tokio::test]
async fn a_plain_read_reaches_the_upstream_as_the_header_map_would_send_it() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // Written as sent, less what a proxy drops, plus what it adds; the
    // fragment goes where the `http` types put it (nowhere), through them.
    stream
        .write_all(
            b"GET /inspect?x=1 HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, X-Secret\r\n\
              X-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\
              X-Kept: a\r\nx-kept: b\r\n\r\n\
              GET /inspect#fragment HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let (_, first) = read_answer(&mut stream).await;
    let (_, second) = read_answer(&mut stream).await;
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["uri"], "/inspect?x=1");
    assert_eq!(seen_header(&first, "host"), ["app.example"]);
    assert_eq!(seen_header(&first, "x-kept"), ["a", "b"]);
    assert_eq!(seen_header(&first, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen_header(&first, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen_header(&first, "x-forwarded-host"), ["app.example"]);
    assert_eq!(seen_header(&first, "via"), ["1.1 auditgate"]);
    assert_eq!(seen_header(&first, "x-request-id")[0].len(), 26);
    for gone in ["connection", "keep-alive", "x-secret"] {
        assert!(seen_header(&first, gone).is_empty(), "{gone} reached the upstream");
    }
    let second: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(second["uri"], "/inspect");
}

/// An upstream that answers every request with its request line.
async fn request_line_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
                let answer =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{line}", line.len());
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_target_the_http_types_would_change_is_sent_as_they_change_it() {
    let upstream = request_line_upstream().await;
    let app = spawn_app_to(&format!("http://{upstream}"), &[], None).await;
    for (sent, seen) in [
        ("/plain?q=1", "GET /plain?q=1 HTTP/1.1"),
        // The `http` types drop a fragment; written raw it would go on.
        ("/frag?q=1#part", "GET /frag?q=1 HTTP/1.1"),
    ] {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream
            .write_all(format!("GET {sent} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body) = read_answer(&mut stream).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(body, seen);
    }
}
