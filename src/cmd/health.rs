//! `auditgate health`: this configuration's query port probed, for a
//! container's HEALTHCHECK.

use std::process::ExitCode;

use super::{Failure, load, runtime};
use crate::cli::HealthArgs;
use crate::health::{probe, probe_addr};

pub(super) fn run(args: HealthArgs) -> Result<ExitCode, Failure> {
    let config = load(args.config.as_deref(), &args.overrides())?;
    let addr = probe_addr(config.query_listen);
    let cert = config.tls.pair.as_ref().map(|p| p.cert.as_path());
    runtime(1).block_on(probe(addr, cert)).map_err(|e| Failure::failed(format!("health: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
