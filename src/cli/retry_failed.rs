//! `mikro-sync retry-failed`: the operators' `UPDATE sync_queue SET status='pending',
//! retry_count=0 WHERE status='failed'`, narrowed by id or type, with a report.
//!
//! The web install's requeue trigger makes such a row due now and notifies the worker, so the
//! retry starts within a moment when a worker runs.

use clap::Args;

use super::{web_client, CliError};
use crate::config::Config;

/// Options of `mikro-sync retry-failed`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Only these queue ids (`sync_queue.id`); repeat or separate with commas.
    #[arg(long = "id", value_delimiter = ',')]
    pub ids: Vec<String>,
    /// Only this document type.
    #[arg(long = "type", value_parser = ["satis", "tahsilat"])]
    pub entity_type: Option<String>,
    /// Show what would be retried without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// Re-queues failed rows; returns the ids re-queued (or that would be, with `dry_run`).
pub async fn retry(
    client: &tokio_postgres::Client,
    ids: &[String],
    entity_type: Option<&str>,
    dry_run: bool,
) -> Result<Vec<(String, String)>, CliError> {
    let ids: Vec<String> = ids.iter().map(|s| s.trim().to_string()).collect();
    crate::queue::store::retry_failed(client, &ids, entity_type, dry_run)
        .await
        .map_err(|e| match e {
            crate::queue::QueueError::Web(e) => CliError::from(e),
            other => CliError::Web(other.to_string()),
        })
}

/// Runs `retry-failed`.
pub async fn run(cfg: &Config, args: RetryArgs) -> Result<(), CliError> {
    let client = web_client(cfg).await?;
    let done = retry(
        &client,
        &args.ids,
        args.entity_type.as_deref(),
        args.dry_run,
    )
    .await?;
    let verb = if args.dry_run {
        "would retry"
    } else {
        "re-queued"
    };
    if done.is_empty() {
        println!("No failed documents matched; nothing {verb}.");
    } else {
        for (id, t) in &done {
            println!("{verb} {t} {id}");
        }
        println!("{} document(s) {verb}.", done.len());
    }
    if !args.ids.is_empty() && done.len() < args.ids.len() && !args.dry_run {
        println!("Some ids were not failed queue rows (see `mikro-sync status`).");
    }
    Ok(())
}
