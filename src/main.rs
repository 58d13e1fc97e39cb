//! The `auditgate` binary: parses the command line and runs the command
//! (`auditgate::cmd`, one file each).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    auditgate::cmd::run(auditgate::cli::Cli::parse().command)
}
