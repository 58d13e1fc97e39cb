//! The configuration as written (docs/configuration.md): serde types with defaults, exact
//! key names, unknown keys refused. `validate` turns it into a `Config`.

use serde::{Deserialize, Deserializer};

/// Top-level keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub upstream: Option<String>,
    pub listen: String,
    pub query_listen: String,
    pub database: String,
    /// Absent: `rules/`, which may be missing (the built-in path rules
    /// apply); named, it must be a directory.
    pub rules: Option<String>,
    pub instance: Option<String>,
    #[serde(deserialize_with = "list")]
    pub trusted_proxies: Vec<String>,
    pub fail_mode: String,
    pub method_override: String,
    /// An extension: `reject` (default) refuses a change whose
    /// path holds an encoded `/` or `\`; `keep` forwards it (for apps that
    /// use `%2F` inside ids).
    pub encoded_slashes: String,
    pub retention_days: u32,
    pub config_refresh: String,
    pub log_format: String,
    /// An extension: runtime worker threads, 0 = one per core.
    pub worker_threads: u64,
    pub actor: RawActor,
    pub snapshot: RawSnapshot,
    pub limits: RawLimits,
    pub recorder: RawRecorder,
    pub query: RawQuery,
    pub tls: Option<RawTls>,
    /// `[[sink]]`: where committed entries are forwarded (docs/sinks.md).
    pub sink: Vec<super::sink::RawSink>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            upstream: None,
            listen: "0.0.0.0:8080".into(),
            query_listen: "127.0.0.1:9181".into(),
            database: "sqlite://auditgate.db".into(),
            rules: None,
            instance: None,
            trusted_proxies: Vec::new(),
            fail_mode: "open".into(),
            method_override: "honour".into(),
            encoded_slashes: "reject".into(),
            retention_days: 0,
            config_refresh: "2s".into(),
            log_format: "text".into(),
            worker_threads: 0,
            actor: RawActor::default(),
            snapshot: RawSnapshot::default(),
            limits: RawLimits::default(),
            recorder: RawRecorder::default(),
            query: RawQuery::default(),
            tls: None,
            sink: Vec::new(),
        }
    }
}

/// `[actor]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawActor {
    #[serde(deserialize_with = "list")]
    pub order: Vec<String>,
    pub header: String,
    pub jwt_claim: String,
    pub jwt_key: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwks_file: Option<String>,
    pub whoami_url: Option<String>,
    pub whoami_field: String,
}

impl Default for RawActor {
    fn default() -> Self {
        RawActor {
            order: ["header", "jwt", "basic", "whoami"].map(String::from).to_vec(),
            header: "X-Remote-User".into(),
            jwt_claim: "sub".into(),
            jwt_key: None,
            jwt_secret: None,
            jwks_file: None,
            whoami_url: None,
            whoami_field: "/username".into(),
        }
    }
}

/// `[snapshot]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSnapshot {
    #[serde(deserialize_with = "list")]
    pub forward_headers: Vec<String>,
    pub timeout: String,
    pub max_bytes: u64,
    #[serde(deserialize_with = "list")]
    pub redact: Vec<String>,
    pub skip_unchanged: bool,
    #[serde(deserialize_with = "list")]
    pub ignore_fields: Vec<String>,
    /// Form fields that change on every page (CSRF tokens): left out of a
    /// form's state and of a form post's fields.
    #[serde(deserialize_with = "list")]
    pub volatile_fields: Vec<String>,
}

impl Default for RawSnapshot {
    fn default() -> Self {
        RawSnapshot {
            forward_headers: vec!["authorization".into(), "cookie".into()],
            timeout: "2s".into(),
            max_bytes: 1 << 20,
            redact: [
                "password",
                "passwd",
                "secret",
                "token",
                "api_key",
                "access_token",
                "refresh_token",
                "authorization",
            ]
            .map(String::from)
            .to_vec(),
            skip_unchanged: false,
            ignore_fields: Vec::new(),
            volatile_fields: [
                "csrfmiddlewaretoken",
                "authenticity_token",
                "_token",
                "_csrf",
                "csrf_token",
                "__RequestVerificationToken",
                "__VIEWSTATE",
                "__EVENTVALIDATION",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_header_bytes: u64,
    pub max_body_bytes: u64,
    pub upstream_timeout: String,
    pub header_read_timeout: String,
    /// An extension: how long a kept-alive connection may wait
    /// for its next request.
    pub idle_timeout: String,
    /// An extension: a client's body is given this long, then
    /// must keep up `body_min_rate` bytes a second (0: no minimum).
    pub body_timeout: String,
    pub body_min_rate: u64,
    /// An extension: the longest wait between two reads of the
    /// upstream's answer body.
    pub upstream_read_timeout: String,
    pub shutdown_timeout: String,
    /// An extension: the cap on open client connections.
    pub max_connections: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_header_bytes: 65_536,
            max_body_bytes: 10 * 1024 * 1024,
            upstream_timeout: "30s".into(),
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            body_timeout: "10s".into(),
            body_min_rate: 500,
            upstream_read_timeout: "60s".into(),
            shutdown_timeout: "30s".into(),
            max_connections: 10_000,
        }
    }
}

/// `[recorder]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRecorder {
    pub queue: u64,
    pub batch: u64,
    pub flush_interval: String,
    pub spool: String,
    pub max_pending: u64,
    pub durability: String,
}

impl Default for RawRecorder {
    fn default() -> Self {
        RawRecorder {
            queue: 10_000,
            batch: 500,
            flush_interval: "50ms".into(),
            spool: "auditgate.spool".into(),
            max_pending: 10_000,
            durability: "async".into(),
        }
    }
}

/// `[query]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawQuery {
    pub tokens: Vec<RawToken>,
    /// Open event streams a token (or, without tokens, the port) may hold.
    pub max_streams: u64,
}

impl Default for RawQuery {
    fn default() -> Self {
        RawQuery { tokens: Vec::new(), max_streams: 16 }
    }
}

/// One `[query] tokens` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub token: String,
    pub role: String,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub upstream_ca: Option<String>,
}

/// A list, or a comma-separated string (how lists arrive from the environment).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<String>),
        One(String),
    }
    Ok(match OneOrMany::deserialize(d).map_err(|_| serde::de::Error::custom("expected a list of strings"))? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    })
}
