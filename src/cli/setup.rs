//! `mikro-sync setup [--erp]`: installs mikro-sync's objects (idempotent; a second run changes nothing).

use clap::Args;

use super::CliError;
use crate::config::Config;

/// Options of `mikro-sync setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Create the mikro-sync ledger table in the Mikro database instead (the only DDL mikro-sync
    /// runs there; needs a login with CREATE TABLE once — the daemon itself does not).
    #[arg(long)]
    pub erp: bool,
}

/// Runs the setup.
pub async fn run(cfg: &Config, args: SetupArgs) -> Result<(), CliError> {
    let _ = (cfg, args);
    Err(CliError::NotAvailable("setup"))
}
