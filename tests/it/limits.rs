//! docs/security.md: every bad request gets a clear answer and the proxy keeps serving.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[tokio::test]
async fn b13_unreachable_upstream_is_502() {
    // A port that was free a moment ago: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let app = spawn_app_to(&format!("http://{closed}"), &[], None).await;
    let res = get(&app.url("/anything")).await;
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(body["error"], "upstream unreachable");
    // Still answering (the next request gets the same clear error, not a hang).
    assert_eq!(get(&app.url("/again")).await.status(), 502);
}

#[tokio::test]
async fn b13_slow_upstream_is_504() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__UPSTREAM_TIMEOUT", "300ms")], None).await;
    let started = Instant::now();
    let res = get(&app.url("/slow?ms=5000")).await;
    assert_eq!(res.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout did not cut the wait");
    assert_eq!(get(&app.url("/slow?ms=10")).await.status(), 200);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a4_a5_malformed_requests_are_400() {
    let app = spawn_app().await;
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ] {
        let answer = raw(app.addr, bad).await;
        assert!(status_line(&answer).starts_with("HTTP/1.1 400"), "{:?} got {answer:?}", String::from_utf8_lossy(bad));
        assert_still_serving(&app).await;
    }
}

#[tokio::test]
async fn a1_content_length_with_transfer_encoding_never_smuggles() {
    let app = spawn_app().await;
    // Content-Length says the body is "0\r\n\r" and the rest is a second
    // request; chunked framing says the body is empty and the rest is
    // "GET /status/299". Either reading must not let a request through unseen.
    for order in ["Content-Length: 4\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 4"]
    {
        let smuggle = format!(
            "POST /inspect HTTP/1.1\r\nHost: x\r\n{order}\r\n\r\n0\r\n\r\nGET /status/299 HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let answer = raw(app.addr, smuggle.as_bytes()).await;
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "more than one answer: {answer}");
        assert!(!answer.contains("299"), "the smuggled request was answered: {answer}");
        let lower = answer.to_ascii_lowercase();
        if status_line(&answer).starts_with("HTTP/1.1 200") {
            // Forwarded with chunked framing only, and the connection closed.
            assert!(lower.contains("connection: close"), "{answer}");
            let seen: serde_json::Value =
                serde_json::from_str(&answer[answer.find("\r\n\r\n").unwrap() + 4..]).unwrap();
            assert_eq!(seen["body_len"], 0);
            assert!(
                seen_header(&seen, "content-length").is_empty() || seen_header(&seen, "transfer-encoding").is_empty()
            );
        } else {
            assert!(status_line(&answer).starts_with("HTTP/1.1 400"), "{answer}");
        }
    }
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a6_oversized_header_block_is_431() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__MAX_HEADER_BYTES", "16384")], None).await;
    let big = "a".repeat(40_000);
    let answer = raw(app.addr, format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes()).await;
    assert!(status_line(&answer).starts_with("HTTP/1.1 431"), "{}", status_line(&answer));
    // Just under the limit is fine.
    let fits = "b".repeat(8_000);
    let res = send(&client(), Request::get(app.url("/")).header("x-fits", fits).body(Full::default()).unwrap()).await;
    assert_eq!(res.status(), 200);
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn a6_audited_bodies_over_the_limit_are_413() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__MAX_BODY_BYTES", "65536")], None).await;
    let big = Bytes::from(vec![b'x'; 200_000]);
    // Declared length over the limit.
    let res = send(&client(), Request::put(app.url("/api/users/1")).body(Full::new(big.clone())).unwrap()).await;
    assert_eq!(res.status(), 413);
    // Chunked, no declared length: cut off once it passes the limit.
    let head = "PATCH /api/users/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..8 {
        let chunk = format!("{:x}\r\n{}\r\n", 16384, "y".repeat(16384));
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    // Under the limit passes.
    let small = Bytes::from(vec![b'x'; 1000]);
    let res = send(&client(), Request::put(app.url("/echo")).body(Full::new(small.clone())).unwrap()).await;
    assert_eq!((res.status().as_u16(), res.body()), (200, &small));
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn b10_slow_clients_are_cut_off_by_header_read_timeout() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "500ms")], None).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    // Meanwhile a normal client is served.
    assert_still_serving(&app).await;
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await, "the slow connection was not closed");
    assert!(started.elapsed() >= Duration::from_millis(400), "closed before the timeout");
    assert_still_serving(&app).await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn_app().await;
    assert_eq!(get(&app.query("/readyz")).await.status(), 200);
    let url = app.url("/slow?ms=900");
    let in_flight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = app.addr;
    app.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Not ready while draining, but the query port still answers.
    let ready = get(&app.query("/readyz")).await;
    assert_eq!((ready.status().as_u16(), ready.body().as_ref()), (503, &b"{\"status\":\"shutting down\"}\n"[..]));
    app.stop().await;
    let res = in_flight.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.body().as_ref(), b"slow");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_idle_timeout_not_header_read_timeout() {
    // An idle client connection holds its own upstream connection, so idle
    // connections must not live forever; but waiting between requests is
    // not sending a head slowly.
    let app = spawn_app_with(
        &[("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "300ms"), ("AUDITGATE_LIMITS__IDLE_TIMEOUT", "1500ms")],
        None,
    )
    .await;
    let mut stream = kept_alive(app.addr).await;
    assert!(!closed_within(&mut stream, Duration::from_millis(900)).await, "closed by header_read_timeout");
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn a6_a_declared_length_over_the_limit_is_refused_before_the_body_is_asked_for() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__MAX_BODY_BYTES", "65536")], None).await;
    // With `Expect: 100-continue` the client waits: the answer must be the
    // 413, not a `100 Continue` inviting 200 kB that will be refused.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "PUT /api/users/1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn a6_a_login_no_configuration_records_streams_past_max_body_bytes() {
    let resources = "[[resource]]\npattern = \"/echo\"\ntype = \"session\"\naction = \"login\"\nusername_from = \"json:/username\"\n";
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__MAX_BODY_BYTES", "1000")], Some(resources)).await;
    // No configuration names `login`: the request is not audited, so it is
    // neither read whole nor held to the audited-body limit.
    let big = Bytes::from(vec![b'x'; 5000]);
    let res = send(&client(), Request::post(app.url("/echo")).body(Full::new(big.clone())).unwrap()).await;
    assert_eq!((res.status().as_u16(), res.body()), (200, &big));
}
