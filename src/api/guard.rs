//! What a web page in the operator's browser may not do to the query port
//! (docs/query-api.md, "Browsers"): reach a tokenless port under a
//! foreign `Host` (DNS rebinding), act from a foreign `Origin`, or change
//! anything with a body a cross-site form or simple `fetch` can send.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;

use super::{ApiError, ApiState};

/// Every request: refuses a foreign `Host` on a port without tokens (421),
/// then a foreign `Origin` (403).
pub(super) async fn browsers(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    check_origin(req.uri(), req.headers(), state.tokens.is_empty(), state.scheme)?;
    Ok(next.run(req).await)
}

/// A request a route takes (an unknown route or method is answered as
/// such first): a state change whose body is not declared
/// `application/json` is refused (415).
pub(super) async fn json_changes(req: Request, next: Next) -> Result<Response, ApiError> {
    check_type(req.method(), req.headers())?;
    Ok(next.run(req).await)
}

/// Where a request comes from: its host and its origin.
fn check_origin(uri: &Uri, headers: &HeaderMap, tokenless: bool, scheme: &str) -> Result<(), ApiError> {
    // HTTP/2 names the host in `:authority`, HTTP/1.1 in `Host`.
    let host = uri.authority().map(|a| a.as_str()).or_else(|| headers.get(HOST).and_then(|v| v.to_str().ok()));
    if tokenless && !host.is_none_or(is_loopback_host) {
        return Err(ApiError::MisdirectedHost);
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let own = host.is_some_and(|host| origin.to_str().is_ok_and(|o| is_own_origin(o, scheme, host)));
        if !own {
            return Err(ApiError::ForeignOrigin);
        }
    }
    Ok(())
}

/// What a change's body is declared to be.
fn check_type(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let changes = matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if changes && !headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_json) {
        return Err(ApiError::NotJson);
    }
    Ok(())
}

/// A `Host` value (with or without a port) naming this machine's loopback:
/// `localhost`, a name under `.localhost` (RFC 6761: browsers resolve it
/// to loopback themselves), `127.0.0.0/8` or `::1`.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, port)) if port.strip_prefix(':').is_some_and(is_port) => inside,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// A decimal port.
fn is_port(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An `Origin` equal to this port's own (`scheme://host[:port]` as the
/// request's host names it; `null` is never own).
fn is_own_origin(origin: &str, scheme: &str, host: &str) -> bool {
    origin.split_once("://").is_some_and(|(s, rest)| s.eq_ignore_ascii_case(scheme) && rest.eq_ignore_ascii_case(host))
}

/// A `Content-Type` of `application/json`, parameters allowed.
fn is_json(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_names_and_addresses_of_this_machine() {
        for host in [
            "localhost",
            "LOCALHOST:9181",
            "localhost.",
            "console.localhost:80",
            "127.0.0.1",
            "127.9.9.9:9181",
            "[::1]",
            "[::1]:9181",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:9181",
            "localhost.evil.example",
            "evillocalhost",
            "10.0.0.1:9181",
            "0.0.0.0",
            "[::2]:9181",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:x",
            "[::1]:",
            "::1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn an_own_origin_has_this_ports_scheme_and_host() {
        assert!(is_own_origin("http://127.0.0.1:9181", "http", "127.0.0.1:9181"));
        assert!(is_own_origin("HTTP://LocalHost:9181", "http", "localhost:9181"));
        assert!(!is_own_origin("https://127.0.0.1:9181", "http", "127.0.0.1:9181"));
        assert!(!is_own_origin("http://127.0.0.1:9182", "http", "127.0.0.1:9181"));
        assert!(!is_own_origin("null", "http", "127.0.0.1:9181"));
        assert!(!is_own_origin("http://127.0.0.1:9181/", "http", "127.0.0.1:9181"));
    }

    #[test]
    fn json_is_application_json_with_any_parameters() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("multipart/form-data; boundary=x"));
        assert!(!is_json("application/jsonx"));
    }

    fn decide(method: Method, uri: &str, headers: &[(&str, &str)], tokenless: bool) -> Result<(), &'static str> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let uri = uri.parse().unwrap();
        check_origin(&uri, &map, tokenless, "http").and_then(|()| check_type(&method, &map)).map_err(|e| match e {
            ApiError::MisdirectedHost => "host",
            ApiError::ForeignOrigin => "origin",
            ApiError::NotJson => "json",
            _ => "other",
        })
    }

    #[test]
    fn each_rule_refuses_what_it_names_and_nothing_else() {
        let json = ("content-type", "application/json");
        let host = ("host", "127.0.0.1:9181");
        assert_eq!(decide(Method::GET, "/api/v1/audit-logs", &[host], true), Ok(()));
        assert_eq!(decide(Method::GET, "/", &[], true), Ok(()), "no host at all (HTTP/1.0): no browser");
        assert_eq!(decide(Method::GET, "/", &[("host", "evil.example:9181")], true), Err("host"));
        assert_eq!(decide(Method::GET, "/", &[("host", "evil.example:9181")], false), Ok(()), "tokens: any host");
        assert_eq!(decide(Method::GET, "http://evil.example/", &[host], true), Err("host"), "h2's :authority");
        assert_eq!(decide(Method::POST, "/", &[host, json], true), Ok(()));
        assert_eq!(decide(Method::POST, "/", &[host, json, ("origin", "http://127.0.0.1:9181")], true), Ok(()));
        for origin in ["https://evil.example", "null", "http://127.0.0.1:8080"] {
            assert_eq!(decide(Method::POST, "/", &[host, json, ("origin", origin)], true), Err("origin"), "{origin}");
            assert_eq!(decide(Method::GET, "/", &[host, ("origin", origin)], false), Err("origin"), "{origin}");
        }
        assert_eq!(decide(Method::POST, "/", &[("origin", "http://x")], false), Err("origin"), "no host: not own");
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(decide(method.clone(), "/", &[host], false), Err("json"), "{method} without a type");
            assert_eq!(decide(method.clone(), "/", &[host, ("content-type", "text/plain")], false), Err("json"));
            assert_eq!(decide(method, "/", &[host, json], false), Ok(()));
        }
        assert_eq!(decide(Method::GET, "/", &[host, ("content-type", "text/plain")], true), Ok(()), "reads: any");
    }
}
