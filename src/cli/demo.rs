//! `mikro-sync demo`: see `crate::demo`.

use std::time::Duration;

use clap::Args;

use super::CliError;
use crate::config::Config;

/// Options of `mikro-sync demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Sales to insert (open account, card, cash; every fourth is a return).
    #[arg(long, default_value_t = 8)]
    pub sales: usize,
    /// Collections to insert (cycling nakit, çek, senet, havale, kredi kartı).
    #[arg(long, default_value_t = 5)]
    pub collections: usize,
    /// Milliseconds between documents (0 = insert all at once).
    #[arg(long, default_value_t = 25)]
    pub pace_ms: u64,
    /// Seconds to wait for every document to be posted.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Runs the demo (needs no configuration: it brings its own databases).
pub async fn run(_cfg: &Config, args: DemoArgs) -> Result<(), CliError> {
    crate::demo::run(crate::demo::DemoOptions {
        sales: args.sales,
        collections: args.collections,
        timeout: Duration::from_secs(args.timeout),
        pace: Duration::from_millis(args.pace_ms),
        print: true,
    })
    .await
    .map(|_| ())
    .map_err(|e| CliError::Failed(e.to_string()))
}
