//! ERP → web: incremental master-data sync from Mikro (SQL Server) into the web shop's PostgreSQL.
//!
//! Why this module exists: the web shop sells what Mikro knows (customers, products, price lists,
//! prices, barcodes, banks, cash boxes). The old tool lost rows (watermark taken from the client
//! clock even after a failed run, rows changed during a run falling in the gap, passive products
//! and zero prices never reaching the web, duplicate keys in one batch breaking the upsert) and was
//! slow. This module is built so that none of that can happen:
//!
//! * **Watermark = what was applied.** Each entity is read in pages ordered by
//!   `(xxx_lastup_date, xxx_RECno)`. A page is upserted and the watermark (highest pair in the
//!   page) is written **in the same PostgreSQL transaction**, so a failed run leaves the watermark
//!   at the last committed page and the next run continues from there (`watermark`).
//! * **Overlap on every run, full re-read as the safety net.** Rows can become visible after
//!   rows with later stamps (Mikro stamps `lastup_date` when it writes and commits later; its
//!   clients' clocks differ from this host's). Every incremental run re-reads from
//!   `min(last stamp, checked_until) − overlap` (`MIKRO_SYNC_ERP_SYNC_OVERLAP`, 5 min), where
//!   `checked_until` is when the previous run started reading; upserts skip unchanged rows, so
//!   this costs reading the rows of that window again. Every `MIKRO_SYNC_ERP_SYNC_FULL_EVERY`
//!   (24 h) a run also re-reads each entity in full after its incremental pass; rows that
//!   changes are ones the incremental runs missed: counted (`corrected`) and logged as a WARN.
//! * **Exact datetime comparison.** Mikro's `datetime` has 1/300 s ticks; page anchors are sent
//!   back to SQL Server as the same legacy `datetime` value that was read (days + ticks), never as
//!   a rounded `datetime2`, so `lastup = @anchor` is exact and paging cannot loop or skip.
//! * **Set-based upserts** ([`upsert`]): one `UPDATE … FROM unnest(…)` + one `INSERT … SELECT`
//!   per page inside a writable CTE, keys deduplicated in the page (last write wins), rows that
//!   did not change are not touched. The session sets `mikro_sync.origin = 'erp'` so the web→ERP
//!   triggers never enqueue what this module writes; rows carry `kaynak = 'erp'` where the table
//!   has that column. Nothing here deletes queued web edits.
//! * **Bad rows do not stop a page**: a row that cannot be applied (bad value, barcode or price for
//!   an unknown stock) is reported with its key and reason, recorded in a retry list
//!   (`int_erp_sync_retry`) and re-read by RECno on every following run until it applies or
//!   disappears from Mikro. The watermark may pass it: the retry list, not the watermark, keeps
//!   it from being lost.
//! * **Deletes** in Mikro are found by periodic key comparison (`deletes`); no triggers in Mikro.
//! * **One runner** across processes: a PostgreSQL advisory lock ([`lock`]).
//!
//! The field mapping of each entity lives in one file under `entities`.
//!
//! Operators: `SELECT * FROM int_erp_sync_watermark` shows how far each entity got;
//! `SELECT entity, erp_key, reason, attempts FROM int_erp_sync_retry` lists Mikro rows that do
//! not apply and why; `mikro-sync sync --full` (or deleting an entity's watermark row) re-reads
//! everything, which is always safe because every write is an idempotent upsert.

#![warn(missing_docs)]

pub(crate) mod deletes;
pub(crate) mod entities;
pub mod lock;
pub mod read;
pub(crate) mod report;
pub(crate) mod types;
pub mod upsert;
pub(crate) mod watermark;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::db::{ErpPool, WebPool};

pub use report::{EntityReport, RejectedRow, SyncReport};
pub use types::{DeletePolicy, Entity, ErpEntity, UnknownEntity};

