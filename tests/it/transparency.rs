//! The proxy is invisible: bodies byte-identical both ways, status and
//! end-to-end headers kept, hop-by-hop headers dropped, forwarding headers set.

use bytes::Bytes;
use http::{Method, Request, Version};
use http_body_util::Full;

use crate::helpers::*;

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn streams_an_8_mib_response_byte_for_byte() {
    let app = spawn_app().await;
    let len = 8 * 1024 * 1024;
    let res = get(&app.url(&format!("/big?bytes={len}"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.body().len(), len);
    assert!(res.body().as_ref() == pattern(len).as_slice(), "the body differs from the upstream's");
}

#[tokio::test]
async fn large_request_bodies_arrive_intact() {
    // /echo is ignored by a rule, so its body streams unbuffered and unlimited.
    let rules = "[[resource]]\npattern = \"/echo\"\nignore = true\n";
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__MAX_BODY_BYTES", "1048576")], Some(rules)).await;
    let body: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let req = Request::post(app.url("/echo")).body(Full::new(Bytes::from(body.clone()))).unwrap();
    let res = send(&client(), req).await;
    assert_eq!(res.status(), 200);
    assert!(res.body().as_ref() == body.as_slice(), "the echoed body differs");

    // An audited mutation's body is read whole (within the limit) and forwarded intact.
    let app = spawn_app().await;
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let req = Request::put(app.url("/echo")).body(Full::new(Bytes::from(body.clone()))).unwrap();
    let res = send(&client(), req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-echo"], "1");
    assert!(res.body().as_ref() == body.as_slice(), "the audited body differs");
}

#[tokio::test]
async fn status_and_end_to_end_headers_are_kept_hop_by_hop_dropped() {
    let app = spawn_app().await;
    for code in [201u16, 204, 404, 418, 503] {
        let res = get(&app.url(&format!("/status/{code}"))).await;
        assert_eq!(res.status().as_u16(), code);
        let h = res.headers();
        if code != 204 {
            assert_eq!(res.body().as_ref(), format!("status {}", res.status()).as_bytes());
        }
        assert_eq!(h["x-custom"], "kept");
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(h.get("x-upstream-private").is_none(), "a header named in Connection leaked");
        for hop in ["keep-alive", "proxy-connection", "trailer", "upgrade", "proxy-authenticate", "connection"] {
            assert!(h.get(hop).is_none(), "{hop} leaked to the client");
        }
    }
}

#[tokio::test]
async fn request_hop_by_hop_headers_are_dropped_and_forwarding_set() {
    let app = spawn_app().await;
    let req = Request::get(app.url("/inspect?x=1&y=%20"))
        .header("connection", "keep-alive, x-secret, authorization")
        .header("x-secret", "hide me")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-connection", "keep-alive")
        .header("trailer", "x-checksum")
        .header("upgrade", "h2c")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("authorization", "Bearer kept")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-remote-user", "forged-admin")
        .header("x-end-to-end", "kept")
        .body(Full::default())
        .unwrap();
    let seen = inspected(&send(&client(), req).await);
    assert_eq!(seen["uri"], "/inspect?x=1&y=%20");
    assert_eq!(seen["version"], "HTTP/1.1");
    for dropped in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-connection",
        "trailer",
        "upgrade",
        "connection",
        "proxy-authorization",
        "x-remote-user",
    ] {
        assert!(seen_header(&seen, dropped).is_empty(), "{dropped} reached the upstream");
    }
    assert_eq!(seen_header(&seen, "authorization"), ["Bearer kept"]);
    assert_eq!(seen_header(&seen, "x-end-to-end"), ["kept"]);
    // The peer is not trusted: its forwarding claims are replaced.
    assert_eq!(seen_header(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen_header(&seen, "x-forwarded-host"), [app.addr.to_string()]);
    assert_eq!(seen_header(&seen, "host"), [app.addr.to_string()]);
    assert_eq!(seen_header(&seen, "via"), ["1.1 auditgate"]);
    let id = seen_header(&seen, "x-request-id");
    assert_eq!(id.len(), 1);
    assert_eq!(id[0].len(), 26, "a ULID request id: {id:?}");

    // A client's own request id is kept.
    let req = Request::get(app.url("/inspect")).header("x-request-id", "abc-123").body(Full::default()).unwrap();
    assert_eq!(seen_header(&inspected(&send(&client(), req).await), "x-request-id"), ["abc-123"]);
}

#[tokio::test]
async fn c16_a_trusted_peer_extends_the_forwarding_chain() {
    let app = spawn_app_with(&[("AUDITGATE_TRUSTED_PROXIES", "127.0.0.1/32")], None).await;
    let req = Request::get(app.url("/inspect"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-remote-user", "carol")
        .body(Full::default())
        .unwrap();
    let seen = inspected(&send(&client(), req).await);
    assert_eq!(seen_header(&seen, "x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(seen_header(&seen, "x-forwarded-proto"), ["https"]);
    assert_eq!(seen_header(&seen, "x-remote-user"), ["carol"]);
}

#[tokio::test]
async fn a9_http2_prior_knowledge_is_served_and_forwarded_as_http1() {
    let app = spawn_app().await;
    let h2 = h2_client();
    for _ in 0..3 {
        let req = Request::get(app.url("/inspect")).version(Version::HTTP_2).body(Full::default()).unwrap();
        let res = send(&h2, req).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.version(), Version::HTTP_2);
        let seen = inspected(&res);
        assert_eq!(seen["version"], "HTTP/1.1");
        assert_eq!(seen_header(&seen, "host"), [app.addr.to_string()]);
    }
    // Concurrent streams on one connection share the upstream pool.
    let mut streams = Vec::new();
    for i in 0..32 {
        let (h2, url) = (h2.clone(), app.url(&format!("/inspect?stream={i}")));
        streams.push(tokio::spawn(async move {
            send(&h2, Request::get(url).version(Version::HTTP_2).body(Full::default()).unwrap()).await
        }));
    }
    for (i, s) in streams.into_iter().enumerate() {
        let res = s.await.unwrap();
        assert_eq!(inspected(&res)["uri"], format!("/inspect?stream={i}"));
    }
    let body = Bytes::from(pattern(300_000));
    let req = Request::post(app.url("/echo")).version(Version::HTTP_2).body(Full::new(body.clone())).unwrap();
    let res = send(&h2, req).await;
    assert_eq!(res.body(), &body);
}

#[tokio::test]
async fn c14_method_override_policies() {
    let override_req = |app: &TestApp| {
        Request::post(app.url("/inspect")).header("x-http-method-override", "DELETE").body(Full::default()).unwrap()
    };
    let app = spawn_app_with(&[("AUDITGATE_METHOD_OVERRIDE", "strip")], None).await;
    let seen = inspected(&send(&client(), override_req(&app)).await);
    assert_eq!(seen["method"], "POST");
    assert!(seen_header(&seen, "x-http-method-override").is_empty());

    // Not only on a POST: no override header reaches the upstream.
    let patch = Request::patch(app.url("/inspect")).header("x-http-method-override", "DELETE").body(Full::default());
    let seen = inspected(&send(&client(), patch.unwrap()).await);
    assert_eq!(seen["method"], "PATCH");
    assert!(seen_header(&seen, "x-http-method-override").is_empty());

    let app = spawn_app_with(&[("AUDITGATE_METHOD_OVERRIDE", "reject")], None).await;
    let res = send(&client(), override_req(&app)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_still_serving(&app).await;

    let app = spawn_app().await;
    let seen = inspected(&send(&client(), override_req(&app)).await);
    assert_eq!(seen_header(&seen, "x-http-method-override"), ["DELETE"]);
    let conflicting = Request::builder()
        .method(Method::POST)
        .uri(app.url("/inspect"))
        .header("x-http-method", "DELETE")
        .header("x-method-override", "PUT")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&client(), conflicting).await.status(), 400);
}

#[tokio::test]
async fn an_upstream_base_path_prefixes_every_request() {
    let upstream = spawn_upstream();
    // The upstream has no /inspect under /base, so the path it saw proves the prefix.
    let app = spawn_app_to(&format!("{}/base/", upstream.url()), &[], None).await;
    let res = get(&app.url("/inspect?q=1")).await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.body().as_ref(), b"not found: /base/inspect?q=1");
    drop(upstream);
}

#[tokio::test]
async fn a_client_connection_keeps_its_upstream_connection_and_survives_its_closing() {
    let app = spawn_app().await;
    // One HTTP/1.1 client connection (the test client pools it).
    let client = client();
    let peer_of = |res: &http::Response<Bytes>| inspected(res)["peer"].as_str().unwrap().to_string();
    let inspect = || Request::get(app.url("/inspect")).body(Full::default()).unwrap();
    let first = peer_of(&send(&client, inspect()).await);
    for _ in 0..3 {
        assert_eq!(peer_of(&send(&client, inspect()).await), first, "the upstream connection changed");
    }
    // The upstream closes that connection; the next request gets a new one and succeeds.
    let closed = send(&client, Request::get(app.url("/close")).body(Full::default()).unwrap()).await;
    assert_eq!(closed.status(), 200);
    assert_eq!(closed.body().as_ref(), first.as_bytes());
    let after = send(&client, inspect()).await;
    assert_eq!(after.status(), 200);
    assert_ne!(peer_of(&after), first);
}

#[tokio::test]
async fn a5_an_absolute_form_target_never_changes_the_upstream() {
    let app = spawn_app().await;
    let answer = raw(
        app.addr,
        b"GET http://other.example:9/inspect?a=1 HTTP/1.1\r\nHost: other.example:9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen: serde_json::Value = serde_json::from_str(&answer[answer.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(seen["uri"], "/inspect?a=1");
    assert_eq!(seen_header(&seen, "host"), ["other.example:9"]);
}

#[tokio::test]
async fn a8_expect_100_continue_is_honoured() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    stream.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.ends_with("hello"), "{rest}");
}

#[tokio::test]
async fn each_http1_client_connection_keeps_an_upstream_connection_of_its_own() {
    let app = spawn_app().await;
    // Two clients' requests interleaved: each client's go over one
    // upstream connection, and not the other's.
    let (a, b) = (client(), client());
    let peer = |res: &http::Response<Bytes>| inspected(res)["peer"].as_str().unwrap().to_string();
    let mut seen = (Vec::new(), Vec::new());
    for _ in 0..3 {
        seen.0.push(peer(&send(&a, Request::get(app.url("/inspect")).body(Full::default()).unwrap()).await));
        seen.1.push(peer(&send(&b, Request::get(app.url("/inspect")).body(Full::default()).unwrap()).await));
    }
    assert!(seen.0.iter().all(|p| *p == seen.0[0]), "{seen:?}");
    assert!(seen.1.iter().all(|p| *p == seen.1[0]), "{seen:?}");
    assert_ne!(seen.0[0], seen.1[0], "two clients never share an upstream connection");
}
