//! Header hygiene of a transparent intermediary: hop-by-hop headers dropped
//! both ways (RFC 9110 §7.6.1), forwarding headers set on purpose.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::identity::{FORWARDED, X_FORWARDED_FOR};

pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
pub(super) const VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 auditgate");

/// Headers that belong to one connection and are never forwarded.
pub(super) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Headers a client cannot make the proxy drop by naming them in
/// `Connection`: the proxy relies on them or the upstream needs them.
pub(super) const PROTECTED: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::HOST,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    X_REQUEST_ID,
    X_FORWARDED_FOR,
];

/// Why a request head is refused before anything is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the head breaks RFC 9112 (the reason names how).
    Malformed(&'static str),
    /// 405: a method a reverse proxy does not serve (`CONNECT`).
    Method,
    /// 501: a transfer coding other than `chunked`.
    Coding,
}

/// Checks a request head against RFC 9112 §3.2 (one `Host`, required on
/// HTTP/1.1), §6.1 (only `chunked`, once, last) and §6.3, and rewrites
/// `Content-Length` in canonical form (one value, no leading zeros).
/// Runs before the hop-by-hop headers are stripped.
pub fn check_framing(method: &http::Method, version: http::Version, headers: &mut HeaderMap) -> Result<(), Refusal> {
    if method == http::Method::CONNECT {
        return Err(Refusal::Method);
    }
    // One pass over the head (most requests carry no Transfer-Encoding and
    // a plain Content-Length, if any).
    let (mut hosts, mut coded, mut lengths, mut odd_length) = (0u32, false, 0u32, false);
    for (name, value) in headers.iter() {
        if name == header::HOST {
            hosts += 1;
        } else if name == header::TRANSFER_ENCODING {
            coded = true;
        } else if name == header::CONTENT_LENGTH {
            lengths += 1;
            odd_length |= value.len() > 1 && value.as_bytes()[0] == b'0';
        }
    }
    match hosts {
        0 if version == http::Version::HTTP_11 => return Err(Refusal::Malformed("no Host header")),
        0 | 1 => {}
        _ => return Err(Refusal::Malformed("more than one Host header")),
    }
    if coded {
        let mut chunked = 0;
        for value in headers.get_all(header::TRANSFER_ENCODING) {
            for coding in value.to_str().map_err(|_| Refusal::Malformed("Transfer-Encoding is not text"))?.split(',') {
                match coding.trim() {
                    c if c.eq_ignore_ascii_case("chunked") => chunked += 1,
                    "" => {}
                    _ => return Err(Refusal::Coding),
                }
            }
        }
        if chunked > 1 {
            return Err(Refusal::Malformed("chunked applied more than once"));
        }
    }
    if lengths > 1 || odd_length {
        // Several values (hyper lets equal ones through) or leading zeros.
        if let Some(n) = crate::upstream::content_length(headers).map_err(Refusal::Malformed)? {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    Ok(())
}

/// Removes hop-by-hop headers and the ones `Connection` names. With
/// `keep_upgrade`, `Upgrade` survives and `Connection: upgrade` is set, for a
/// protocol switch that the proxy tunnels.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One scan of a small map finds which are there (most messages carry
    // none, or only `Connection: keep-alive`); only those are removed.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if let Some(conn) = headers.get(header::CONNECTION) {
        // Only when the client named extra headers: the common
        // `keep-alive`/`close`/`upgrade` values name nothing else to drop.
        let named: Vec<HeaderName> = conn
            .to_str()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !["keep-alive", "close", "upgrade", ""].iter().any(|known| t.eq_ignore_ascii_case(known)))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| !PROTECTED.contains(n) && !HOP_BY_HOP.contains(n))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    let upgrade = if keep_upgrade { headers.remove(header::UPGRADE) } else { None };
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when an HTTP/1.1 request asks to switch protocols (`Connection:
/// upgrade` plus `Upgrade`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// What the proxy knows about the hop it received a request on.
pub struct Hop<'a> {
    pub peer: &'a HeaderValue,
    pub peer_trusted: bool,
    pub proto: &'static str,
    /// The host the client addressed (`Host` or the HTTP/2 authority).
    pub host: Option<HeaderValue>,
}

/// What a request's headers become toward the upstream once its hop-by-hop
/// headers are gone: an untrusted peer's actor header dropped, the
/// forwarding headers set, and a request id.
pub fn forward(headers: &mut HeaderMap, hop: Hop<'_>, actor: &HeaderName) {
    if !hop.peer_trusted {
        headers.remove(actor);
    }
    set_forwarding(headers, hop);
    set_request_id(headers);
}

