//! `mikro-sync demo`: see `crate::demo`.

use clap::Args;

use super::CliError;
use crate::config::Config;

/// Options of `mikro-sync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of sales to insert (collections are about half as many).
    #[arg(long, default_value_t = 12)]
    pub sales: usize,
}

/// Runs the demo (needs no configuration: it brings its own databases).
pub async fn run(cfg: &Config, args: DemoArgs) -> Result<(), CliError> {
    let _ = (cfg, args);
    Err(CliError::NotAvailable("demo"))
}
