//! Identity tests: actor sources and client-IP resolution.

use super::*;

#[test]
fn ip_text_writes_what_display_writes() {
    for ip in ["0.0.0.0", "9.10.99.100", "255.255.255.255", "203.0.113.9", "::1", "2001:db8::7"] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(ip_text(ip), ip.to_string());
    }
    for n in (0..=u32::MAX).step_by(99_991) {
        let ip = IpAddr::V4(n.into());
        assert_eq!(ip_text(ip), ip.to_string());
    }
}
use http::HeaderValue;
use proptest::prelude::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn trusted() -> TrustedProxies {
    TrustedProxies::new(vec![
        "127.0.0.1/32".parse().unwrap(),
        "10.0.0.0/8".parse().unwrap(),
        "fd00::/8".parse().unwrap(),
    ])
}

fn jwt(payload: &str) -> String {
    format!("Bearer eyJhbGciOiJIUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
}

fn client(peer: &str, xff: &[&str]) -> String {
    let pairs: Vec<(&str, &str)> = xff.iter().map(|v| ("x-forwarded-for", *v)).collect();
    client_addr(&trusted(), peer.parse().unwrap(), &headers(&pairs)).client.to_string()
}

#[test]
fn client_ip_table() {
    // Untrusted peer: its forwarding headers are ignored.
    assert_eq!(client("203.0.113.5", &["1.1.1.1"]), "203.0.113.5");
    // Trusted peer: rightmost untrusted address wins.
    assert_eq!(client("127.0.0.1", &["6.6.6.6, 203.0.113.9"]), "203.0.113.9");
    assert_eq!(client("127.0.0.1", &["6.6.6.6, 203.0.113.9, 10.1.2.3"]), "203.0.113.9");
    assert_eq!(client("127.0.0.1", &["6.6.6.6", "203.0.113.9, 10.1.2.3"]), "203.0.113.9");
    // All trusted: the leftmost.
    assert_eq!(client("127.0.0.1", &["10.0.0.1, 10.0.0.2"]), "10.0.0.1");
    // No header.
    assert_eq!(client("127.0.0.1", &[]), "127.0.0.1");
    // Garbage stops the walk at the last believable hop.
    assert_eq!(client("127.0.0.1", &["6.6.6.6, garbage, 10.0.0.9"]), "10.0.0.9");
    assert_eq!(client("127.0.0.1", &["unknown"]), "127.0.0.1");
    // IPv6, with and without port and brackets; mapped IPv4 peers.
    assert_eq!(client("fd00::1", &["2001:db8::7"]), "2001:db8::7");
    assert_eq!(client("::ffff:127.0.0.1", &["[2001:db8::8]:443"]), "2001:db8::8");
    assert_eq!(client("127.0.0.1", &["203.0.113.9:5555"]), "203.0.113.9");
    assert_eq!(client("2001:db8::1", &["1.2.3.4"]), "2001:db8::1");
}

#[test]
fn forwarded_header_when_no_xff() {
    let h = headers(&[("forwarded", "for=\"[2001:db8::9]:80\";proto=https, for=10.0.0.3")]);
    let addr = client_addr(&trusted(), "127.0.0.1".parse().unwrap(), &h);
    assert_eq!(addr.client.to_string(), "2001:db8::9");
    assert_eq!(addr.forwarded_for, vec!["[2001:db8::9]:80", "10.0.0.3"]);
}

#[test]
fn actor_sources_in_order() {
    let rules = ActorRules::default();
    let h = headers(&[("x-remote-user", "carol"), ("authorization", &jwt(r#"{"sub":"alice"}"#))]);
    assert_eq!(rules.resolve(&h, true), Actor { name: "carol".into(), source: ActorSource::Header, verified: true });
    // A header from an untrusted peer is ignored.
    assert_eq!(rules.resolve(&h, false), Actor { name: "alice".into(), source: ActorSource::Jwt, verified: false });
    let basic = headers(&[("authorization", &format!("Basic {}", STANDARD.encode("bob:pa:ss")))]);
    assert_eq!(rules.resolve(&basic, false).name, "bob");
    assert_eq!(rules.resolve(&HeaderMap::new(), true), Actor::anonymous());
}

#[test]
fn jwt_claims() {
    let h = |p: &str| headers(&[("authorization", &jwt(p))]);
    assert_eq!(bearer_claim(&h(r#"{"username":"dave","sub":"1"}"#), "username").as_deref(), Some("dave"));
    assert_eq!(bearer_claim(&h(r#"{"sub":42}"#), "sub").as_deref(), Some("42"));
    assert_eq!(bearer_claim(&h(r#"{"name":"x"}"#), "sub"), None);
    assert_eq!(bearer_claim(&h("not json"), "sub"), None);
    assert_eq!(bearer_claim(&headers(&[("authorization", "Bearer a.b")]), "sub"), None);
    assert_eq!(bearer_claim(&headers(&[("authorization", "Bearer !!.@@.##")]), "sub"), None);
}

#[test]
fn custom_order_and_claim() {
    let rules = ActorRules {
        order: vec![ActorSource::Basic, ActorSource::Jwt],
        header: HeaderName::from_static("x-user"),
        jwt_claim: "username".into(),
        jwt: None,
        whoami_url: None,
        whoami_field: "/username".into(),
    };
    let h = headers(&[("authorization", &jwt(r#"{"username":"erin"}"#))]);
    assert_eq!(rules.resolve(&h, true).name, "erin");
}

/// A forwarded hop as written, with the address it names (`None`: garbage).
fn hop() -> impl Strategy<Value = (String, Option<IpAddr>)> {
    let addr = |text: String| {
        let ip = text.trim_start_matches('[').split(']').next().unwrap().parse().ok();
        (text, ip)
    };
    prop_oneof![
        (any::<u8>(), any::<u8>()).prop_map(move |(a, b)| addr(format!("203.0.{a}.{b}"))),
        (any::<u8>(), any::<u8>()).prop_map(move |(a, b)| addr(format!("10.{a}.{b}.1"))),
        any::<u16>().prop_map(move |n| addr(format!("fd00::{n:x}"))),
        any::<u16>().prop_map(move |n| addr(format!("[2001:db8::{n:x}]"))),
        prop::sample::select(vec!["unknown", "_hidden", "1.2.3", "not an ip", "[::1", "10.0.0.256", "203.0.113.9:x"])
            .prop_map(|g| (g.to_string(), None)),
    ]
}

proptest! {
    #[test]
    fn untrusted_peers_are_never_overridden(xff in "[0-9a-f:., \\[\\]]{0,60}", a in any::<u8>(), b in any::<u8>()) {
        let peer: IpAddr = format!("198.51.{a}.{b}").parse().unwrap();
        let h = headers(&[("x-forwarded-for", &xff)]);
        prop_assert_eq!(client_addr(&trusted(), peer, &h).client, peer);
    }

    #[test]
    fn trusted_peers_walk_hops_of_every_kind_from_the_right_and_stop_at_garbage(
        hops in prop::collection::vec(hop(), 0..7),
    ) {
        let list: Vec<&str> = hops.iter().map(|(text, _)| text.as_str()).collect();
        let h = headers(&[("x-forwarded-for", &list.join(", "))]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        // The rightmost hop not itself trusted, unless garbage comes first.
        let mut expected = peer;
        for (_, ip) in hops.iter().rev() {
            let Some(ip) = ip else { break };
            expected = *ip;
            if !trusted().contains(*ip) {
                break;
            }
        }
        let got = client_addr(&trusted(), peer, &h).client;
        prop_assert_eq!(got, expected);
    }
}
