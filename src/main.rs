//! The `auditgate` binary: parse the command line, load configuration, run.
//! Exit codes: 0 done, 64 bad configuration or rules, 1 anything else.

use std::process::ExitCode;

use auditgate::cli::{Cli, Command, DbArgs, DemoArgs, EraseArgs, ExplainArgs, HealthArgs, ServeArgs, VerifyArgs};
use auditgate::config::Config;
use auditgate::resource::{Classifier, RulesFile};
use auditgate::store::Store;
use auditgate::{App, policy, telemetry};
use clap::Parser;

const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Explain(args) => explain(args),
        Command::Demo(args) => demo(args),
        Command::Verify(args) => verify(args),
        Command::Migrate(args) => migrate(args),
        Command::Erase(args) => erase(args),
        Command::Health(args) => health(args),
    }
}

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// The demo's own trail and spool, started afresh at every run (its
/// sample app starts empty too, so its `user/1` is always the same user).
const DEMO_FILES: [&str; 4] =
    ["auditgate-demo.db", "auditgate-demo.db-wal", "auditgate-demo.db-shm", "auditgate-demo.spool"];

fn demo(args: DemoArgs) -> ExitCode {
    let fresh = args.database == auditgate::cli::DEMO_DATABASE;
    if fresh {
        for file in DEMO_FILES {
            if let Err(e) = std::fs::remove_file(file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                eprintln!("auditgate demo: cannot start afresh: {file}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Built-in path rules only: an empty rules directory of its own.
    let rules = match tempfile_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("auditgate demo: a rules directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = runtime(2);
    runtime.block_on(async {
        let app_addr = match auditgate::demo::spawn_sample_app().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("auditgate: sample app: {e}");
                return ExitCode::FAILURE;
            }
        };
        let flags = vec![
            ("upstream", format!("http://{app_addr}")),
            ("listen", args.listen),
            ("query_listen", args.query_listen),
            ("database", args.database),
            ("rules", rules.display().to_string()),
        ];
        // With --tls, the development pair (the environment may name another).
        let (cert, key, ca) = ("certs/dev.pem", "certs/dev-key.pem", std::path::Path::new("certs/dev-ca.pem"));
        if args.tls && !std::path::Path::new(cert).exists() {
            eprintln!("auditgate demo --tls: {cert} not found; run certs/make-dev-cert.sh first");
            return ExitCode::from(EX_USAGE);
        }
        let tls = [("AUDITGATE_TLS__CERT", cert), ("AUDITGATE_TLS__KEY", key)];
        let tls = tls.into_iter().filter(|_| args.tls).map(|(k, v)| (k.to_string(), v.to_string()));
        let spool = [("AUDITGATE_RECORDER__SPOOL".to_string(), DEMO_FILES[3].to_string())];
        let config = match Config::load(None, spool.into_iter().chain(tls).chain(std::env::vars()), &flags) {
            Ok(c) => c,
            Err(e) => return usage(e),
        };
        telemetry::init(config.log_format);
        let done = build_and_run(config, |app| {
            let ca = args.tls.then_some(ca);
            announce(&auditgate::demo::instructions(app.proxy_addr(), app.query_addr(), app_addr, ca));
            if !fresh {
                announce("(the trail you named keeps earlier runs' entries; the sample app starts empty)");
            }
        })
        .await;
        let _ = std::fs::remove_dir(&rules);
        done
    })
}

/// A new empty directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("auditgate-demo-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Tells the person who started a server where it is, on stdout; a closed
/// stdout (`| head -1`) never stops the server.
fn announce(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Builds the app, announces it, and serves until SIGTERM/SIGINT.
async fn build_and_run(config: Config, announce: impl FnOnce(&App)) -> ExitCode {
    let app = match App::build(config).await {
        Ok(app) => app,
        Err(e) if e.is_usage() => return usage(e),
        Err(e) => {
            eprintln!("auditgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The handlers are in place before anyone is told the app is up: a
    // SIGTERM sent on the announcement shuts it down cleanly.
    let shutdown = shutdown_signal();
    announce(&app);
    app.run(shutdown).await;
    ExitCode::SUCCESS
}

fn open_store(args: &DbArgs) -> Result<(tokio::runtime::Runtime, auditgate::store::Store), ExitCode> {
    let config = Config::load(args.config.as_deref(), std::env::vars(), &args.overrides()).map_err(usage)?;
    let runtime = runtime(1);
    let store = runtime.block_on(auditgate::store::Store::open(&config.database, false)).map_err(|e| {
        eprintln!("auditgate: database {}: {e}", config.database);
        ExitCode::FAILURE
    })?;
    Ok((runtime, store))
}

fn verify(args: VerifyArgs) -> ExitCode {
    let kept = match args.heads.as_deref().map(auditgate::verify::read_heads).transpose() {
        Ok(kept) => kept.unwrap_or_default(),
        Err(e) => return usage(e),
    };
    let (runtime, store) = match open_store(&args.db) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    match runtime.block_on(auditgate::verify::Report::of(&store, &kept)) {
        Ok(report) => {
            println!("{}", report.printed());
            for line in report.verdict() {
                eprintln!("auditgate: {line}");
            }
            if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("auditgate: verify: {e}");
            ExitCode::FAILURE
        }
    }
}

fn erase(args: EraseArgs) -> ExitCode {
    use auditgate::erasure::{Selector, erase_here};
    let selector = match Selector::parse(args.actor.as_deref(), args.resource.as_deref(), args.client_ip.as_deref())
        .and_then(|s| s.check_width(args.force).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => return usage(format!("erase: {e}")),
    };
    let config = match Config::load(args.db.config.as_deref(), std::env::vars(), &args.db.overrides()) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let asked_by = std::env::var("USER").unwrap_or_else(|_| "local".into());
    runtime(1).block_on(async {
        let store = match Store::open(&config.database, false).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("auditgate: database {}: {e}", config.database);
                return ExitCode::FAILURE;
            }
        };
        let done = erase_here(&store, &config.instance, &selector, args.reason.as_deref(), args.force, &asked_by).await;
        store.close().await;
        match done {
            Ok(report) => {
                println!("{}", serde_json::to_string(&report).expect("a report serialises"));
                eprintln!("auditgate: {}", report.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("auditgate: erase: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn migrate(args: DbArgs) -> ExitCode {
    match open_store(&args) {
        Ok(_) => {
            eprintln!("auditgate: schema is up to date");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn health(args: HealthArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let addr = auditgate::health::probe_addr(config.query_listen);
    let cert = config.tls.pair.as_ref().map(|p| p.cert.as_path());
    match runtime(1).block_on(auditgate::health::probe(addr, cert)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auditgate: health: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    telemetry::init(config.log_format);
    let runtime = runtime(config.worker_threads);
    runtime.block_on(build_and_run(config, |app| {
        let scheme = if app.serves_tls() { "https" } else { "http" };
        announce(&format!(
            "auditgate: proxy on {scheme}://{}/\nauditgate: console and query API on {scheme}://{}/",
            app.proxy_addr(),
            app.query_addr()
        ));
    }))
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
    let classifier = match RulesFile::load_dir(&config.rules) {
        Ok(r) => Classifier::new(r),
        Err(e) => return usage(e),
    };
    let actions = policy::known_actions(classifier.custom_actions());
    let (configs, source) = match &args.database {
        Some(url) => match runtime(1).block_on(Store::read_configurations(url)) {
            Ok(configs) => (configs, url.clone()),
            Err(e) => {
                eprintln!("auditgate: {url}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => match policy::load_seed_dir(&config.rules, &actions) {
            Ok(configs) => (configs, config.rules.join("audit.toml").display().to_string()),
            Err(e) => return usage(e),
        },
    };
    let compiled = policy::Compiled::new(&configs);
    let file = config.rules.join("resources.toml");
    let explainer = auditgate::explain::Explainer {
        classifier: &classifier,
        rules_file: &file,
        method_override: config.method_override,
        actor: &config.actor,
        trusted: &config.trusted_proxies,
        policy: &compiled,
        policy_source: &source,
    };
    match explainer.explain(&args.method, &args.path, &args.headers, args.from) {
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
