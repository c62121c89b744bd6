//! The daemon's composition point: [`run`] builds the pools, the web → ERP worker, the periodic
//! ERP → web sync, the health loop (gauges, `READY=1`), the systemd watchdog feeder and the
//! metrics/health listener, runs them until `shutdown` completes, and stops them in order.
//!
//! Signals stay at the edge (`cli::worker` turns SIGTERM/SIGINT into the `shutdown` future and
//! errors into exit codes), so `demo` and tests run the very same daemon with their own trigger.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::db::{ErpPool, PoolError, WebConnectError, WebPool};
use crate::queue::{
    Metrics as QueueMetrics, MikroSink, PgListenConnector, Worker, WorkerOptions, WorkerReport,
};
use crate::shutdown::ShutdownController;

/// How this process runs the daemon.
#[derive(Debug, Default)]
pub struct DaemonOptions {
    /// Run the periodic ERP → web sync here (when the configuration sets an interval).
    pub erp_sync: bool,
    /// Poll only (no LISTEN connection).
    pub poll_only: bool,
    /// Open both pools up to the worker's concurrency before claiming, so the first documents
    /// do not pay for TLS handshakes (the demo's latency table wants steady-state figures).
    pub warm_pools: bool,
    /// Told once the worker listens for new documents (with `READY=1` to systemd).
    pub ready: Option<oneshot::Sender<()>>,
}

