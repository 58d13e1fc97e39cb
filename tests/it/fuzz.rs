//! A fuzz target run as a property test: generated request bytes (heads
//! with odd methods, targets, line endings, header names and values;
//! `Content-Length` and `Transfer-Encoding` in every combination; chunked
//! bodies with bad sizes, extensions and terminators; raw noise) sent over
//! real sockets to one auditgate in front of the example upstream. Each
//! answer must be a well-formed status line the client's bytes deserve
//! (never 500, never 502 blaming the upstream for the client's bytes), or a
//! closed connection; and the proxy keeps serving. `AUDITGATE_FUZZ_CASES`
//! sets the number of cases (default 128; CI runs the default).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use crate::helpers::*;

/// Sends `bytes` to `addr`; the answer's bytes until the server closes or
/// goes quiet.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    }
    answer
}

fn eol() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["\r\n", "\r\n", "\r\n", "\n", "\r", "\r\r\n"])
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"])
            .prop_map(String::from),
        "[A-Za-z!#$%&'*+.^_`|~-]{1,8}",
        "[ -~]{0,6}",
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        "(/(api|v1|users|items|%2[eEfF]|\\.\\.|;p=1|[a-z0-9%._~-]{0,5})){0,6}/?(\\?[a-z0-9=&%]{0,10})?",
        Just("*".to_string()),
        Just("http://other.example/api/items/1/".to_string()),
        Just("evil.example:443".to_string()),
        "[ -~]{0,20}",
    ]
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Host: x".to_string()),
        Just("Host: x".to_string()),
        "Content-Length: ?[+ -]?(0|[0-9]{1,20}|0x5)( ?, ?[0-9]{1,3})?",
        prop::sample::select(vec![
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: chunked, identity",
            "Transfer-Encoding:\tchunked",
            "Transfer-Encoding : chunked",
            "Transfer-Encoding: xchunked",
            "Connection: close",
            "Connection: X-HTTP-Method-Override, Authorization",
            "X-HTTP-Method-Override: DELETE",
            "Expect: 100-continue",
            "Upgrade: websocket",
            " folded continuation",
        ])
        .prop_map(String::from),
        "[A-Za-z0-9-]{1,12}: [ -~]{0,30}",
        "[\\x00-\\x7f]{0,20}",
    ]
}

fn body() -> impl Strategy<Value = String> {
    let chunk = prop_oneof![
        ("[0-9a-fA-F]{1,3}", "[a-z]{0,20}").prop_map(|(size, data)| format!("{size}\r\n{data}\r\n")),
        "[0-9a-fA-F]{1,20}(;[a-z]{0,10}=[a-z]{0,10})?\r?\n[a-z]{0,8}\r?\n",
        Just("ffffffffffffffffff\r\n".to_string()),
        Just("zz\r\nhello\r\n".to_string()),
    ];
    prop_oneof![
        "[ -~]{0,40}",
        (
            prop::collection::vec(chunk, 0..4),
            prop::sample::select(vec!["0\r\n\r\n", "0\r\n", "", "0\r\nX-T: 1\r\n\r\n"])
        )
            .prop_map(|(chunks, end)| format!("{}{end}", chunks.concat())),
    ]
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    let structured = (
        method(),
        target(),
        prop::sample::select(vec!["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "http/1.1"]),
        prop::collection::vec(header(), 0..6),
        eol(),
        body(),
    )
        .prop_map(|(method, target, version, headers, eol, body)| {
            let mut text = format!("{method} {target} {version}{eol}");
            for h in headers {
                text.push_str(&h);
                text.push_str(eol);
            }
            text.push_str(eol);
            text.push_str(&body);
            text.into_bytes()
        });
    prop_oneof![4 => structured, 1 => prop::collection::vec(any::<u8>(), 0..300)]
}

/// Checks one exchange: a well-formed answer or none, and the proxy still serves.
fn check(addr: SocketAddr, bytes: &[u8]) -> Result<(), TestCaseError> {
    let sent = String::from_utf8_lossy(bytes);
    let answer = exchange(addr, bytes);
    let text = String::from_utf8_lossy(&answer);
    for line in text.split("\r\n").filter(|l| l.starts_with("HTTP/1.")) {
        let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        prop_assert!((100..600).contains(&status), "bad status line {line:?} for {sent:?}");
        prop_assert!(status != 500 && status != 502, "{line:?} for {sent:?}");
    }
    if !answer.is_empty() {
        prop_assert!(text.starts_with("HTTP/1."), "not HTTP: {text:?} for {sent:?}");
    }
    let plain = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    prop_assert!(plain.starts_with(b"HTTP/1.1 200"), "{:?} after {sent:?}", String::from_utf8_lossy(&plain));
    Ok(())
}

#[test]
fn a_fuzzed_request_gets_a_clear_answer_or_a_closed_connection() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let env = [("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "300ms"), ("AUDITGATE_LIMITS__BODY_TIMEOUT", "300ms")];
    let app = rt.block_on(spawn_app_with(&env, None));
    let cases = std::env::var("AUDITGATE_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(128);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let result = TestRunner::new(config).run(&request(), |bytes| check(app.addr, &bytes));
    rt.block_on(app.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}
