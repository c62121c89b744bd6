//! Process-wide metrics, exposed in the Prometheus text format (0.0.4) by the official
//! `prometheus-client` crate.
//!
//! The daemon-level metrics (queue depth, pool and listener state, ERP → web sync) are
//! `prometheus-client` families held here; the web → ERP worker's counters and histograms stay
//! plain atomics owned by `crate::queue` (the worker must not depend on how they are exported)
//! and are read at scrape time. Everything is encoded by one [`Collector`], which writes each
//! metric's `# HELP` text exactly as listed below (the registry's own `register` would append a
//! full stop to every help text existing scrapers have seen without one). `crate::http` serves
//! [`Metrics::render`] at `/metrics`. Recording is lock-free or one short lock, and never fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Label pairs of one series, in the order they are printed.
type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The daemon-level metric families.
#[derive(Debug, Default)]
struct Families {
    queue_depth: Family<Labels, Gauge>,
    oldest_pending_seconds: Gauge<f64, AtomicU64>,
    listener_up: Gauge,
    pool_up: Family<Labels, Gauge>,
    erp_sync_rows: Family<Labels, Counter>,
    erp_sync_runs: Family<Labels, Counter>,
    build_info: Family<Labels, Gauge>,
}

/// The metric store. Use [`global()`].
#[derive(Debug)]
pub struct Metrics {
    families: Arc<Families>,
    registry: Registry,
}

/// The process-wide metric store.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A store with `mikro_sync_build_info` set and every family registered.
    pub fn new() -> Metrics {
        let families = Arc::new(Families::default());
        families
            .build_info
            .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
            .set(1);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition {
            families: families.clone(),
        }));
        Metrics { families, registry }
    }

    /// sync_queue rows with `status`.
    pub fn queue_depth(&self, status: &str, rows: i64) {
        self.families
            .queue_depth
            .get_or_create(&labels(&[("status", status)]))
            .set(rows);
    }

    /// Age of the oldest pending sync_queue row (0 when none).
    pub fn oldest_pending(&self, seconds: f64) {
        self.families.oldest_pending_seconds.set(seconds);
    }

    /// The LISTEN connection went up or down.
    pub fn listener_up(&self, up: bool) {
        self.families.listener_up.set(i64::from(up));
    }

    /// Whether the LISTEN connection was up at the last health round.
    pub fn is_listener_up(&self) -> bool {
        self.families.listener_up.get() == 1
    }

    /// The result of the last health check of `pool` (`web` or `erp`).
    pub fn pool_up(&self, pool: &str, up: bool) {
        self.families
            .pool_up
            .get_or_create(&labels(&[("pool", pool)]))
            .set(i64::from(up));
    }

    /// Whether `pool` answered its last health check (false before the first one).
    pub fn is_pool_up(&self, pool: &str) -> bool {
        self.families
            .pool_up
            .get(&labels(&[("pool", pool)]))
            .is_some_and(|g| g.get() == 1)
    }

    /// ERP → web rows applied (`op` = inserted, updated, deactivated, …).
    pub fn erp_rows(&self, entity: &str, op: &str, n: u64) {
        self.families
            .erp_sync_rows
            .get_or_create(&labels(&[("entity", entity), ("op", op)]))
            .inc_by(n);
    }

    /// One ERP → web sync run ended with `result` (`ok`, `busy`, `error`).
    pub fn erp_sync_run(&self, result: &str) {
        self.families
            .erp_sync_runs
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// ERP → web sync runs that ended with `result` so far (tests and `status` read this).
    pub fn erp_sync_runs(&self, result: &str) -> u64 {
        self.families
            .erp_sync_runs
            .get(&labels(&[("result", result)]))
            .map_or(0, |c| c.get())
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4): the
    /// daemon-level ones held here, then the web → ERP worker's counters and histograms.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, and every encoder step here is infallible
        // otherwise; an error would only truncate the scrape.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "metrics exposition incomplete");
        }
        out
    }
}

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

