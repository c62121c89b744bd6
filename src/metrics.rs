//! Process-wide metrics in Prometheus text format, without a metrics framework.
//!
//! Why hand-rolled: the daemon needs a dozen counters, gauges and two histograms; a small
//! lock-protected map keeps the dependency tree light and the exposition exact. Any part of the
//! daemon records through [`global()`]; `crate::http` serves [`Metrics::render`] at `/metrics`.
//! Recording is cheap (one short mutex section) and never fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use crate::queue::metrics::LATENCY_BUCKETS;

/// Metric names and their help text; the exposition prints these as `# HELP` / `# TYPE`.
const DESCRIPTORS: &[(&str, &str, &str)] = &[
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
        "mikro_sync_pickup_latency_seconds",
        "histogram",
        "Web commit (queue row created) to processing start",
    ),
    (
        "mikro_sync_posting_latency_seconds",
        "histogram",
        "Web commit (queue row created) to ERP commit",
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
];

type Labels = Vec<(String, String)>;

#[derive(Default)]
struct Hist {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(String, Labels), f64>,
    gauges: BTreeMap<(String, Labels), f64>,
    hists: BTreeMap<(String, Labels), Hist>,
}

/// The metric store. Use [`global()`].
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn key(name: &str, labels: &[(&str, &str)]) -> (String, Labels) {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The process-wide metric store.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = Metrics::default();
        m.set_gauge(
            "mikro_sync_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        m
    })
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters for metrics, so a poisoned lock is simply reused.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `by` to a counter.
    pub fn inc_by(&self, name: &str, labels: &[(&str, &str)], by: f64) {
        *self.lock().counters.entry(key(name, labels)).or_default() += by;
    }

    /// Adds 1 to a counter.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.inc_by(name, labels, 1.0);
    }

    /// Sets a gauge.
    pub fn set_gauge(&self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.lock().gauges.insert(key(name, labels), v);
    }

    /// Reads a gauge (health endpoints use this).
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.lock().gauges.get(&key(name, labels)).copied()
    }

    /// Reads a counter (tests and `status` use this).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.lock()
            .counters
            .get(&key(name, labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Records one observation into a histogram with [`LATENCY_BUCKETS`].
    pub fn observe(&self, name: &str, labels: &[(&str, &str)], d: Duration) {
        let v = d.as_secs_f64();
        let mut g = self.lock();
        let h = g.hists.entry(key(name, labels)).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; LATENCY_BUCKETS.len()];
        }
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if v <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += v;
        h.count += 1;
    }

    /// Convenience: the LISTEN connection went up or down.
    pub fn listener_up(&self, up: bool) {
        self.set_gauge("mikro_sync_listener_up", &[], if up { 1.0 } else { 0.0 });
    }

    /// Convenience: ERP → web rows applied (`op` = inserted, updated, deactivated).
    pub fn erp_rows(&self, entity: &str, op: &str, n: u64) {
        self.inc_by(
            "mikro_sync_erp_sync_rows_total",
            &[("entity", entity), ("op", op)],
            n as f64,
        );
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4): the
    /// daemon-level ones held here, then the web → ERP worker's counters and histograms.
    pub fn render(&self) -> String {
        let mut out = self.render_own();
        if let Some(w) = WORKER.get() {
            render_worker(&mut out, w);
        }
        out
    }

    fn render_own(&self) -> String {
        let g = self.lock();
        let mut out = String::new();
        for (name, kind, help) in DESCRIPTORS {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            match *kind {
                "counter" => {
                    for ((n, l), v) in g.counters.iter().filter(|((n, _), _)| n == name) {
                        let _ = writeln!(out, "{n}{} {}", fmt_labels(l, None), fmt_num(*v));
                    }
                }
                "gauge" => {
                    for ((n, l), v) in g.gauges.iter().filter(|((n, _), _)| n == name) {
                        let _ = writeln!(out, "{n}{} {}", fmt_labels(l, None), fmt_num(*v));
                    }
                }
                _ => {
                    for ((n, l), h) in g.hists.iter().filter(|((n, _), _)| n == name) {
                        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
                            let _ = writeln!(
                                out,
                                "{n}_bucket{} {}",
                                fmt_labels(l, Some(&fmt_num(*b))),
                                h.counts[i]
                            );
                        }
                        let _ =
                            writeln!(out, "{n}_bucket{} {}", fmt_labels(l, Some("+Inf")), h.count);
                        let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(l, None), fmt_num(h.sum));
                        let _ = writeln!(out, "{n}_count{} {}", fmt_labels(l, None), h.count);
                    }
                }
            }
        }
        out
    }
}

