//! The `auditgate` binary: parse the command line, load configuration, run.
//! Exit codes: 0 done, 64 bad configuration or rules, 1 anything else.

use std::process::ExitCode;

use auditgate::cli::{Cli, Command, ExplainArgs, ServeArgs};
use auditgate::config::Config;
use auditgate::resource::{Classifier, RulesFile};
use auditgate::{App, telemetry};
use clap::Parser;

const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Explain(args) => explain(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    telemetry::init(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    runtime.block_on(async {
        let app = match App::build(config).await {
            Ok(app) => app,
            Err(e) if e.is_usage() => return usage(e),
            Err(e) => {
                eprintln!("auditgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        app.run(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

fn explain(args: ExplainArgs) -> ExitCode {
    let mut flags = Vec::new();
    if let Some(rules) = &args.rules {
        flags.push(("rules", rules.clone()));
    }
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &flags) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let rules = match RulesFile::load_dir(&config.rules) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let file = config.rules.join("resources.toml");
    match auditgate::explain::explain(
        &Classifier::new(rules),
        &file,
        config.method_override,
        &args.method,
        &args.path,
        &args.headers,
    ) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => usage(e),
    }
}

fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("auditgate: {e}");
    ExitCode::from(EX_USAGE)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