static WORKER: OnceLock<Arc<crate::queue::Metrics>> = OnceLock::new();

/// Makes the worker's counters (owned by `crate::queue`) part of `/metrics`. Called once by
/// the daemon; later calls are ignored (one worker per process).
pub fn attach_worker(m: Arc<crate::queue::Metrics>) {
    let _ = WORKER.set(m);
}

/// Encodes the daemon's families and, once attached, the worker's counters.
#[derive(Debug)]
struct Exposition {
    families: Arc<Families>,
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = &self.families;
        let own: [(&str, &str, &dyn EncodeMetric); 7] = [
            (
                "mikro_sync_queue_depth",
                "sync_queue rows by status (refreshed every few seconds)",
                &f.queue_depth,
            ),
            (
                "mikro_sync_queue_oldest_pending_seconds",
                "Age of the oldest pending sync_queue row",
                &f.oldest_pending_seconds,
            ),
            (
                "mikro_sync_listener_up",
                "1 while the LISTEN connection is established",
                &f.listener_up,
            ),
            (
                "mikro_sync_pool_up",
                "1 when the last health check of the pool succeeded (pool=web|erp)",
                &f.pool_up,
            ),
            (
                // The text encoder appends `_total` to counters.
                "mikro_sync_erp_sync_rows",
                "ERP to web rows applied, by entity and operation",
                &f.erp_sync_rows,
            ),
            (
                "mikro_sync_erp_sync_runs",
                "ERP to web sync runs, by result",
                &f.erp_sync_runs,
            ),
            (
                "mikro_sync_build_info",
                "Always 1; the version label says which build runs",
                &f.build_info,
            ),
        ];
        for (name, help, m) in own {
            let me = enc.encode_descriptor(name, help, None, m.metric_type())?;
            m.encode(me)?;
        }
        if let Some(w) = WORKER.get() {
            encode_worker(&mut enc, w)?;
        }
        Ok(())
    }
}

