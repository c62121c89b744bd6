//! Counters and latency histograms of the web→ERP worker, as plain atomics.
//!
//! Why atomics and not a metrics crate: the worker must not care how (or whether) they are
//! exported. "ship" reads them to serve Prometheus `/metrics`; tests and the benchmark read them
//! directly. All counters only grow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of every latency histogram, the worker's and the exporter's
/// (Prometheus-style, cumulative on export; stored per bucket here), from sub-millisecond
/// pick-up to minutes of retries. The last bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// A fixed-bucket latency histogram made of atomics.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Records one sample.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let idx = LATENCY_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// Per-bucket counts (not cumulative); index i pairs with `LATENCY_BUCKETS[i]`, the last
    /// entry is the +Inf bucket.
    pub fn bucket_counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of all samples.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed))
    }
}

/// Everything the worker counts. Share one `Arc<Metrics>` between the worker and the exporter.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Documents completed (posted now, or found already posted and completed).
    pub posted: AtomicU64,
    /// Of `posted`: found in the ledger already (a retry after a crash between ERP and web).
    pub already_posted: AtomicU64,
    /// Documents that ended `failed`.
    pub failed: AtomicU64,
    /// Failed attempts that were scheduled for another try.
    pub retries: AtomicU64,
    /// Rows claimed.
    pub claimed: AtomicU64,
    /// Claim statements (each takes up to `batch_size` rows).
    pub claims: AtomicU64,
    /// Microseconds a slot stood free with no claimed row to start while a claim travelled
    /// that came back full (the buffer ran dry while rows were due: see
    /// `MIKRO_SYNC_WORKER_PREFETCH`).
    pub starved_micros: AtomicU64,
    /// Rows kept claimed beyond those in flight, as last sized (a gauge).
    pub prefetch: AtomicU64,
    /// Claimed rows put back to pending by the rescuer (their worker died).
    pub rescued: AtomicU64,
    /// Times the LISTEN connection was re-established after a loss.
    pub listener_reconnects: AtomicU64,
    /// Notifications received (each may stand for many rows).
    pub notifications: AtomicU64,
    /// Drains started because of a notification, a poll tick or a reconnect.
    pub drains: AtomicU64,
    /// Times going idle found another worker holding the idle lock (it idles without it).
    pub idle_other_worker: AtomicU64,
    /// Times going idle found writers still inside their transactions (looked again shortly).
    pub idle_writers_busy: AtomicU64,
    /// Postings that panicked (caught; recorded as a failed attempt).
    pub panics: AtomicU64,
    /// Postings that ran past the posting timeout (a transient failure).
    pub posting_timeouts: AtomicU64,
    /// Completions that could not be written and were tried again.
    pub completion_retries: AtomicU64,
    /// Rows failed by the rescuer: their lease expired too often (the worker crashed or hung).
    pub poison_pills: AtomicU64,
    /// Turns of the worker loop that found no posting stuck past its timeout: the systemd
    /// watchdog is fed only while this grows (see `queue::watchdog`).
    pub loop_turns: AtomicU64,
    /// 1 while the LISTEN connection is up, 0 otherwise (for /healthz).
    pub listener_up: AtomicU64,
    /// Enqueue → claimed (`created_at` to the claim, database clock).
    pub pickup_latency: LatencyHistogram,
    /// Enqueue → ERP commit.
    pub end_to_end_latency: LatencyHistogram,
}

impl Metrics {
    /// Adds one to a counter.
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
