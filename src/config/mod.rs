//! Configuration (docs/configuration.md): raw sources merged (file < environment < flags),
//! then validated into `Config` with every problem collected at once.

mod bounds;
mod duration;
mod raw;
pub mod sink;
mod sources;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use http::uri::{Authority, Scheme, Uri};
use ipnet::IpNet;

pub use duration::parse_duration;
pub use raw::RawConfig;
pub use sources::{Overrides, load};

use crate::identity::{ActorRules, ActorSource, TrustedProxies};
use crate::toml_file::RulesError;

/// Configuration that cannot be used; `main` exits 64 on it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    File(RulesError),
    #[error("{source_name}: {reason}")]
    Source { source_name: String, reason: String },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Where the proxy sends requests.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// A path prefix the upstream is mounted under (`""` for none).
    pub base_path: String,
}

/// `[tls]`: the listeners' certificate pair (both speak HTTPS when it is
/// given) and the CA an HTTPS upstream is verified against.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    pub pair: Option<crate::tls::PairFiles>,
    pub upstream_ca: Option<PathBuf>,
}

/// What a mutation does when its entry cannot be recorded (docs/trail.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Open,
    Closed,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Bounds on requests and phases (`[limits]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub upstream_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub body_min_rate: u64,
    pub upstream_read_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_connections: usize,
}

/// Snapshot settings (`[snapshot]`); used by the audited path.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    pub forward_headers: Vec<HeaderName>,
    pub timeout: Duration,
    pub max_bytes: u64,
    pub redact: Vec<String>,
    pub skip_unchanged: bool,
    pub ignore_fields: Vec<String>,
    /// `volatile_fields`: form fields no state or request holds.
    pub volatile_fields: Vec<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub upstream: Option<Upstream>,
    pub listen: SocketAddr,
    pub query_listen: SocketAddr,
    pub database: String,
    pub rules: PathBuf,
    /// Whether `rules` was named (a file, the environment or a flag): a
    /// named directory must exist; the default may be missing.
    pub rules_given: bool,
    pub instance: String,
    pub trusted_proxies: TrustedProxies,
    pub fail_mode: FailMode,
    pub method_override: OverridePolicy,
    /// Whether a change whose path holds `%2F` or `%5C` is refused.
    pub reject_encoded_slashes: bool,
    pub retention_days: u32,
    pub config_refresh: Duration,
    pub log_format: LogFormat,
    /// Runtime worker threads (at least 1).
    pub worker_threads: usize,
    pub actor: ActorRules,
    pub snapshot: SnapshotConfig,
    pub limits: Limits,
    pub recorder: RecorderConfig,
    /// `[query] tokens`; empty means the query port is loopback-only.
    pub query_tokens: Vec<Token>,
    /// `[query] max_streams`: open event streams per token.
    pub query_max_streams: usize,
    pub tls: TlsConfig,
    /// `[[sink]]`, validated.
    pub sinks: Vec<sink::SinkConfig>,
}

impl Config {
    /// Loads and validates configuration from all sources.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        load(file, env, flags)?.validate()
    }
}

impl RawConfig {
    /// Checks every value and resolves it; all problems are reported together.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        let upstream = self.upstream.as_deref().and_then(|u| p.take(parse_upstream(u)));
        let addr = |key: &str, v: &str| {
            v.parse::<SocketAddr>().map_err(|_| format!("{key}: `{v}` is not an address like 127.0.0.1:8080"))
        };
        let listen = p.take(addr("listen", &self.listen));
        let query_listen = p.take(addr("query_listen", &self.query_listen));
        let dur = |key: &str, v: &str| {
            parse_duration(v).map_err(|e| format!("{key}: {e}")).and_then(|d| bounds::duration(key, d))
        };
        let config_refresh = p.take(dur("config_refresh", &self.config_refresh));
        let upstream_timeout = p.take(dur("limits.upstream_timeout", &self.limits.upstream_timeout));
        let header_read_timeout = p.take(dur("limits.header_read_timeout", &self.limits.header_read_timeout));
        let shutdown_timeout = p.take(dur("limits.shutdown_timeout", &self.limits.shutdown_timeout));
        // Unset only when an error is recorded, and then never used.
        let idle_timeout = p.take(dur("limits.idle_timeout", &self.limits.idle_timeout)).unwrap_or_default();
        let body_timeout = p.take(dur("limits.body_timeout", &self.limits.body_timeout)).unwrap_or_default();
        let upstream_read_timeout =
            p.take(dur("limits.upstream_read_timeout", &self.limits.upstream_read_timeout)).unwrap_or_default();
        let snapshot_timeout = p.take(dur("snapshot.timeout", &self.snapshot.timeout));
        let flush_interval = p.take(dur("recorder.flush_interval", &self.recorder.flush_interval));

        let mut nets = Vec::new();
        for net in &self.trusted_proxies {
            match net.parse::<IpNet>().or_else(|_| net.parse::<std::net::IpAddr>().map(IpNet::from)) {
                Ok(n) => nets.push(n),
                Err(_) => p.add(format!("trusted_proxies: `{net}` is not an address or CIDR range")),
            }
        }
        let fail_mode = match self.fail_mode.as_str() {
            "open" => FailMode::Open,
            "closed" => FailMode::Closed,
            other => {
                p.add(format!("fail_mode: `{other}` is not `open` or `closed`"));
                FailMode::Open
            }
        };
        let durability = match self.recorder.durability.as_str() {
            "async" => Durability::Async,
            "sync" => Durability::Sync,
            other => {
                p.add(format!("recorder.durability: `{other}` is not `async` or `sync`"));
                Durability::Async
            }
        };
        let method_override = match self.method_override.as_str() {
            "honour" | "honor" => OverridePolicy::Honour,
            "strip" => OverridePolicy::Strip,
            "reject" => OverridePolicy::Reject,
            other => {
                p.add(format!("method_override: `{other}` is not `honour`, `strip` or `reject`"));
                OverridePolicy::Honour
            }
        };
        let reject_encoded_slashes = match self.encoded_slashes.as_str() {
            "reject" => true,
            "keep" => false,
            other => {
                p.add(format!("encoded_slashes: `{other}` is not `reject` or `keep`"));
                true
            }
        };
        let log_format = match self.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                p.add(format!("log_format: `{other}` is not `text` or `json`"));
                LogFormat::Text
            }
        };
        let mut order = Vec::new();
        for s in &self.actor.order {
            match s.as_str() {
                "header" => order.push(ActorSource::Header),
                "jwt" => order.push(ActorSource::Jwt),
                "basic" => order.push(ActorSource::Basic),
                "whoami" => order.push(ActorSource::Whoami),
                other => p.add(format!("actor.order: `{other}` is not header, jwt, basic or whoami")),
            }
        }
        let header_name = |key: &str, v: &str| {
            HeaderName::from_bytes(v.as_bytes()).map_err(|_| format!("{key}: `{v}` is not a header name"))
        };
        let actor_header = p.take(header_name("actor.header", &self.actor.header));
        let jwt = p.take(jwt_verifier(&self.actor)).flatten().map(std::sync::Arc::new);
        let whoami_url = match self.actor.whoami_url.clone() {
            Some(url) if !url.starts_with('/') => {
                p.add(format!("actor.whoami_url: `{url}` must be a path on the upstream, starting with `/`"));
                None
            }
            other => other,
        };
        if !self.actor.whoami_field.starts_with('/') {
            p.add(format!(
                "actor.whoami_field: `{}` must be a JSON pointer such as `/username`",
                self.actor.whoami_field
            ));
        }
        let mut forward_headers = Vec::new();
        for h in &self.snapshot.forward_headers {
            forward_headers.extend(p.take(header_name("snapshot.forward_headers", h)));
        }
        for pointer in &self.snapshot.ignore_fields {
            if !pointer.starts_with('/') {
                p.add(format!("snapshot.ignore_fields: `{pointer}` is not a JSON pointer (it starts with `/`)"));
            }
        }
        for (key, value) in [
            ("limits.max_header_bytes", self.limits.max_header_bytes),
            ("limits.max_body_bytes", self.limits.max_body_bytes),
            ("limits.body_min_rate", self.limits.body_min_rate),
            ("limits.max_connections", self.limits.max_connections),
            ("snapshot.max_bytes", self.snapshot.max_bytes),
            ("recorder.queue", self.recorder.queue),
            ("recorder.batch", self.recorder.batch),
            ("recorder.max_pending", self.recorder.max_pending),
            ("retention_days", u64::from(self.retention_days)),
            ("worker_threads", self.worker_threads),
            ("query.max_streams", self.query.max_streams),
        ] {
            p.take(bounds::number(key, value));
        }
        let rules_given = self.rules.is_some();
        let rules = PathBuf::from(self.rules.as_deref().unwrap_or(DEFAULT_RULES));
        if rules_given && !rules.is_dir() {
            p.add(format!(
                "rules: `{}` is not a directory (the directory that holds resources.toml and audit.toml)",
                rules.display()
            ));
        }
        p.take(usable_file("recorder.spool", Path::new(&self.recorder.spool)));
        if let Some(file) = sqlite_file(&self.database) {
            p.take(usable_file("database", &file));
        }
        let sinks = sink::validate(&self.sink).unwrap_or_else(|problems| {
            problems.into_iter().for_each(|e| p.add(e));
            Vec::new()
        });
        for t in &self.query.tokens {
            if t.token.trim().is_empty() {
                p.add(format!("query.tokens: the token of `{}` is empty", t.name));
            }
            if t.role != "read" && t.role != "admin" {
                p.add(format!("query.tokens: role `{}` of `{}` is not `read` or `admin`", t.role, t.name));
            }
        }
        let tls = self.tls.map(|t| {
            let pair = match (t.cert, t.key) {
                (Some(cert), Some(key)) => Some(crate::tls::PairFiles { cert: cert.into(), key: key.into() }),
                (None, None) => None,
                _ => {
                    p.add("tls.cert and tls.key: give both (a certificate and its key) or neither");
                    None
                }
            };
            let https = upstream.as_ref().is_some_and(|u| u.scheme == Scheme::HTTPS);
            if t.upstream_ca.is_some() && upstream.is_some() && !https {
                p.add("tls.upstream_ca: set, but the upstream is http:// (cleartext, nothing to verify)");
            }
            TlsConfig { pair, upstream_ca: t.upstream_ca.map(PathBuf::from) }
        });
        let resolved = (
            listen,
            query_listen,
            config_refresh,
            upstream_timeout,
            header_read_timeout,
            shutdown_timeout,
            snapshot_timeout,
            actor_header,
            flush_interval,
        );
        let (
            Some(listen),
            Some(query_listen),
            Some(config_refresh),
            Some(upstream_timeout),
            Some(header_read_timeout),
            Some(shutdown_timeout),
            Some(snapshot_timeout),
            Some(actor_header),
            Some(flush_interval),
        ) = resolved
        else {
            return Err(ConfigError::Invalid(p.0));
        };
        if !p.0.is_empty() {
            return Err(ConfigError::Invalid(p.0));
        }
        Ok(Config {
            upstream,
            listen,
            query_listen,
            database: self.database,
            rules,
            rules_given,
            instance: self.instance.unwrap_or_else(host_name),
            trusted_proxies: TrustedProxies::new(nets),
            fail_mode,
            method_override,
            reject_encoded_slashes,
            retention_days: self.retention_days,
            config_refresh,
            log_format,
            worker_threads: match self.worker_threads {
                0 => default_worker_threads(std::thread::available_parallelism().map_or(1, usize::from)),
                n => usize::try_from(n).unwrap_or(1),
            },
            actor: ActorRules {
                order,
                header: actor_header,
                jwt_claim: self.actor.jwt_claim,
                jwt,
                whoami_url,
                whoami_field: self.actor.whoami_field,
            },
            snapshot: SnapshotConfig {
                forward_headers,
                timeout: snapshot_timeout,
                max_bytes: self.snapshot.max_bytes,
                redact: self.snapshot.redact,
                skip_unchanged: self.snapshot.skip_unchanged,
                ignore_fields: self.snapshot.ignore_fields,
                volatile_fields: self.snapshot.volatile_fields,
            },
            limits: Limits {
                max_header_bytes: usize::try_from(self.limits.max_header_bytes).unwrap_or(usize::MAX),
                max_body_bytes: self.limits.max_body_bytes,
                upstream_timeout,
                header_read_timeout,
                idle_timeout,
                body_timeout,
                body_min_rate: self.limits.body_min_rate,
                upstream_read_timeout,
                shutdown_timeout,
                max_connections: usize::try_from(self.limits.max_connections).unwrap_or(usize::MAX),
            },
            tls: tls.unwrap_or_default(),
            sinks,
            query_max_streams: usize::try_from(self.query.max_streams).unwrap_or(usize::MAX),
            query_tokens: self
                .query
                .tokens
                .into_iter()
                .map(|t| Token { name: t.name, token: t.token, role: t.role })
                .collect(),
            recorder: RecorderConfig {
                queue: usize::try_from(self.recorder.queue).unwrap_or(usize::MAX),
                batch: usize::try_from(self.recorder.batch).unwrap_or(usize::MAX),
                flush_interval,
                spool: self.recorder.spool.into(),
                max_pending: usize::try_from(self.recorder.max_pending).unwrap_or(usize::MAX),
                fail_mode,
                durability,
            },
        })
    }
}

/// The rules directory when none is named.
pub const DEFAULT_RULES: &str = "rules/";

/// A file auditgate writes (the spool, a SQLite database): one that is
/// there must be a regular file (a FIFO would hang start-up, a directory
/// fail it later), one that is not yet must have its directory.
fn usable_file(key: &str, path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{key}: `{}` is not a regular file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if dir.is_dir() {
                Ok(())
            } else {
                Err(format!("{key}: the directory of `{}` does not exist", path.display()))
            }
        }
        Err(e) => Err(format!("{key}: `{}`: {e}", path.display())),
    }
}

/// The file a `sqlite://PATH[?options]` URL names (not `sqlite::memory:`).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://")?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// Validation problems, collected so that all are reported at once.
/// The JWT key of `[actor]`: at most one of `jwt_secret`, `jwt_key` (a PEM
/// file) and `jwks_file`.
fn jwt_verifier(actor: &raw::RawActor) -> Result<Option<crate::identity::JwtVerifier>, String> {
    use crate::identity::JwtVerifier;
    let read =
        |key: &str, path: &str| std::fs::read(path).map_err(|e| format!("actor.{key}: cannot read `{path}`: {e}"));
    match (&actor.jwt_secret, &actor.jwt_key, &actor.jwks_file) {
        (None, None, None) => Ok(None),
        (Some(secret), None, None) if secret.is_empty() => Err("actor.jwt_secret: is empty".into()),
        (Some(secret), None, None) => Ok(Some(JwtVerifier::secret(secret))),
        (None, Some(path), None) => JwtVerifier::public_key_pem(&read("jwt_key", path)?)
            .map(Some)
            .map_err(|e| format!("actor.jwt_key: `{path}`: {e}")),
        (None, None, Some(path)) => JwtVerifier::jwks(&read("jwks_file", path)?)
            .map(Some)
            .map_err(|e| format!("actor.jwks_file: `{path}`: {e}")),
        _ => Err("actor: give only one of jwt_secret, jwt_key and jwks_file".into()),
    }
}

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    fn take<T>(&mut self, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.add(e)).ok()
    }
}