/// A progress notification, for a terminal progress bar or metrics.
///
/// Why a callback and not a channel: the CLI wants to redraw a bar, the worker wants a counter;
/// both are a few lines given a closure, and the sync stays independent of either.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Entity being synced.
    pub entity: Entity,
    /// Rows read from Mikro so far for this entity in this run.
    pub read: u64,
    /// Total rows to read when known (full runs count first), for a bar with an end.
    pub total: Option<u64>,
    /// True on the last notification for this entity.
    pub done: bool,
}

/// A progress callback; see [`Progress`].
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How one run behaves. [`SyncOptions::default`] is what the worker uses.
#[derive(Clone)]
pub struct SyncOptions {
    /// Entities to sync; empty means all, always run in [`Entity::ALL`] order.
    pub entities: Vec<Entity>,
    /// Re-read everything from the beginning (ignores the watermark) and compare keys for
    /// deletes. Use after restoring a database or changing the mapping.
    pub full: bool,
    /// Rows per page read from Mikro and upserted in one PostgreSQL transaction. Large pages
    /// (thousands) amortise round trips; the watermark advances once per page.
    pub page_size: u32,
    /// What to do with web rows whose Mikro row was deleted.
    pub delete_policy: DeletePolicy,
    /// How often incremental runs compare keys to find deletes (full runs always do).
    /// `Duration::ZERO` compares on every run.
    pub delete_check_every: Duration,
    /// How far back every incremental run re-reads: from `min(last stamp, checked_until) −
    /// overlap`, to catch rows committed after rows with later stamps (long Mikro transactions)
    /// and clock skew between Mikro's clients and this host. Upserts are idempotent and skip
    /// unchanged rows, so a larger overlap only costs re-reading the rows of that window.
    pub overlap: Duration,
    /// How often an incremental run also re-reads each entity in full (the safety net for rows
    /// that slipped past the overlap anyway); `None` = never. Rows that full re-read changes
    /// were missed: they are counted in [`EntityReport::corrected`] and logged as a warning.
    pub full_every: Option<Duration>,
    /// The company's time zone. Mikro stamps rows with the company's local wall-clock time
    /// (no zone); the run's "now" in this zone decides when the overlap window has passed.
    pub tz: chrono_tz::Tz,
    /// Optional progress callback.
    pub progress: Option<ProgressFn>,
}

impl Default for SyncOptions {
    /// The options of the default configuration.
    fn default() -> Self {
        SyncOptions::from_config(&Config::default())
    }
}

impl SyncOptions {
    /// An incremental run of every entity as the configuration sets it (time zone, overlap,
    /// full re-read interval); page size and delete handling are not settings.
    pub fn from_config(cfg: &Config) -> SyncOptions {
        SyncOptions {
            entities: Vec::new(),
            full: false,
            page_size: 5000,
            delete_policy: DeletePolicy::Deactivate,
            delete_check_every: Duration::from_secs(600),
            overlap: cfg.erp_sync_overlap,
            full_every: cfg.erp_sync_full_every,
            tz: cfg.posting.tz,
            progress: None,
        }
    }
}

impl fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncOptions")
            .field("entities", &self.entities)
            .field("full", &self.full)
            .field("page_size", &self.page_size)
            .field("delete_policy", &self.delete_policy)
            .field("delete_check_every", &self.delete_check_every)
            .field("overlap", &self.overlap)
            .field("full_every", &self.full_every)
            .field("tz", &self.tz)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl SyncOptions {
    /// The entities this run covers, in dependency order.
    pub fn selected(&self) -> Vec<Entity> {
        Entity::ALL
            .into_iter()
            .filter(|e| self.entities.is_empty() || self.entities.contains(e))
            .collect()
    }
}

