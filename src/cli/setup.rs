//! `mikro-sync setup [--erp]`: installs mikro-sync's objects (idempotent; a second run changes nothing).

use clap::Args;

use super::{web_client, CliError};
use crate::config::Config;

/// Options of `mikro-sync setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Create the mikro-sync ledger table in the Mikro database instead (the only DDL mikro-sync
    /// runs there; needs a login with CREATE TABLE once — the daemon itself does not).
    #[arg(long)]
    pub erp: bool,
}

/// Runs the setup and prints what it did.
pub async fn run(cfg: &Config, args: SetupArgs) -> Result<(), CliError> {
    if args.erp {
        let mut erp = crate::doctor::connect_erp(cfg.erp()?)
            .await
            .map_err(CliError::Erp)?;
        let report = crate::setup::setup_erp(&mut erp)
            .await
            .map_err(|e| CliError::Erp(e.to_string()))?;
        println!("Mikro database {}: {report}", cfg.erp()?.database);
        return Ok(());
    }
    let client = web_client(cfg).await?;
    let report = crate::setup::setup_web(&client)
        .await
        .map_err(|e| CliError::Web(crate::db::error_chain(&e)))?;
    println!("Web database {}:", cfg.web()?.database);
    println!("{report}");
    Ok(())
}
