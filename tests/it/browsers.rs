//! A web page in the operator's browser against the query port (issue 32,
//! item 1; docs/security.md G29): cross-site `fetch` and form posts, a foreign
//! `Origin`, DNS rebinding through a foreign `Host`. Nothing changes,
//! nothing is read; raw requests and real Chromium both.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::audit::wait_entries;
use crate::helpers::*;
use crate::webdriver::Browser;

/// A query-port request with exactly these headers; status and JSON body.
async fn raw_query(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(app.query(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = send(&client(), req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await;
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

/// A trail with one audited change, so an erasure would have something to erase.
async fn app_with_an_entry() -> TestApp {
    let app = spawn_app().await;
    let (status, _) = as_user(&app, "alice", Method::POST, "/api/items/", Some(&json!({"name": "a"}))).await;
    assert_eq!(status, 201);
    wait_entries(&app.store, 1).await;
    app
}

/// What the page tried must have changed nothing: no configuration, no
/// erasure, the one entry whole, and a PATCH still recorded.
async fn assert_nothing_changed(app: &TestApp) {
    let (_, configs) = raw_query(app, Method::GET, "/api/v1/audit-configurations", &[], "").await;
    assert_eq!(configs["items"], json!([]), "a configuration was made from another origin");
    let (_, logs) = raw_query(app, Method::GET, "/api/v1/audit-logs", &[], "").await;
    let items = logs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{logs}");
    assert_eq!(items[0]["actor"], "alice", "the entry's personal content is whole: {}", items[0]);
    assert_eq!(items[0].get("erased"), None);
    let (status, _) = as_user(app, "bob", Method::PATCH, "/api/items/1/", Some(&json!({"name": "b"}))).await;
    assert_eq!(status, 200);
    let entries = wait_entries(&app.store, 2).await;
    assert_eq!(entries[1].actor, "bob", "a change is still recorded");
}

#[tokio::test]
async fn cross_site_requests_to_the_tokenless_query_port_change_nothing() {
    let app = app_with_an_entry().await;
    let own = format!("{}", app.query_addr);
    let config = json!({"name": "x", "configuration_type": "exclude"}).to_string();
    let erase = json!({"client_ip": "0.0.0.0/0"}).to_string();
    let evil = ("origin", "https://evil.example");
    for path in ["/api/v1/audit-configurations", "/api/v1/erasures"] {
        let body = if path.ends_with("erasures") { &erase } else { &config };
        // The probe's request: a simple cross-site POST.
        let (status, answer) = raw_query(&app, Method::POST, path, &[("content-type", "text/plain"), evil], body).await;
        assert_eq!((status, answer["field"].as_str()), (403, Some("origin")), "{path}: {answer}");
        // Each refusal alone: a body not declared JSON from no origin at all,
        // a JSON one from a foreign origin.
        for kind in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            let (status, answer) = raw_query(&app, Method::POST, path, &[("content-type", kind)], body).await;
            assert_eq!((status, answer["field"].as_str()), (415, Some("content-type")), "{path} {kind}: {answer}");
        }
        let (status, _) = raw_query(&app, Method::POST, path, &[], body).await;
        assert_eq!(status, 415, "{path} with no type");
        for origin in ["https://evil.example", "null", &format!("http://127.0.0.1:{}", app.addr.port())] {
            let headers = [("content-type", "application/json"), ("origin", origin)];
            let (status, answer) = raw_query(&app, Method::POST, path, &headers, body).await;
            assert_eq!((status, answer["field"].as_str()), (403, Some("origin")), "{path} from {origin}");
        }
    }
    // Reads and writes under a foreign Host (DNS rebinding) are refused.
    for (method, path) in [
        (Method::GET, "/api/v1/audit-logs"),
        (Method::GET, "/api/v1/audit-logs/export"),
        (Method::GET, "/"),
        (Method::POST, "/api/v1/audit-configurations"),
    ] {
        let headers = [("host", "evil.example:9181"), ("content-type", "application/json")];
        let (status, answer) = raw_query(&app, method.clone(), path, &headers, &config).await;
        assert_eq!((status, answer["field"].as_str()), (421, Some("host")), "{method} {path}: {answer}");
    }
    assert_nothing_changed(&app).await;
    // The port's own origin, loopback names and a DELETE declared JSON pass.
    let own_origin = format!("http://{own}");
    for host in [own.as_str(), "localhost:1", "[::1]:9181"] {
        let (status, _) = raw_query(&app, Method::GET, "/api/v1/audit-logs", &[("host", host)], "").await;
        assert_eq!(status, 200, "{host}");
    }
    let headers = [("content-type", "application/json"), ("origin", own_origin.as_str())];
    let (status, made) = raw_query(&app, Method::POST, "/api/v1/audit-configurations", &headers, &config).await;
    assert_eq!(status, 201, "{made}");
    let one = format!("/api/v1/audit-configurations/{}", made["id"]);
    assert_eq!(raw_query(&app, Method::DELETE, &one, &[], "").await.0, 415, "a DELETE not declared JSON");
    assert_eq!(raw_query(&app, Method::DELETE, &one, &[("content-type", "application/json")], "").await.0, 204);
    let (status, answer) = raw_query(&app, Method::PATCH, &one, &[("content-type", "text/plain")], "{}").await;
    assert_eq!((status, answer["field"].as_str()), (415, Some("content-type")), "{answer}");
    // A method no route takes is answered as such, whatever its type.
    assert_eq!(raw_query(&app, Method::PUT, "/api/v1/verify", &[("content-type", "text/plain")], "").await.0, 405);
}

#[tokio::test]
async fn with_tokens_any_host_may_name_the_port_but_a_foreign_origin_is_still_refused() {
    let token = "0123456789abcdef-ops";
    let tokens = format!("[{{name = \"ops\", token = \"{token}\", role = \"admin\"}}]");
    let app = spawn_app_with(&[("AUDITGATE_QUERY__TOKENS", &tokens)], None).await;
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    let (status, _) = raw_query(&app, Method::GET, "/api/v1/audit-logs", &[auth, ("host", "audit.example")], "").await;
    assert_eq!(status, 200, "behind a name, with a token");
    let headers = [auth, ("content-type", "application/json"), ("origin", "https://evil.example")];
    let (status, _) = raw_query(&app, Method::POST, "/api/v1/audit-configurations", &headers, r#"{"name":"x"}"#).await;
    assert_eq!(status, 403);
    let headers = [auth, ("content-type", "text/plain")];
    let (status, _) = raw_query(&app, Method::POST, "/api/v1/audit-configurations", &headers, r#"{"name":"x"}"#).await;
    assert_eq!(status, 415);
}

/// Serves `page` as HTML to every request on 127.0.0.1 (another origin
/// than the query port: another port).
async fn serve_page(page: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

/// Waits until the page's `window.done` holds `n` results; answers them.
async fn results(browser: &Browser, n: usize) -> Value {
    let deadline = tokio::time::Instant::now() + crate::webdriver::WAIT;
    loop {
        let done = browser.script("return window.done || []", json!([])).await;
        if done.as_array().is_some_and(|d| d.len() >= n) {
            return done;
        }
        assert!(tokio::time::Instant::now() < deadline, "the page finished {done} of {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_page_of_another_origin_in_chromium_cannot_change_the_trail() {
    let app = app_with_an_entry().await;
    let port = app.query_addr.port();
    // A text/plain form post whose body is JSON (`name=value` with the `=`
    // inside a string), a no-cors fetch, and a fetch that asks for a
    // preflight: the three ways a page sends a cross-site change.
    let page = format!(
        r#"<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="post" enctype="text/plain" action="http://127.0.0.1:{port}/api/v1/erasures" target="sink">
<input name='{{"client_ip":"0.0.0.0/0","reason":"' value='x"}}'>
</form>
<script>
window.done = [];
const target = 'http://127.0.0.1:{port}/api/v1/audit-configurations';
const body = JSON.stringify({{name: 'x', configuration_type: 'exclude'}});
fetch(target, {{method: 'POST', mode: 'no-cors', headers: {{'Content-Type': 'text/plain'}}, body}})
  .then(() => window.done.push('no-cors sent'), e => window.done.push('no-cors failed ' + e));
fetch(target, {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body}})
  .then(r => window.done.push('cors answered ' + r.status), e => window.done.push('cors refused'));
document.querySelector('iframe').addEventListener('load', () => window.done.push('form posted'));
document.getElementById('f').submit();
</script></body></html>"#
    );
    let evil = serve_page(page).await;
    let browser = Browser::start(1024, 768).await;
    browser.goto(&format!("http://127.0.0.1:{}/", evil.port())).await;
    let done = results(&browser, 3).await;
    let done: Vec<&str> = done.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(done.contains(&"no-cors sent") && done.contains(&"form posted"), "{done:?}");
    assert!(done.contains(&"cors refused"), "a JSON fetch from another origin is never let through: {done:?}");
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn dns_rebinding_in_chromium_reads_nothing_from_the_tokenless_port() {
    let app = app_with_an_entry().await;
    let port = app.query_addr.port();
    // evil.example resolves to this machine, as a rebinding DNS server
    // would make it do after the page loaded.
    let browser = Browser::start_with(1024, 768, &["--host-resolver-rules=MAP evil.example 127.0.0.1"]).await;
    browser.goto(&format!("http://evil.example:{port}/api/v1/audit-logs")).await;
    let text = browser.script("return document.body.innerText", json!([])).await;
    let answer: Value = serde_json::from_str(text.as_str().unwrap()).unwrap_or(Value::Null);
    assert_eq!(answer["field"], "host", "{text}");
    assert!(!text.as_str().unwrap().contains("alice"), "the trail was read: {text}");
    // The console's own page too.
    browser.goto(&format!("http://evil.example:{port}/")).await;
    let text = browser.script("return document.body.innerText", json!([])).await;
    assert!(text.as_str().unwrap().contains("loopback host name"), "{text}");
    // The same browser on the port's own name is served.
    browser.goto(&format!("http://127.0.0.1:{port}/api/v1/audit-logs")).await;
    let text = browser.script("return document.body.innerText", json!([])).await;
    assert!(text.as_str().unwrap().contains("alice"), "{text}");
}
