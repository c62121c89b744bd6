//! The web→ERP queue: `sync_queue` rows enqueued by the web triggers, drained by a worker that
//! is woken by `pg_notify`, claims rows with `FOR UPDATE SKIP LOCKED` under a lease, posts each
//! document into Mikro exactly once in effect, and retries failures with persisted exponential
//! backoff.
//!
//! One file per life-cycle concern (River-style):
//! * [`notifier`] — the LISTEN connection and the idle advisory lock that lets writers skip NOTIFY;
//! * [`claimer`] — claiming due rows in batches, lease renewal;
//! * [`executor`] — running one document through a [`Sink`], completing it (number written back);
//! * [`rescuer`] — rows of dead workers back to pending;
//! * [`retry`] — the backoff and give-up policy;
//! * [`stats`] — queue statistics and the operator retry;
//! * [`worker`] — the run loop and graceful shutdown;
//! * [`metrics`] — counters and latency histograms for the exporter.

pub mod claimer;
pub mod executor;
pub mod metrics;
pub mod notifier;
pub mod rescuer;
pub mod retry;
pub mod stats;
pub mod worker;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::posting::DocKind;

pub use executor::{ExecHooks, MikroSink, NoopSink, Sink};
pub use metrics::{LatencyHistogram, Metrics};
pub use notifier::{ListenConnect, PgListenConnector, CHANNEL, IDLE_LOCK_KEY};
pub use retry::{Decision, RetryPolicy};
pub use stats::{retry_failed, stats, QueueStats, RetryFilter};
pub use worker::{Worker, WorkerOptions, WorkerReport};

/// One claimed queue row: a document to post.
#[derive(Debug, Clone)]
pub struct Job {
    /// `sync_queue.id`.
    pub id: Uuid,
    /// Sale or collection.
    pub kind: DocKind,
    /// The web document's id (`satislar.id` / `tahsilatlar.id`).
    pub entity_id: Uuid,
    /// Attempts including this one (`retry_count` after the claim).
    pub attempt: u32,
    /// When the row was enqueued (database clock).
    pub created_at: DateTime<Utc>,
    /// Start of the current retry window (database clock).
    pub first_attempt_at: DateTime<Utc>,
    /// When this attempt claimed it (database clock).
    pub claimed_at: DateTime<Utc>,
    /// When this attempt claimed it (local monotonic clock).
    pub claimed_instant: std::time::Instant,
}

/// Queue failures (not document failures: those are [`crate::posting::PostError`]).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A web-database statement failed.
    #[error("web database: {}", pg_error_text(.0))]
    Web(#[source] tokio_postgres::Error),
    /// No connection from the web pool.
    #[error("web connection pool: {0}")]
    Pool(String),
    /// The LISTEN connection failed.
    #[error("LISTEN connection: {}", pg_error_text(.0))]
    Listen(#[source] tokio_postgres::Error),
    /// The LISTEN connection did not answer in time.
    #[error("LISTEN connection did not answer in time")]
    ListenTimeout,
    /// Bad connection settings.
    #[error("invalid connection settings: {0}")]
    Config(String),
}

impl QueueError {
    /// True when `sync_queue` does not exist: `mikro-sync setup` was not run. Not retried.
    pub fn is_missing_queue(&self) -> bool {
        matches!(self, QueueError::Web(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE))
    }
}

/// The server's message (and detail) of a PostgreSQL error; tokio-postgres' Display says only
/// "db error", which tells an operator nothing.
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(": ");
                s.push_str(d);
            }
            s
        }
        None => e.to_string(),
    }
}
