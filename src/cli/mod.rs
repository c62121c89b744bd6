//! The `mikro-sync` command line (clap derive): one module per subcommand.
//!
//! Why one binary with subcommands: operators of the old tool ran several npm scripts
//! (`setup-web-to-erp-triggers`, `sync-queue-worker`, `sync-bidirectional`); here each is a
//! subcommand with its own `--help`, all reading the same configuration.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError, LogFormat};

pub mod config_cmd;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
pub mod retry_failed;
pub mod setup;
pub mod status;
pub mod sync;
pub mod worker;

/// mikro-sync keeps a web shop's PostgreSQL database and a Mikro ERP (SQL Server) in step:
/// sales and collections flow web → Mikro the moment they are written, master data (customers,
/// products, prices, barcodes, banks, cash boxes) flows Mikro → web.
///
/// Configuration comes from the environment, a `.env` file in the working directory (the old
/// Node tool's names work unchanged) and an optional TOML file; see docs/configuration.md or
/// `mikro-sync config --list`.
#[derive(Debug, Parser)]
#[command(name = "mikro-sync", version, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file (lowest precedence: `.env` and the environment override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Environment file to read instead of `./.env`.
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Log format on stdout (overrides MIKRO_SYNC_LOG_FORMAT).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Log level or tracing filter (overrides LOG_LEVEL), e.g. `debug` or `info,mikro_sync=trace`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install or upgrade mikro-sync's objects: in the web database (queue, mapping tables,
    /// triggers; adopts the old tool's sync_queue), or with --erp the ledger table in Mikro.
    Setup(setup::SetupArgs),
    /// Run the daemon: post web sales and collections into Mikro as they are written, sync
    /// master data ERP → web on an interval, serve metrics if configured. Stops cleanly on
    /// SIGTERM/SIGINT.
    Worker(worker::WorkerArgs),
    /// Import master data ERP → web once (all entities or one), then print a summary.
    Sync(sync::SyncArgs),
    /// ERP → web once, then drain the pending web → ERP documents, and report both (the old
    /// tool's `npm run sync-bidirectional`).
    SyncBidirectional(sync::BidiArgs),
    /// Show the queue: counts by status and type, oldest pending age, recent errors grouped,
    /// whether a worker's listener is connected.
    Status(status::StatusArgs),
    /// Put failed documents back in the queue (all, by queue id, or by type) so the worker
    /// retries them now.
    RetryFailed(retry_failed::RetryArgs),
    /// Check connectivity, TLS, triggers, mappings, the ERP ledger table and clocks; print what
    /// to do for each problem. Exit code 1 if a check fails.
    Doctor(doctor::DoctorArgs),
    /// Print the effective configuration with secrets masked (or --list every setting).
    Config(config_cmd::ConfigArgs),
    /// Show it working: a throwaway PostgreSQL and the Mikro emulator, setup, master data import,
    /// the worker, a realistic mix of sales and collections, a table of what was posted.
    /// (Built with `--features demo`, as `.ci/demo` does; release builds leave the emulator out.)
    #[cfg(feature = "demo")]
    Demo(demo::DemoArgs),
}

/// Errors a subcommand ends with; `main` prints them and exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Configuration missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A pool could not be built.
    #[error(transparent)]
    Pool(#[from] crate::db::PoolError),
    /// A dedicated connection could not be opened.
    #[error(transparent)]
    Connect(#[from] crate::db::WebConnectError),
    /// A web database statement failed.
    #[error("web database: {0}")]
    Web(String),
    /// An ERP statement failed.
    #[error("Mikro database: {0}")]
    Erp(String),
    /// The feature's backend is not in this build yet.
    #[error("`{0}` is not available yet in this build")]
    NotAvailable(&'static str),
    /// Logging could not be set up.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The environment cannot be supported as configured (e.g. a transaction pooler); exit 2.
    #[error("{0}")]
    Unsupported(String),
    /// A check or run failed; the details were already printed.
    #[error("{0}")]
    Failed(String),
}

impl From<crate::status::StatusError> for CliError {
    fn from(e: crate::status::StatusError) -> Self {
        match e {
            crate::status::StatusError::NoQueue => CliError::Failed(e.to_string()),
            crate::status::StatusError::Web(e) => e.into(),
        }
    }
}

impl From<crate::pooler::Refused> for CliError {
    fn from(e: crate::pooler::Refused) -> Self {
        CliError::Unsupported(e.0)
    }
}

impl From<tokio_postgres::Error> for CliError {
    fn from(e: tokio_postgres::Error) -> Self {
        CliError::Web(crate::db::pg_error_text(&e))
    }
}

impl From<deadpool_postgres::PoolError> for CliError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CliError::Web(format!(
            "cannot get a connection: {}",
            crate::db::pool_error_text(&e)
        ))
    }
}

impl From<tiberius::error::Error> for CliError {
    fn from(e: tiberius::error::Error) -> Self {
        CliError::Erp(e.to_string())
    }
}

impl Cli {
    /// Loads the configuration for this invocation (`--env-file`, `--config`, overrides).
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        if let Some(p) = &self.env_file {
            // Explicit file: values go into the process environment (not overriding it).
            dotenvy::from_path(p).map_err(|e| ConfigError::File {
                path: p.clone(),
                message: e.to_string(),
            })?;
        }
        let mut cfg = Config::load(self.config.as_deref())?;
        if let Some(f) = self.log_format {
            cfg.log_format = match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            };
        }
        if let Some(l) = &self.log_level {
            cfg.log_level = l.clone();
        }
        Ok(cfg)
    }
}

/// Runs the parsed command with the loaded configuration.
pub async fn run(cli: Cli, cfg: Config) -> Result<(), CliError> {
    match cli.command {
        Command::Setup(a) => setup::run(&cfg, a).await,
        Command::Worker(a) => worker::run(&cfg, a).await,
        Command::Sync(a) => sync::run(&cfg, a).await,
        Command::SyncBidirectional(a) => sync::run_bidirectional(&cfg, a).await,
        Command::Status(a) => status::run(&cfg, a).await,
        Command::RetryFailed(a) => retry_failed::run(&cfg, a).await,
        Command::Doctor(a) => doctor::run(&cfg, a).await,
        Command::Config(a) => config_cmd::run(&cfg, a),
        #[cfg(feature = "demo")]
        Command::Demo(a) => demo::run(&cfg, a).await,
    }
}

/// Opens one web connection for a one-off command, driving it on a background task.
pub async fn web_client(cfg: &Config) -> Result<tokio_postgres::Client, CliError> {
    let (client, conn) = crate::db::connect_web(cfg.web()?).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "web connection ended");
        }
    });
    Ok(client)
}
