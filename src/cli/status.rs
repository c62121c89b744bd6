//! `mikro-sync status`: what the operator asks first — is anything stuck, failing, or not listened to?
//!
//! Reads only `sync_queue` and `pg_stat_activity`, so it works while a worker runs and even
//! against a queue the worker has never touched.

use clap::Args;

use super::{web_client, CliError};
use crate::config::Config;
pub use crate::status::{age, gather, render, QueueStatus};

/// Options of `mikro-sync status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// How many distinct failure messages to show.
    #[arg(long, default_value_t = 10)]
    pub errors: i64,
}

/// Prints the queue status.
pub async fn run(cfg: &Config, args: StatusArgs) -> Result<(), CliError> {
    let client = web_client(cfg).await?;
    let st = gather(&client, args.errors).await?;
    print!("{}", render(&st));
    Ok(())
}
