//! The commands, one file each, and what they share: how configuration is
//! loaded, how the store is opened, and how a failure becomes an exit code
//! (0 done, 64 bad configuration, rules or arguments, 1 anything else).

mod demo;
mod erase;
mod explain;
mod health;
mod migrate;
mod serve;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use crate::App;
use crate::cli::Command;
use crate::config::{Config, Overrides};
use crate::store::Store;

/// Runs one command to its end.
pub fn run(command: Command) -> ExitCode {
    let done = match command {
        Command::Serve(args) => serve::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Erase(args) => erase::run(args),
        Command::Health(args) => health::run(args),
    };
    done.unwrap_or_else(Failure::exit)
}

/// Bad configuration, rules or arguments.
const EX_USAGE: u8 = 64;

/// Why a command stopped; printed as `auditgate: <reason>`.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The configuration, a rules file or the arguments (exit 64).
    #[error("{0}")]
    Usage(String),
    /// Anything else: a port taken, a database that does not answer (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl Failure {
    pub(crate) fn usage(e: impl std::fmt::Display) -> Failure {
        Failure::Usage(e.to_string())
    }

    pub(crate) fn failed(e: impl std::fmt::Display) -> Failure {
        Failure::Failed(e.to_string())
    }

    /// The exit code, the reason on stderr.
    pub fn exit(self) -> ExitCode {
        eprintln!("auditgate: {self}");
        match self {
            Failure::Usage(_) => ExitCode::from(EX_USAGE),
            Failure::Failed(_) => ExitCode::FAILURE,
        }
    }
}

/// The configuration from `file`, the environment and the flags.
pub(crate) fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config, Failure> {
    Config::load(file, std::env::vars(), flags).map_err(Failure::usage)
}

/// The store `database` names, its schema brought up to date.
pub(crate) async fn open_store(database: &str) -> Result<Store, Failure> {
    Store::open(database, false).await.map_err(|e| Failure::failed(format!("database {database}: {e}")))
}

pub(crate) fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Tells the person who started a server where it is, on stdout; a closed
/// stdout (`| head -1`) never stops the server.
pub(crate) fn announce(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Builds the app, announces it, and serves until SIGTERM/SIGINT.
pub(crate) async fn build_and_run(config: Config, announce: impl FnOnce(&App)) -> Result<ExitCode, Failure> {
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) if e.is_usage() => return Err(Failure::usage(e)),
        Err(e) => return Err(Failure::failed(e)),
    };
    // The handlers are in place before anyone is told the app is up: a
    // SIGTERM sent on the announcement shuts it down cleanly.
    let shutdown = shutdown_signal();
    announce(&app);
    app.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on
/// either signal.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
