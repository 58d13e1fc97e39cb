//! `auditgate serve`: the proxy and the query port in front of an app.

use std::process::ExitCode;

use super::{Failure, announce, build_and_run, load, runtime};
use crate::cli::ServeArgs;

pub(super) fn run(args: ServeArgs) -> Result<ExitCode, Failure> {
    let config = load(args.config.as_deref(), &args.overrides())?;
    crate::telemetry::init(config.log_format);
    runtime(config.worker_threads).block_on(build_and_run(config, |app| {
        let scheme = if app.serves_tls() { "https" } else { "http" };
        announce(&format!(
            "auditgate: proxy on {scheme}://{}/\nauditgate: console and query API on {scheme}://{}/",
            app.proxy_addr(),
            app.query_addr()
        ));
    }))
}