/// Why a run failed. A failed run leaves every watermark at its last committed page.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another process (or task) holds the sync lock; nothing was done. The worker treats this
    /// as "someone else is syncing", the CLI reports it.
    #[error("another mikro-sync instance is running the ERP → web sync (advisory lock held)")]
    Busy,
    /// The web database failed (connection, permission, or a statement that is not a per-row
    /// data problem).
    #[error("web database error during {context}: {source}")]
    Web {
        /// What was being done (names the entity or table).
        context: String,
        #[source]
        /// PostgreSQL's error.
        source: tokio_postgres::Error,
    },
    /// The web pool could not hand out a connection.
    #[error("web database pool: {0}")]
    WebPool(String),
    /// The ERP (SQL Server) failed.
    #[error("ERP database error during {context}: {source}")]
    Erp {
        /// What was being done (names the table).
        context: String,
        #[source]
        /// tiberius' error.
        source: tiberius::error::Error,
    },
    /// The ERP pool could not hand out a connection.
    #[error("ERP pool: {0}")]
    ErpPool(String),
    /// The web database lacks a table or column this module needs (setup not run, or a shop
    /// whose schema differs: adapt the entity file in `src/erp_sync/entities/`).
    #[error("web schema: {0}")]
    WebSchema(String),
    /// A Mikro table lacks a column this module reads, or its RECno / lastup column has a type
    /// that cannot be paged on (adapt the entity file in `src/erp_sync/entities/`).
    #[error("ERP schema: {0}")]
    ErpSchema(String),
}

impl SyncError {
    pub(crate) fn web(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| SyncError::Web { context, source }
    }
    pub(crate) fn erp(context: impl Into<String>) -> impl FnOnce(tiberius::error::Error) -> Self {
        let context = context.into();
        move |source| SyncError::Erp { context, source }
    }
}

/// Runs the ERP → web sync once for the selected entities, under the cross-process lock.
///
/// Returns [`SyncError::Busy`] without doing anything when another instance holds the lock.
/// Entities run one after the other; an entity that fails stops the run (its watermark stays
/// at the last committed page, earlier entities keep their progress).
///
/// Uses two web connections while it runs (one holds the advisory lock, one writes) and one
/// ERP connection, so the web pool needs at least two.
pub async fn run(
    web: &WebPool,
    erp: &ErpPool,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let lock = lock::SyncLock::try_acquire(web)
        .await?
        .ok_or(SyncError::Busy)?;
    let res = run_locked(web, erp, opts)
        .instrument(info_span!("erp_sync", full = opts.full))
        .await;
    lock.release().await;
    res
}

