//! `[[sink]]` (docs/sinks.md): the written shape and its validation into
//! [`SinkConfig`], each problem naming the sink and its key.

use std::collections::HashSet;
use std::path::PathBuf;

use http::Uri;
use http::uri::Scheme;
use serde::Deserialize;

/// One `[[sink]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub name: String,
    pub kind: String,
    pub url: String,
    #[serde(default = "native")]
    pub format: String,
    pub secret: Option<String>,
    #[serde(default = "default_batch")]
    pub batch: u64,
    /// An extension: a CA file the sink's TLS peer is verified
    /// against instead of the system's roots (`tls.upstream_ca` otherwise).
    pub ca: Option<String>,
    /// An extension: headers a webhook sends with every batch
    /// (a collector's token: `Authorization = "Splunk …"`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

fn native() -> String {
    "native".into()
}

fn default_batch() -> u64 {
    100
}

/// The header a webhook batch's HMAC signature travels in.
pub const SIGNATURE: &str = "x-auditgate-signature";

/// The most entries a batch may hold.
pub const MAX_BATCH: u64 = 10_000;

/// How forwarded entries are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The entry as the query port serves it.
    Native,
    /// OCSF's API Activity class (6003).
    Ocsf,
}

/// Where a sink sends, and how.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// RFC 5424 messages over TCP, octet-counted (RFC 6587); `tls` for
    /// `tls://`, verified against `host`.
    Syslog { host: String, port: u16, tls: bool },
    /// NDJSON batches POSTed to `url` with `headers`, signed with `secret`
    /// when given.
    Webhook { url: Uri, secret: Option<String>, headers: http::HeaderMap },
}

/// Shown without the webhook's secret.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Syslog { host, port, tls } => {
                f.debug_struct("Syslog").field("host", host).field("port", port).field("tls", tls).finish()
            }
            Target::Webhook { url, secret, headers } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("secret", &secret.as_ref().map(|_| "<redacted>"))
                .field("headers", headers)
                .finish(),
        }
    }
}

/// A validated `[[sink]]`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub target: Target,
    pub format: Format,
    pub batch: usize,
    /// The CA its TLS peer is verified against (none: as an HTTPS upstream is).
    pub ca: Option<PathBuf>,
}

/// Validates every sink; problems name the sink (`sink[0]` when unnamed)
/// and the key.
pub fn validate(raw: &[RawSink]) -> Result<Vec<SinkConfig>, Vec<String>> {
    let mut problems = Vec::new();
    let mut names = HashSet::new();
    let mut sinks = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let at = if s.name.is_empty() { format!("sink[{i}]") } else { format!("sink `{}`", s.name) };
        let mut problem = |key: &str, reason: String| problems.push(format!("{at}: {key}: {reason}"));
        let named = !s.name.is_empty() && s.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !named {
            problem("name", "must be letters, digits, `-`, `_` or `.` (it names the sink in metrics)".into());
        } else if !names.insert(s.name.clone()) {
            problem("name", "is used by another sink".into());
        }
        let format = match s.format.as_str() {
            "native" => Some(Format::Native),
            "ocsf" => Some(Format::Ocsf),
            other => {
                problem("format", format!("`{other}` is not `native` or `ocsf`"));
                None
            }
        };
        if s.batch == 0 || s.batch > MAX_BATCH {
            problem("batch", format!("must be from 1 to {MAX_BATCH}"));
        }
        let target = match s.kind.as_str() {
            "syslog" => {
                if s.secret.is_some() {
                    problem("secret", "only a webhook signs what it sends".into());
                }
                if !s.headers.is_empty() {
                    problem("headers", "only a webhook sends headers".into());
                }
                syslog_target(&s.url).map_err(|reason| problem("url", reason)).ok()
            }
            "webhook" => {
                if s.secret.as_deref().is_some_and(|k| k.trim().is_empty()) {
                    problem("secret", "is empty".into());
                }
                let mut headers = http::HeaderMap::new();
                for (name, value) in &s.headers {
                    let own = ["host", "content-type", "content-length", "transfer-encoding", "connection"];
                    match (http::HeaderName::try_from(name.as_str()), http::HeaderValue::try_from(value.as_str())) {
                        (Ok(n), _) if own.contains(&n.as_str()) || n.as_str() == SIGNATURE => {
                            problem("headers", format!("`{name}` is set by auditgate"));
                        }
                        (Ok(n), Ok(mut v)) => {
                            v.set_sensitive(true);
                            headers.insert(n, v);
                        }
                        (Err(_), _) => problem("headers", format!("`{name}` is not a header name")),
                        (_, Err(_)) => problem("headers", format!("the value of `{name}` is not a header value")),
                    }
                }
                webhook_url(&s.url)
                    .map(|url| Target::Webhook { url, secret: s.secret.clone(), headers })
                    .map_err(|reason| problem("url", reason))
                    .ok()
            }
            other => {
                problem("kind", format!("`{other}` is not `syslog` or `webhook`"));
                None
            }
        };
        if let (Some(target), Some(format)) = (target, format) {
            let batch = s.batch.clamp(1, MAX_BATCH) as usize;
            sinks.push(SinkConfig { name: s.name.clone(), target, format, batch, ca: s.ca.clone().map(PathBuf::from) });
        }
    }
    if problems.is_empty() { Ok(sinks) } else { Err(problems) }
}

