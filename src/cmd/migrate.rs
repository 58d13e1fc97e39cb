//! `auditgate migrate`: the schema created or brought up to date.

use std::process::ExitCode;

use super::{Failure, load, open_store, runtime};
use crate::cli::DbArgs;

pub(super) fn run(args: DbArgs) -> Result<ExitCode, Failure> {
    let config = load(args.config.as_deref(), &args.overrides())?;
    runtime(1).block_on(async { open_store(&config.database).await.map(drop) })?;
    eprintln!("auditgate: schema is up to date");
    Ok(ExitCode::SUCCESS)
}
