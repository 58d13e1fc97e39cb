//! The command line (docs/configuration.md): `serve`, `demo`, `verify`, `explain`,
//! `migrate`, and `health` (a container's probe).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "auditgate", version, about = "A transparent reverse proxy that keeps an audit trail of every change")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy in front of an upstream app.
    Serve(ServeArgs),
    /// Show how a request would be classified and whether it would be
    /// recorded, without network: configurations from the seed file, or
    /// from a store with `--database`.
    Explain(ExplainArgs),
    /// Run a sample app, the proxy in front of it and the query port, in one process.
    Demo(DemoArgs),
    /// Check every instance's hash chain and print each one's head; exit 1
    /// if an entry was altered or removed.
    Verify(VerifyArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(DbArgs),
    /// Erase the personal content of the entries an actor, a resource or a
    /// client address names (their chains still verify), and record the
    /// erasure in the trail; prints what was erased.
    Erase(EraseArgs),
    /// Probe this configuration's query port (`GET /healthz`): exit 0 when
    /// it answers 200, 1 otherwise (a container's HEALTHCHECK).
    Health(HealthArgs),
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Query-port address to probe [default: the configuration's
    /// `query_listen`; a wildcard address is probed on loopback].
    #[arg(long)]
    pub query_listen: Option<String>,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl HealthArgs {
    pub fn overrides(&self) -> Overrides {
        self.query_listen.iter().map(|a| ("query_listen", a.clone())).collect()
    }
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// Store URL [default: sqlite://auditgate.db].
    #[arg(long)]
    pub database: Option<String>,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Heads printed by an earlier `auditgate verify` (its JSON, kept on
    /// another system): fail when a chain no longer reaches its kept head.
    #[arg(long)]
    pub heads: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selector").required(true).args(["actor", "resource", "client_ip"])))]
pub struct EraseArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Entries whose actor is NAME.
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
    /// Entries of one resource, e.g. user/123.
    #[arg(long, value_name = "TYPE/ID")]
    pub resource: Option<String>,
    /// Entries from this client address, or from within this CIDR.
    #[arg(long, value_name = "ADDR")]
    pub client_ip: Option<String>,
    /// Why (e.g. the request's reference), kept in the erasure's entry.
    #[arg(long)]
    pub reason: Option<String>,
    /// Erase a range wider than a /16 (IPv4) or a /48 (IPv6).
    #[arg(long)]
    pub force: bool,
}

impl DbArgs {
    pub fn overrides(&self) -> Overrides {
        self.database.iter().map(|d| ("database", d.clone())).collect()
    }
}

/// The demo's own trail, started afresh at every run.
pub const DEMO_DATABASE: &str = "sqlite://auditgate-demo.db";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Proxy listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Query-port listener.
    #[arg(long, default_value = "127.0.0.1:9181")]
    pub query_listen: String,
    /// Store URL (the default one starts afresh at every run).
    #[arg(long, default_value = DEMO_DATABASE)]
    pub database: String,
    /// Serve both ports over HTTPS with the pair `certs/make-dev-cert.sh`
    /// makes (certs/dev.pem, certs/dev-key.pem; clients trust certs/dev-ca.pem).
    #[arg(long)]
    pub tls: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The app to proxy to, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    pub upstream: Option<String>,
    /// Proxy listener [default: 0.0.0.0:8080].
    #[arg(long)]
    pub listen: Option<String>,
    /// Query-port listener [default: 127.0.0.1:9181].
    #[arg(long)]
    pub query_listen: Option<String>,
    /// Store URL [default: sqlite://auditgate.db].
    #[arg(long)]
    pub database: Option<String>,
    /// Directory holding resources.toml [default: rules/].
    #[arg(long)]
    pub rules: Option<String>,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `text` or `json` log lines [default: text].
    #[arg(long)]
    pub log_format: Option<String>,
}

impl ServeArgs {
    /// The flags given, as configuration keys (they win over every other source).
    pub fn overrides(&self) -> Overrides {
        let pairs = [
            ("upstream", &self.upstream),
            ("listen", &self.listen),
            ("query_listen", &self.query_listen),
            ("database", &self.database),
            ("rules", &self.rules),
            ("log_format", &self.log_format),
        ];
        pairs.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))).collect()
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Directory holding resources.toml [default: rules/].
    #[arg(long)]
    pub rules: Option<String>,
    /// TOML configuration file (for `rules` and `method_override`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A request header, `Name: value` (repeatable), e.g. an override header.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Decide with the configurations stored in this database instead of
    /// the seed file (`rules/audit.toml`).
    #[arg(long)]
    pub database: Option<String>,
    /// The address the request comes from (the TCP peer).
    #[arg(long, default_value = "127.0.0.1")]
    pub from: std::net::IpAddr,
    /// The request method, e.g. PATCH.
    pub method: String,
    /// The request path, with an optional query, e.g. /api/v1/users/123/.
    pub path: String,
}