fn syslog_target(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("tcp://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("tls://") {
        (true, rest)
    } else {
        return Err(format!("`{url}` is not tcp://host:port or tls://host:port"));
    };
    let authority: http::uri::Authority = rest.parse().map_err(|_| format!("`{url}` is not tcp://host:port"))?;
    let port = authority.port_u16().ok_or_else(|| format!("`{url}` names no port"))?;
    if authority.as_str().contains('@') || rest.contains('/') {
        return Err(format!("`{url}` must be only a host and a port"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
    Ok(Target::Syslog { host, port, tls })
}

fn webhook_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    if uri.scheme() != Some(&Scheme::HTTPS) && uri.scheme() != Some(&Scheme::HTTP) {
        return Err(format!("`{url}` needs https:// (or http://)"));
    }
    let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
        return Err(format!("`{url}` has no host"));
    };
    if authority.as_str().contains('@') {
        return Err("credentials in the URL would be sent as its host: give them in `headers`".into());
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: &str, url: &str) -> RawSink {
        RawSink {
            name: "siem".into(),
            kind: kind.into(),
            url: url.into(),
            format: "native".into(),
            secret: None,
            batch: 100,
            ca: None,
            headers: Default::default(),
        }
    }

    #[test]
    fn syslog_and_webhook_urls_are_read() {
        let s = validate(&[raw("syslog", "tls://logs.example:6514")]).unwrap();
        assert_eq!(s[0].target, Target::Syslog { host: "logs.example".into(), port: 6514, tls: true });
        let s = validate(&[raw("syslog", "tcp://[::1]:514")]).unwrap();
        assert_eq!(s[0].target, Target::Syslog { host: "::1".into(), port: 514, tls: false });
        let mut hook = raw("webhook", "https://collector.example/ingest");
        hook.secret = Some("k".into());
        hook.format = "ocsf".into();
        hook.batch = 7;
        let s = validate(&[hook]).unwrap();
        assert_eq!(s[0].format, Format::Ocsf);
        assert_eq!(s[0].batch, 7);
        assert!(matches!(&s[0].target, Target::Webhook { url, secret: Some(k), .. }
            if url.path() == "/ingest" && k == "k"));
    }

    #[test]
    fn an_unnamed_format_and_batch_take_their_defaults_and_the_bound_is_inclusive() {
        let raw: RawSink = toml::from_str("name = \"s\"\nkind = \"syslog\"\nurl = \"tcp://h:1\"\n").unwrap();
        let s = validate(std::slice::from_ref(&raw)).unwrap();
        assert_eq!((s[0].format, s[0].batch), (Format::Native, 100));
        let most = RawSink { batch: MAX_BATCH, ..raw };
        assert_eq!(validate(&[most]).unwrap()[0].batch, MAX_BATCH as usize);
    }

    #[test]
    fn every_problem_names_the_sink_and_key() {
        let mut twice = raw("webhook", "https://a.example/");
        twice.name = "siem".into();
        let mut bad = raw("syslog", "udp://x:514");
        bad.name = "bad name".into();
        bad.format = "cef".into();
        bad.batch = 0;
        bad.secret = Some("s".into());
        let mut unnamed = raw("kafka", "https://a.example/");
        unnamed.name = String::new();
        let e = validate(&[raw("syslog", "tcp://h:514"), twice, bad, unnamed]).unwrap_err();
        assert_eq!(
            e,
            [
                "sink `siem`: name: is used by another sink",
                "sink `bad name`: name: must be letters, digits, `-`, `_` or `.` (it names the sink in metrics)",
                "sink `bad name`: format: `cef` is not `native` or `ocsf`",
                "sink `bad name`: batch: must be from 1 to 10000",
                "sink `bad name`: secret: only a webhook signs what it sends",
                "sink `bad name`: url: `udp://x:514` is not tcp://host:port or tls://host:port",
                "sink[3]: name: must be letters, digits, `-`, `_` or `.` (it names the sink in metrics)",
                "sink[3]: kind: `kafka` is not `syslog` or `webhook`",
            ]
        );
        for url in ["tcp://h", "tcp://u@h:1", "tcp://h:1/x"] {
            assert!(validate(&[raw("syslog", url)]).is_err(), "{url}");
        }
        for url in ["ftp://h/", "/ingest", "https:///x"] {
            assert!(validate(&[raw("webhook", url)]).is_err(), "{url}");
        }
        let mut empty = raw("webhook", "https://h/");
        empty.secret = Some(" ".into());
        assert_eq!(validate(&[empty]).unwrap_err(), ["sink `siem`: secret: is empty"]);
        let mut big = raw("webhook", "https://h/");
        big.batch = MAX_BATCH + 1;
        assert!(validate(&[big]).is_err());
        let e = validate(&[raw("webhook", "https://u:pw@h/")]).unwrap_err();
        assert_eq!(e, ["sink `siem`: url: credentials in the URL would be sent as its host: give them in `headers`"]);
    }

    #[test]
    fn a_webhooks_secret_and_header_values_stay_out_of_debug_output() {
        let mut hook = raw("webhook", "https://h/");
        hook.secret = Some("s3cret-key".into());
        hook.headers.insert("Authorization".into(), "Splunk t0ken".into());
        let shown = format!("{:?}", validate(&[hook]).unwrap());
        assert!(!shown.contains("s3cret-key") && !shown.contains("t0ken"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("https://h/"), "{shown}");
    }

    #[test]
    fn a_webhook_sends_its_headers_but_not_over_auditgates_own() {
        let mut hook = raw("webhook", "https://h/");
        hook.headers.insert("Authorization".into(), "Splunk t0ken".into());
        let s = validate(&[hook.clone()]).unwrap();
        let Target::Webhook { headers, .. } = &s[0].target else { panic!("a webhook") };
        assert_eq!(headers["authorization"], "Splunk t0ken");
        assert!(headers["authorization"].is_sensitive(), "kept out of debug output");
        for name in ["Host", "content-length", "X-Auditgate-Signature"] {
            let mut own = hook.clone();
            own.headers = [(name.to_string(), "x".to_string())].into();
            let e = validate(&[own]).unwrap_err();
            assert_eq!(e, [format!("sink `siem`: headers: `{name}` is set by auditgate")]);
        }
        let mut bad = hook.clone();
        bad.headers = [("bad name".to_string(), "x".to_string()), ("ok".to_string(), "a\nb".to_string())].into();
        assert_eq!(
            validate(&[bad]).unwrap_err(),
            [
                "sink `siem`: headers: `bad name` is not a header name",
                "sink `siem`: headers: the value of `ok` is not a header value"
            ]
        );
        let mut syslog = raw("syslog", "tcp://h:514");
        syslog.headers = hook.headers;
        assert_eq!(validate(&[syslog]).unwrap_err(), ["sink `siem`: headers: only a webhook sends headers"]);
    }
}
