//! `mikro-sync worker`: the daemon.

use clap::Args;

use super::CliError;
use crate::config::Config;

/// Options of `mikro-sync worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Do not run the periodic ERP → web sync in this process.
    #[arg(long)]
    pub no_erp_sync: bool,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(cfg: &Config, args: WorkerArgs) -> Result<(), CliError> {
    let _ = (cfg, args);
    Err(CliError::NotAvailable("worker"))
}
