//! The head of a read the lean lane passes through, written toward the
//! upstream straight from the client's bytes: the headers `upstream_parts`
//! leaves in a header map (hop-by-hop ones and those `Connection` names
//! dropped, an untrusted peer's actor and forwarding headers dropped, the
//! forwarding headers and a request id added), without building the map.
//! The test below holds the two to the same result.

use http::header::{self, HeaderName, HeaderValue};

use super::headers::{HOP_BY_HOP, PROTECTED, VIA_VALUE, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};
use crate::identity::{FORWARDED, X_FORWARDED_FOR};
use crate::upstream::RequestHead;

/// A request head passed through as the client sent it, less and plus what
/// a proxy drops and adds. `fields` are the client's headers in order, one
/// `Host` among them.
#[derive(Debug)]
pub struct RawForward<'a, I> {
    pub method: &'a [u8],
    /// The upstream's base path, written before `target`.
    pub base_path: &'a str,
    /// An origin-form target (`/path?query`).
    pub target: &'a [u8],
    pub fields: I,
    pub peer: &'a HeaderValue,
    pub peer_trusted: bool,
    pub proto: &'static str,
    /// The actor header, dropped from an untrusted peer.
    pub actor: &'a HeaderName,
    /// The id to add when the client sent none (made by `new_id`).
    pub request_id: [u8; ulid::ULID_LEN],
}

/// A new request id.
pub fn new_id() -> [u8; ulid::ULID_LEN] {
    let mut buf = [0u8; ulid::ULID_LEN];
    ulid::Ulid::new().array_to_str(&mut buf);
    buf
}

fn is(name: &[u8], known: &HeaderName) -> bool {
    name.eq_ignore_ascii_case(known.as_str().as_bytes())
}

