//! `mikro-sync doctor`: see `crate::doctor`.

use clap::Args;

use super::CliError;
use crate::config::Config;
use crate::doctor::{checks, render, Level};

/// Options of `mikro-sync doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Only check that both databases answer (for container health checks); silent on success.
    #[arg(long)]
    pub quick: bool,
}

/// Runs the checks, prints the findings, and fails when any check failed.
pub async fn run(cfg: &Config, args: DoctorArgs) -> Result<(), CliError> {
    let quick = args.quick;
    let found = checks(cfg, quick).await;
    let failed = found.iter().filter(|c| c.level == Level::Fail).count();
    if quick {
        if failed > 0 {
            eprint!("{}", render(&found));
            return Err(CliError::Failed(format!("{failed} check(s) failed")));
        }
        return Ok(());
    }
    print!("{}", render(&found));
    let warned = found.iter().filter(|c| c.level == Level::Warn).count();
    if failed > 0 {
        return Err(CliError::Failed(format!(
            "{failed} check(s) failed, {warned} warning(s)"
        )));
    }
    println!("All checks passed ({warned} warning(s)).");
    Ok(())
}
