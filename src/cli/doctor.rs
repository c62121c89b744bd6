//! `mikro-sync doctor`: see `crate::doctor`.

use clap::Args;

use super::CliError;
use crate::config::Config;

/// Options of `mikro-sync doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Only check that both databases answer (for container health checks); silent on success.
    #[arg(long)]
    pub quick: bool,
}

/// Runs the checks.
pub async fn run(cfg: &Config, args: DoctorArgs) -> Result<(), CliError> {
    crate::doctor::run(cfg, args.quick).await
}
