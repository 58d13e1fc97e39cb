//! Who made a request and from where (docs/trail.md): the actor from a trusted
//! header, a bearer JWT claim or Basic auth, and the client address behind
//! `trusted_proxies`. Pure: no I/O (JWT keys are loaded at start).

mod jwt;

pub use jwt::JwtVerifier;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::{AUTHORIZATION, COOKIE, HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// RFC 7239 `Forwarded`.
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Where an actor name came from (`actor_source` in entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorSource {
    Header,
    Jwt,
    Basic,
    Whoami,
    Login,
    Anonymous,
    /// A query-port bearer token (configuration changes).
    Token,
}

/// The actor of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub name: String,
    pub source: ActorSource,
    /// True only when something vouched for the name: a trusted proxy's
    /// header, a verified JWT signature, or the app's whoami answer.
    pub verified: bool,
}

impl Actor {
    pub fn anonymous() -> Actor {
        Actor { name: "anonymous".into(), source: ActorSource::Anonymous, verified: false }
    }
}

/// Address ranges whose `X-Forwarded-For` and actor header are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// How the actor is looked for.
#[derive(Debug, Clone)]
pub struct ActorRules {
    pub order: Vec<ActorSource>,
    pub header: HeaderName,
    pub jwt_claim: String,
    /// With a configured key, JWT signatures are verified.
    pub jwt: Option<std::sync::Arc<JwtVerifier>>,
    /// The app's who-am-I path (`actor.whoami_url`), asked by the proxy.
    pub whoami_url: Option<String>,
    /// JSON pointer of the user name in its answer (`actor.whoami_field`).
    pub whoami_field: String,
}

impl Default for ActorRules {
    fn default() -> Self {
        ActorRules {
            order: vec![ActorSource::Header, ActorSource::Jwt, ActorSource::Basic, ActorSource::Whoami],
            header: HeaderName::from_static("x-remote-user"),
            jwt_claim: "sub".into(),
            jwt: None,
            whoami_url: None,
            whoami_field: "/username".into(),
        }
    }
}

impl ActorRules {
    /// The first source in `order` that yields a name, else `anonymous`.
    /// `whoami` needs a network call: the proxy asks it first when
    /// `asks_whoami` says so, and this skips it.
    pub fn resolve(&self, headers: &HeaderMap, peer_trusted: bool) -> Actor {
        self.order.iter().find_map(|s| self.actor_from(*s, headers, peer_trusted)).unwrap_or_else(Actor::anonymous)
    }

    /// Whether the whoami URL comes in `order` before any source that
    /// names this request's actor (and the request has credentials to ask
    /// with).
    pub fn asks_whoami(&self, headers: &HeaderMap, peer_trusted: bool) -> bool {
        if self.whoami_url.is_none() || !(headers.contains_key(AUTHORIZATION) || headers.contains_key(COOKIE)) {
            return false;
        }
        for source in &self.order {
            if *source == ActorSource::Whoami {
                return true;
            }
            if self.actor_from(*source, headers, peer_trusted).is_some() {
                return false;
            }
        }
        false
    }

    fn actor_from(&self, source: ActorSource, headers: &HeaderMap, peer_trusted: bool) -> Option<Actor> {
        match source {
            ActorSource::Header if peer_trusted => {
                header_value(headers, &self.header).map(|name| Actor { name, source, verified: true })
            }
            // The claim names the actor either way; only a verified
            // signature makes it `actor_verified`.
            ActorSource::Jwt => bearer_claim(headers, &self.jwt_claim).map(|name| Actor {
                name,
                source,
                verified: self
                    .jwt
                    .as_ref()
                    .is_some_and(|v| authorization(headers, "bearer").is_some_and(|t| v.verify(t))),
            }),
            ActorSource::Basic => basic_user(headers).map(|name| Actor { name, source, verified: false }),
            _ => None,
        }
    }
}

fn header_value(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// A claim of a bearer JWT, read without verifying the signature.
pub fn bearer_claim(headers: &HeaderMap, claim: &str) -> Option<String> {
    let token = authorization(headers, "bearer")?;
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get(claim)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The user name of HTTP Basic credentials; the password is never kept.
pub fn basic_user(headers: &HeaderMap) -> Option<String> {
    let encoded = authorization(headers, "basic")?;
    let decoded = STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_string())
}

/// An address as `Display` writes it; IPv4 (the common case, twice per
/// entry) without going through the formatter.
pub fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut s = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            s.push(char::from(b'0' + octet / 10 % 10));
        }
        s.push(char::from(b'0' + octet % 10));
    }
    s
}

/// The resolved client address and the forwarding chain as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    pub client: IpAddr,
    pub peer: IpAddr,
    /// The `X-Forwarded-For` (or `Forwarded: for=`) entries, left to right.
    pub forwarded_for: Vec<String>,
}

/// The client IP: the TCP peer, or, when the peer is trusted, the rightmost
/// forwarded address that is not itself trusted. An entry that is not an
/// address stops the walk: nothing to its left can be believed.
pub fn client_addr(trusted: &TrustedProxies, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
    let peer = peer.to_canonical();
    let mut forwarded_for: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if forwarded_for.is_empty() {
        forwarded_for = forwarded_for_elements(headers);
    }
    let mut client = peer;
    if trusted.contains(peer) {
        for entry in forwarded_for.iter().rev() {
            let Some(ip) = parse_node(entry) else { break };
            client = ip;
            if !trusted.contains(ip) {
                break;
            }
        }
    }
    ClientAddr { client, peer, forwarded_for }
}

/// The `for=` values of RFC 7239 `Forwarded` headers.
fn forwarded_for_elements(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(&FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// An address from a forwarding entry: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]:80`. Anything else (`unknown`, obfuscated names, garbage) is `None`.
pub fn parse_node(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']')?.0.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    let (host, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests;
