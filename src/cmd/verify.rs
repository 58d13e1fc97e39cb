//! `auditgate verify`: every instance's chain checked, its heads printed,
//! and compared with heads kept elsewhere.

use std::process::ExitCode;

use super::{Failure, load, open_store, runtime};
use crate::cli::VerifyArgs;
use crate::verify::{Report, read_heads};

pub(super) fn run(args: VerifyArgs) -> Result<ExitCode, Failure> {
    let kept = args.heads.as_deref().map(read_heads).transpose().map_err(Failure::usage)?.unwrap_or_default();
    let config = load(args.db.config.as_deref(), &args.db.overrides())?;
    let report = runtime(1).block_on(async {
        let store = open_store(&config.database).await?;
        Report::of(&store, &kept).await.map_err(|e| Failure::failed(format!("verify: {e}")))
    })?;
    println!("{}", report.printed());
    for line in report.verdict() {
        eprintln!("auditgate: {line}");
    }
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