static WORKER: OnceLock<Arc<crate::queue::Metrics>> = OnceLock::new();

/// Makes the worker's counters (owned by `crate::queue`) part of `/metrics`. Called once by
/// the daemon; later calls are ignored (one worker per process).
pub fn attach_worker(m: Arc<crate::queue::Metrics>) {
    let _ = WORKER.set(m);
}

fn render_worker(out: &mut String, w: &crate::queue::Metrics) {
    let counters: [(&str, &str, &AtomicU64); 13] = [
        (
            "mikro_sync_documents_posted_total",
            "Documents completed (posted into Mikro, or found already posted)",
            &w.posted,
        ),
        (
            "mikro_sync_documents_already_posted_total",
            "Of the posted: found in the ledger after a crash, only the web side completed",
            &w.already_posted,
        ),
        (
            "mikro_sync_documents_failed_total",
            "Documents that ended failed",
            &w.failed,
        ),
        (
            "mikro_sync_retries_total",
            "Failed attempts scheduled for another try",
            &w.retries,
        ),
        ("mikro_sync_claimed_total", "Queue rows claimed", &w.claimed),
        (
            "mikro_sync_rescued_total",
            "Rows put back to pending after their worker died (lease expired)",
            &w.rescued,
        ),
        (
            "mikro_sync_listener_reconnects_total",
            "LISTEN connection re-establishments",
            &w.listener_reconnects,
        ),
        (
            "mikro_sync_notifications_total",
            "Notifications received",
            &w.notifications,
        ),
        ("mikro_sync_drains_total", "Queue drains started", &w.drains),
        (
            "mikro_sync_posting_panics_total",
            "Postings that panicked (caught, recorded as a failed attempt)",
            &w.panics,
        ),
        (
            "mikro_sync_posting_timeouts_total",
            "Postings that ran past MIKRO_SYNC_POSTING_TIMEOUT (retried)",
            &w.posting_timeouts,
        ),
        (
            "mikro_sync_completion_retries_total",
            "Completions that could not be written and were tried again",
            &w.completion_retries,
        ),
        (
            "mikro_sync_poison_pills_total",
            "Documents failed because they crashed or hung the worker too often",
            &w.poison_pills,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
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
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let counts = h.bucket_counts();
        let mut cum = 0u64;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cum += counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", fmt_num(*b));
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
        let _ = writeln!(out, "{name}_sum {}", h.sum().as_secs_f64());
        let _ = writeln!(out, "{name}_count {}", h.count());
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn fmt_labels(l: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.observe(
            "mikro_sync_test_seconds",
            &[("kind", "satis")],
            Duration::from_millis(7),
        );
        m.set_gauge("mikro_sync_queue_depth", &[("status", "pending")], 3.0);
        m.erp_rows("stok", "inserted", 5);
        let s = m.render_own();
        assert!(
            s.contains("mikro_sync_queue_depth{status=\"pending\"} 3"),
            "{s}"
        );
        assert!(
            s.contains("mikro_sync_erp_sync_rows_total{entity=\"stok\",op=\"inserted\"} 5"),
            "{s}"
        );
        assert!(s.contains("# TYPE mikro_sync_queue_depth gauge"));
        let w = crate::queue::Metrics::default();
        w.end_to_end_latency.observe(Duration::from_millis(7));
        w.posted.fetch_add(2, Ordering::Relaxed);
        let mut out = String::new();
        render_worker(&mut out, &w);
        assert!(out.contains("mikro_sync_documents_posted_total 2"), "{out}");
        assert!(
            out.contains("mikro_sync_posting_latency_seconds_bucket{le=\"0.01\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("mikro_sync_posting_latency_seconds_bucket{le=\"0.005\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("mikro_sync_posting_latency_seconds_count 1"),
            "{out}"
        );
    }
}
