//! The web→ERP queue: `sync_queue` rows enqueued by the web triggers, drained by a worker that
//! is woken by `pg_notify`, claims rows with `FOR UPDATE SKIP LOCKED` under a lease, posts each
//! document into Mikro exactly once in effect, and retries failures with persisted exponential
//! backoff.
//!
//! One file per life-cycle concern (River-style):
//! * [`notifier`] — the LISTEN connection and the idle advisory lock that lets writers skip NOTIFY;
//! * [`claimer`] — claiming due rows in batches, lease renewal;
//! * `schedule` — how many rows to keep claimed ahead (automatic prefetch) and which starts next
//!   (a series not being posted first);
//! * [`executor`] — running one document through a [`Sink`], completing it (number written back);
//! * [`rescuer`] — rows of dead workers back to pending;
//! * [`retry`] — the backoff and give-up policy;
//! * [`stats`](mod@stats) — queue statistics and the operator retry;
//! * [`store`] — every statement on the queue tables, the NOTIFY channel and the idle lock key;
//! * [`worker`] — the run loop and graceful shutdown;
//! * [`watchdog`] — the systemd watchdog, fed by the loop's progress;
//! * [`metrics`] — counters and latency histograms for the exporter.
//!
//! ## Design decisions
//!
//! **Lease, not a held row lock.** A claim sets `status = 'processing'`, `claimed_by`,
//! `claimed_at` and `lease_until` in one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)`
//! statement; the worker renews the lease every `lease / 3` while it works, and any worker's
//! rescuer puts rows with an expired lease back to `pending`. Holding the row lock for the whole
//! posting instead would keep one web transaction (and pooled connection) open across every ERP
//! round trip, and hide `processing` from the operators' status query. A kill -9 leaves rows
//! claimed for at most one lease (30 s by default); `tests/it/queue_kill.rs` and
//! `tests/it/pipeline_kill.rs` prove nothing stays claimed and nothing is posted twice.
//!
//! **Waking without slowing the web app.** `NOTIFY` takes a cluster-wide lock at commit, so a
//! per-row notify serialises concurrent writers (the benchmark's "naive" line). The trigger
//! notifies with a constant payload (once per transaction at most), and only when a worker is
//! idle: an idle worker holds the advisory lock [`IDLE_LOCK_KEY`] exclusively on its LISTEN
//! session; the trigger's `pg_try_advisory_xact_lock_shared` succeeds only when no worker is
//! idle (it then skips the notify and keeps the shared lock until commit). Before a worker goes
//! idle it takes the lock exclusively — which waits for every writer that skipped its notify
//! to commit — and claims once more. A shared try-lock also fails while an exclusive request
//! is queued, so a failed try means "notify": a wake-up can be spare, never missed. With several
//! workers, one holds the lock and the others idle without it (notifications reach all
//! listeners). After a drain that found work, the worker polls for `linger` (20 ms) before
//! idling, so a steady write stream keeps skipping the notify. The 5 s poll remains the
//! safety net, and every (re)connect of the LISTEN connection drains.
//!
//! **What the triggers cost the web app.** With the notify skipped, what is left is the queue
//! row, in the web app's own transaction — the price of a transactional outbox. The row goes
//! into `sync_queue_inbox`, a child table of `sync_queue` (PostgreSQL inheritance) without
//! indexes: every query on `sync_queue` sees it, and the web transaction pays for a heap insert
//! only. The claim statement moves the inbox into `sync_queue` ([`store::claim`]),
//! where the one-open-row index drops a second enqueue of a document, as the trigger's
//! `ON CONFLICT` used to. Written straight into `sync_queue`, the row would pay for three indexes
//! and the arbiter check of `ON CONFLICT` inside the web app's transaction. The rest of the
//! install is kept as small as PostgreSQL allows: no `WHEN` clause on the triggers (PostgreSQL re-plans it per
//! INSERT; the function's first `IF` does the filtering), one CHECK through a tiny IMMUTABLE
//! function instead of inline `IN` lists (also re-planned per INSERT). `cargo bench --bench
//! pipeline` section 4 prints the split: the trigger call, the wake-up logic, the row.
//!
//! **Exactly-once in effect.** Posting writes the ledger row in the ERP transaction; the web
//! side is completed afterwards in one statement (queue row + number written back). A crash in
//! between is retried; posting then finds the ledger row (`already_posted`) and only the web
//! side is completed (`tests/it/pipeline_exactly_once.rs` injects exactly that failure).
//!
//! **Retries.** `retry_count` counts attempts (incremented by the claim). Backoff is persisted
//! in `next_attempt_at` (see [`retry`]); a failing document only delays itself. The operators'
//! `UPDATE sync_queue SET status = 'pending', retry_count = 0 WHERE status = 'failed'` fires a
//! row trigger that makes the row due now, starts a fresh retry window and notifies.

pub mod claimer;
pub mod executor;
pub mod metrics;
pub mod notifier;
pub mod rescuer;
pub mod retry;
mod schedule;
pub mod stats;
pub mod store;
pub mod watchdog;
pub mod worker;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::posting::DocKind;

pub use executor::{ExecHooks, MikroSink, NoopSink, Sink};
pub use metrics::{LatencyHistogram, Metrics};
pub use notifier::{ListenConnect, PgListenConnector};
pub use retry::{Decision, RetryPolicy};
pub use stats::{retry_failed, stats, QueueStats, RetryFilter};
pub use store::{CHANNEL, IDLE_LOCK_KEY};
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
    /// Lease expiries charged to the row so far (see [`rescuer`]); above 0 the worker marks
    /// the start of the posting in the row, so a crash during it is charged to it.
    pub lease_expiries: u32,
    /// The document as the claim read it, in the claim's snapshot (see
    /// [`store::claim_documents`]); None when the sink reads it itself.
    pub document: Option<std::sync::Arc<crate::posting::LoadedDocument>>,
    /// The document's rows as the claim read them, carried to the completion so a change made
    /// while it was being posted is recorded ([`store::FINISH_SQL`]); None without
    /// [`Self::document`].
    pub posted: Option<std::sync::Arc<ClaimedRows>>,
}

// Declared in `posting` (which reads it from the claim's rows) so `posting` needs nothing of
// `queue`: the dependency goes one way only.
pub use crate::posting::ClaimedRows;

/// Queue failures (not document failures: those are [`crate::posting::PostError`]).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A web-database statement failed.
    #[error("web database: {}", crate::db::pg_error_text(.0))]
    Web(#[source] tokio_postgres::Error),
    /// No connection from the web pool.
    #[error("web connection pool: {0}")]
    Pool(String),
    /// The LISTEN connection failed.
    #[error("LISTEN connection: {}", crate::db::pg_error_text(.0))]
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
