//! `mikro-sync worker`: the daemon ([`crate::daemon::run`]) with the process edge around it —
//! SIGTERM/SIGINT become the graceful stop (stop claiming, finish in-flight documents, exit 0)
//! and the daemon's errors become exit codes.

use clap::Args;
use tracing::info;

use super::CliError;
use crate::config::Config;
use crate::daemon::{DaemonError, DaemonOptions};

/// Options of `mikro-sync worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Do not run the periodic ERP → web sync in this process (another instance does it, or
    /// it is not wanted).
    #[arg(long)]
    pub no_erp_sync: bool,
    /// Poll only (no LISTEN). A transaction pooler is still refused: the worker needs a session.
    #[arg(long)]
    pub poll_only: bool,
}

impl From<DaemonError> for CliError {
    fn from(e: DaemonError) -> Self {
        match e {
            DaemonError::Config(e) => CliError::Config(e),
            DaemonError::Pool(e) => CliError::Pool(e),
            DaemonError::Connect(e) => CliError::Connect(e),
            DaemonError::Refused(e) => CliError::Unsupported(e.0),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(cfg: &Config, args: WorkerArgs) -> Result<(), CliError> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Failed(format!("cannot install the SIGTERM handler: {e}")))?;
    let signalled = async move {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM: finishing in-flight documents, then stopping"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT: finishing in-flight documents, then stopping"),
        }
    };
    let opts = DaemonOptions {
        erp_sync: !args.no_erp_sync,
        poll_only: args.poll_only,
        ..DaemonOptions::default()
    };
    crate::daemon::run(cfg, opts, signalled).await?;
    Ok(())
}
