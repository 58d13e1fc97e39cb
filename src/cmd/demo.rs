//! `auditgate demo`: a sample app, the proxy in front of it and the query
//! port, in one process, on a trail started afresh.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{Failure, announce, build_and_run, runtime};
use crate::cli::{DEMO_DATABASE, DemoArgs};
use crate::config::Config;

/// The demo's own trail and spool, started afresh at every run (its
/// sample app starts empty too, so its `user/1` is always the same user).
const DEMO_FILES: [&str; 4] =
    ["auditgate-demo.db", "auditgate-demo.db-wal", "auditgate-demo.db-shm", "auditgate-demo.spool"];

pub(super) fn run(args: DemoArgs) -> Result<ExitCode, Failure> {
    let fresh = args.database == DEMO_DATABASE;
    if fresh {
        for file in DEMO_FILES {
            if let Err(e) = std::fs::remove_file(file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Failure::failed(format!("demo: cannot start afresh: {file}: {e}")));
            }
        }
    }
    // Built-in path rules only: an empty rules directory of its own.
    let rules = rules_dir().map_err(|e| Failure::failed(format!("demo: a rules directory: {e}")))?;
    let done = runtime(2).block_on(serve_demo(args, &rules, fresh));
    let _ = std::fs::remove_dir(&rules);
    done
}

async fn serve_demo(args: DemoArgs, rules: &Path, fresh: bool) -> Result<ExitCode, Failure> {
    let app_addr = crate::demo::spawn_sample_app().await.map_err(|e| Failure::failed(format!("sample app: {e}")))?;
    let flags = vec![
        ("upstream", format!("http://{app_addr}")),
        ("listen", args.listen),
        ("query_listen", args.query_listen),
        ("database", args.database),
        ("rules", rules.display().to_string()),
    ];
    // With --tls, the development pair (the environment may name another).
    let (cert, key, ca) = ("certs/dev.pem", "certs/dev-key.pem", Path::new("certs/dev-ca.pem"));
    if args.tls && !Path::new(cert).exists() {
        return Err(Failure::usage(format!("demo --tls: {cert} not found; run certs/make-dev-cert.sh first")));
    }
    let tls = [("AUDITGATE_TLS__CERT", cert), ("AUDITGATE_TLS__KEY", key)];
    let tls = tls.into_iter().filter(|_| args.tls).map(|(k, v)| (k.to_string(), v.to_string()));
    let spool = [("AUDITGATE_RECORDER__SPOOL".to_string(), DEMO_FILES[3].to_string())];
    let config =
        Config::load(None, spool.into_iter().chain(tls).chain(std::env::vars()), &flags).map_err(Failure::usage)?;
    crate::telemetry::init(config.log_format);
    build_and_run(config, |app| {
        let ca = args.tls.then_some(ca);
        announce(&crate::demo::instructions(app.proxy_addr(), app.query_addr(), app_addr, ca));
        if !fresh {
            announce("(the trail you named keeps earlier runs' entries; the sample app starts empty)");
        }
    })
    .await
}

/// A new empty directory under the system's temporary directory.
fn rules_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("auditgate-demo-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
