//! auditgate: a transparent reverse proxy that records who changed what.
//!
//! # Layout
//! - [`config`]: raw sources (file, environment, flags) → validated `Config`.
//! - [`resource`]: pure inference of action and resource from method + path.
//! - [`identity`]: pure actor and client-address resolution (JWT keys
//!   loaded at start); [`whoami`]: the one actor source that asks the app.
//! - [`policy`]: audit configurations, their validation and the compiled,
//!   atomically swapped decision.
//! - [`proxy`]: the data path, its accept loop, header hygiene, upstream side.
//! - [`audit`], [`snapshot`]: the audited-mutation pipeline and its snapshots.
//! - [`diff`], [`unapplied`], [`entry`]: pure diff, redaction and requested
//!   versus applied; the entry and its hash chain.
//! - [`encoding`]: decoding the bounded copies the trail reads (gzip, deflate, br).
//! - [`recorder`], [`store`]: the bounded queue, the batch writer, SQLite.
//! - [`sink`]: committed entries forwarded to syslog and webhook receivers.
//! - [`api`]: the query port.
//! - [`app`]: binds listeners, owns start-up and shutdown order.
//! - [`cli`], [`explain`], [`demo`], [`health`], [`telemetry`]: the command line
//!   and its output.
//! - [`toml_file`]: TOML files read with errors naming file, line and key.
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