/// Sets `X-Request-Id` to a new ULID unless the client sent one; allocates
/// only when it makes one.
pub fn set_request_id(headers: &mut HeaderMap) {
    if !headers.contains_key(&X_REQUEST_ID) {
        let mut buf = [0u8; ulid::ULID_LEN];
        let id = ulid::Ulid::new().array_to_str(&mut buf);
        headers.insert(X_REQUEST_ID, HeaderValue::from_str(id).expect("a ULID is a header value"));
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `Via` toward the upstream. A
/// trusted peer's forwarding headers are extended; an untrusted peer's are
/// replaced, so the upstream never sees a forged chain.
pub fn set_forwarding(headers: &mut HeaderMap, hop: Hop<'_>) {
    if hop.peer_trusted {
        let chain =
            headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ");
        let value = if chain.is_empty() { hop.peer.clone() } else { joined(&chain, hop.peer) };
        headers.insert(X_FORWARDED_FOR, value);
    } else {
        headers.insert(X_FORWARDED_FOR, hop.peer.clone());
        // Rarely sent by an untrusted peer: looked for once, removed if there.
        if headers.keys().any(|n| n == FORWARDED || n == X_FORWARDED_PROTO || n == X_FORWARDED_HOST) {
            headers.remove(FORWARDED);
            headers.remove(&X_FORWARDED_PROTO);
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    }
    if let Some(host) = hop.host
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
    headers.append(header::VIA, VIA_VALUE);
}

fn joined(chain: &str, peer: &HeaderValue) -> HeaderValue {
    let mut bytes = Vec::with_capacity(chain.len() + 2 + peer.len());
    bytes.extend_from_slice(chain.as_bytes());
    bytes.extend_from_slice(b", ");
    bytes.extend_from_slice(peer.as_bytes());
    HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| peer.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(method: &str, version: http::Version, pairs: &[(&str, &str)]) -> (Result<(), Refusal>, HeaderMap) {
        let mut h = map(pairs);
        (check_framing(&method.parse().unwrap(), version, &mut h), h)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (v10, v11, v2) = (http::Version::HTTP_10, http::Version::HTTP_11, http::Version::HTTP_2);
        let host = ("host", "x");
        assert_eq!(framing("GET", v11, &[host]).0, Ok(()));
        assert_eq!(framing("GET", v11, &[]).0, Err(Refusal::Malformed("no Host header")));
        assert_eq!(framing("GET", v10, &[]).0, Ok(()));
        assert_eq!(framing("GET", v2, &[]).0, Ok(()));
        assert_eq!(framing("GET", v10, &[host, host]).0, Err(Refusal::Malformed("more than one Host header")));
        assert_eq!(framing("CONNECT", v11, &[host]).0, Err(Refusal::Method));
        for te in ["chunked", "Chunked", " chunked ,"] {
            assert_eq!(framing("POST", v11, &[host, ("transfer-encoding", te)]).0, Ok(()), "{te}");
        }
        for te in ["gzip, chunked", "identity", "chunked, x"] {
            assert_eq!(framing("POST", v11, &[host, ("transfer-encoding", te)]).0, Err(Refusal::Coding), "{te}");
        }
        let twice = [host, ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")];
        assert_eq!(framing("POST", v11, &twice).0, Err(Refusal::Malformed("chunked applied more than once")));
        let cl = |values: &[&str]| {
            let mut pairs = vec![host];
            pairs.extend(values.iter().map(|v| ("content-length", *v)));
            let (r, h) = framing("POST", v11, &pairs);
            r.map(|()| {
                h.get_all(header::CONTENT_LENGTH).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>()
            })
        };
        assert_eq!(cl(&["0"]), Ok(vec!["0".to_string()]));
        assert_eq!(cl(&["17"]), Ok(vec!["17".to_string()]));
        assert_eq!(cl(&["007"]), Ok(vec!["7".to_string()]));
        assert_eq!(cl(&["00"]), Ok(vec!["0".to_string()]));
        assert_eq!(cl(&["5", "5"]), Ok(vec!["5".to_string()]));
        assert_eq!(cl(&["5", "6"]), Err(Refusal::Malformed("conflicting Content-Length values")));
        assert_eq!(cl(&["5", "+5"]), Err(Refusal::Malformed("invalid Content-Length")));
        assert_eq!(cl(&["5", ""]), Err(Refusal::Malformed("invalid Content-Length")));
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret, authorization, x-forwarded-for"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-secret", "1"),
            ("authorization", "Bearer t"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["authorization", "x-forwarded-for", "x-kept"]);
    }

    #[test]
    fn keeps_upgrade_when_tunnelling() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("keep-alive", "1")]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert!(h.get("keep-alive").is_none());
    }

    #[test]
    fn forwarding_headers() {
        let peer = HeaderValue::from_static("10.0.0.2");
        let mut trusted = map(&[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https")]);
        set_forwarding(
            &mut trusted,
            Hop { peer: &peer, peer_trusted: true, proto: "http", host: Some(HeaderValue::from_static("app.example")) },
        );
        assert_eq!(trusted.get("x-forwarded-for").unwrap(), "203.0.113.9, 10.0.0.2");
        assert_eq!(trusted.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(trusted.get("x-forwarded-host").unwrap(), "app.example");
        assert_eq!(trusted.get("via").unwrap(), "1.1 auditgate");

        let mut forged =
            map(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"), ("forwarded", "for=6.6.6.6")]);
        set_forwarding(&mut forged, Hop { peer: &peer, peer_trusted: false, proto: "http", host: None });
        assert_eq!(forged.get("x-forwarded-for").unwrap(), "10.0.0.2");
        assert_eq!(forged.get("x-forwarded-proto").unwrap(), "http");
        assert!(forged.get("forwarded").is_none());
        // Each forged one alone is found too.
        for (name, forged_value) in [("x-forwarded-proto", "https"), ("x-forwarded-host", "evil.example")] {
            let mut alone = map(&[(name, forged_value)]);
            set_forwarding(&mut alone, Hop { peer: &peer, peer_trusted: false, proto: "http", host: None });
            assert_ne!(alone.get(name).map(|v| v.to_str().unwrap()), Some(forged_value), "{name}");
        }
    }

    #[test]
    fn each_hop_by_hop_header_is_dropped_when_it_is_the_only_one() {
        for name in &HOP_BY_HOP {
            let mut alone = map(&[(name.as_str(), "x"), ("x-kept", "1")]);
            strip_hop_by_hop(&mut alone, false);
            assert!(!alone.contains_key(name), "{name}");
            assert!(alone.contains_key("x-kept"));
        }
    }
}
