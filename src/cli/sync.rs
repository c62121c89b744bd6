//! `mikro-sync sync` and `mikro-sync sync-bidirectional`: ERP → web master data on demand.

use std::io::IsTerminal;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use crate::config::Config;
use crate::erp_sync::{Entity, Progress, SyncOptions};

/// Options of `mikro-sync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Only this entity (cari, stok, fiyat_tanim, fiyat, barkod, banka, kasa); repeatable; default all.
    #[arg(long, value_parser = parse_entity)]
    pub entity: Vec<Entity>,
    /// Re-read everything instead of only rows changed since the last run (also looks for
    /// rows deleted in Mikro).
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

fn parse_entity(s: &str) -> Result<Entity, String> {
    s.parse::<Entity>().map_err(|e| e.to_string())
}

/// The sync options from the configuration, with a terminal progress line when stdout is a TTY.
pub fn sync_options(cfg: &Config, entities: Vec<Entity>, full: bool) -> SyncOptions {
    let progress: Option<crate::erp_sync::ProgressFn> = if std::io::stderr().is_terminal() {
        Some(Arc::new(|p: &Progress| {
            let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
            if p.done {
                eprintln!(
                    "\r  {:<12} {}{} rows read ✓          ",
                    p.entity.name(),
                    p.read,
                    total
                );
            } else {
                eprint!(
                    "\r  {:<12} {}{} rows read …",
                    p.entity.name(),
                    p.read,
                    total
                );
            }
        }))
    } else {
        None
    };
    SyncOptions {
        entities,
        full,
        progress,
        ..SyncOptions::from_config(cfg)
    }
}

/// Runs ERP → web once and prints the summary table.
pub async fn run(cfg: &Config, args: SyncArgs) -> Result<(), CliError> {
    crate::pooler::require_session(cfg.web()?).await?;
    let web = crate::db::web_pool_from_config(cfg.web()?)?;
    let erp = crate::db::erp_pool_from_config(cfg.erp()?).await?;
    let opts = sync_options(cfg, args.entity, args.full);
    let report = crate::erp_sync::run(&web, &erp, &opts).await.map_err(|e| {
        CliError::Failed(format!(
            "ERP → web sync failed: {}",
            crate::db::error_chain(&e)
        ))
    })?;
    println!("ERP → web{}:", if args.full { " (full)" } else { "" });
    println!("{report}");
    Ok(())
}

/// Runs ERP → web, then drains pending web → ERP documents, and reports both.
pub async fn run_bidirectional(cfg: &Config, args: BidiArgs) -> Result<(), CliError> {
    crate::pooler::require_session(cfg.web()?).await?;
    let web = crate::db::web_pool_from_config(cfg.web()?)?;
    let erp = crate::db::erp_pool_from_config(cfg.erp()?).await?;
    let opts = sync_options(cfg, Vec::new(), args.full);
    let report = crate::erp_sync::run(&web, &erp, &opts).await.map_err(|e| {
        CliError::Failed(format!(
            "ERP → web sync failed: {}",
            crate::db::error_chain(&e)
        ))
    })?;
    println!("ERP → web{}:", if args.full { " (full)" } else { "" });
    println!("{report}");
    let opts = crate::queue::WorkerOptions::from_settings(&cfg.worker);
    let sink = crate::queue::executor::MikroSink {
        web: web.clone(),
        erp,
        cfg: cfg.posting_config(),
    };
    let worker = crate::queue::worker::Worker::new_poll_only(web.clone(), sink, opts);
    let r = worker.run_until_idle().await.map_err(|e| {
        CliError::Failed(format!(
            "web → ERP drain failed: {}",
            crate::db::error_chain(&e)
        ))
    })?;
    println!(
        "web → ERP: {} claimed, {} posted, {} failed, {} to retry later",
        r.claimed, r.posted, r.failed, r.retries
    );
    if r.failed > 0 {
        println!("See `mikro-sync status` for the failure messages.");
    }
    Ok(())
}