/// Why the daemon did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Configuration missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A pool could not be built.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The LISTEN connector could not be built.
    #[error(transparent)]
    Connect(#[from] WebConnectError),
    /// The web database is behind a transaction pooler.
    #[error(transparent)]
    Refused(#[from] crate::pooler::Refused),
    /// The metrics/health listener could not bind.
    #[error("cannot listen on {addr} (MIKRO_SYNC_METRICS_LISTEN): {source}")]
    Listen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The watchdog thread could not start.
    #[error("cannot start the watchdog thread: {0}")]
    Watchdog(std::io::Error),
    /// The worker stopped with an error.
    #[error("worker failed: {0}")]
    Worker(String),
    /// The worker task panicked or was cancelled.
    #[error("worker task ended abnormally: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Runs the daemon until `shutdown` completes (or the worker ends by itself, which is an
/// error), then stops claiming, lets in-flight documents finish and stops every part.
pub async fn run(
    cfg: &Config,
    opts: DaemonOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<WorkerReport, DaemonError> {
    let wcfg = cfg.web()?;
    let ecfg = cfg.erp()?;
    // Before any LISTEN, SET, lock or prepared statement could reach a shared server connection.
    crate::pooler::require_session(wcfg).await?;
    let web = crate::db::web_pool_from_config(wcfg)?;
    let erp = crate::db::erp_pool_from_config(ecfg).await?;
    let tls = crate::db::pg_tls_connector(&wcfg.tls).map_err(WebConnectError::Tls)?;
    let listen = Arc::new(PgListenConnector::new(wcfg.pg_config(), tls));
    let wopts = WorkerOptions::from_settings(&cfg.worker);
    let qm = wopts.metrics.clone();
    crate::metrics::attach_worker(qm.clone());
    info!(
        worker = %wopts.name,
        concurrency = wopts.concurrency,
        web = %wcfg.display_masked(),
        erp = %ecfg.display_masked(),
        "mikro-sync worker starting"
    );
    if opts.warm_pools {
        let n = wopts.concurrency;
        let webs = futures::future::join_all((0..n).map(|_| web.get())).await;
        let erps = futures::future::join_all((0..n).map(|_| erp.get())).await;
        drop((webs, erps));
    }

    let controller = ShutdownController::new();
    let http = match cfg.metrics_listen {
        Some(addr) => Some(
            crate::http::start(addr)
                .await
                .map_err(|source| DaemonError::Listen { addr, source })?,
        ),
        None => None,
    };
    let sink = MikroSink {
        web: web.clone(),
        erp: erp.clone(),
        cfg: cfg.posting_config(),
    };
    let worker = if opts.poll_only {
        Worker::new_poll_only(web.clone(), sink, wopts)
    } else {
        Worker::new(web.clone(), listen, sink, wopts)
    };
    let worker_shutdown = controller.subscribe();
    let mut worker_task = tokio::spawn(async move { worker.run(worker_shutdown).await });
    let sync_task = match (cfg.erp_sync_interval, opts.erp_sync) {
        (Some(every), true) => Some(spawn_erp_sync(cfg, &web, &erp, every, &controller)),
        _ => {
            info!("periodic ERP → web sync off in this process");
            None
        }
    };
    // The watchdog, fed while the worker loop progresses: pinged every third of WatchdogSec,
    // no longer once the loop made no progress for half of it.
    let watchdog = if let Some(period) = sd_notify::watchdog_enabled() {
        Some(
            crate::queue::watchdog::spawn_systemd_watchdog_feeder(
                qm.clone(),
                (period / 3).min(Duration::from_secs(10)),
                period / 2,
            )
            .map_err(DaemonError::Watchdog)?,
        )
    } else {
        None
    };
    let health_task = spawn_health(
        web.clone(),
        erp.clone(),
        qm,
        opts.poll_only,
        opts.ready,
        &controller,
    );

    tokio::pin!(shutdown);
    let early = tokio::select! {
        _ = &mut shutdown => None,
        r = &mut worker_task => Some(r),
    };
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    controller.trigger();
    let worker_result = match early {
        Some(r) => r,
        None => worker_task.await,
    };
    if let Some(t) = sync_task {
        let _ = t.await;
    }
    let _ = health_task.await;
    if let Some(w) = watchdog {
        w.stop();
    }
    if let Some(h) = http {
        h.shutdown().await;
    }
    let mut controller = controller;
    controller.wait().await;
    match worker_result? {
        Ok(report) => {
            info!(
                claimed = report.claimed,
                posted = report.posted,
                failed = report.failed,
                retries = report.retries,
                "worker stopped cleanly"
            );
            Ok(report)
        }
        Err(e) => {
            error!(error = %e, "worker stopped with an error");
            let hint = if e.is_missing_queue() {
                " — run `mikro-sync setup` first"
            } else {
                ""
            };
            Err(DaemonError::Worker(format!(
                "{}{hint}",
                crate::db::error_chain(&e)
            )))
        }
    }
}

/// The periodic ERP → web sync, counting each run's outcome in the metrics.
fn spawn_erp_sync(
    cfg: &Config,
    web: &WebPool,
    erp: &ErpPool,
    every: Duration,
    controller: &ShutdownController,
) -> tokio::task::JoinHandle<()> {
    let mut sd = controller.subscribe();
    let opts = crate::erp_sync::SyncOptions::from_config(cfg);
    let (w, e) = (web.clone(), erp.clone());
    tokio::spawn(async move {
        crate::erp_sync::run_interval(
            w,
            e,
            opts,
            every,
            |res| {
                let m = crate::metrics::global();
                match res {
                    Ok(r) => {
                        m.erp_sync_run("ok");
                        for er in &r.entities {
                            let n = er.entity.name();
                            m.erp_rows(n, "inserted", er.inserted);
                            m.erp_rows(n, "updated", er.updated);
                            m.erp_rows(n, "deactivated", er.deactivated);
                            m.erp_rows(n, "deleted", er.deleted);
                            m.erp_rows(n, "corrected", er.corrected);
                            m.erp_rows(n, "rejected", er.rejected);
                        }
                    }
                    Err(crate::erp_sync::SyncError::Busy) => m.erp_sync_run("busy"),
                    Err(_) => m.erp_sync_run("error"),
                }
            },
            async move { sd.recv().await },
        )
        .await
    })
}

/// The health loop: gauges every 10 s; `READY=1` (and `ready`) once the listener is up.
fn spawn_health(
    web: WebPool,
    erp: ErpPool,
    qm: Arc<QueueMetrics>,
    poll_only: bool,
    mut ready_tx: Option<oneshot::Sender<()>>,
    controller: &ShutdownController,
) -> tokio::task::JoinHandle<()> {
    let health_every = Duration::from_secs(10);
    let mut sd = controller.subscribe();
    tokio::spawn(async move {
        let mut ready = false;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut last_round = tokio::time::Instant::now() - health_every;
        loop {
            tokio::select! {
                _ = sd.recv() => break,
                _ = tick.tick() => {}
            }
            if !ready && (poll_only || qm.listener_up.load(Ordering::Relaxed) == 1) {
                ready = true;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
                info!("ready: listening for new documents");
            }
            if last_round.elapsed() >= health_every {
                last_round = tokio::time::Instant::now();
                health_round(&web, &erp, &qm).await;
            }
        }
    })
}

/// One health check round: pools answer, queue depth, listener state → gauges.
async fn health_round(web: &WebPool, erp: &ErpPool, qm: &QueueMetrics) {
    let m = crate::metrics::global();
    let web_ok = match tokio::time::timeout(Duration::from_secs(5), web.get()).await {
        Ok(Ok(client)) => match crate::queue::stats(&client).await {
            Ok(st) => {
                for (s, n) in [
                    ("pending", st.pending),
                    ("processing", st.processing),
                    ("completed", st.completed),
                    ("failed", st.failed),
                    ("diverged", st.diverged),
                ] {
                    m.queue_depth(s, n);
                }
                m.oldest_pending(
                    st.oldest_pending_age
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                );
                true
            }
            Err(e) => {
                warn!(error = %e, "health check: queue statistics failed");
                client.simple_query("SELECT 1").await.is_ok()
            }
        },
        _ => false,
    };
    let erp_ok = match tokio::time::timeout(Duration::from_secs(5), erp.get()).await {
        Ok(Ok(mut c)) => match c.simple_query("SELECT 1").await {
            Ok(s) => s.into_results().await.is_ok(),
            Err(_) => false,
        },
        _ => false,
    };
    m.pool_up("web", web_ok);
    m.pool_up("erp", erp_ok);
    m.listener_up(qm.listener_up.load(Ordering::Relaxed) == 1);
}
