//! `auditgate erase`: personal content erased from the command line, the
//! erasure recorded in a chain of the command's own.

use std::process::ExitCode;

use super::{Failure, load, open_store, runtime};
use crate::cli::EraseArgs;
use crate::erasure::{Selector, erase_here};

pub(super) fn run(args: EraseArgs) -> Result<ExitCode, Failure> {
    let selector = Selector::parse(args.actor.as_deref(), args.resource.as_deref(), args.client_ip.as_deref())
        .and_then(|s| s.check_width(args.force).map(|()| s))
        .map_err(|e| Failure::usage(format!("erase: {e}")))?;
    let config = load(args.db.config.as_deref(), &args.db.overrides())?;
    let asked_by = std::env::var("USER").unwrap_or_else(|_| "local".into());
    let report = runtime(1).block_on(async {
        let store = open_store(&config.database).await?;
        let done = erase_here(&store, &config.instance, &selector, args.reason.as_deref(), args.force, &asked_by).await;
        store.close().await;
        done.map_err(|e| Failure::failed(format!("erase: {e}")))
    })?;
    println!("{}", serde_json::to_string(&report).expect("a report serialises"));
    eprintln!("auditgate: {}", report.summary());
    Ok(ExitCode::SUCCESS)
}