/// Runs the sync assuming the caller already holds the lock (or does not need one, e.g. a
/// single-process tool). Prefer [`run`].
pub async fn run_locked(
    web: &WebPool,
    erp: &ErpPool,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let mut report = SyncReport::default();
    let mut erp_conn = erp
        .get()
        .await
        .map_err(|e| SyncError::ErpPool(e.to_string()))?;
    let server_now = read::company_now(opts.tz);
    let mut ctx = upsert::Ctx::new(web).await?;
    ctx.expect(&opts.selected());
    let state = watermark::load_all(ctx.client()).await?;
    for entity in opts.selected() {
        let er = sync_entity(&mut ctx, &mut erp_conn, entity, opts, server_now, &state)
            .instrument(info_span!("entity", entity = entity.name()))
            .await?;
        info!(
            entity = entity.name(),
            read = er.read,
            inserted = er.inserted,
            updated = er.updated,
            deactivated = er.deactivated,
            rejected = er.rejected,
            seconds = er.seconds,
            "ERP → web entity synced"
        );
        report.push(er);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn sync_entity(
    ctx: &mut upsert::Ctx,
    erp: &mut crate::db::ErpClient,
    entity: Entity,
    opts: &SyncOptions,
    server_now: chrono::NaiveDateTime,
    state: &watermark::State,
) -> Result<EntityReport, SyncError> {
    let t0 = Instant::now();
    let spec = entity.spec();
    let mut er = EntityReport::new(entity);
    let wm = state.watermarks.get(entity.name()).cloned();
    let start = watermark::start_anchor(wm.as_ref(), opts.full, server_now, opts.overlap);
    debug!(?start, "incremental start anchor");
    // The periodic full re-read runs after the incremental pass of the same run, so whatever
    // it still changes is exactly what the incremental runs missed.
    let resync = !opts.full
        && !matches!(start, read::Anchor::Start)
        && opts
            .full_every
            .is_some_and(|every| watermark::full_due(wm.as_ref(), every, chrono::Utc::now()));

    let total = if opts.full && opts.progress.is_some() {
        read::count(erp, spec).await.ok()
    } else {
        None
    };
    // The time this run started reading (company clock of this host): the next run re-reads
    // from min(last stamp, this) − overlap.
    let checked_until = server_now;

    let due = opts.full
        || resync
        || watermark::delete_check_due(wm.as_ref(), opts.delete_check_every, chrono::Utc::now());
    if due {
        upsert::drop_dangling_mappings(ctx, spec).await?;
    }

    let mut full_keys = read_pages(
        ctx,
        erp,
        spec,
        start.clone(),
        opts.full,
        checked_until,
        &mut er,
        opts,
        total,
    )
    .await?;
    if resync {
        let mut again = EntityReport::new(entity);
        full_keys = read_pages(
            ctx,
            erp,
            spec,
            read::Anchor::Start,
            true,
            checked_until,
            &mut again,
            opts,
            None,
        )
        .await?;
        er.corrected = again.inserted + again.updated;
        er.read += again.read;
        er.inserted += again.inserted;
        er.updated += again.updated;
        er.skipped += again.skipped;
        er.retried += again.retried;
        er.rejected += again.rejected;
        for r in again.rejects {
            if !er.rejects.iter().any(|x| x.recno == r.recno) {
                er.rejects.push(r);
            }
        }
        if er.corrected > 0 {
            warn!(
                entity = entity.name(),
                corrected = er.corrected,
                overlap_s = opts.overlap.as_secs(),
                "the periodic full re-read corrected rows the incremental runs had missed; \
                 raise MIKRO_SYNC_ERP_SYNC_OVERLAP above Mikro's longest transaction and clock skew \
                 (`mikro-sync doctor` shows the skew)"
            );
        } else {
            info!(
                entity = entity.name(),
                "periodic full re-read: nothing missed"
            );
        }
    }
    if opts.full || resync || matches!(start, read::Anchor::Start) {
        watermark::mark_full_read(ctx.client(), entity).await?;
    }
    // Nothing read: still record that everything up to `checked_until` has been seen.
    if er.read == 0 {
        watermark::touch(ctx.client(), entity, checked_until, wm.as_ref()).await?;
    }

    // Retry list: rows that failed before (or in this run) are re-read by RECno.
    if er.rejected > 0 || state.retries.get(entity.name()).copied().unwrap_or(0) > 0 {
        let retry = upsert::retry_pending(ctx, erp, spec).await?;
        if er.rejected > 0 {
            // Rows rejected moments ago fail again the same way: report them once.
            er.rejects.clear();
            er.rejected = 0;
        }
        er.absorb(&retry, 0);
    }

    // Deletes: periodic key comparison.
    if due {
        let d = deletes::reconcile(ctx, erp, spec, opts.delete_policy, full_keys).await?;
        er.deactivated += d.deactivated;
        er.deleted += d.deleted;
        er.missing += d.missing;
        watermark::mark_delete_check(ctx.client(), entity).await?;
    }
    er.seconds = t0.elapsed().as_secs_f64();
    if let Some(cb) = &opts.progress {
        cb(&Progress {
            entity,
            read: er.read,
            total,
            done: true,
        });
    }
    if !er.rejects.is_empty() {
        warn!(
            entity = entity.name(),
            rejected = er.rejects.len(),
            "some Mikro rows could not be applied; they are retried on the next run"
        );
    }
    Ok(er)
}

/// Reads an entity from `start` to the end in pages and applies them; with `collect_keys`
/// (a read from the start) answers every key read, the key set for delete detection.
#[allow(clippy::too_many_arguments)]
async fn read_pages(
    ctx: &mut upsert::Ctx,
    erp: &mut crate::db::ErpClient,
    spec: &'static types::Spec,
    start: read::Anchor,
    collect_keys: bool,
    checked_until: chrono::NaiveDateTime,
    er: &mut EntityReport,
    opts: &SyncOptions,
    total: Option<u64>,
) -> Result<Option<Vec<Vec<read::Val>>>, SyncError> {
    let entity = spec.entity;
    let mut full_keys: Option<Vec<Vec<read::Val>>> =
        if collect_keys { Some(Vec::new()) } else { None };
    // Pages: read page N+1 from Mikro while page N is written to PostgreSQL.
    let page_size = opts.page_size.max(1);
    let mut anchor = start;
    let mut next = Some(read::read_page(erp, spec, &anchor, page_size).await?);
    while let Some(page) = next.take() {
        let n = page.rows.len() as u32 + page.bad.len() as u32;
        if n == 0 {
            break;
        }
        if let Some(last) = page.last {
            // Paging must move forward; if the server compared the anchor inexactly (a
            // datetime rounded on the way), stop instead of reading the same page forever.
            if let read::Anchor::After((s, r)) = &anchor {
                if (last.0.naive(), last.1) <= (s.naive(), *r) {
                    return Err(SyncError::ErpSchema(format!(
                        "{}: paging did not advance past ({}, RECno {r}); the server's datetime comparison is not exact",
                        spec.table,
                        s.naive()
                    )));
                }
            }
            anchor = read::Anchor::After(last);
        }
        let more = n >= page_size;
        let (applied, prefetched) = if more {
            let (a, p) = futures::join!(
                upsert::apply_page(ctx, spec, &page, Some(checked_until)),
                read::read_page(erp, spec, &anchor, page_size)
            );
            (a, Some(p))
        } else {
            (
                upsert::apply_page(ctx, spec, &page, Some(checked_until)).await,
                None,
            )
        };
        let outcome = applied?;
        er.absorb(&outcome, n as u64);
        if let Some(keys) = full_keys.as_mut() {
            keys.extend(page.rows.iter().map(|r| spec.key_of(&r.vals)));
            keys.extend(page.bad.iter().map(|b| spec.key_of(&b.vals)));
        }
        if let Some(cb) = &opts.progress {
            cb(&Progress {
                entity,
                read: er.read,
                total,
                done: false,
            });
        }
        next = match prefetched {
            Some(p) => Some(p?),
            None => None,
        };
    }
    Ok(full_keys)
}

/// Runs [`run`] every `every` until `shutdown` completes: the worker's periodic ERP → web sync.
///
/// Why this shape: the loop is sequential, so a run never overlaps the previous one in this
/// process (a slow run delays the next tick instead of stacking), and each run takes the
/// advisory lock, so two daemons never sync at the same time (the loser logs and waits for the
/// next tick). Errors are logged and the loop continues; `on_report` receives every outcome
/// (for metrics or status), including [`SyncError::Busy`].
pub async fn run_interval<F, S>(
    web: WebPool,
    erp: ErpPool,
    opts: SyncOptions,
    every: Duration,
    mut on_report: F,
    shutdown: S,
) where
    F: FnMut(&Result<SyncReport, SyncError>) + Send,
    S: Future<Output = ()> + Send,
{
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let res = tokio::select! {
            _ = &mut shutdown => break,
            r = run(&web, &erp, &opts) => r,
        };
        match &res {
            Ok(r) => debug!(rows = r.total_read(), "interval ERP → web sync done"),
            Err(SyncError::Busy) => {
                debug!("ERP → web sync skipped: another instance holds the lock")
            }
            Err(e) => warn!(error = %e, "interval ERP → web sync failed; retrying next tick"),
        }
        on_report(&res);
    }
}
