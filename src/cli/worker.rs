//! `mikro-sync worker`: the daemon.
//!
//! Wires the parts together: the web pool and LISTEN connector (TLS as configured), the ERP
//! pool, the web → ERP worker, the periodic ERP → web sync, the optional metrics/health
//! listener, a health loop that refreshes the pool/queue gauges, the systemd watchdog fed by the
//! worker loop's progress (`queue::watchdog`), `READY=1` once the LISTEN connection is up, and
//! SIGTERM/SIGINT → graceful stop (stop claiming, finish in-flight documents, exit 0).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tracing::{error, info, warn};

use super::CliError;
use crate::config::Config;
use crate::db::{ErpPool, WebPool};
use crate::queue::{
    Metrics as QueueMetrics, MikroSink, PgListenConnector, RetryPolicy, Worker, WorkerOptions,
};
use crate::shutdown::ShutdownController;

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

/// The worker options from the configuration.
pub fn worker_options(cfg: &Config) -> WorkerOptions {
    let w = &cfg.worker;
    WorkerOptions {
        concurrency: w.concurrency,
        batch_size: w.batch_size,
        prefetch: w.prefetch,
        poll_interval: w.poll_interval,
        stats_interval: w.stats_interval,
        posting_timeout: w.posting_timeout,
        max_lease_expiries: w.max_lease_expiries,
        retry: RetryPolicy {
            initial_interval: w.backoff_initial,
            max_interval: w.backoff_max,
            transient_max_total: w.transient_retry_for,
            data_max_attempts: w.max_data_attempts,
            settle_window: w.settle_window,
            ..RetryPolicy::default()
        },
        ..WorkerOptions::default()
    }
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
                    m.set_gauge("mikro_sync_queue_depth", &[("status", s)], n as f64);
                }
                m.set_gauge(
                    "mikro_sync_queue_oldest_pending_seconds",
                    &[],
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
    m.set_gauge(
        "mikro_sync_pool_up",
        &[("pool", "web")],
        if web_ok { 1.0 } else { 0.0 },
    );
    m.set_gauge(
        "mikro_sync_pool_up",
        &[("pool", "erp")],
        if erp_ok { 1.0 } else { 0.0 },
    );
    m.listener_up(qm.listener_up.load(Ordering::Relaxed) == 1);
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(cfg: &Config, args: WorkerArgs) -> Result<(), CliError> {
    let wcfg = cfg.web()?;
    let ecfg = cfg.erp()?;
    // Before any LISTEN, SET, lock or prepared statement could reach a shared server connection.
    crate::pooler::require_session(wcfg).await?;
    let web = crate::db::web_pool_from_config(wcfg)?;
    let erp = crate::db::erp_pool_from_config(ecfg).await?;
    let tls = crate::db::pg_tls_connector(&wcfg.tls)
        .map_err(|e| CliError::Connect(crate::db::WebConnectError::Tls(e)))?;
    let listen = Arc::new(PgListenConnector::new(wcfg.pg_config(), tls));
    let opts = worker_options(cfg);
    let qm = opts.metrics.clone();
    crate::metrics::attach_worker(qm.clone());
    info!(
        worker = %opts.name,
        concurrency = opts.concurrency,
        web = %wcfg.display_masked(),
        erp = %ecfg.display_masked(),
        "mikro-sync worker starting"
    );

    let controller = ShutdownController::new();
    // Metrics/health listener.
    let http = match cfg.metrics_listen {
        Some(addr) => Some(crate::http::start(addr).await.map_err(|e| {
            CliError::Failed(format!(
                "cannot listen on {addr} (MIKRO_SYNC_METRICS_LISTEN): {e}"
            ))
        })?),
        None => None,
    };
    // The web → ERP worker.
    let sink = MikroSink {
        web: web.clone(),
        erp: erp.clone(),
        cfg: cfg.posting_config(),
    };
    let worker = if args.poll_only {
        Worker::new_poll_only(web.clone(), sink, opts)
    } else {
        Worker::new(web.clone(), listen, sink, opts)
    };
    let worker_shutdown = controller.subscribe();
    let mut worker_task = tokio::spawn(async move { worker.run(worker_shutdown).await });
    // The periodic ERP → web sync.
    let sync_task = match (cfg.erp_sync_interval, args.no_erp_sync) {
        (Some(every), false) => {
            let mut sd = controller.subscribe();
            let opts = crate::erp_sync::SyncOptions {
                tz: cfg.posting.timezone,
                overlap: cfg.erp_sync_overlap,
                full_every: cfg.erp_sync_full_every,
                ..Default::default()
            };
            let (w, e) = (web.clone(), erp.clone());
            Some(tokio::spawn(async move {
                crate::erp_sync::run_interval(
                    w,
                    e,
                    opts,
                    every,
                    |res| {
                        let m = crate::metrics::global();
                        match res {
                            Ok(r) => {
                                m.inc("mikro_sync_erp_sync_runs_total", &[("result", "ok")]);
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
                            Err(crate::erp_sync::SyncError::Busy) => {
                                m.inc("mikro_sync_erp_sync_runs_total", &[("result", "busy")])
                            }
                            Err(_) => {
                                m.inc("mikro_sync_erp_sync_runs_total", &[("result", "error")])
                            }
                        }
                    },
                    async move { sd.recv().await },
                )
                .await
            }))
        }
        _ => {
            info!("periodic ERP → web sync off in this process");
            None
        }
    };
    // The watchdog, fed while the worker loop progresses: pinged every third of WatchdogSec,
    // no longer once the loop made no progress for half of it.
    let mut watchdog_usec = 0u64;
    let watchdog = if sd_notify::watchdog_enabled(false, &mut watchdog_usec) {
        let period = Duration::from_micros(watchdog_usec);
        Some(
            crate::queue::watchdog::spawn_systemd_watchdog_feeder(
                qm.clone(),
                (period / 3).min(Duration::from_secs(10)),
                period / 2,
            )
            .map_err(|e| CliError::Failed(format!("cannot start the watchdog thread: {e}")))?,
        )
    } else {
        None
    };
    // Health loop: gauges; READY=1 once the listener is up.
    let health_every = Duration::from_secs(10);
    let mut health_sd = controller.subscribe();
    let (hw, he, hq) = (web.clone(), erp.clone(), qm.clone());
    let poll_only = args.poll_only;
    let health_task = tokio::spawn(async move {
        let mut ready = false;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut last_round = tokio::time::Instant::now() - health_every;
        loop {
            tokio::select! {
                _ = health_sd.recv() => break,
                _ = tick.tick() => {}
            }
            if !ready && (poll_only || hq.listener_up.load(Ordering::Relaxed) == 1) {
                ready = true;
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
                info!("ready: listening for new documents");
            }
            if last_round.elapsed() >= health_every {
                last_round = tokio::time::Instant::now();
                health_round(&hw, &he, &hq).await;
            }
        }
    });

    // Wait for a signal (or the worker ending by itself, which is an error).
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Failed(format!("cannot install the SIGTERM handler: {e}")))?;
    let early = tokio::select! {
        _ = sigterm.recv() => { info!("SIGTERM: finishing in-flight documents, then stopping"); None }
        _ = tokio::signal::ctrl_c() => { info!("SIGINT: finishing in-flight documents, then stopping"); None }
        r = &mut worker_task => Some(r),
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
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
    match worker_result {
        Ok(Ok(report)) => {
            info!(
                claimed = report.claimed,
                posted = report.posted,
                failed = report.failed,
                retries = report.retries,
                "worker stopped cleanly"
            );
            Ok(())
        }
        Ok(Err(e)) => {
            error!(error = %e, "worker stopped with an error");
            let hint = if e.is_missing_queue() {
                " — run `mikro-sync setup` first"
            } else {
                ""
            };
            Err(CliError::Failed(format!(
                "worker failed: {}{hint}",
                crate::db::error_chain(&e)
            )))
        }
        Err(join) => Err(CliError::Failed(format!(
            "worker task ended abnormally: {join}"
        ))),
    }
}
