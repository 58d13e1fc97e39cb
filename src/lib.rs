//! auditgate: a transparent reverse proxy that records who changed what.
//!
//! # Layout
//! From the top floor down; a module uses only those below it
//! (`tests/it/layers.rs` checks it; ARCHITECTURE.md has the table).
//! - [`cmd`]: one file per command; [`cli`]: their flags.
//! - [`app`]: binds the listeners, owns start-up and shutdown order;
//!   [`explain`]: the `explain` report.
//! - [`api`]: the query port and the console. [`proxy`]: the data path.
//! - [`audit`]: the audited-mutation phases (the tee's end hook included);
//!   [`erasure`], [`retention`]: what leaves the trail, and its entries.
//! - [`policy`]: the compiled, atomically swapped audit decision.
//! - [`resource`]: inference of action and resource from method and path;
//!   [`sink`]: committed entries forwarded to syslog and webhooks;
//!   [`whoami`]: the one actor source that asks the app.
//! - [`snapshot`]: snapshot GETs, their readers and the per-resource turn;
//!   [`recorder`]: the bounded queue, the writer and the committer;
//!   [`hold`]: legal holds at work; [`verify`]: `verify`'s check.
//! - [`store`]: the only SQL, one interface over SQLite and PostgreSQL.
//! - [`model`]: configurations, holds, selectors, the query filter;
//!   [`spool`]: the file entries wait in; [`upstream`]: the client toward
//!   the app; [`pseudonym`]: pseudonymous export.
//! - [`entry`]: the entry and its hash chain; [`conn`]: client connections;
//!   [`inbound`]: a client's body held to a rate; [`telemetry`]: logs.
//! - [`config`]: read once at the top, handed down as plain values;
//!   [`unapplied`]: requested versus applied.
//! - [`diff`], [`identity`], [`encoding`], [`tls`], [`toml_file`], [`demo`],
//!   [`health`]: pure diff and redaction, actor and client address, bounded
//!   decoding, TLS material, TOML errors with file and line, the demo's
//!   sample app, the container's probe.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod api;
pub mod app;
pub mod audit;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod conn;
pub mod demo;
pub mod diff;
pub mod encoding;
pub mod entry;
pub mod erasure;
pub mod explain;
pub mod health;
pub mod hold;
pub mod identity;
pub mod inbound;
pub mod model;
pub mod policy;
pub mod proxy;
pub mod pseudonym;
pub mod recorder;
pub mod resource;
pub mod retention;
pub mod sink;
pub mod snapshot;
pub mod spool;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod toml_file;
pub mod unapplied;
pub mod upstream;
pub mod verify;
pub mod whoami;

pub use app::{App, AppError};