/// Whether a header map would give this value as text (`to_str`).
fn textual(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

impl<'a, I> RawForward<'a, I>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    /// Whether `Connection` (its first value, as the header map reads it)
    /// names this header for dropping.
    fn named(connection: Option<&[u8]>, name: &[u8]) -> bool {
        let Some(value) = connection.filter(|v| textual(v)) else { return false };
        if PROTECTED.iter().chain(&HOP_BY_HOP).any(|h| is(name, h)) {
            return false;
        }
        value.split(|&b| b == b',').map(<[u8]>::trim_ascii).any(|token| {
            !["keep-alive", "close", "upgrade", ""].iter().any(|k| token.eq_ignore_ascii_case(k.as_bytes()))
                && token.eq_ignore_ascii_case(name)
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.method);
        out.push(b' ');
        out.extend_from_slice(self.base_path.as_bytes());
        out.extend_from_slice(self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let connection = self.fields.clone().find(|(n, _)| is(n, &header::CONNECTION)).map(|(_, v)| v);
        let (mut proto_kept, mut host_kept, mut id_sent) = (false, false, false);
        let mut host = None;
        for (name, value) in self.fields.clone() {
            let dropped = HOP_BY_HOP.iter().any(|h| is(name, h))
                || Self::named(connection, name)
                || (!self.peer_trusted && is(name, self.actor))
                || is(name, &X_FORWARDED_FOR)
                || (!self.peer_trusted
                    && (is(name, &FORWARDED) || is(name, &X_FORWARDED_PROTO) || is(name, &X_FORWARDED_HOST)));
            if dropped {
                continue;
            }
            proto_kept |= is(name, &X_FORWARDED_PROTO);
            host_kept |= is(name, &X_FORWARDED_HOST);
            id_sent |= is(name, &X_REQUEST_ID);
            if is(name, &header::HOST) {
                host = Some(value);
            }
            line(out, name, &[value]);
        }
        let xff = X_FORWARDED_FOR;
        let chain = self
            .fields
            .clone()
            .filter(|(n, v)| self.peer_trusted && is(n, &X_FORWARDED_FOR) && textual(v))
            .map(|(_, v)| v);
        let mut first = true;
        out.extend_from_slice(xff.as_str().as_bytes());
        out.extend_from_slice(b": ");
        let start = out.len();
        for link in chain {
            if !first {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(link);
            first = false;
        }
        // An empty chain (none sent, or only empty values) is the peer alone.
        if out.len() > start {
            out.extend_from_slice(b", ");
        } else {
            out.truncate(start);
        }
        out.extend_from_slice(self.peer.as_bytes());
        out.extend_from_slice(b"\r\n");
        if !proto_kept {
            line(out, X_FORWARDED_PROTO.as_str().as_bytes(), &[self.proto.as_bytes()]);
        }
        if let Some(host) = host.filter(|_| !host_kept) {
            line(out, X_FORWARDED_HOST.as_str().as_bytes(), &[host]);
        }
        line(out, header::VIA.as_str().as_bytes(), &[VIA_VALUE.as_bytes()]);
        if !id_sent {
            line(out, X_REQUEST_ID.as_str().as_bytes(), &[&self.request_id]);
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[&[u8]]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for part in value {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

impl<'a, I> RequestHead for RawForward<'a, I>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    fn write_into(&self, out: &mut Vec<u8>) {
        self.write(out);
    }

    fn is_head(&self) -> bool {
        self.method == b"HEAD"
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::proxy::headers::{self, Hop};

    /// The header map's way: the headers as `Proxy::upstream_parts` leaves
    /// them, as (lower-case name, values in order), sorted by name.
    fn by_map(fields: &[(&str, &str)], trusted: bool, actor: &HeaderName) -> Vec<(String, Vec<String>)> {
        let mut map = HeaderMap::new();
        for (n, v) in fields {
            map.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_bytes(v.as_bytes()).unwrap());
        }
        headers::strip_hop_by_hop(&mut map, false);
        let host = map.get(header::HOST).cloned();
        let peer = HeaderValue::from_static("10.0.0.2");
        headers::forward(&mut map, Hop { peer: &peer, peer_trusted: trusted, proto: "http", host }, actor);
        let mut out: Vec<(String, Vec<String>)> = map
            .keys()
            .map(|k| {
                let values = map.get_all(k).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                (k.as_str().to_string(), values.collect())
            })
            .collect();
        out.sort();
        normalise_id(out)
    }

    /// The raw way, parsed back the same.
    fn by_bytes(fields: &[(&str, &str)], trusted: bool, actor: &HeaderName) -> (String, Vec<(String, Vec<String>)>) {
        let peer = HeaderValue::from_static("10.0.0.2");
        let raw = RawForward {
            method: b"GET",
            base_path: "/base",
            target: b"/items/1?x=2",
            fields: fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            peer: &peer,
            peer_trusted: trusted,
            proto: "http",
            actor,
            request_id: new_id(),
        };
        let mut out = Vec::new();
        raw.write_into(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n\r\n"), "{text:?}");
        let mut lines = text.trim_end().split("\r\n");
        let request_line = lines.next().unwrap().to_string();
        let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
        for l in lines {
            let (n, v) = l.split_once(": ").unwrap();
            let n = n.to_ascii_lowercase();
            match grouped.iter_mut().find(|(k, _)| *k == n) {
                Some((_, values)) => values.push(v.to_string()),
                None => grouped.push((n, vec![v.to_string()])),
            }
        }
        grouped.sort();
        (request_line, normalise_id(grouped))
    }

    /// A made request id is 26 characters of a ULID; one the client sent
    /// stays as it is.
    fn normalise_id(mut headers: Vec<(String, Vec<String>)>) -> Vec<(String, Vec<String>)> {
        for (name, values) in &mut headers {
            if name == "x-request-id" {
                for v in values.iter_mut().filter(|v| v.len() == 26 && ulid::Ulid::from_string(v).is_ok()) {
                    *v = "made".to_string();
                }
            }
        }
        headers
    }

    #[test]
    fn only_a_head_request_is_a_head() {
        let peer = HeaderValue::from_static("10.0.0.2");
        let actor = HeaderName::from_static("x-user");
        let raw = |method: &'static [u8]| RawForward {
            method,
            base_path: "",
            target: b"/",
            fields: std::iter::empty::<(&[u8], &[u8])>(),
            peer: &peer,
            peer_trusted: false,
            proto: "http",
            actor: &actor,
            request_id: new_id(),
        };
        assert!(raw(b"HEAD").is_head());
        assert!(!raw(b"GET").is_head() && !raw(b"OPTIONS").is_head());
    }

    #[test]
    fn the_raw_head_holds_what_the_header_map_would() {
        let actor = HeaderName::from_static("x-user");
        let cases: &[&[(&str, &str)]] = &[
            &[("Host", "app.example")],
            &[("host", "app.example"), ("Accept", "*/*"), ("accept", "text/html"), ("X-Kept", "1")],
            &[
                ("Host", "h"),
                ("Connection", "keep-alive, X-Secret, authorization, x-forwarded-for, Via, x-forwarded-proto"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Proxy-Authorization", "Basic x"),
                ("Proxy-Connection", "keep-alive"),
                ("Trailer", "x"),
                ("X-Secret", "1"),
                ("Authorization", "Bearer t"),
                ("Via", "1.0 other"),
                ("X-Forwarded-Proto", "https"),
            ],
            &[("Host", "h"), ("Connection", "close"), ("Connection", "x-second")],
            &[("Host", "h"), ("Connection", "x-gone"), ("X-Gone", "1"), ("X-Kept", "1"), ("Accept", "*/*")],
            &[("Host", "h"), ("Connection", "x-\u{e9}, x-kept"), ("X-Kept", "1")],
            &[
                ("Host", "h"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("X-Forwarded-For", ""),
                ("x-forwarded-for", "198.51.100.1, 198.51.100.2"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "outer.example"),
                ("Forwarded", "for=6.6.6.6"),
            ],
            &[("Host", "h"), ("X-Forwarded-For", ""), ("x-forwarded-for", "")],
            &[("Host", "h"), ("X-Forwarded-For", "caf\u{e9}"), ("X-Forwarded-For", "1.2.3.4")],
            &[("Host", "h"), ("X-User", "mallory"), ("x-user", "eve"), ("X-Request-Id", "abc")],
            &[("Host", "h"), ("Via", "1.0 a"), ("via", "1.0 b"), ("X-Request-Id", "a"), ("x-request-id", "b")],
            &[("Host", "h"), ("Connection", "host, cookie, content-length, x-request-id"), ("Cookie", "c=1")],
        ];
        for fields in cases {
            for trusted in [false, true] {
                let (request_line, raw) = by_bytes(fields, trusted, &actor);
                assert_eq!(request_line, "GET /base/items/1?x=2 HTTP/1.1");
                assert_eq!(raw, by_map(fields, trusted, &actor), "{fields:?}, trusted: {trusted}");
            }
        }
    }
}
