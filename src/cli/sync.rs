//! `mikro-sync sync` and `mikro-sync sync-bidirectional`: ERP → web master data on demand.

use clap::Args;

use super::CliError;
use crate::config::Config;

/// Options of `mikro-sync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only this entity (cari, stok, fiyat_tanim, fiyat, barkod, banka, kasa); default all.
    #[arg(long)]
    pub entity: Option<String>,
    /// Re-read everything instead of only rows changed since the last run.
    #[arg(long)]
    pub full: bool,
}

/// Options of `mikro-sync sync-bidirectional`.
#[derive(Debug, Args)]
pub struct BidiArgs {
    /// Re-read all master data instead of only changes.
    #[arg(long)]
    pub full: bool,
}

/// Runs ERP → web once.
pub async fn run(cfg: &Config, args: SyncArgs) -> Result<(), CliError> {
    let _ = (cfg, args);
    Err(CliError::NotAvailable("sync"))
}

/// Runs ERP → web, then drains pending web → ERP documents.
pub async fn run_bidirectional(cfg: &Config, args: BidiArgs) -> Result<(), CliError> {
    let _ = (cfg, args);
    Err(CliError::NotAvailable("sync-bidirectional"))
}