/// The worker's counters (names without the `_total` the encoder appends) and histograms.
fn encode_worker(
    enc: &mut DescriptorEncoder,
    w: &crate::queue::Metrics,
) -> Result<(), std::fmt::Error> {
    let counters: [(&str, &str, &AtomicU64); 13] = [
        (
            "mikro_sync_documents_posted",
            "Documents completed (posted into Mikro, or found already posted)",
            &w.posted,
        ),
        (
            "mikro_sync_documents_already_posted",
            "Of the posted: found in the ledger after a crash, only the web side completed",
            &w.already_posted,
        ),
        (
            "mikro_sync_documents_failed",
            "Documents that ended failed",
            &w.failed,
        ),
        (
            "mikro_sync_retries",
            "Failed attempts scheduled for another try",
            &w.retries,
        ),
        ("mikro_sync_claimed", "Queue rows claimed", &w.claimed),
        (
            "mikro_sync_rescued",
            "Rows put back to pending after their worker died (lease expired)",
            &w.rescued,
        ),
        (
            "mikro_sync_listener_reconnects",
            "LISTEN connection re-establishments",
            &w.listener_reconnects,
        ),
        (
            "mikro_sync_notifications",
            "Notifications received",
            &w.notifications,
        ),
        ("mikro_sync_drains", "Queue drains started", &w.drains),
        (
            "mikro_sync_posting_panics",
            "Postings that panicked (caught, recorded as a failed attempt)",
            &w.panics,
        ),
        (
            "mikro_sync_posting_timeouts",
            "Postings that ran past MIKRO_SYNC_POSTING_TIMEOUT (retried)",
            &w.posting_timeouts,
        ),
        (
            "mikro_sync_completion_retries",
            "Completions that could not be written and were tried again",
            &w.completion_retries,
        ),
        (
            "mikro_sync_poison_pills",
            "Documents failed because they crashed or hung the worker too often",
            &w.poison_pills,
        ),
    ];
    for (name, help, v) in counters {
        let mut me = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        me.encode_counter::<NoLabelSet, _, u64>(&v.load(Ordering::Relaxed), None)?;
    }
    for (name, help, h) in [
        (
            "mikro_sync_pickup_latency_seconds",
            "Web commit (queue row created) to processing start",
            &w.pickup_latency,
        ),
        (
            "mikro_sync_posting_latency_seconds",
            "Web commit (queue row created) to ERP commit",
            &w.end_to_end_latency,
        ),
    ] {
        let counts = h.bucket_counts();
        // Per-bucket counts; the encoder makes them cumulative and adds `+Inf` (= count).
        let buckets: Vec<(f64, u64)> = crate::queue::metrics::LATENCY_BUCKETS
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, counts.get(i).copied().unwrap_or(0)))
            .collect();
        let mut me = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
        me.encode_histogram::<NoLabelSet>(h.sum().as_secs_f64(), h.count(), &buckets, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.queue_depth("pending", 3);
        m.erp_rows("stok", "inserted", 5);
        m.pool_up("web", true);
        let s = m.render();
        assert!(
            s.contains("mikro_sync_queue_depth{status=\"pending\"} 3\n"),
            "{s}"
        );
        assert!(
            s.contains("mikro_sync_erp_sync_rows_total{entity=\"stok\",op=\"inserted\"} 5\n"),
            "{s}"
        );
        assert!(s.contains("# TYPE mikro_sync_queue_depth gauge\n"), "{s}");
        assert!(m.is_pool_up("web") && !m.is_pool_up("erp"));
        let w = crate::queue::Metrics::default();
        w.end_to_end_latency.observe(Duration::from_millis(7));
        w.posted.fetch_add(2, Ordering::Relaxed);
        let mut reg = Registry::default();
        reg.register_collector(Box::new(WorkerOnly(Arc::new(w))));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &reg).unwrap();
        assert!(
            out.contains("mikro_sync_documents_posted_total 2\n"),
            "{out}"
        );
        assert!(
            out.contains("mikro_sync_posting_latency_seconds_bucket{le=\"0.01\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("mikro_sync_posting_latency_seconds_bucket{le=\"0.005\"} 0\n"),
            "{out}"
        );
        assert!(
            out.contains("mikro_sync_posting_latency_seconds_bucket{le=\"+Inf\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("mikro_sync_posting_latency_seconds_count 1\n"),
            "{out}"
        );
    }

    /// The whole exposition's families, in order: name, type and help text exactly as existing
    /// dashboards and alerts know them, each family once, then samples with their labels.
    #[test]
    fn exposition_is_pinned() {
        const FAMILIES: &[(&str, &str, &str)] = &[
            (
                "mikro_sync_queue_depth",
                "gauge",
                "sync_queue rows by status (refreshed every few seconds)",
            ),
            (
                "mikro_sync_queue_oldest_pending_seconds",
                "gauge",
                "Age of the oldest pending sync_queue row",
            ),
            (
                "mikro_sync_listener_up",
                "gauge",
                "1 while the LISTEN connection is established",
            ),
            (
                "mikro_sync_pool_up",
                "gauge",
                "1 when the last health check of the pool succeeded (pool=web|erp)",
            ),
            (
                "mikro_sync_erp_sync_rows_total",
                "counter",
                "ERP to web rows applied, by entity and operation",
            ),
            (
                "mikro_sync_erp_sync_runs_total",
                "counter",
                "ERP to web sync runs, by result",
            ),
            (
                "mikro_sync_build_info",
                "gauge",
                "Always 1; the version label says which build runs",
            ),
            (
                "mikro_sync_documents_posted_total",
                "counter",
                "Documents completed (posted into Mikro, or found already posted)",
            ),
            (
                "mikro_sync_documents_already_posted_total",
                "counter",
                "Of the posted: found in the ledger after a crash, only the web side completed",
            ),
            (
                "mikro_sync_documents_failed_total",
                "counter",
                "Documents that ended failed",
            ),
            (
                "mikro_sync_retries_total",
                "counter",
                "Failed attempts scheduled for another try",
            ),
            ("mikro_sync_claimed_total", "counter", "Queue rows claimed"),
            (
                "mikro_sync_rescued_total",
                "counter",
                "Rows put back to pending after their worker died (lease expired)",
            ),
            (
                "mikro_sync_listener_reconnects_total",
                "counter",
                "LISTEN connection re-establishments",
            ),
            (
                "mikro_sync_notifications_total",
                "counter",
                "Notifications received",
            ),
            ("mikro_sync_drains_total", "counter", "Queue drains started"),
            (
                "mikro_sync_posting_panics_total",
                "counter",
                "Postings that panicked (caught, recorded as a failed attempt)",
            ),
            (
                "mikro_sync_posting_timeouts_total",
                "counter",
                "Postings that ran past MIKRO_SYNC_POSTING_TIMEOUT (retried)",
            ),
            (
                "mikro_sync_completion_retries_total",
                "counter",
                "Completions that could not be written and were tried again",
            ),
            (
                "mikro_sync_poison_pills_total",
                "counter",
                "Documents failed because they crashed or hung the worker too often",
            ),
            (
                "mikro_sync_pickup_latency_seconds",
                "histogram",
                "Web commit (queue row created) to processing start",
            ),
            (
                "mikro_sync_posting_latency_seconds",
                "histogram",
                "Web commit (queue row created) to ERP commit",
            ),
        ];
        let w = Arc::new(crate::queue::Metrics::default());
        attach_worker(w.clone());
        w.pickup_latency.observe(Duration::from_micros(300));
        w.pickup_latency.observe(Duration::from_secs(20));
        w.claimed.fetch_add(4, Ordering::Relaxed);
        let m = Metrics::new();
        m.queue_depth("pending", 2);
        m.oldest_pending(1.5);
        m.listener_up(true);
        m.pool_up("erp", false);
        m.erp_rows("cari", "updated", 3);
        m.erp_sync_run("busy");
        let out = m.render();
        let want: Vec<String> = FAMILIES
            .iter()
            .flat_map(|(n, t, h)| [format!("# HELP {n} {h}"), format!("# TYPE {n} {t}")])
            .collect();
        let got: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(got, want, "{out}");
        for sample in [
            "mikro_sync_queue_depth{status=\"pending\"} 2",
            "mikro_sync_queue_oldest_pending_seconds 1.5",
            "mikro_sync_listener_up 1",
            "mikro_sync_pool_up{pool=\"erp\"} 0",
            "mikro_sync_erp_sync_rows_total{entity=\"cari\",op=\"updated\"} 3",
            "mikro_sync_erp_sync_runs_total{result=\"busy\"} 1",
            &format!(
                "mikro_sync_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
            "mikro_sync_claimed_total 4",
            "mikro_sync_documents_posted_total 0",
            "mikro_sync_pickup_latency_seconds_bucket{le=\"0.0005\"} 1",
            "mikro_sync_pickup_latency_seconds_bucket{le=\"10\"} 1",
            "mikro_sync_pickup_latency_seconds_bucket{le=\"+Inf\"} 2",
            "mikro_sync_pickup_latency_seconds_sum 20.0003",
            "mikro_sync_pickup_latency_seconds_count 2",
            "mikro_sync_posting_latency_seconds_count 0",
        ] {
            assert!(out.lines().any(|l| l == sample), "{sample} missing:\n{out}");
        }
        assert_eq!(m.erp_sync_runs("busy"), 1);
        assert!(m.is_listener_up() && !m.is_pool_up("erp"));
    }

    /// The worker part alone (the global attachment is once per process).
    #[derive(Debug)]
    struct WorkerOnly(Arc<crate::queue::Metrics>);

    impl Collector for WorkerOnly {
        fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_worker(&mut enc, &self.0)
        }
    }
}