fn parse_upstream(u: &str) -> Result<Upstream, String> {
    let uri: Uri = u.parse().map_err(|_| format!("upstream: `{u}` is not a URL"))?;
    let scheme = uri.scheme().cloned().ok_or_else(|| format!("upstream: `{u}` needs http:// or https://"))?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(format!("upstream: `{u}`: only http:// and https:// upstreams are served"));
    }
    let authority = uri.authority().cloned().ok_or_else(|| format!("upstream: `{u}` has no host"))?;
    if uri.query().is_some() {
        return Err(format!("upstream: `{u}` must not have a query"));
    }
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok(Upstream { scheme, authority, base_path })
}

/// The runtime's threads when `worker_threads = 0`: one per core but one,
/// at least one. The core left over runs the kernel's network work, the
/// recorder's writes and, often, the app behind the proxy; on two cores a
/// second worker costs more CPU per request than it brings (BENCHMARKS.md).
fn default_worker_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "auditgate".into())
}

/// `[recorder] durability`: whether an audited answer waits for its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The answer goes out at once; the entry follows (default).
    Async,
    /// The answer is held until its entry is committed to the store or
    /// fsync'ed to the spool.
    Sync,
}

/// Settings of the recorder (`[recorder]`, and `fail_mode`).
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub queue: usize,
    pub batch: usize,
    pub flush_interval: Duration,
    pub spool: PathBuf,
    pub max_pending: usize,
    pub fail_mode: FailMode,
    pub durability: Durability,
}

/// A query-port token (`[query] tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub token: String,
    /// `read` or `admin`.
    pub role: String,
}

/// What the proxy does with a method override (`method_override`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverridePolicy {
    /// Classify by the override and forward it (default).
    #[default]
    Honour,
    /// Remove the override headers before forwarding; classify by the real method.
    Strip,
    /// Answer 400 to a request that carries an override.
    Reject,
}

#[cfg(test)]
mod tests;
